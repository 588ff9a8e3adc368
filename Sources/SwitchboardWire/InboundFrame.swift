import NIOCore
import SwitchboardCore

/// One decoded client push, whatever the protocol version or frame type it arrived in.
public struct InboundFrame: Sendable, Equatable {
    /// The join ref of the channel the push belongs to; nil when absent or null.
    public var joinRef: String?
    /// The push's ref, which replies echo; nil when null.
    public var ref: String?
    /// The full topic, e.g. `realtime:room-1`.
    public var topic: String
    /// The Phoenix event, e.g. `phx_join` or `broadcast`.
    public var event: String
    /// The payload object. For binary kind 3 pushes it is rebuilt as the equivalent text
    /// broadcast payload: `{"type":"broadcast","event":…}` plus `"payload"` for JSON bodies.
    public var payload: Value
    /// The raw user broadcast, when the push arrived as binary kind 3.
    public var userBroadcast: UserBroadcast?

    /// Creates a frame.
    public init(
        joinRef: String?, ref: String?, topic: String, event: String, payload: Value, userBroadcast: UserBroadcast? = nil
    ) {
        self.joinRef = joinRef
        self.ref = ref
        self.topic = topic
        self.event = event
        self.payload = payload
        self.userBroadcast = userBroadcast
    }
}
