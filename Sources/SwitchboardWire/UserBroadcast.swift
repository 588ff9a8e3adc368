import NIOCore
import SwitchboardCore

/// The parts of a binary kind 3 user broadcast push that the JSON payload cannot carry.
public struct UserBroadcast: Sendable, Equatable {
    /// The user event, e.g. `cursor`.
    public var event: String
    /// The client's metadata (realtime-js sends allow-listed envelope keys such as `persist`), if any.
    public var meta: Value?
    /// Whether the body is JSON (encoding byte 1) rather than opaque binary (encoding byte 0).
    public var isJSON: Bool
    /// The raw payload bytes exactly as they arrived.
    public var body: ByteBuffer

    /// Creates a user broadcast.
    public init(event: String, meta: Value?, isJSON: Bool, body: ByteBuffer) {
        self.event = event
        self.meta = meta
        self.isJSON = isJSON
        self.body = body
    }
}
