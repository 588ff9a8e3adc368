import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SwitchboardAuth
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardRules
import SwitchboardWire

/// What every connection shares: the hub, the token verifier, the policy and the limits.
final class RealtimeContext: Sendable {
    let hub: Hub
    let verifier: TokenVerifier
    let policy: any Policy
    /// The rules engine behind `policy`, unless the configuration injected a policy of its own.
    let rules: RulesEngine?
    let configuration: SwitchboardConfiguration
    let metrics: ServerMetrics
    let logger: Logger
    let rateLimiter = ChannelRateLimiter()
    let log: ChannelLog
    let batches: BatchRegistry
    let activity = ChannelActivity()
    let presence: PresenceRegistry
    /// Whether the database is reachable; nil when the server runs without one.
    let database: DatabaseHealth?
    /// Whether the relations the rules read from the database are watched for changes; nil
    /// without a database.
    let relations: RelationsHealth?
    /// The tables in the `supabase_realtime` publication and their columns; nil without a
    /// database (joins are then not checked against them).
    let changesCatalog: PublishedCatalog?
    /// The other nodes on the same database; nil without one.
    let cluster: ClusterLink?
    private let connectionIDs = NIOLockedValueBox<UInt64>(0)

    /// A process-unique id for a connection (the owner of its presence entries).
    func nextConnectionID() -> UInt64 {
        connectionIDs.withLockedValue { id in
            id += 1
            return id
        }
    }

    init(
        hub: Hub, verifier: TokenVerifier, policy: any Policy, rules: RulesEngine?, configuration: SwitchboardConfiguration,
        database: DatabaseHealth? = nil, relations: RelationsHealth? = nil, changesCatalog: PublishedCatalog? = nil,
        history: HistoryStore? = nil, cluster: ClusterLink? = nil, logger: Logger
    ) {
        self.hub = hub
        self.database = database
        self.relations = relations
        self.changesCatalog = changesCatalog
        let log = ChannelLog(
            hub: hub, maxHistoryBytes: configuration.maxHistoryBytes, maxHistoryChannels: configuration.maxHistoryChannels,
            recentIDCapacity: configuration.maxRecentMessageIDs, durable: history, cluster: cluster, now: { [clock = configuration.clock] in clock.wallClockMilliseconds() })
        self.log = log
        self.batches = BatchRegistry(log: log, clock: configuration.clock)
        self.cluster = cluster
        // Seeded by the start time and the node, so refs differ across restarts and nodes.
        var seed = UInt64(max(0, configuration.clock.wallClockMilliseconds()))
        if let cluster { seed ^= UInt64(truncatingIfNeeded: Self.stableHash(cluster.node)) << 40 }
        self.presence = PresenceRegistry(seed: seed)
        self.verifier = verifier
        self.policy = policy
        self.rules = rules
        self.configuration = configuration
        self.metrics = hub.metrics
        self.logger = logger
    }

    /// The identity's tier limits, with the payload limit held to the server's ceiling (frames
    /// larger than `maxFrameBytes` are never read whole).
    func limits(for identity: Identity) -> Limits {
        var limits = policy.limits(for: identity)
        limits.maxPayloadBytes = min(limits.maxPayloadBytes, configuration.maxPayloadBytes)
        return limits
    }

    /// The one rules decision for a message to publish (`Policy.decidePush`: one generation
    /// for all of it), with the tier's payload limit held to the server's ceiling.
    func decide(
        _ identity: Identity, channel: ChannelName, event: String, payload: Value?, source: PushSource = .user, sizeOver: (_ limit: Int) -> Int?
    ) -> PushDecision {
        var decision = policy.decidePush(identity, channel: channel, event: event, payload: payload, source: source, sizeOver: sizeOver)
        let ceiling = configuration.maxPayloadBytes
        if decision.limits.maxPayloadBytes > ceiling {
            decision.limits.maxPayloadBytes = ceiling
            if source == .user, decision.verdict == .allow, let bytes = sizeOver(ceiling) {
                decision.verdict = .tooLarge(bytes: bytes, limit: ceiling)
            }
        }
        return decision
    }

