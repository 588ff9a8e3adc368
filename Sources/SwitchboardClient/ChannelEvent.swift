import SwitchboardCore

/// What happens on a channel, in order.
public enum ChannelEvent: Sendable, Equatable {
    /// A broadcast, each id at most once.
    case message(ChannelMessage)
    /// The channel is joined (again): `recovered` says whether every message missed while
    /// away was replayed (nil on the first join, which asks for no replay). When false, what
    /// was missed is lost: reload the state from your database.
    case joined(recovered: Bool?)
    /// A `presence_state` or `presence_diff` payload, as the server sent it.
    case presence(event: String, payload: Value)
    /// A `system` message from the server (for example why the channel is being closed).
    case system(status: String, message: String)
    /// The server closed the channel (revoked access, expired token) or refused to join it;
    /// the client does not rejoin it.
    case closed(reason: String)
}
