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
    }

    let version: ProtocolVersion
    private let shared: RealtimeContext
    private let connectToken: String
    /// A process-unique id: the owner of its presence entries, and the sender a broadcast
    /// skips (unlike an object address, never reused by a later connection).
    let id: UInt64
    private var identity: Identity
    private let raw: RawFrameWriter
    private var logger: Logger
    private var context: ChannelHandlerContext?
    private var shard: HubShard?
    private var joins: [String: Join] = [:]
    private var closing = false
    private var awaitingFlush = false
    private var bytesWhileUnwritable = 0
    private var slowConsumerCheck: Scheduled<Void>?
    private var expiryCheck: Scheduled<Void>?

    init(shared: RealtimeContext, version: ProtocolVersion, identity: Identity, token: String, raw: RawFrameWriter) {
        self.shared = shared
        self.version = version
        self.identity = identity
        self.connectToken = token
        self.id = shared.nextConnectionID()
        self.raw = raw
        self.logger = shared.logger
        if let subject = identity.subject { logger[metadataKey: "sub"] = .string(subject) }
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        shard = shared.hub.shard(on: context.eventLoop)
        shard?.register(self)
        shared.metrics.connections.increment(by: 1)
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
        handle(unwrapInboundIn(data))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            close(code: 1001, reason: "no data received for \(shared.configuration.idleTimeoutSeconds) s")
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            slowConsumerCheck?.cancel()
            slowConsumerCheck = nil
            bytesWhileUnwritable = 0
        } else if slowConsumerCheck == nil {
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            slowConsumerCheck = context.eventLoop.scheduleTask(in: .seconds(Int64(shared.configuration.slowConsumerGraceSeconds))) {
                bound.value.closeIfStillSlow()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Inbound frames

    private func handle(_ frame: WebSocketFrame) {
        switch frame.opcode {
        case .text, .binary:
            shared.metrics.messagesIn.increment()
            let bytes = frame.unmaskedData
            do {
                let inbound =
                    frame.opcode == .text
                    ? try WireDecoder.decodeText(bytes, version: version)
                    : try WireDecoder.decodeBinary(bytes, version: version)
                dispatch(inbound, frameBytes: bytes.readableBytes)
            } catch {
                rejectUndecodable(error)
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

    private func rejectUndecodable(_ error: WireError) {
        shared.metrics.rejected(.malformed)
        replyError(
            topic: error.topic ?? "phoenix", ref: error.ref, joinRef: error.joinRef,
            reason: "MalformedMessage: \(error.message)")
    }

    private func dispatch(_ inbound: InboundFrame, frameBytes: Int) {
        if inbound.topic == "phoenix" {
            if inbound.event == "heartbeat" {
                replyOK(to: inbound, response: .object(.init()))
            } else {
                shared.metrics.rejected(.unknownEvent)
                replyError(to: inbound, reason: "UnknownEvent: topic phoenix only accepts heartbeat, not \(inbound.event)")
            }
            return
        }
        if inbound.event == "phx_join" {
            join(inbound)
            return
        }
        guard let join = joins[inbound.topic] else {
            shared.metrics.rejected(.unmatchedTopic)
            replyError(to: inbound, reason: "unmatched topic")
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
            shared.metrics.rejected(.unknownEvent)
            replyError(
                to: inbound,
                reason: "UnknownEvent: \(inbound.event) is not a channel event; use broadcast, presence, access_token or phx_leave")
        }
    }

    // MARK: Join and leave

    private struct JoinRequest {
        let inbound: InboundFrame
        let channel: ChannelName
        let receivesOwn: Bool
        let ack: Bool
        let presenceEnabled: Bool
        let presenceKey: String
        let bindings: [Value]
        /// `config.broadcast.replay`, when the client asked for one.
        let replay: History<ChannelLog.Stored>.Since?
    }

    private func join(_ inbound: InboundFrame) {
        guard inbound.topic.hasPrefix("realtime:") else {
            shared.metrics.rejected(.unmatchedTopic)
            replyError(to: inbound, reason: "unmatched topic")
            return
        }
        let name = String(inbound.topic.dropFirst("realtime:".count))
        if name.isEmpty {
            shared.metrics.rejected(.invalidTopic)
            replyError(to: inbound, reason: "TopicNameRequired: You must provide a topic name")
            return
        }
        let channel: ChannelName
        do {
            channel = try ChannelName(validating: name)
        } catch {
            shared.metrics.rejected(.invalidTopic)
            replyError(to: inbound, reason: "InvalidTopicName: \(error.description)")
            return
        }
        let config = inbound.payload["config"]
        var bindings: [Value] = []
        if let changes = config?["postgres_changes"], !changes.isNull {
            guard let list = changes.arrayValue, list.allSatisfy({ $0.objectValue != nil }) else {
                replyError(to: inbound, reason: "InvalidJoinConfig: config.postgres_changes must be a list of objects")
                return
            }
            bindings = list
        }
        let replay: History<ChannelLog.Stored>.Since?
        switch Self.replayRequest(config?["broadcast"]?["replay"]) {
        case .failure(let problem):
            shared.metrics.rejected(.malformed)
            replyError(to: inbound, reason: "UnableToReplayMessages: \(problem.message)")
            return
        case .success(let since):
            replay = since
        }
        let request = JoinRequest(
            inbound: inbound, channel: channel,
            receivesOwn: config?["broadcast"]?["self"]?.boolValue ?? false,
            ack: config?["broadcast"]?["ack"]?.boolValue ?? false,
            presenceEnabled: config?["presence"]?["enabled"]?.boolValue ?? false,
            presenceKey: config?["presence"]?["key"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? RealtimeContext.generatedPresenceKey(),
            bindings: bindings, replay: replay)
        completeJoin(request, identity: identity(for: channelToken(in: inbound.payload)))
    }

    /// The most messages a replay may ask for.
    static let maxReplayLimit = 1000

    /// `config.broadcast.replay`: Supabase's `{since: <ms>, limit: n}` or Switchboard's exact
    /// `{since_seq: n, epoch: "…"}`; nil when absent. Supabase's `limit` defaults to
    /// everything the channel holds.
    static func replayRequest(_ value: Value?) -> Result<History<ChannelLog.Stored>.Since?, InputError> {
        guard let value, !value.isNull else { return .success(nil) }
        guard value.objectValue != nil else {
            return .failure(InputError("config.broadcast.replay must be an object: {since, limit} or {since_seq, epoch}"))
        }
        if let seq = value["since_seq"], !seq.isNull {
            guard let number = seq.int64Value, number >= 0 else {
                return .failure(InputError("replay.since_seq must be a whole number of at least 0"))
            }
            guard let epoch = value["epoch"]?.stringValue, !epoch.isEmpty else {
                return .failure(InputError("replay.since_seq needs the epoch it counts in (replay.epoch, from a message's meta or the join reply)"))
            }
            return .success(.sequence(UInt64(number), epoch: epoch))
        }
        guard let since = value["since"]?.int64Value, since >= 0 else {
            return .failure(InputError("replay needs since (milliseconds since 1970) or since_seq with epoch"))
        }
        var limit = maxReplayLimit
        if let given = value["limit"], !given.isNull {
            guard let number = given.int64Value, (1...Int64(maxReplayLimit)).contains(number) else {
                return .failure(InputError("replay.limit must be a whole number in 1...\(maxReplayLimit)"))
            }
            limit = Int(number)
        }
        return .success(.time(milliseconds: since, limit: limit))
    }

    /// The token a join or refresh carries, or nil to use the connection's own.
    private func channelToken(in payload: Value) -> String? {
        let token = (payload["access_token"] ?? payload["user_token"])?.stringValue
        guard let token, !token.isEmpty, !token.hasPrefix("sb_"), token != connectToken else { return nil }
        return token
    }

    /// Resolves a token to an identity: the connection's own (checked for expiry), or a
    /// channel token verified on the spot (jwt-kit's algorithms, no await; cached when seen).
    private func identity(for token: String?) -> Result<Identity, AuthError> {
        let now = RealtimeContext.now()
        guard let token else {
            if identity.expiresAt <= now {
                return .failure(.expired(secondsAgo: Int64(now - identity.expiresAt)))
            }
            return .success(identity)
        }
        return shared.verifier.verifySynchronously(token, now: now)
    }

    private func completeJoin(_ request: JoinRequest, identity result: Result<Identity, AuthError>) {
        let inbound = request.inbound
        let identity: Identity
        switch result {
        case .failure(let error):
            shared.metrics.rejected(.badToken)
            replyError(to: inbound, reason: error.joinReason)
            return
        case .success(let verified):
            identity = verified
        }
        if let previous = joins[inbound.topic] {
            closeJoin(topic: inbound.topic, previous)
        }
        let limits = shared.limits(for: identity)
        if joins.count >= limits.maxChannels {
            shared.metrics.rejected(.tooManyChannels)
            replyError(
                to: inbound,
                reason: "ChannelRateLimitReached: Too many channels: at most \(limits.maxChannels) per connection on the \(identity.tier ?? "free") tier")
            return
        }
        if case .deny(let why) = shared.policy.authorizeJoin(identity, channel: request.channel) {
            shared.metrics.rejected(.unauthorized)
            replyError(
                to: inbound,
                reason: "Unauthorized: You do not have permissions to read from this Channel topic: \(request.channel) (\(why))")
            return
        }
        let retention = shared.policy.history(for: request.channel)
        if request.replay != nil, retention == nil {
            replyError(
                to: inbound,
                reason: "UnableToReplayMessages: Replay is not allowed on channel \(request.channel): its rules keep no history")
            return
        }
        let join = Join(
            joinRef: inbound.joinRef ?? inbound.ref, channel: request.channel, identity: identity,
            receivesOwn: request.receivesOwn, ack: request.ack, presenceKey: request.presenceKey)
        joins[inbound.topic] = join
        subscribe(topic: inbound.topic, join)
        shared.metrics.joinsAccepted.increment()
        let echoed: [Value] = request.bindings.enumerated().map { offset, binding in
            var object = binding.objectValue ?? .init()
            object["id"] = .int(Self.bindingID(topic: inbound.topic, offset: offset))
            return .object(object)
        }
        var response: Value.Object = ["postgres_changes": .array(echoed)]
        var replayed: [ByteBuffer] = []
        if let retention {
            // Subscribed first, then the snapshot: a message published in between is both
            // replayed and queued live, and the fence drops the live copy.
            let replay = shared.log.replay(topic: inbound.topic, since: request.replay, retention: retention, version: version)
            shard?.setFence(topic: inbound.topic, self, tag: replay.position.tag, seq: replay.position.seq)
            response["epoch"] = .string(replay.position.epoch)
            response["seq"] = .int(replay.position.seq)
            if let recovered = replay.recovered {
                response["recovered"] = .bool(recovered)
                shared.metrics.replays(recovered: recovered, messages: replay.frames.count)
            }
            replayed = replay.frames
        }
        replyOK(to: inbound, response: .object(response))
        if request.presenceEnabled {
            push(topic: inbound.topic, joinRef: join.joinRef, event: "presence_state", payload: shared.presence.state(topic: inbound.topic))
        }
        if !replayed.isEmpty {
            for frame in replayed { _ = writeBroadcast(frame) }
            flushBroadcasts()
        }
        scheduleExpiryCheck()
    }

    /// A stable id per binding so that a rejoin echoes the same ids.
    private static func bindingID(topic: String, offset: Int) -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in topic.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash % 100_000_000) + offset
    }

    private func subscribe(topic: String, _ join: Join) {
        guard let shard else { return }
        if shard.subscribe(topic: topic, .init(connection: self, receivesOwn: join.receivesOwn)) {
            shared.hub.setShard(shard.index, topic: topic, hasSubscribers: true)
        }
        shared.metrics.subscriptions(scope: join.channel.scope)?.increment(by: 1)
    }

    private func unsubscribe(topic: String, _ join: Join) {
        guard let shard else { return }
        if shard.unsubscribe(topic: topic, self) {
            shared.hub.setShard(shard.index, topic: topic, hasSubscribers: false)
        }
        shared.metrics.subscriptions(scope: join.channel.scope)?.decrement(by: 1)
    }

    /// Ends a join: `phx_close` to the client, subscription removed.
    private func closeJoin(topic: String, _ join: Join) {
        joins[topic] = nil
        leavePresence(topic: topic, join)
        unsubscribe(topic: topic, join)
        push(topic: topic, ref: join.joinRef, joinRef: join.joinRef, event: "phx_close", payload: .object(.init()))
    }

    /// Shuts one channel down with a `system` error saying why, then `phx_close`.
    private func shutDownChannel(topic: String, _ join: Join, message: String) {
        push(
            topic: topic, joinRef: join.joinRef, event: "system",
            payload: [
                "extension": "system", "status": "error", "message": .string(message),
                "channel": .string(join.channel.rawValue),
            ])
        closeJoin(topic: topic, join)
    }

    // MARK: Broadcast

    private func broadcast(_ inbound: InboundFrame, join: Join, frameBytes: Int) {
        guard let event = inbound.payload["event"]?.stringValue else {
            shared.metrics.rejected(.malformed)
            replyError(to: inbound, reason: "MalformedMessage: a broadcast payload needs a string \"event\"")
            return
        }
        let limits = shared.limits(for: join.identity)
        if frameBytes > limits.maxPayloadBytes {
            let size = payloadSize(inbound)
            if size > limits.maxPayloadBytes {
                shared.metrics.rejected(.payloadTooLarge)
                replyError(
                    to: inbound,
                    reason: "PayloadTooLarge: the payload is \(size) bytes; at most \(limits.maxPayloadBytes) are allowed on the \(join.identity.tier ?? "free") tier")
                return
            }
        }
        let userPayload = inbound.payload["payload"]
        if case .deny(let why) = shared.policy.authorizeSend(join.identity, channel: join.channel, event: event, payload: userPayload) {
            shared.metrics.rejected(.unauthorized)
            replyError(
                to: inbound,
                reason: "Unauthorized: You do not have permissions to write to this Channel topic: \(join.channel) (\(why))")
            return
        }
        let clientID: String?
        switch ChannelLog.clientID(in: inbound.payload["meta"] ?? inbound.userBroadcast?.meta) {
        case .failure(let problem):
            shared.metrics.rejected(.malformed)
            replyError(to: inbound, reason: "MalformedMessage: \(problem.message)")
            return
        case .success(let id):
            clientID = id
        }
        let binaryBody = inbound.userBroadcast.flatMap { $0.isJSON ? nil : $0.body }
        if let limited = shared.admit(
            event: event, payload: userPayload, binaryBody: binaryBody, asBinary: inbound.userBroadcast != nil, clientID: clientID,
            channel: join.channel, topic: inbound.topic, identity: join.identity, sender: id,
            loop: context?.eventLoop ?? shared.hub.loops[0])
        {
            if join.ack || !limited.isRateLimit {
                replyError(to: inbound, reason: limited.message)
            } else {
                push(
                    topic: inbound.topic, joinRef: join.joinRef, event: "system",
                    payload: [
                        "extension": "system", "status": "error", "message": .string(limited.message),
                        "channel": .string(join.channel.rawValue),
                    ])
            }
            return
        }
        if join.ack {
            replyOK(to: inbound, response: .object(.init()))
        }
    }

    /// The exact size of the user payload: raw bytes for binary pushes, serialized JSON otherwise.
    private func payloadSize(_ inbound: InboundFrame) -> Int {
        if let body = inbound.userBroadcast?.body { return body.readableBytes }
        guard let payload = inbound.payload["payload"] else { return 0 }
        var buffer = ByteBufferAllocator().buffer(capacity: 0)
        JSON.serialize(payload, into: &buffer)
        return buffer.readableBytes
    }

    // MARK: Presence

    private func presence(_ inbound: InboundFrame, join: Join) {
        let limit = shared.configuration.presenceUpdatesPerMinute
        let budget = "presence#\(join.channel)#\(id)"
        if case .refused(let retryAfter) = shared.rateLimiter.attempt(key: budget, limit: limit, now: shared.configuration.monotonicSeconds()) {
            shared.metrics.rejected(.rateLimited)
            let seconds = max(1, Int(retryAfter.rounded(.up)))
            replyError(
                to: inbound,
                reason: "ChannelRateLimitReached: presence on channel \(join.channel) allows \(limit) updates per minute per connection; try again in \(seconds) s")
            return
        }
        switch inbound.payload["event"]?.stringValue?.lowercased() {
        case "track":
            guard let meta = inbound.payload["payload"]?.objectValue else {
                shared.metrics.rejected(.malformed)
                replyError(to: inbound, reason: "Presence track payload must be a map")
                return
            }
            var bytes = ByteBufferAllocator().buffer(capacity: 0)
            JSON.serialize(.object(meta), into: &bytes)
            let limit = shared.configuration.maxPresenceMetaBytes
            if bytes.readableBytes > limit {
                shared.metrics.rejected(.payloadTooLarge)
                replyError(
                    to: inbound, reason: "PayloadTooLarge: the presence meta is \(bytes.readableBytes) bytes; at most \(limit) are allowed")
                return
            }
            if case .deny(let why) = shared.policy.authorizePresence(join.identity, channel: join.channel) {
                shared.metrics.rejected(.unauthorized)
                replyError(
                    to: inbound,
                    reason: "Unauthorized: You do not have permissions to track presence on this Channel topic: \(join.channel) (\(why))")
                return
            }
            let diff = shared.presence.track(topic: inbound.topic, owner: id, key: join.presenceKey, meta: meta)
            if let diff, diff.leaves.isEmpty { shared.metrics.presences(scope: join.channel.scope)?.increment(by: 1) }
            joins[inbound.topic]?.tracking = true
            replyOK(to: inbound, response: .object(.init()))
            publishPresence(diff, topic: inbound.topic)
        case "untrack":
            joins[inbound.topic]?.tracking = false
            let diff = shared.presence.untrack(topic: inbound.topic, owner: id)
            if diff != nil { shared.metrics.presences(scope: join.channel.scope)?.decrement(by: 1) }
            replyOK(to: inbound, response: .object(.init()))
            publishPresence(diff, topic: inbound.topic)
        default:
            shared.metrics.rejected(.unknownEvent)
            replyError(to: inbound, reason: "UnknownEvent: a presence message needs \"event\": \"track\" or \"untrack\"")
        }
    }

    /// Removes what `join` tracked and tells the channel.
    private func leavePresence(topic: String, _ join: Join) {
        guard join.tracking else { return }
        let diff = shared.presence.untrack(topic: topic, owner: id)
        if diff != nil { shared.metrics.presences(scope: join.channel.scope)?.decrement(by: 1) }
        publishPresence(diff, topic: topic)
    }

    private func publishPresence(_ diff: ChannelPresence.Diff?, topic: String) {
        shared.publishPresence(diff, topic: topic, allocator: context?.channel.allocator ?? ByteBufferAllocator())
    }

    // MARK: Token refresh

    private func refreshToken(_ inbound: InboundFrame, join: Join) {
        guard let token = channelToken(in: inbound.payload) else { return }
        switch identity(for: token) {
        case .failure(let error):
            shared.metrics.rejected(.badToken)
            shutDownChannel(topic: inbound.topic, join, message: error.message)
        case .success(let identity):
            if case .deny(let why) = shared.policy.authorizeJoin(identity, channel: join.channel) {
                shared.metrics.rejected(.unauthorized)
                shutDownChannel(
                    topic: inbound.topic, join,
                    message: "You no longer have permission to read from this Channel topic: \(join.channel) (\(why))")
            } else {
                joins[inbound.topic]?.identity = identity
                scheduleExpiryCheck()
            }
        }
    }

    /// Re-checks each join against the current policy (after a rules reload); a join that lost
    /// access gets a `system` message with the rules' reason and a `phx_close`. Returns how
    /// many joins were closed.
    func reauthorize() -> Int {
        var removed = 0
        for (topic, join) in joins {
            guard case .deny(let why) = shared.policy.authorizeJoin(join.identity, channel: join.channel) else { continue }
            shared.metrics.rejected(.unauthorized)
            shutDownChannel(
                topic: topic, join,
                message: "You no longer have permission to read from this Channel topic: \(join.channel) (\(why))")
            removed += 1
        }
        return removed
    }

    /// Closes each channel whose token has expired, when the earliest one expires.
    private func scheduleExpiryCheck() {
        expiryCheck?.cancel()
        expiryCheck = nil
        guard let context, let earliest = joins.values.map(\.identity.expiresAt).min() else { return }
        let delay = max(0, earliest - RealtimeContext.now())
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        expiryCheck = context.eventLoop.scheduleTask(in: .milliseconds(Int64(delay * 1000) + 1)) {
            bound.value.closeExpiredJoins()
        }
    }

    private func closeExpiredJoins() {
        let now = RealtimeContext.now()
        for (topic, join) in joins where join.identity.expiresAt <= now {
            shutDownChannel(topic: topic, join, message: "Token has expired \(Int(now - join.identity.expiresAt)) seconds ago")
        }
        scheduleExpiryCheck()
    }

    // MARK: Writing

    private func replyOK(to inbound: InboundFrame, response: Value) {
        reply(topic: inbound.topic, ref: inbound.ref, joinRef: inbound.joinRef, status: "ok", response: response)
    }

    private func replyError(to inbound: InboundFrame, reason: String) {
        replyError(topic: inbound.topic, ref: inbound.ref, joinRef: inbound.joinRef, reason: reason)
    }

    private func replyError(topic: String, ref: String?, joinRef: String?, reason: String) {
        logger.debug("rejected", metadata: ["topic": .string(topic), "reason": .string(reason)])
        reply(topic: topic, ref: ref, joinRef: joinRef, status: "error", response: ["reason": .string(reason)])
    }

    private func reply(topic: String, ref: String?, joinRef: String?, status: String, response: Value) {
        push(topic: topic, ref: ref, joinRef: joinRef, event: "phx_reply", payload: ["status": .string(status), "response": response])
    }

    private func push(topic: String, ref: String? = nil, joinRef: String?, event: String, payload: Value) {
        guard let raw = raw.context, !closing else { return }
        let frame = OutboundFrame(joinRef: joinRef, ref: ref, topic: topic, event: event, payload: payload)
        let text = WireEncoder.encode(frame, version: version, allocator: raw.channel.allocator)
        raw.writeAndFlush(NIOAny(WebSocketFraming.frame(.text, text, allocator: raw.channel.allocator)), promise: nil)
    }

    private func writeControl(_ opcode: WebSocketOpcode, _ data: ByteBuffer) {
        guard let raw = raw.context, !closing else { return }
        raw.writeAndFlush(NIOAny(WebSocketFraming.frame(opcode, data, allocator: raw.channel.allocator)), promise: nil)
    }

    /// Queues a pre-framed broadcast without flushing. Returns true when the caller should
    /// flush this connection at the end of the drain (the first write since the last flush).
    func writeBroadcast(_ bytes: ByteBuffer) -> Bool {
        guard let raw = raw.context, !closing else { return false }
        raw.write(NIOAny(bytes), promise: nil)
        if !raw.channel.isWritable {
            bytesWhileUnwritable += bytes.readableBytes
            if bytesWhileUnwritable > shared.configuration.slowConsumerBytes * 8 {
                closeSlowConsumer()
                return false
            }
        }
        if awaitingFlush { return false }
        awaitingFlush = true
        return true
    }

    func flushBroadcasts() {
        awaitingFlush = false
        raw.context?.flush()
    }

    private func closeIfStillSlow() {
        slowConsumerCheck = nil
        if let context, !context.channel.isWritable { closeSlowConsumer() }
    }

    private func closeSlowConsumer() {
        shared.metrics.rejected(.slowConsumer)
        logger.warning("closing a slow consumer", metadata: ["unsent_bytes_over_cap": "\(bytesWhileUnwritable)"])
        close(code: 1008, reason: "slow consumer: more than \(shared.configuration.slowConsumerBytes) bytes unsent for too long")
    }

    /// Sends a close frame and closes the socket.
    private func close(code: UInt16, reason: String) {
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
            push(
                topic: topic, joinRef: join.joinRef, event: "system",
                payload: [
                    "extension": "system", "status": "ok", "message": .string(reason),
                    "channel": .string(join.channel.rawValue),
                ])
        }
        close(code: 1012, reason: reason)
        return context.channel.closeFuture
    }

    private func tearDown() {
        guard let shard, shard.connections[ObjectIdentifier(self)] != nil else { return }
        for (topic, join) in joins {
            leavePresence(topic: topic, join)
            unsubscribe(topic: topic, join)
        }
        joins.removeAll()
        shard.unregister(self)
        slowConsumerCheck?.cancel()
        expiryCheck?.cancel()
        shared.metrics.connections.decrement(by: 1)
    }
}
