import Foundation
import Hummingbird
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardRules
import SwitchboardWire

/// Operator endpoints, for tokens whose `role` is `admin` or `service_role`.
///
/// `GET /admin/channels`: the busiest channels with subscriber, message-rate and presence counts.
/// `POST /admin/disconnect?sub=S`: closes every connection of one user.
/// `GET /admin/rules`: the rules generation in force, its files and load time, and the errors
/// of the last reload when it failed (the previous generation then keeps serving); in a
/// cluster, every node's generation, digest and last error, and whether they agree.
/// `GET /admin/cluster`: the nodes sharing the database, their heartbeats, connections and rules.
struct AdminRoutes {
    let shared: RealtimeContext
    let rest: RESTRoutes
    let cluster: ClusterNode?

    func register(on router: Router<BasicRequestContext>) {
        router.get("/admin/rules") { request, _ in
            if let refusal = await refuseUnlessAdmin(request) { return refusal }
            guard let rules = shared.rules else {
                return RESTRoutes.json(.notFound, ["message": "this server runs a policy given by its embedder, not a rules directory"])
            }
            var described = Self.describe(rules)
            if let cluster, case .object(var object) = described {
                // The other nodes' rules as of their last heartbeat: do they load the same files?
                let view = Self.describe(cluster)
                object["node"] = view["node"] ?? .null
                object["cluster_rules_agree"] = view["rules_agree"] ?? .null
                object["cluster"] = .array(
                    (view["nodes"]?.arrayValue ?? []).map { node in
                        [
                            "name": node["name"] ?? .null, "alive": node["alive"] ?? .null, "generation": node["rules_generation"] ?? .null,
                            "digest": node["rules_digest"] ?? .null, "last_error": node["rules_error"] ?? .null,
                        ]
                    })
                described = .object(object)
            }
            return RESTRoutes.json(.ok, described)
        }
        router.get("/admin/channels") { request, _ in await channels(request) }
        router.get("/admin/cluster") { request, _ in
            if let refusal = await refuseUnlessAdmin(request) { return refusal }
            return RESTRoutes.json(.ok, Self.describe(cluster))
        }
        router.post("/admin/disconnect") { request, _ in await disconnect(request) }
    }

    /// `POST /admin/disconnect?sub=S`: closes every connection of user `S` (close code 4001,
    /// "disconnected by an operator"); clients may reconnect. Answers how many were closed.
    private func disconnect(_ request: Request) async -> Response {
        if let refusal = await refuseUnlessAdmin(request) { return refusal }
        guard let subject = request.uri.queryParameters.get("sub"), !subject.isEmpty else {
            return RESTRoutes.json(.badRequest, ["message": "give the user's token subject: POST /admin/disconnect?sub=<sub>"])
        }
        let closed = await shared.hub.disconnect(subject: subject, reason: "disconnected by an operator")
        return RESTRoutes.json(.ok, ["disconnected": .int(closed)])
    }

    /// `GET /admin/channels?limit=N`: the busiest channels (by subscribers, then messages).
    private func channels(_ request: Request) async -> Response {
        if let refusal = await refuseUnlessAdmin(request) { return refusal }
        let limit = request.uri.queryParameters.get("limit", as: Int.self) ?? 50
        guard (1...10_000).contains(limit) else {
            return RESTRoutes.json(.badRequest, ["message": "limit must be 1...10000"])
        }
        let subscribers = await shared.hub.subscriberCounts()
        let rates = shared.activity.messagesPerMinute(now: shared.configuration.clock.monotonicSeconds())
        let topics = Set(subscribers.keys).union(rates.keys)
        let rows = topics.map { topic in
            (topic: topic, subscribers: subscribers[topic] ?? 0, messages: rates[topic] ?? 0, presences: shared.presence.count(topic: topic))
        }
        .sorted { ($0.subscribers, $0.messages, $1.topic) > ($1.subscribers, $1.messages, $0.topic) }
        .prefix(limit)
        let list: [Value] = rows.map { row in
            [
                "channel": .string(String(row.topic.dropFirst("realtime:".count))), "subscribers": .int(row.subscribers),
                "messages_per_minute": .int(row.messages), "presences": .int(row.presences),
            ]
        }
        let history = shared.log.usage()
        return RESTRoutes.json(
            .ok,
            [
                "channels": .array(list), "total_channels": .int(topics.count),
                "history": ["channels": .int(history.channels), "messages": .int(history.messages), "bytes": .int(history.bytes)],
            ])
    }

