import CoreMetrics
import Metrics
import Prometheus
import Foundation
import SwitchboardCore
import SwitchboardRules
import Synchronization

/// The server's metrics, created through swift-metrics with a Prometheus factory owned by this
/// server (not the process-wide `MetricsSystem`, so several servers can run in one test process).
///
/// Per-channel figures are labelled by channel *scope* only (`supplier`, `couple`, …), never by
/// channel id, so the number of series stays bounded.
final class ServerMetrics: Sendable {
    /// Scopes that get their own label; any other scope is counted as `other`.
    static let knownScopes: Set<String> = ["supplier", "couple", "form", "journey", "collaboration", "system", "public"]

    let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    let connections: CoreMetrics.Meter
    let messagesIn: CoreMetrics.Counter
    let messagesOut: CoreMetrics.Counter
    let joinsAccepted: CoreMetrics.Counter
    /// The rules generation in force.
    let rulesGeneration: CoreMetrics.Meter
    let rulesReloaded: CoreMetrics.Counter
    let rulesReloadFailed: CoreMetrics.Counter
    /// Hooks that failed (error, budget, memory) and so denied.
    let ruleHookErrors: CoreMetrics.Counter
    /// Joins that asked for a replay, by whether the gap was recovered.
    let replaysRecovered: CoreMetrics.Counter
    let replaysNotRecovered: CoreMetrics.Counter
    /// Messages delivered by replays.
    let messagesReplayed: CoreMetrics.Counter
    /// Publishes dropped as repeats of a client-chosen id.
    let duplicatesDropped: CoreMetrics.Counter
    /// 1 while the database is reachable, 0 while it is not (absent without a database).
    let databaseUp: CoreMetrics.Meter
    /// Rows of `realtime.messages` by what became of them.
    let databasePublished: CoreMetrics.Counter
    let databaseRefused: CoreMetrics.Counter
    let databaseIgnored: CoreMetrics.Counter
    /// 1 while the relations the rules read from the database are kept fresh (their tables
    /// watched), 0 while they are not and the rows read last serve (absent without a database).
    let relationsWatching: CoreMetrics.Meter
    /// Bytes of WAL the changes slot has not read yet (absent without a database).
    let changesSlotLag: CoreMetrics.Meter
    /// Nodes of the cluster that are alive (this one included), as of the last heartbeat.
    let clusterNodes: CoreMetrics.Meter
    /// Running totals the console reads (swift-metrics counters cannot be read back).
    let totals = Totals()

    final class Totals: Sendable {
        private let joins = Atomic<Int>(0)
        private let messagesIn = Atomic<Int>(0)
        private let messagesOut = Atomic<Int>(0)

        func joined() { joins.add(1, ordering: .relaxed) }
        func received(_ count: Int = 1) { messagesIn.add(count, ordering: .relaxed) }
        func delivered(_ count: Int) { messagesOut.add(count, ordering: .relaxed) }

        var current: (joins: Int, messagesIn: Int, messagesOut: Int) {
            (joins.load(ordering: .relaxed), messagesIn.load(ordering: .relaxed), messagesOut.load(ordering: .relaxed))
        }
    }
    /// Per relation: its rows (labelled with its source) and when they were last read.
    private let relationMeters = Mutex<[String: RelationMeters]>([:])
    private let subscriptionsByScope: [String: CoreMetrics.Meter]
    private let presencesByScope: [String: CoreMetrics.Meter]
    private let rejectionsByReason: [String: CoreMetrics.Counter]

    /// Reasons a message or join can be rejected, as metric labels.
    enum Rejection: String, CaseIterable {
        case malformed, unauthorized, payloadTooLarge = "payload_too_large", tooManyChannels = "too_many_channels"
        case unmatchedTopic = "unmatched_topic", invalidTopic = "invalid_topic", unknownEvent = "unknown_event"
        case badToken = "bad_token", slowConsumer = "slow_consumer", rateLimited = "rate_limited"
        case emitDepth = "emit_depth", emitLimit = "emit_limit", notDurable = "not_durable"
    }

