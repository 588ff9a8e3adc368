/// How a channel is joined.
public struct ChannelOptions: Sendable, Equatable {
    /// Receive your own broadcasts (`config.broadcast.self`).
    public var receiveOwnMessages: Bool
    /// Ask for `presence_state` after each join.
    public var presence: Bool
    /// The presence key (the server generates one when nil).
    public var presenceKey: String?

    /// Options for a join (by default: not your own messages, no presence, a server-made key).
    public init(receiveOwnMessages: Bool = false, presence: Bool = false, presenceKey: String? = nil) {
        self.receiveOwnMessages = receiveOwnMessages
        self.presence = presence
        self.presenceKey = presenceKey
    }
}