    /// After the rules allowed a message (`decision`, from `decide`): drops a repeat of the
    /// publisher's own id (already published: acknowledged, not delivered again), counts it on
    /// its budget (the event's own, or the channel's at the sender's tier limit), then
    /// publishes it now or holds it for its batch window. Returns the reason when it was
    /// refused (nothing is published then; the refusal is already counted in the metrics).
    ///
    /// `binaryBody` is the raw body of a binary kind 3 push, which `transform` never rewrites;
    /// `asBinary` says the push was kind 3 (vsn 2.0.0 peers get kind 4). `limited: false`
    /// skips the rate limits (a database's committed rows: refusing them would lose them).
    func admit(
        event: String, payload: Value?, binaryBody: ByteBuffer? = nil, asBinary: Bool = false, clientID: String? = nil,
        channel: ChannelName, topic: String, identity: Identity, sender: UInt64?, loop: any EventLoop, decision: PushDecision,
        limited: Bool = true, acknowledge: (@Sendable (Bool) -> Void)? = nil
    ) -> Refusal? {
        // PostgreSQL's text cannot hold a NUL: such a name could never be stored, and one
        // message must not stop the history's writes.
        if event.utf8.contains(0) { return counted(.malformed("an event name cannot contain a NUL character")) }
        if let clientID, log.isRepeat(clientID, topic: topic) {
            metrics.duplicatesDropped.increment()
            acknowledge?(true)
            return nil
        }
        return admit(
            event: event, payload: payload, binaryBody: binaryBody, asBinary: asBinary, clientID: clientID, channel: channel, topic: topic,
            identity: identity, sender: sender, loop: loop, decision: decision, depth: 0, derived: DerivedBudget(limited: limited),
            acknowledge: acknowledge)
    }

    /// What one original message may still derive, across every level of `on_publish`, and
    /// which limits it hit (each is reported once per message).
    private final class DerivedBudget {
        /// Whether the original message (and so what it derives) counts on rate limits.
        let limited: Bool
        var remaining = RealtimeContext.maxDerivedPerMessage
        var hitDepth = false
        var hitLimit = false

        init(limited: Bool) { self.limited = limited }
    }

    private func admit(
        event: String, payload original: Value?, binaryBody: ByteBuffer?, asBinary: Bool, clientID: String?, channel: ChannelName,
        topic: String, identity: Identity, sender: UInt64?, loop: any EventLoop, decision: PushDecision, depth: Int, derived: DerivedBudget,
        acknowledge: (@Sendable (Bool) -> Void)? = nil
    ) -> Refusal? {
        let travel = decision.travel
        let now = configuration.clock.monotonicSeconds()
        var budget: String?
        if !derived.limited {
            // Not counted: a database's committed rows.
        } else if let rate = travel.rateLimit {
            let key = rate.per == .user ? "\(channel)#\(event)#\(identity.subject ?? "")" : "\(channel)#\(event)"
            if case .refused(let retryAfter) = rateLimiter.attempt(key: key, limit: rate.perMinute, now: now) {
                return counted(.eventRateLimited(event, on: channel, rate: rate, retryAfter: retryAfter))
            }
            budget = key
        } else {
            let limit = decision.limits.messagesPerMinute
            if case .refused(let retryAfter) = rateLimiter.attempt(key: channel.rawValue, limit: limit, now: now) {
                return counted(.channelRateLimited(channel, limit: limit, retryAfter: retryAfter))
            }
            budget = channel.rawValue
        }
        var payload = original
        if travel.transforms, binaryBody == nil {
            switch decision.rules.transform(event, payload: original, on: channel, by: identity) {
            case .unchanged: break
            case .replaced(let replaced): payload = replaced
            case .refused(let reason):
                return counted(.transformRefused(reason))
            }
        }
        activity.record(topic: topic, now: now)
        var outgoing = ChannelLog.Outgoing(
            event: event, payload: payload, binaryBody: binaryBody, asBinary: asBinary, sender: sender, clientID: clientID,
            retention: decision.retention, budget: budget)
        if let batch = travel.batch {
            // Batched messages are acknowledged when accepted, not when their window flushes.
            acknowledge?(true)
            let by = batch.by.flatMap { field in payload?[field].flatMap(Self.batchKey) }
            batches.add(outgoing, topic: topic, policy: batch, by: by, loop: loop)
        } else {
            outgoing.acknowledge = acknowledge
            log.publish(topic: topic, outgoing)
        }
        if travel.derives {
            publishDerived(
                of: event, payload: payload, channel: channel, identity: identity, rules: decision.rules, loop: loop, depth: depth + 1,
                budget: derived)
        }
        return nil
    }