    func refuseUnlessAdmin(_ request: Request) async -> Response? {
        refuseUnlessAdmin(await rest.authenticate(request))
    }

    /// 401 without a valid token, 403 for a role other than admin or service_role, else nil.
    func refuseUnlessAdmin(_ identity: Identity?) -> Response? {
        guard let identity else {
            shared.metrics.rejected(.badToken)
            return RESTRoutes.json(.unauthorized, ["message": "Unauthorized: send an admin token as Authorization: Bearer <jwt>"])
        }
        guard identity.isAdmin else {
            shared.metrics.rejected(.unauthorized)
            return RESTRoutes.json(
                .forbidden, ["message": .string("Forbidden: the token's role is \(identity.role); admin or service_role is required")])
        }
        return nil
    }

    /// Each relation: where its rows came from (`file`, `database`), how many, when they were
    /// last read, and for one the rules declare from the database, its declaration.
    static func relations(_ rules: RulesEngine) -> Value {
        let info = rules.relationInfo
        let declared = rules.rules.relations
        var described: Value.Object = [:]
        for name in Set(info.keys).union(declared.keys).sorted() {
            var relation: Value.Object = ["rows": .int(info[name]?.rows ?? 0)]
            relation["source"] = info[name].map { .string($0.source.rawValue) } ?? .null
            relation["refreshed_at"] = info[name].map { .string($0.refreshedAt.formatted(.iso8601)) } ?? .null
            if let declaration = declared[name] { relation["declared_at"] = .string(declaration.location) }
            described[name] = .object(relation)
        }
        return .object(described)
    }

    /// `GET /admin/cluster`: every node on the database, its heartbeat, connections and rules, and
    /// whether the live nodes run the same rules (`rules_agree`: one digest and no failed reload).
    static func describe(_ cluster: ClusterNode?) -> Value {
        guard let cluster else {
            return ["node": .null, "nodes": [], "rules_agree": true, "message": "no database: this server is a cluster of one"]
        }
        let rows = cluster.nodes
        let alive = rows.filter { !$0.isGone }
        let agree = Set(alive.map(\.rulesDigest)).count <= 1 && alive.allSatisfy { $0.rulesError == nil }
        return [
            "node": .string(cluster.name),
            "gone_after_seconds": .int(Int(ClusterLink.goneAfterSeconds)),
            "rules_agree": .bool(agree),
            "nodes": .array(
                rows.map { row in
                    [
                        "name": .string(row.name), "alive": .bool(!row.isGone), "self": .bool(row.name == cluster.name),
                        "heartbeat_age_seconds": .number(String(format: "%.1f", row.silenceSeconds)), "started_at": .string(row.startedAt),
                        "address": .string(row.address), "connections": .int(row.connections),
                        "rules_generation": .int(row.rulesGeneration), "rules_digest": .string(row.rulesDigest),
                        "rules_error": row.rulesError.map(Value.string) ?? .null,
                    ]
                }),
        ]
    }

    static func describe(_ rules: RulesEngine) -> Value {
        let status = rules.status
        let set = rules.rules
        let lastError: Value =
            status.lastErrors.isEmpty
            ? .null
            : .array(
                status.lastErrors.map { error in
                    ["code": .string(error.code.description), "location": error.location.map(Value.string) ?? .null, "message": .string(error.message)]
                })
        return [
            "directory": .string(rules.directory.path),
            "generation": .int(status.generation),
            "loaded_at": .string(status.loadedAt.formatted(.iso8601)),
            "files": .array(status.files.map(Value.string)),
            "digest": .string(status.digest),
            "channels": .int(set.channels.count),
            "events": .int(set.events.count),
            "tiers": .array(set.tiers.keys.sorted().map(Value.string)),
            "default_tier": .string(set.defaultTier),
            "relations": relations(rules),
            "last_error": lastError,
        ]
    }
}