    init() {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        self.registry = registry
        self.factory = factory
        connections = CoreMetrics.Meter(label: "switchboard_connections", factory: factory)
        messagesIn = CoreMetrics.Counter(label: "switchboard_messages_in_total", factory: factory)
        messagesOut = CoreMetrics.Counter(label: "switchboard_messages_out_total", factory: factory)
        joinsAccepted = CoreMetrics.Counter(label: "switchboard_joins_total", factory: factory)
        rulesGeneration = CoreMetrics.Meter(label: "switchboard_rules_generation", factory: factory)
        rulesReloaded = CoreMetrics.Counter(label: "switchboard_rules_reloads_total", dimensions: [("result", "ok")], factory: factory)
        rulesReloadFailed = CoreMetrics.Counter(
            label: "switchboard_rules_reloads_total", dimensions: [("result", "failed")], factory: factory)
        ruleHookErrors = CoreMetrics.Counter(label: "switchboard_rule_hook_errors_total", factory: factory)
        replaysRecovered = CoreMetrics.Counter(label: "switchboard_replays_total", dimensions: [("recovered", "true")], factory: factory)
        replaysNotRecovered = CoreMetrics.Counter(label: "switchboard_replays_total", dimensions: [("recovered", "false")], factory: factory)
        messagesReplayed = CoreMetrics.Counter(label: "switchboard_messages_replayed_total", factory: factory)
        duplicatesDropped = CoreMetrics.Counter(label: "switchboard_duplicates_dropped_total", factory: factory)
        databaseUp = CoreMetrics.Meter(label: "switchboard_database_up", factory: factory)
        databasePublished = CoreMetrics.Counter(
            label: "switchboard_database_messages_total", dimensions: [("result", "published")], factory: factory)
        databaseRefused = CoreMetrics.Counter(
            label: "switchboard_database_messages_total", dimensions: [("result", "refused")], factory: factory)
        databaseIgnored = CoreMetrics.Counter(
            label: "switchboard_database_messages_total", dimensions: [("result", "ignored")], factory: factory)
        relationsWatching = CoreMetrics.Meter(label: "switchboard_relations_watching", factory: factory)
        changesSlotLag = CoreMetrics.Meter(label: "switchboard_changes_slot_lag_bytes", factory: factory)
        clusterNodes = CoreMetrics.Meter(label: "switchboard_cluster_nodes", factory: factory)
        var scopes: [String: CoreMetrics.Meter] = [:]
        for scope in Self.knownScopes.union(["other"]) {
            scopes[scope] = CoreMetrics.Meter(label: "switchboard_subscriptions", dimensions: [("scope", scope)], factory: factory)
        }
        subscriptionsByScope = scopes
        var presences: [String: CoreMetrics.Meter] = [:]
        for scope in Self.knownScopes.union(["other"]) {
            presences[scope] = CoreMetrics.Meter(label: "switchboard_presences", dimensions: [("scope", scope)], factory: factory)
        }
        presencesByScope = presences
        var rejections: [String: CoreMetrics.Counter] = [:]
        for reason in Rejection.allCases {
            rejections[reason.rawValue] = CoreMetrics.Counter(
                label: "switchboard_rejected_total", dimensions: [("reason", reason.rawValue)], factory: factory)
        }
        rejectionsByReason = rejections
    }

    func subscriptions(scope: Substring) -> CoreMetrics.Meter? {
        subscriptionsByScope[Self.knownScopes.contains(String(scope)) ? String(scope) : "other"]
    }

    /// Tracked presences (metas) by channel scope.
    func presences(scope: Substring) -> CoreMetrics.Meter? {
        presencesByScope[Self.knownScopes.contains(String(scope)) ? String(scope) : "other"]
    }

    /// One join's replay.
    func replays(recovered: Bool, messages: Int) {
        (recovered ? replaysRecovered : replaysNotRecovered).increment()
        messagesReplayed.increment(by: Int64(messages))
    }

    func rejected(_ reason: Rejection) {
        rejectionsByReason[reason.rawValue]?.increment()
    }

    /// Sets each relation's figures (`switchboard_relation_rows{relation,source}` and
    /// `switchboard_relation_refreshed_timestamp_seconds{relation}`) and removes those of
    /// relations no longer defined.
    func relations(_ info: [String: RelationInfo]) {
        relationMeters.withLock { meters in
            for (name, old) in meters where info[name]?.source != old.source {
                old.rows.destroy()
                old.refreshed.destroy()
                meters[name] = nil
            }
            for (name, relation) in info {
                let entry =
                    meters[name]
                    ?? RelationMeters(
                        source: relation.source,
                        rows: CoreMetrics.Meter(
                            label: "switchboard_relation_rows", dimensions: [("relation", name), ("source", relation.source.rawValue)],
                            factory: factory),
                        refreshed: CoreMetrics.Meter(
                            label: "switchboard_relation_refreshed_timestamp_seconds", dimensions: [("relation", name)], factory: factory))
                entry.rows.set(relation.rows)
                entry.refreshed.set(relation.refreshedAt.timeIntervalSince1970)
                meters[name] = entry
            }
        }
    }

    private struct RelationMeters {
        let source: RelationInfo.Source
        let rows: CoreMetrics.Meter
        let refreshed: CoreMetrics.Meter
    }

    /// The Prometheus text exposition of every metric.
    func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
