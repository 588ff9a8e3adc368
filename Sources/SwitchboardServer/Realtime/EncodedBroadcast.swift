import NIOCore
import SwitchboardWire

/// One published message, framed once per protocol version: every subscriber of that version
/// gets the same bytes.
struct EncodedBroadcast: Sendable {
    /// The frame for vsn 1.0.0 subscribers, or nil when the message cannot go to them (binary body).
    let v1: ByteBuffer?
    /// The frame for vsn 2.0.0 subscribers (kind 4 binary for messages that arrived as kind 3).
    let v2: ByteBuffer?
    /// The message's place in its channel's history (0: not in it) and the history record's
    /// tag: a subscriber whose replay already covered it skips it.
    let seq: UInt64
    let tag: UInt64

    init(_ message: BroadcastFrame, asBinary: Bool, allocator: ByteBufferAllocator, seq: UInt64 = 0, tag: UInt64 = 0) {
        self.seq = seq
        self.tag = tag
        // Encoded with room for the WebSocket header, which is then written in place.
        let headroom = WebSocketFraming.maxHeaderLength
        v1 = message.encodeText(version: .v1, allocator: allocator, headroom: headroom).map {
            WebSocketFraming.frame(.text, inPlace: $0, allocator: allocator)
        }
        if asBinary, let kind4 = message.encodeKind4(allocator: allocator, headroom: headroom) {
            v2 = WebSocketFraming.frame(.binary, inPlace: kind4, allocator: allocator)
        } else {
            v2 = message.encodeText(version: .v2, allocator: allocator, headroom: headroom).map {
                WebSocketFraming.frame(.text, inPlace: $0, allocator: allocator)
            }
        }
    }

    /// A server event (such as `presence_diff`) for every subscriber of a topic.
    init(event frame: OutboundFrame, allocator: ByteBufferAllocator) {
        seq = 0
        tag = 0
        v1 = WebSocketFraming.frame(.text, WireEncoder.encode(frame, version: .v1, allocator: allocator), allocator: allocator)
        v2 = WebSocketFraming.frame(.text, WireEncoder.encode(frame, version: .v2, allocator: allocator), allocator: allocator)
    }

    func frame(for version: ProtocolVersion) -> ByteBuffer? {
        switch version {
        case .v1: v1
        case .v2: v2
        }
    }
}