    /// How deep `on_publish` → `emit` → `on_publish` … may go.
    static let maxEmitDepth = 4
    /// Derived events one original message may cause in all (16 emits per hook, 4 levels deep,
    /// would otherwise allow 65,536).
    static let maxDerivedPerMessage = 64

    /// Publishes what the event's `on_publish` emitted, each like a message of its own (budget,
    /// batching, its own `on_publish`), one level deeper, judged by the same rules generation
    /// as the original (`rules`); past `maxEmitDepth` the chain stops with an error for the
    /// operator.
    private func publishDerived(
        of event: String, payload: Value?, channel: ChannelName, identity: Identity, rules: any Policy, loop: any EventLoop, depth: Int,
        budget: DerivedBudget
    ) {
        guard budget.remaining > 0 else { return }
        guard depth <= Self.maxEmitDepth else {
            if !budget.hitDepth {
                budget.hitDepth = true
                metrics.rejected(.emitDepth)
                logger.error(
                    "on_publish chain stopped: emits may nest \(Self.maxEmitDepth) deep",
                    metadata: ["event": "\(event)", "channel": "\(channel)", "sub": "\(identity.subject ?? "-")"])
            }
            return
        }
        for (target, derived) in rules.derivedEvents(of: event, payload: payload, on: channel, by: identity) {
            guard budget.remaining > 0 else {
                if !budget.hitLimit {
                    budget.hitLimit = true
                    metrics.rejected(.emitLimit)
                    logger.error(
                        "on_publish chain stopped: one message may derive at most \(Self.maxDerivedPerMessage) events",
                        metadata: ["event": "\(event)", "channel": "\(channel)", "sub": "\(identity.subject ?? "-")"])
                }
                return
            }
            budget.remaining -= 1
            let topic = "realtime:\(target)"
            // The rules' own act: the catalog's checks (already passed), no send hook.
            let decision = rules.decidePush(
                identity, channel: target, event: derived.event, payload: derived.payload, source: .database, sizeOver: { _ in nil })
            let refused: Refusal? =
                if case .deny(let why) = decision.verdict {
                    Refusal.sendDenied(target, why)
                } else {
                    admit(
                        event: derived.event, payload: derived.payload, binaryBody: nil, asBinary: false, clientID: nil, channel: target,
                        topic: topic, identity: identity, sender: nil, loop: loop, decision: decision, depth: depth, derived: budget)
                }
            if let refused {
                logger.warning("a derived event was not published", metadata: ["event": "\(derived.event)", "reason": "\(refused.reason)"])
            }
        }
    }

    /// Sends a `presence_diff` to every subscriber of `topic`, the tracker included.
    func publishPresence(_ diff: ChannelPresence.Diff?, topic: String, allocator: ByteBufferAllocator) {
        guard let diff, !diff.isEmpty else { return }
        let frame = OutboundFrame(joinRef: nil, ref: nil, topic: topic, event: "presence_diff", payload: diff.payload)
        hub.publish(topic: topic, message: EncodedBroadcast(event: frame, allocator: allocator), sender: nil)
    }

    /// The `by` value of a batched message: a string, or a number's text.
    private static func batchKey(_ value: Value) -> String? {
        switch value {
        case .string(let text), .number(let text): text
        default: nil
        }
    }

    /// FNV-1a of `text` (the same in every process, unlike `hashValue`).
    static func stableHash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return hash
    }

    /// A presence key for a join that gave none (Supabase generates one too).
    static func generatedPresenceKey() -> String { UUID().uuidString.lowercased() }

    /// The server's clock, read once for the connection state machine.
    func now() -> ConnectionStateMachine.Now {
        ConnectionStateMachine.Now(monotonic: configuration.clock.monotonicNanoseconds(), wall: configuration.clock.wallClockSeconds())
    }

    private func counted(_ refusal: Refusal) -> Refusal {
        metrics.rejected(refusal.metric)
        return refusal
    }
}
