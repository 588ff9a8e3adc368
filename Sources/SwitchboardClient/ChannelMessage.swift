import SwitchboardCore

/// A broadcast received on a channel.
public struct ChannelMessage: Sendable, Equatable {
    /// The user event, e.g. `comment:added`.
    public let event: String
    /// The user payload (`null` when the message had none).
    public let payload: Value
    /// The server's (or the publisher's own) message id.
    public let id: String?
    /// The message's place in the channel's history; nil for events that are not kept (typing).
    public let seq: UInt64?
    /// The history the `seq` counts in.
    public let epoch: String?
    /// Delivered by a replay after a (re)join rather than live.
    public let replayed: Bool

    /// A message as received (tests and replays build them too).
    public init(event: String, payload: Value, id: String?, seq: UInt64?, epoch: String?, replayed: Bool) {
        self.event = event
        self.payload = payload
        self.id = id
        self.seq = seq
        self.epoch = epoch
        self.replayed = replayed
    }
}
