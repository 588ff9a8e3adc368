import NIOCore

/// Sits next to the socket, below NIO's WebSocket frame encoder, so the connection can write
/// frames it has already framed (shared fan-out bytes) without re-encoding them per subscriber.
final class RawFrameWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }
}
