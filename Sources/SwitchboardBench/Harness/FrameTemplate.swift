import NIOCore

/// A frame built from fixed bytes with numbers between them, so a sender's message costs one
/// buffer, a few copies and some digits: `parts[0] n0 parts[1] n1 … parts[last]`.
struct FrameTemplate: Sendable {
    let parts: [[UInt8]]

    init(_ parts: [String]) {
        self.parts = parts.map { Array($0.utf8) }
    }

    /// The frame body with `numbers` in place; `numbers.count` is `parts.count - 1`.
    func render(_ numbers: [UInt64], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: self.parts.reduce(0) { $0 + $1.count } + 20 * numbers.count)
        for (index, part) in self.parts.enumerated() {
            buffer.writeBytes(part)
            if index < numbers.count {
                RealtimeFrames.writeDecimal(numbers[index], into: &buffer)
            }
        }
        return buffer
    }

    /// The Realtime broadcast envelope (join ref "1", no ref) around `event` and a user payload.
    static func broadcastEnvelope(topic: String, event: String) -> (prefix: String, suffix: String) {
        (
            #"{"topic":"\#(topic)","event":"broadcast","payload":{"type":"broadcast","event":"\#(event)","payload":"#,
            #"},"ref":null,"join_ref":"1"}"#
        )
    }
}
