import SwitchboardAuth
import SwitchboardCore

/// Why the server refused what a client asked, in one catalogue: each refusal pairs the metric
/// reason it is counted under (`switchboard_rejected_total{reason}`) with the reason the client
/// reads — Supabase's prefix where Supabase has one, then one sentence saying what was wrong
/// and what is allowed.
struct Refusal: Error, Equatable, Sendable {
    let metric: ServerMetrics.Rejection
    /// What the client reads, prefix included.
    let reason: String

    init(_ metric: ServerMetrics.Rejection, _ reason: String) {
        self.metric = metric
        self.reason = reason
    }

    /// Rate-limit refusals reach a client that did not ask for acks as a `system` message.
    var isRateLimit: Bool { metric == .rateLimited }

    // MARK: Frames and topics

    static func malformed(_ what: String) -> Refusal { Refusal(.malformed, "MalformedMessage: \(what)") }

    static let unmatchedTopic = Refusal(.unmatchedTopic, "unmatched topic")

    static func phoenixEvent(_ event: String) -> Refusal {
        Refusal(.unknownEvent, "UnknownEvent: topic phoenix only accepts heartbeat, not \(event)")
    }

    static func channelEvent(_ event: String) -> Refusal {
        Refusal(.unknownEvent, "UnknownEvent: \(event) is not a channel event; use broadcast, presence, access_token or phx_leave")
    }

    static let topicNameRequired = Refusal(.invalidTopic, "TopicNameRequired: You must provide a topic name")

    static func invalidTopic(_ problem: String) -> Refusal { Refusal(.invalidTopic, "InvalidTopicName: \(problem)") }

    /// An acknowledged message the database could not commit (it is down): it was delivered to
    /// this server's subscribers, and its history is written when the database is back.
    static let notDurable = Refusal(
        .notDurable,
        "NotDurable: the database is unavailable, so the message was delivered here but not yet stored; it is stored when the database is back")

    // MARK: Joins

    static func invalidJoinConfig(_ problem: String) -> Refusal { Refusal(.malformed, "InvalidJoinConfig: \(problem)") }

    /// A `postgres_changes` binding that cannot be read (an unknown event, a malformed filter).
    static func invalidPostgresChanges(_ problem: String) -> Refusal {
        Refusal(.malformed, "InvalidPostgresChanges: Unable to subscribe to changes with given parameters: \(problem)")
    }

    /// A `postgres_changes` binding on a table outside the `supabase_realtime` publication.
    static func notPublished(_ table: String) -> Refusal {
        invalidPostgresChanges(
            "table \(table) is not in the supabase_realtime publication, so no change of it is read; add it with: alter publication supabase_realtime add table \(table)")
    }

    /// A `postgres_changes` binding on a table no rule covers (default deny).
    static func noRowRule(_ table: String) -> Refusal {
        Refusal(
            .unauthorized,
            "Unauthorized: You do not have permissions to read changes of table \(table) (no rule says who may: declare table \"\(table)\" { read = function(user, row) ... end })")
    }

    static func unableToReplay(_ problem: String) -> Refusal { Refusal(.malformed, "UnableToReplayMessages: \(problem)") }

    static func replayNotKept(_ channel: ChannelName) -> Refusal {
        unableToReplay("Replay is not allowed on channel \(channel): its rules keep no history")
    }

    static func badToken(_ error: AuthError) -> Refusal { Refusal(.badToken, error.joinReason) }

    static func tooManyChannels(_ limit: Int, tier: String?) -> Refusal {
        Refusal(
            .tooManyChannels, "ChannelRateLimitReached: Too many channels: at most \(limit) per connection on the \(tier ?? "free") tier")
    }

    static func joinDenied(_ channel: ChannelName, _ why: String) -> Refusal {
        Refusal(.unauthorized, "Unauthorized: You do not have permissions to read from this Channel topic: \(channel) (\(why))")
    }

    /// A join that lost access after it was made (a token refresh, a rules reload): the
    /// `system` message that closes the channel.
    static func revoked(_ channel: ChannelName, _ why: String) -> Refusal {
        Refusal(.unauthorized, "You no longer have permission to read from this Channel topic: \(channel) (\(why))")
    }

    // MARK: Broadcasts

    static func payloadTooLarge(_ size: Int, limit: Int, tier: String?) -> Refusal {
        Refusal(
            .payloadTooLarge,
            "PayloadTooLarge: the payload is \(size) bytes; at most \(limit) are allowed on the \(tier ?? "free") tier")
    }

    static func sendDenied(_ channel: ChannelName, _ why: String) -> Refusal {
        Refusal(.unauthorized, "Unauthorized: You do not have permissions to write to this Channel topic: \(channel) (\(why))")
    }

    static func channelRateLimited(_ channel: ChannelName, limit: Int, retryAfter: Double) -> Refusal {
        Refusal(.rateLimited, ChannelRateLimiter.reason(channel: channel, limit: limit, retryAfter: retryAfter))
    }

    static func eventRateLimited(_ event: String, on channel: ChannelName, rate: EventRateLimit, retryAfter: Double) -> Refusal {
        Refusal(.rateLimited, ChannelRateLimiter.reason(event: event, channel: channel, rate: rate, retryAfter: retryAfter))
    }

    /// The rules' `transform` refused the message.
    static func transformRefused(_ why: String) -> Refusal { Refusal(.unauthorized, "Unauthorized: \(why)") }

    // MARK: Presence

    static func presenceRateLimited(_ channel: ChannelName, limit: Int, retryAfter: Double) -> Refusal {
        Refusal(
            .rateLimited,
            "ChannelRateLimitReached: presence on channel \(channel) allows \(limit) updates per minute per connection; try again in \(max(1, Int(retryAfter.rounded(.up)))) s"
        )
    }

    /// Supabase's exact words.
    static let presenceNotAMap = Refusal(.malformed, "Presence track payload must be a map")

    static func presenceTooLarge(_ size: Int, limit: Int) -> Refusal {
        Refusal(.payloadTooLarge, "PayloadTooLarge: the presence meta is \(size) bytes; at most \(limit) are allowed")
    }

    static func presenceDenied(_ channel: ChannelName, _ why: String) -> Refusal {
        Refusal(.unauthorized, "Unauthorized: You do not have permissions to track presence on this Channel topic: \(channel) (\(why))")
    }

    static let presenceEvent = Refusal(.unknownEvent, "UnknownEvent: a presence message needs \"event\": \"track\" or \"untrack\"")
}
