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

/// What the core asks of a rules engine. The Lua rules engine implements it; `ConventionPolicy`
/// is the plain Swift stand-in that follows the platform's channel naming convention.
///
/// Calls are synchronous and must not block on I/O: they run on the connection's event loop,
/// once per join and once per published message (never per receiver).
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
}

extension Policy {
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
