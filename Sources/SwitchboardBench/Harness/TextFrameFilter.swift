import NIOCore
import NIOWebSocket

/// A handler in front of a bench connection's ``BenchConnectionHandler`` that takes the text
/// frames it recognises (counting them, say) and passes every other frame on.
protocol TextFrameFilter: ChannelInboundHandler where InboundIn == WebSocketFrame, InboundOut == WebSocketFrame {
    /// Looks at one text frame's payload; returns true when it was taken (not passed on).
    func take(_ payload: ByteBuffer) -> Bool
}

extension TextFrameFilter {
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        if frame.opcode == .text, self.take(frame.maskKey == nil ? frame.data : frame.unmaskedData) {
            return
        }
        context.fireChannelRead(data)
    }
}
