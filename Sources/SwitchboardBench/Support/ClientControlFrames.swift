import NIOCore
import NIOWebSocket

/// The control-frame duties every client connection shares: answer pings, and answer a server's
/// close with a close of our own before closing the socket (RFC 6455 §5.5).
enum ClientControlFrames {
    /// A masked pong carrying the ping's data.
    static func pong(for ping: WebSocketFrame) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: ping.unmaskedData)
    }

    /// The status code and reason of a server's close frame.
    static func closeDetails(_ frame: WebSocketFrame) -> (code: UInt16?, reason: String) {
        var data = frame.unmaskedData
        let code = data.readInteger(as: UInt16.self)
        return (code, data.readString(length: data.readableBytes) ?? "")
    }

    /// Echoes the server's close code and closes the channel once the echo is written.
    static func echoCloseThenClose(code: UInt16?, context: ChannelHandlerContext) {
        var echo = context.channel.allocator.buffer(capacity: 2)
        if let code { echo.writeInteger(code) }
        let reply = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: echo)
        let loopBound = context.loopBound
        context.writeAndFlush(NIOAny(reply)).whenComplete { _ in
            loopBound.value.close(promise: nil)
        }
    }
}
