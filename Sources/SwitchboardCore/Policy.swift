/// The answer to "may this happen?".
public enum Decision: Sendable, Equatable {
    case allow
    /// Denied, with a sentence for the client (sent after Supabase's `Unauthorized:` prefix).
    case deny(String)

    public var isAllowed: Bool { self == .allow }
}

/// The limits that apply to one identity.
public struct Limits: Sendable, Equatable {
    /// Channels one connection may join at once.
    public var maxChannels: Int
    /// Largest accepted user payload, in bytes.
    public var maxPayloadBytes: Int
    /// Messages per minute per channel: a sender on this tier is refused when the channel has
    /// carried this many in the last 60 s (from every sender and REST).
    public var messagesPerMinute: Int

    public init(maxChannels: Int, maxPayloadBytes: Int, messagesPerMinute: Int) {
        self.maxChannels = maxChannels
        self.maxPayloadBytes = maxPayloadBytes
        self.messagesPerMinute = messagesPerMinute
    }
}

/// Where a message to publish comes from.
public enum PushSource: Sendable, Equatable {
    /// A user's push or REST call: the channel's send rule and the event catalog decide.
    case user
    /// A row a database transaction committed: the catalog's checks only (no hook runs; the
    /// database is trusted like the platform's backend).
    case database
}

/// Everything the server needs to publish one message, decided by one rules generation:
/// whether it may go, the sender's limits, how the event travels, how long it stays
/// replayable, and the same generation again for the message's `transform` and `on_publish`
/// hooks. A reload between two of these can no longer judge one message half by the old rules
/// and half by the new.
public struct PushDecision: Sendable {
    public enum Verdict: Sendable, Equatable {
        case allow
        /// Denied by the rules, with a sentence for the client.
        case deny(String)
        /// The payload is larger than the sender's tier allows (checked before any hook runs).
        case tooLarge(bytes: Int, limit: Int)
    }

    public var verdict: Verdict
    /// The sender's tier limits.
    public var limits: Limits
    /// How the event travels: batching, its own rate limit, hooks, replay.
    public var travel: EventPolicy
    /// How long the message stays replayable on its channel; nil: it does not enter the history.
    public var retention: HistoryRetention?
    /// The number of the rules generation that decided (0 for a policy without generations).
    public var generation: Int
    /// The deciding generation, for the message's `transform` and `on_publish` (and for what
    /// `on_publish` derives).
    public let rules: any Policy

    public init(verdict: Verdict, limits: Limits, travel: EventPolicy, retention: HistoryRetention?, generation: Int, rules: any Policy) {
        self.verdict = verdict
        self.limits = limits
        self.travel = travel
        self.retention = retention
        self.generation = generation
        self.rules = rules
    }
}

