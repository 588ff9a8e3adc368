import NIOCore
import NIOWebSocket

/// Builds complete, unmasked server WebSocket frames (header + payload) once, so that the same
/// bytes can be written to every subscriber without going through the frame encoder again.
enum WebSocketFraming {
    /// A whole frame with FIN set around `payload`.
    static func frame(_ opcode: WebSocketOpcode, _ payload: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        let length = payload.readableBytes
        var out = allocator.buffer(capacity: length + 10)
        out.writeInteger(0x80 | UInt8(webSocketOpcode: opcode))
        if length < 126 {
            out.writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            out.writeInteger(UInt8(126))
            out.writeInteger(UInt16(length))
        } else {
            out.writeInteger(UInt8(127))
            out.writeInteger(UInt64(length))
        }
        out.writeImmutableBuffer(payload)
        return out
    }

    /// The longest server frame header (opcode byte, length byte, 64-bit length).
    static let maxHeaderLength = 10

    /// A whole frame with FIN set around the readable bytes of `payload`, with the header
    /// written into the free bytes before them when there are enough (text encoded with
    /// `maxHeaderLength` bytes of headroom), so that no second buffer is needed.
    static func frame(_ opcode: WebSocketOpcode, inPlace payload: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        let length = payload.readableBytes
        let headerLength = length < 126 ? 2 : length <= Int(UInt16.max) ? 4 : 10
        guard payload.readerIndex >= headerLength else { return frame(opcode, payload, allocator: allocator) }
        var out = payload
        let start = out.readerIndex - headerLength
        out.setInteger(0x80 | UInt8(webSocketOpcode: opcode), at: start)
        switch headerLength {
        case 2:
            out.setInteger(UInt8(length), at: start + 1)
        case 4:
            out.setInteger(UInt8(126), at: start + 1)
            out.setInteger(UInt16(length), at: start + 2)
        default:
            out.setInteger(UInt8(127), at: start + 1)
            out.setInteger(UInt64(length), at: start + 2)
        }
        out.moveReaderIndex(to: start)
        return out
    }

    /// A close frame with a status code and a reason (truncated to fit the 123-byte limit).
    static func close(code: UInt16, reason: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        var body = allocator.buffer(capacity: 125)
        body.writeInteger(code)
        var reasonBytes = Array(reason.utf8.prefix(123))
        while !reasonBytes.isEmpty, String(validating: reasonBytes, as: UTF8.self) == nil {
            reasonBytes.removeLast()
        }
        body.writeBytes(reasonBytes)
        return frame(.connectionClose, body, allocator: allocator)
    }
}
