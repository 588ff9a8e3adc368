import SwitchboardCore

/// One server push (reply, system message, presence, close) before framing.
public struct OutboundFrame: Sendable, Equatable {
    /// The join ref; only vsn 2.0.0 puts it on the wire.
    public var joinRef: String?
    /// The ref: the request's ref on `phx_reply`, the join ref on `phx_close`/`phx_error`, else nil.
    public var ref: String?
    /// The full topic, e.g. `realtime:room-1`.
    public var topic: String
    /// The Phoenix event, e.g. `phx_reply`.
    public var event: String
    /// The payload object.
    public var payload: Value

    /// Creates a frame.
    public init(joinRef: String?, ref: String?, topic: String, event: String, payload: Value) {
        self.joinRef = joinRef
        self.ref = ref
        self.topic = topic
        self.event = event
        self.payload = payload
    }
}
