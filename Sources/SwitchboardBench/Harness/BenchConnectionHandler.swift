import NIOCore
import NIOWebSocket

/// The channel handler of every bench connection: tracks its joins, heartbeats, answers pings
/// and, on subscribers, counts bench broadcasts into the loop's ``LoopStats``.
///
/// For nchan (`speaksPhoenix == false`) there are no joins, heartbeats or control frames: the
/// connection is ready once upgraded and any text frame without a send time is ignored.
///
/// The delivery path is a byte scan and a histogram increment: no JSON, no Swift task, no lock.
final class BenchConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// Join refs still waiting for their reply, mapped to their topics.
    private var pendingJoins: [String: String]
    private let joinPromise: EventLoopPromise<Void>
    private let stats: LoopStats?
    private let countsDeliveries: Bool
    private let speaksPhoenix: Bool
    private var context: ChannelHandlerContext?
    private var heartbeat: Scheduled<Void>?
    private var lastServerMessage: String?

    /// Completes once every join was acknowledged; fails with the server's reason otherwise.
    var joinFuture: EventLoopFuture<Void> { self.joinPromise.futureResult }

    init(
        joins: [String: String],
        stats: LoopStats?,
        countsDeliveries: Bool,
        speaksPhoenix: Bool,
        eventLoop: any EventLoop
    ) {
        self.pendingJoins = joins
        self.stats = stats
        self.countsDeliveries = countsDeliveries && stats != nil
        self.speaksPhoenix = speaksPhoenix
        self.joinPromise = eventLoop.makePromise(of: Void.self)
        if joins.isEmpty {
            self.joinPromise.succeed(())
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if self.speaksPhoenix {
            self.scheduleHeartbeat(on: context.eventLoop)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.heartbeat?.cancel()
        self.heartbeat = nil
        self.context = nil
        self.failJoin(BenchError(.connectionClosed, "the connection handler was removed before the join completed"))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            let payload = frame.maskKey == nil ? frame.data : frame.unmaskedData
            if self.countsDeliveries, self.pendingJoins.isEmpty, let stats = self.stats,
                let sentAt = RealtimeFrames.scanSendTime(payload)
            {
                stats.record(sentAt: sentAt)
                return
            }
            if self.speaksPhoenix {
                self.handleControl(payload)
            }
        case .ping:
            context.writeAndFlush(Self.wrapOutboundOut(ClientControlFrames.pong(for: frame)), promise: nil)
        case .connectionClose:
            let (code, reason) = ClientControlFrames.closeDetails(frame)
            self.noteServerMessage("server closed the WebSocket (code \(code.map(String.init) ?? "none")) \(reason)")
            ClientControlFrames.echoCloseThenClose(code: code, context: context)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.heartbeat?.cancel()
        self.heartbeat = nil
        if self.pendingJoins.isEmpty {
            self.stats?.counters.disconnected += 1
        } else {
            let detail = self.lastServerMessage.map { ": \($0)" } ?? ""
            self.failJoin(BenchError(.connectionClosed, "the server closed the connection before the join reply\(detail)"))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.noteServerMessage("connection error: \(error)")
        context.close(promise: nil)
    }

    private func handleControl(_ payload: ByteBuffer) {
        guard let control = RealtimeFrames.decodeControl(payload) else { return }
        if !self.pendingJoins.isEmpty {
            if control.event == "phx_reply", let ref = control.ref, let topic = self.pendingJoins[ref] {
                if control.status == "ok" {
                    self.pendingJoins[ref] = nil
                    if self.pendingJoins.isEmpty {
                        self.joinPromise.succeed(())
                    }
                } else {
                    let reason = control.reason ?? "no reason given"
                    self.failJoin(BenchError(.joinFailed, "joining \(topic) failed: \(reason)"))
                }
                return
            }
            if control.event == "phx_close" || control.event == "phx_error",
                self.pendingJoins.values.contains(control.topic)
            {
                self.failJoin(
                    BenchError(.joinFailed, "\(control.topic) got \(control.event) while joining: \(control.reason ?? "")")
                )
                return
            }
        }
        let isError =
            control.event == "phx_close" || control.event == "phx_error"
            || (control.event == "system" && control.status == "error")
        if isError {
            self.stats?.counters.channelErrors += 1
            self.noteServerMessage("\(control.topic) \(control.event): \(control.reason ?? "")")
        }
    }

    private func noteServerMessage(_ message: String) {
        self.lastServerMessage = message
        self.stats?.counters.lastServerMessage = message
    }

    private func failJoin(_ error: BenchError) {
        guard !self.pendingJoins.isEmpty else { return }
        self.pendingJoins.removeAll()
        self.joinPromise.fail(error)
        self.context?.close(promise: nil)
    }

    private func scheduleHeartbeat(on eventLoop: any EventLoop) {
        self.heartbeat = eventLoop.assumeIsolated().scheduleTask(in: RealtimeFrames.heartbeatInterval) {
            self.sendHeartbeat()
        }
    }

    private func sendHeartbeat() {
        guard let context = self.context, context.channel.isActive else { return }
        var buffer = context.channel.allocator.buffer(capacity: RealtimeFrames.heartbeat.utf8.count)
        buffer.writeString(RealtimeFrames.heartbeat)
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: buffer)
        context.writeAndFlush(Self.wrapOutboundOut(frame), promise: nil)
        self.scheduleHeartbeat(on: context.eventLoop)
    }
}