/// What the core asks of a rules engine. The Lua rules engine implements it; `ConventionPolicy`
/// is the plain Swift stand-in that follows the platform's channel naming convention.
///
/// Calls are synchronous and must not block on I/O: they run on the connection's event loop,
/// once per join and once per published message (never per receiver). A published message is
/// judged by one `decidePush`, and its `transform` and `on_publish` run on the decision's `rules`.
public protocol Policy: Sendable {
    /// May `identity` join `channel`?
    func authorizeJoin(_ identity: Identity, channel: ChannelName) -> Decision
    /// May `identity` publish `event` with `payload` on `channel`? Called once per message.
    func authorizeSend(_ identity: Identity, channel: ChannelName, event: String, payload: Value?) -> Decision
    /// May `identity` track presence on `channel` (which it has joined)?
    func authorizePresence(_ identity: Identity, channel: ChannelName) -> Decision
    /// How `event` travels on `channel` once it is allowed: batching and its own rate limit.
    func eventPolicy(_ event: String, channel: ChannelName) -> EventPolicy
    /// The payload to deliver for `event`, once per message after it was allowed and counted
    /// (its `transform` hook); called only when `eventPolicy(...).transforms`.
    func transform(_ event: String, payload: Value?, on channel: ChannelName, by identity: Identity) -> Transformed
    /// The events that publishing `event` on `channel` derives (its `on_publish` hook's emits),
    /// each already checked against the catalog and the target channel's rules; called after
    /// the original was accepted, only when `eventPolicy(...).derives`.
    func derivedEvents(of event: String, payload: Value?, on channel: ChannelName, by identity: Identity) -> [(ChannelName, DerivedEvent)]
    /// The limits for `identity` (its tier).
    func limits(for identity: Identity) -> Limits
    /// How much of `channel`'s history is kept for replay; nil when the channel keeps none
    /// (joins asking for a replay are refused there; only `critical` events are kept).
    func history(for channel: ChannelName) -> HistoryRetention?
    /// May a message that no user sent (a row a database transaction committed) be published
    /// as `event` on `channel`? The catalog's checks only (channel rule, event `on`, fields):
    /// the database is trusted like the platform's backend, so no send hook runs.
    func checkMessage(channel: ChannelName, event: String, payload: Value?) -> Decision
    /// Whether the rules say who may see rows of `table` (`schema.name`) at all; a
    /// `postgres_changes` binding on a table without a rule is refused at the join.
    func hasRowRule(table: String) -> Bool
    /// May `identity` see `row` (a change's record, as JSON) of `table` (`schema.name`)?
    func authorizeRow(_ identity: Identity, table: String, row: Value) -> Decision
    /// The one decision for a message to publish, from one rules generation: the size against
    /// the tier's limit first (no hook runs for an oversized payload), then the send rule (or,
    /// for `.database`, the catalog's checks), the event's policy and the channel's history.
    /// The server calls nothing else of the policy for a push, except `transform` and
    /// `derivedEvents` on the decision's `rules`.
    ///
    /// `sizeOver(limit)` answers the payload's size when it is over `limit`, nil when it fits
    /// (so a caller that knows only an upper bound, such as the frame's size, measures the
    /// payload exactly only when the bound is over the limit); not called for `.database`.
    func decidePush(
        _ identity: Identity, channel: ChannelName, event: String, payload: Value?, source: PushSource, sizeOver: (_ limit: Int) -> Int?
    ) -> PushDecision
}

extension PushDecision {
    /// `sizeOver` for a payload whose exact size is known.
    public static func size(_ bytes: Int) -> (_ limit: Int) -> Int? { { limit in bytes > limit ? bytes : nil } }
}

extension Policy {
    /// Composed from the single calls on `self`: right for a policy that never changes (a
    /// policy that is reloaded answers from one of its generations instead).
    public func decidePush(
        _ identity: Identity, channel: ChannelName, event: String, payload: Value?, source: PushSource, sizeOver: (_ limit: Int) -> Int?
    ) -> PushDecision {
        composedPushDecision(identity, channel: channel, event: event, payload: payload, source: source, generation: 0, sizeOver: sizeOver)
    }

    /// The push decision from this policy's single calls, in the order every push is judged:
    /// the tier's payload limit, then the send rule (or the catalog, for the database), with
    /// the event's policy and the channel's history alongside.
    public func composedPushDecision(
        _ identity: Identity, channel: ChannelName, event: String, payload: Value?, source: PushSource, generation: Int,
        sizeOver: (_ limit: Int) -> Int?
    ) -> PushDecision {
        let limits = limits(for: identity)
        let travel = eventPolicy(event, channel: channel)
        var decision = PushDecision(
            verdict: .allow, limits: limits, travel: travel, retention: travel.retention(on: history(for: channel)), generation: generation,
            rules: self)
        if source == .user, let bytes = sizeOver(limits.maxPayloadBytes) {
            decision.verdict = .tooLarge(bytes: bytes, limit: limits.maxPayloadBytes)
            return decision
        }
        let allowed =
            source == .database
            ? checkMessage(channel: channel, event: event, payload: payload) : authorizeSend(identity, channel: channel, event: event, payload: payload)
        if case .deny(let why) = allowed { decision.verdict = .deny(why) }
        return decision
    }

    /// Every channel keeps the spec's history: the last 100 messages, for 5 minutes.
    public func history(for channel: ChannelName) -> HistoryRetention? { .standard }
    /// Every message is well-formed.
    public func checkMessage(channel: ChannelName, event: String, payload: Value?) -> Decision { .allow }
    /// No table's rows are shown (default deny).
    public func hasRowRule(table: String) -> Bool { false }
    public func authorizeRow(_ identity: Identity, table: String, row: Value) -> Decision {
        .deny("no rule says who may read \(table)")
    }
}
