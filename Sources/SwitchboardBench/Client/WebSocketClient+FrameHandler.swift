import NIOCore
import NIOWebSocket

extension WebSocketClient {
    /// Turns inbound frames into ``WebSocketClient/Message``s, answers pings and runs the close handshake.
    final class FrameHandler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = WebSocketFrame
        typealias OutboundOut = WebSocketFrame

        /// How long to wait for the server's close frame before dropping the connection.
        static let closeHandshakeTimeout = TimeAmount.seconds(2)

        private let inbox: Inbox
        private var context: ChannelHandlerContext?
        private var sentClose = false
        private var lastError: (any Error)?

        init(inbox: Inbox) {
            self.inbox = inbox
        }

        func handlerAdded(context: ChannelHandlerContext) {
            self.context = context
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            self.context = nil
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = Self.unwrapInboundIn(data)
            switch frame.opcode {
            case .text:
                self.deliver(.text(String(buffer: frame.unmaskedData)), context: context)
            case .binary:
                var data = frame.unmaskedData
                self.deliver(.binary(data.readBytes(length: data.readableBytes) ?? []), context: context)
            case .ping:
                context.writeAndFlush(Self.wrapOutboundOut(ClientControlFrames.pong(for: frame)), promise: nil)
            case .connectionClose:
                let (code, reason) = ClientControlFrames.closeDetails(frame)
                self.inbox.finish(code: code.map(Int.init), reason: reason)
                if self.sentClose {
                    context.close(promise: nil)
                } else {
                    self.sentClose = true
                    ClientControlFrames.echoCloseThenClose(code: code, context: context)
                }
            default:
                break
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            let reason = self.lastError.map { "connection closed: \($0)" } ?? "connection closed without a close frame"
            self.inbox.finish(code: nil, reason: reason)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            self.lastError = error
            context.close(promise: nil)
        }

        /// Sends a close frame (once) and drops the connection if the server does not answer in time.
        func initiateClose(code: Int, reason: String) {
            guard let context = self.context, context.channel.isActive else { return }
            guard !self.sentClose else { return }
            self.sentClose = true
            var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
            data.writeInteger(UInt16(truncatingIfNeeded: code))
            data.writeString(reason)
            let frame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: data)
            context.writeAndFlush(Self.wrapOutboundOut(frame), promise: nil)
            let channel = context.channel
            channel.eventLoop.scheduleTask(in: Self.closeHandshakeTimeout) {
                channel.close(promise: nil)
            }
        }

        private func deliver(_ message: Message, context: ChannelHandlerContext) {
            switch self.inbox.push(message) {
            case .accepted:
                break
            case .overflowed:
                self.inbox.finish(
                    code: nil,
                    reason: "client inbox overflowed (\(WebSocketClient.inboxCapacity) unread messages)"
                )
                context.close(promise: nil)
            }
        }
    }
}
