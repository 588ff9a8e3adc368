import Logging
import NIOCore
import NIOWebSocket
import SwitchboardAuth
import SwitchboardCore
import SwitchboardWire

/// One client's WebSocket: the Phoenix/Supabase channel protocol as a plain NIO handler.
///
/// Lives on its channel's event loop; no Swift task per connection. Inbound frames are handled
/// in order, each to completion (token checks are synchronous), so replies keep request order.
/// The concerns live in extensions: joins (`+Join`), broadcasts (`+Broadcast`), presence
/// (`+Presence`), tokens (`+Token`) and timers (`+Timers`, performing what
/// `ConnectionStateMachine` decides).
final class RealtimeConnection: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    struct Join {
        let joinRef: String?
        let channel: ChannelName
        var identity: Identity
        let receivesOwn: Bool
        let ack: Bool
        /// The presence key from the join config (generated when empty).
        let presenceKey: String
        /// Whether this join has tracked presence (and so must leave it when it ends).
        var tracking = false
        /// Its `postgres_changes` bindings.
        var changes: [ChangeBinding] = []
    }

    let version: ProtocolVersion
    let shared: RealtimeContext
    let connectToken: String
    /// A process-unique id: the owner of its presence entries, and the sender a broadcast
    /// skips (unlike an object address, never reused by a later connection).
    let id: UInt64
    /// The connection's own identity (from the token it connected with).
    let identity: Identity
    private let raw: RawFrameWriter
    /// The server's logger with this connection's `sub`: made when something is logged, so
    /// that an idle connection does not hold a logger of its own.
    var logger: Logger {
        var logger = shared.logger
        if let subject = identity.subject { logger[metadataKey: "sub"] = .string(subject) }
        return logger
    }
    private(set) var context: ChannelHandlerContext?
    private(set) var shard: HubShard?
    var joins: [String: Join] = [:]
    private(set) var closing = false
    private var awaitingFlush = false
    /// The channel's writability, as its last `channelWritabilityChanged` said (NIO fires that
    /// inside the write that crosses the high-water mark, so it is current after a write).
    private var writable = true
    /// Inside a read burst: replies are written without a flush, and `channelReadComplete`
    /// flushes them together (`flushOwed`).
    private var reading = false
    private var flushOwed = false
    private var allocator = ByteBufferAllocator()
    var machine: ConnectionStateMachine
    var timers = ScheduledTimers()

    init(shared: RealtimeContext, version: ProtocolVersion, identity: Identity, token: String, raw: RawFrameWriter) {
        self.shared = shared
        self.version = version
        self.identity = identity
        self.connectToken = token
        self.id = shared.nextConnectionID()
        self.raw = raw
        let configuration = shared.configuration
        self.machine = ConnectionStateMachine(
            idleTimeoutSeconds: configuration.idleTimeoutSeconds, slowConsumerGraceSeconds: configuration.slowConsumerGraceSeconds,
            slowConsumerBytes: configuration.slowConsumerBytes, now: shared.now())
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        allocator = context.channel.allocator
        writable = context.channel.isWritable
        shard = shared.hub.shard(on: context.eventLoop)
        shard?.register(self)
        shared.metrics.connections.increment(by: 1)
        perform([machine.start()])
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reading = true
        handle(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        if flushOwed {
            flushOwed = false
            raw.context?.flush()
        }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        perform(machine.writabilityChanged(isWritable: writable, now: shared.now()))
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Inbound frames

    private func handle(_ frame: WebSocketFrame) {
        let now = shared.now()
        machine.received(now: now)
        switch frame.opcode {
        case .text, .binary:
            shared.metrics.messagesIn.increment()
            shared.metrics.totals.received()
            let bytes = frame.unmaskedData
            // Heartbeats are most of what idle sockets send: answered without a JSON value.
            if frame.opcode == .text, let refs = WireDecoder.heartbeat(bytes, version: version) {
                machine.heartbeat(now: now)
                replyHeartbeat(joinRef: refs.joinRef, ref: refs.ref)
                return
            }
            do {
                let inbound =
                    frame.opcode == .text
                    ? try WireDecoder.decodeText(bytes, version: version)
                    : try WireDecoder.decodeBinary(bytes, version: version)
                dispatch(inbound, frameBytes: bytes.readableBytes)
            } catch {
                shared.metrics.rejected(.malformed)
                replyError(
                    topic: error.topic ?? "phoenix", ref: error.ref, joinRef: error.joinRef, reason: Refusal.malformed(error.message).reason)
            }
        case .ping:
            writeControl(.pong, frame.unmaskedData)
        case .connectionClose:
            var data = frame.unmaskedData
            let code = data.readInteger(as: UInt16.self) ?? 1000
            close(code: code == 1005 ? 1000 : code, reason: "")
        default:
            break
        }
    }

    private func dispatch(_ inbound: InboundFrame, frameBytes: Int) {
        if inbound.topic == "phoenix" {
            if inbound.event == "heartbeat" {
                machine.heartbeat(now: shared.now())
                replyOK(to: inbound, response: .object(.init()))
            } else {
                refuse(inbound, .phoenixEvent(inbound.event))
            }
            return
        }
        if inbound.event == "phx_join" {
            join(inbound)
            return
        }
        guard let join = joins[inbound.topic] else {
            refuse(inbound, .unmatchedTopic)
            return
        }
        switch inbound.event {
        case "broadcast":
            broadcast(inbound, join: join, frameBytes: frameBytes)
        case "phx_leave":
            replyOK(to: inbound, response: .object(.init()))
            closeJoin(topic: inbound.topic, join)
        case "access_token":
            refreshToken(inbound, join: join)
        case "presence":
            presence(inbound, join: join)
        default:
            refuse(inbound, .channelEvent(inbound.event))
        }
    }

    // MARK: Writing

    /// Counts `refusal` and replies with its reason.
    func refuse(_ inbound: InboundFrame, _ refusal: Refusal) {
        shared.metrics.rejected(refusal.metric)
        replyError(to: inbound, reason: refusal.reason)
    }

    func replyOK(to inbound: InboundFrame, response: Value) {
        reply(topic: inbound.topic, ref: inbound.ref, joinRef: inbound.joinRef, status: "ok", response: response)
    }

    func replyError(to inbound: InboundFrame, reason: String) {
        replyError(topic: inbound.topic, ref: inbound.ref, joinRef: inbound.joinRef, reason: reason)
    }

    private func replyError(topic: String, ref: String?, joinRef: String?, reason: String) {
        logger.debug("rejected", metadata: ["topic": .string(topic), "reason": .string(reason)])
        reply(topic: topic, ref: ref, joinRef: joinRef, status: "error", response: ["reason": .string(reason)])
    }

    private func reply(topic: String, ref: String?, joinRef: String?, status: String, response: Value) {
        push(topic: topic, ref: ref, joinRef: joinRef, event: "phx_reply", payload: ["status": .string(status), "response": response])
    }

    /// A `system` message on a joined channel (from `extension`: `system`, or `postgres_changes`
    /// for the confirmation of a join's bindings).
    func pushSystem(topic: String, _ join: Join, extension: String = "system", status: String, message: String) {
        push(
            topic: topic, joinRef: join.joinRef, event: "system",
            payload: [
                "extension": .string(`extension`), "status": .string(status), "message": .string(message),
                "channel": .string(join.channel.rawValue),
            ])
    }

    func push(topic: String, ref: String? = nil, joinRef: String?, event: String, payload: Value) {
        guard !closing else { return }
        let frame = OutboundFrame(joinRef: joinRef, ref: ref, topic: topic, event: event, payload: payload)
        let text = WireEncoder.encode(frame, version: version, allocator: allocator, headroom: WebSocketFraming.maxHeaderLength)
        send(WebSocketFraming.frame(.text, inPlace: text, allocator: allocator))
    }

    /// The `ok` reply to a heartbeat (the same bytes `replyOK` would write).
    private func replyHeartbeat(joinRef: String?, ref: String?) {
        guard !closing else { return }
        let headroom = WebSocketFraming.maxHeaderLength
        var text = allocator.buffer(capacity: 96 + headroom)
        text.moveWriterIndex(forwardBy: headroom)
        text.moveReaderIndex(forwardBy: headroom)
        WireEncoder.writeHeartbeatReply(joinRef: joinRef, ref: ref, version: version, into: &text)
        send(WebSocketFraming.frame(.text, inPlace: text, allocator: allocator))
    }

    private func writeControl(_ opcode: WebSocketOpcode, _ data: ByteBuffer) {
        guard !closing else { return }
        send(WebSocketFraming.frame(opcode, data, allocator: allocator))
    }

    /// Writes a whole frame: flushed at the end of the read burst when one is in progress
    /// (several replies, one syscall), at once otherwise.
    private func send(_ frame: ByteBuffer) {
        guard let raw = raw.context else { return }
        if reading {
            raw.write(NIOAny(frame), promise: nil)
            flushOwed = true
        } else {
            raw.writeAndFlush(NIOAny(frame), promise: nil)
        }
    }

    /// Queues a pre-framed broadcast without flushing. Returns true when the caller should
    /// flush this connection at the end of the drain (the first write since the last flush).
    func writeBroadcast(_ bytes: ByteBuffer) -> Bool {
        guard let raw = raw.context, !closing else { return false }
        raw.write(NIOAny(bytes), promise: nil)
        if !writable, machine.queuedWhileUnwritable(bytes.readableBytes) {
            closeSlowConsumer()
            return false
        }
        if awaitingFlush { return false }
        awaitingFlush = true
        return true
    }

    func flushBroadcasts() {
        awaitingFlush = false
        raw.context?.flush()
    }

    /// Sends a close frame and closes the socket.
    func close(code: UInt16, reason: String) {
        guard !closing, let raw = raw.context else { return }
        closing = true
        raw.writeAndFlush(NIOAny(WebSocketFraming.close(code: code, reason: reason, allocator: raw.channel.allocator)), promise: nil)
        raw.close(promise: nil)
    }

    /// Closes the socket with 4001 when its token's subject is `subject`; returns whether it did.
    func disconnect(subject: String, reason: String) -> Bool {
        guard identity.subject == subject, !closing else { return false }
        close(code: 4001, reason: reason)
        return true
    }

    /// Graceful shutdown: tells each channel the server requested a disconnect, then closes 1012.
    func shutdown(reason: String) -> EventLoopFuture<Void> {
        guard let context else { return shared.hub.loops[0].makeSucceededVoidFuture() }
        for (topic, join) in joins {
            pushSystem(topic: topic, join, status: "ok", message: reason)
        }
        close(code: 1012, reason: reason)
        return context.channel.closeFuture
    }

    private func tearDown() {
        guard let shard, shard.connections[id] != nil else { return }
        for (topic, join) in joins {
            leavePresence(topic: topic, join)
            unsubscribe(topic: topic, join)
        }
        joins.removeAll()
        shard.unregister(self)
        cancelTimers()
        shared.metrics.connections.decrement(by: 1)
    }
}
