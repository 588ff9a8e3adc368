import Foundation
import Logging
import SwitchboardCore
import SwitchboardWire
import WSClient

/// A Switchboard (Supabase Realtime protocol, vsn 1.0.0) client with delivery guarantees:
/// one WebSocket per client, a heartbeat, reconnects with exponential backoff and jitter, an
/// outbound buffer while disconnected, rejoins that ask for exactly the missed messages
/// (`since_seq`), and delivery of each message id at most once.
///
/// ```swift
/// let client = SwitchboardClient(ClientConfiguration(url: "ws://127.0.0.1:4000/socket/websocket", token: jwt))
/// let channel = try await client.channel("collaboration:s1:c1")
/// Task { for await event in channel.events { print(event) } }
/// try await channel.send("comment:added", payload: ["comment_id": "c9", "text": "Lovely"])
/// ```
public actor SwitchboardClient {
    /// The connection's state, as the ``states`` stream reports it.
    public enum State: Sendable, Equatable {
        case connecting
        case connected
        /// Lost or not yet made; the client retries after its backoff delay.
        case disconnected(reason: String)
        /// ``close()`` was called.
        case closed
    }

    public nonisolated let configuration: ClientConfiguration
    /// Every state change, in order (buffers the newest 100 when nobody reads).
    public nonisolated let states: AsyncStream<State>
    private let stateSink: AsyncStream<State>.Continuation
    public private(set) var state: State = .disconnected(reason: "not started")

    private var channels: [String: ChannelRecord] = [:]
    private var outbox: [Outgoing] = []
    private var inFlight: [String: InFlight] = [:]
    private var connection: Connection?
    private var nextRef = 0
    private var nextConnectionID = 0
    private var nextOutgoingID: UInt64 = 0
    private var runner: Task<Void, Never>?
    private var housekeeper: Task<Void, Never>?
    private var isClosed = false
    private let logger: Logger

    public init(_ configuration: ClientConfiguration) {
        self.configuration = configuration
        (states, stateSink) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(100))
        logger = configuration.logger
    }

    // MARK: Public API

    /// Starts connecting (``channel(_:options:)`` does it too). Idempotent.
    public func start() {
        guard runner == nil, !isClosed else { return }
        runner = Task { await self.run() }
        housekeeper = Task { await self.keepHouse() }
    }

    /// Joins `name` (e.g. `collaboration:s1:c1`) and returns once the server accepted the
    /// join. Throws when the server refuses it, when the client already has `maxChannels`
    /// channels or this one, or when no reply comes within `joinTimeout`.
    public func channel(_ name: String, options: ChannelOptions = ChannelOptions()) async throws -> RealtimeChannel {
        guard !isClosed else { throw ClientError(.closed, "the client is closed") }
        do {
            _ = try ChannelName(validating: name)
        } catch {
            throw ClientError(.invalid, "\(name) is not a valid channel name: \(error)")
        }
        let topic = "realtime:\(name)"
        guard channels[topic] == nil else { throw ClientError(.invalid, "channel \(name) is already joined on this client") }
        guard channels.count < configuration.maxChannels else {
            throw ClientError(.tooManyChannels, "a client joins at most \(configuration.maxChannels) channels; leave one first")
        }
        let (events, sink) = AsyncStream<ChannelEvent>.makeStream()
        let clock = Self.wallClock
        channels[topic] = ChannelRecord(
            name: name, options: options, events: sink,
            tracker: ChannelTracker(
                idLifetimeMilliseconds: Int64(Backoff.seconds(configuration.dedupeLifetime) * 1000), idCapacity: configuration.dedupeCapacity,
                clock: clock))
        start()
        if connection != nil { sendJoin(topic) }
        let timeout = Task { [configuration] in
            try? await Task.sleep(for: configuration.joinTimeout)
            self.joinTimedOut(topic)
        }
        defer { timeout.cancel() }
        try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Void, any Error>) in
            if channels[topic] == nil {
                waiter.resume(throwing: ClientError(.closed, "channel \(name) was closed"))
            } else {
                channels[topic]?.waiters.append(waiter)
            }
        }
        return RealtimeChannel(client: self, name: name, topic: topic, events: events)
    }

    /// Closes the connection for good: pending sends fail, every channel's events end.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        runner?.cancel()
        housekeeper?.cancel()
        connection?.queue.finish()
        connection = nil
        for topic in Array(channels.keys) { drop(topic, reason: "the client was closed") }
        failInFlight(ClientError(.closed, "the client was closed"))
        setState(.closed)
        stateSink.finish()
    }

    // MARK: Used by RealtimeChannel

    /// Sends a push on `topic` and returns once the server acknowledged it. Buffered while
    /// disconnected or not yet joined.
    func push(topic: String, event: String, payload: Value) async throws {
        guard channels[topic] != nil else { throw ClientError(.closed, "the channel was left or closed") }
        let waiting = outbox.count + inFlight.values.filter(\.isPush).count
        guard waiting < configuration.maxBuffered else {
            throw ClientError(.bufferFull, "\(waiting) messages are already waiting to be sent (at most \(configuration.maxBuffered))")
        }
        nextOutgoingID += 1
        let id = nextOutgoingID
        let deadline = ContinuousClock.now.advanced(by: configuration.bufferedLifetime)
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            outbox.append(Outgoing(id: id, topic: topic, event: event, payload: payload, deadline: deadline, done: done))
            flush()
        }
    }

    /// Remembers the presence meta (it is tracked again after a reconnect) and tracks it.
    func track(topic: String, meta: Value.Object) async throws {
        channels[topic]?.tracked = meta
        try await push(topic: topic, event: "presence", payload: ["type": "presence", "event": "track", "payload": .object(meta)])
    }

    func untrack(topic: String) async throws {
        channels[topic]?.tracked = nil
        try await push(topic: topic, event: "presence", payload: ["type": "presence", "event": "untrack"])
    }

    func leave(topic: String) {
        guard let record = channels[topic] else { return }
        if connection != nil, record.joined {
            send(topic: topic, event: "phx_leave", payload: .object(.init()), ref: makeRef(), joinRef: record.joinRef)
        }
        drop(topic, reason: "left")
    }

    // MARK: Connection loop

    private func run() async {
        var attempt = 0
        while !isClosed, !Task.isCancelled {
            setState(.connecting)
            nextConnectionID += 1
            let id = nextConnectionID
            let separator = configuration.url.contains("?") ? "&" : "?"
            let url = "\(configuration.url)\(separator)apikey=\(configuration.token)&vsn=1.0.0"
            var reason = "the server closed the connection"
            do {
                let close = try await WebSocketClient.connect(
                    url: url, configuration: WebSocketClientConfiguration(maxFrameSize: 1 << 24), logger: logger
                ) { inbound, outbound, _ in
                    try await self.serve(inbound: inbound, outbound: outbound, id: id)
                }
                if let close { reason = "closed (\(close.closeCode))\(close.reason.map { ": \($0)" } ?? "")" }
            } catch {
                reason = "\(error)"
            }
            let wasConnected = connection?.id == id
            connectionLost(id, reason: reason)
            if wasConnected { attempt = 0 }
            guard !isClosed, !Task.isCancelled else { break }
            let delay = configuration.backoff.delay(attempt: attempt, random: Double.random(in: 0...1))
            attempt += 1
            logger.debug("reconnecting", metadata: ["in": "\(delay)", "reason": "\(reason)"])
            try? await Task.sleep(for: delay)
        }
    }

    /// One connection: writes what the queue gets, beats, and reads until any of them ends.
    private func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, id: Int) async throws {
        let (queue, sink) = AsyncStream<String>.makeStream()
        opened(id: id, queue: sink)
        let interval = configuration.heartbeatInterval
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await text in queue { try await outbound.write(.text(text)) }
            }
            group.addTask {
                while true {
                    try await Task.sleep(for: interval)
                    guard await self.heartbeat(id: id) else {
                        throw ClientError(.closed, "no heartbeat reply within \(interval)")
                    }
                }
            }
            group.addTask {
                for try await message in inbound.messages(maxSize: 1 << 24) {
                    if case .text(let text) = message { await self.received(text, on: id) }
                }
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    private func opened(id: Int, queue: AsyncStream<String>.Continuation) {
        guard !isClosed else {
            queue.finish()
            return
        }
        connection = Connection(id: id, queue: queue)
        setState(.connected)
        for topic in channels.keys { sendJoin(topic) }
    }

    private func connectionLost(_ id: Int, reason: String) {
        guard connection?.id == id || connection == nil else { return }
        connection?.queue.finish()
        connection = nil
        // Sent but not acknowledged: back to the front of the buffer, in order, to be sent
        // again with the same id (the server drops a repeat).
        let unacknowledged = inFlight.values.compactMap(\.outgoing).sorted { $0.id < $1.id }
        outbox.insert(contentsOf: unacknowledged, at: 0)
        inFlight.removeAll()
        for topic in channels.keys { channels[topic]?.joined = false }
        if !isClosed { setState(.disconnected(reason: reason)) }
    }

    /// Sends a heartbeat; false when the previous one is still unanswered.
    private func heartbeat(id: Int) -> Bool {
        guard var current = connection, current.id == id else { return false }
        if current.heartbeatPending != nil { return false }
        let ref = makeRef()
        current.heartbeatPending = ref
        connection = current
        inFlight[ref] = .heartbeat
        send(topic: "phoenix", event: "heartbeat", payload: .object(.init()), ref: ref, joinRef: nil)
        return true
    }

    /// Fails buffered messages older than their lifetime, every second or so.
    private func keepHouse() async {
        let period = min(Duration.seconds(1), configuration.bufferedLifetime / 4)
        while !isClosed, !Task.isCancelled {
            try? await Task.sleep(for: period)
            expireBuffered()
        }
    }

    private func expireBuffered() {
        let now = ContinuousClock.now
        let lifetime = configuration.bufferedLifetime
        outbox.removeAll { outgoing in
            guard outgoing.deadline <= now else { return false }
            outgoing.done?.resume(throwing: ClientError(.expired, "not sent within \(lifetime): no connection to the server"))
            return true
        }
    }

    // MARK: Frames

    private func sendJoin(_ topic: String) {
        guard var record = channels[topic] else { return }
        let ref = makeRef()
        record.joinRef = ref
        channels[topic] = record
        inFlight[ref] = .join(topic)
        var broadcast: Value.Object = ["self": .bool(record.options.receiveOwnMessages), "ack": true]
        if let resume = record.tracker.resumeFrom {
            broadcast["replay"] = ["since_seq": .int(resume.seq), "epoch": .string(resume.epoch)]
        }
        let config: Value = [
            "broadcast": .object(broadcast),
            "presence": ["key": .string(record.options.presenceKey ?? ""), "enabled": .bool(record.options.presence)],
            "private": false,
        ]
        send(topic: topic, event: "phx_join", payload: ["config": config, "access_token": .string(configuration.token)], ref: ref, joinRef: ref)
    }

    /// Writes every buffered push whose channel is joined, in order.
    private func flush() {
        guard connection != nil else { return }
        var waiting: [Outgoing] = []
        for outgoing in outbox {
            guard let record = channels[outgoing.topic], record.joined else {
                waiting.append(outgoing)
                continue
            }
            let ref = makeRef()
            inFlight[ref] = .push(outgoing)
            send(topic: outgoing.topic, event: outgoing.event, payload: outgoing.payload, ref: ref, joinRef: record.joinRef)
        }
        outbox = waiting
    }

    private func send(topic: String, event: String, payload: Value, ref: String?, joinRef: String?) {
        let frame: Value = [
            "topic": .string(topic), "event": .string(event), "payload": payload, "ref": ref.map(Value.string) ?? .null,
            "join_ref": joinRef.map(Value.string) ?? .null,
        ]
        connection?.queue.yield(JSON.string(frame))
    }

    private func received(_ text: String, on id: Int) {
        guard connection?.id == id else { return }
        guard let frame = try? JSON.parse(Array(text.utf8)), let topic = frame["topic"]?.stringValue,
            let event = frame["event"]?.stringValue
        else {
            logger.warning("an undecodable frame from the server", metadata: ["frame": "\(text.prefix(200))"])
            return
        }
        let payload = frame["payload"] ?? .null
        switch event {
        case "phx_reply":
            if let ref = frame["ref"]?.stringValue { reply(ref: ref, payload: payload) }
        case "broadcast":
            let meta = payload["meta"]
            let message = ChannelMessage(
                event: payload["event"]?.stringValue ?? "", payload: payload["payload"] ?? .null, id: meta?["id"]?.stringValue,
                seq: meta?["seq"]?.int64Value.flatMap { $0 >= 0 ? UInt64($0) : nil }, epoch: meta?["epoch"]?.stringValue,
                replayed: meta?["replayed"]?.boolValue ?? false)
            guard channels[topic] != nil, channels[topic]?.tracker.accept(message) == true else { return }
            channels[topic]?.events.yield(.message(message))
        case "presence_state", "presence_diff":
            channels[topic]?.events.yield(.presence(event: event, payload: payload))
        case "system":
            let message = payload["message"]?.stringValue ?? ""
            channels[topic]?.lastSystemMessage = message
            channels[topic]?.events.yield(.system(status: payload["status"]?.stringValue ?? "", message: message))
        case "phx_close":
            guard let record = channels[topic], frame["ref"]?.stringValue == record.joinRef || frame["join_ref"]?.stringValue == record.joinRef
            else { return }
            drop(topic, reason: record.lastSystemMessage ?? "the server closed the channel")
        case "phx_error":
            if channels[topic] != nil {
                channels[topic]?.joined = false
                sendJoin(topic)
            }
        default:
            break
        }
    }

    private func reply(ref: String, payload: Value) {
        guard let waiting = inFlight.removeValue(forKey: ref) else { return }
        let ok = payload["status"]?.stringValue == "ok"
        let response = payload["response"] ?? .null
        let reason = response["reason"]?.stringValue ?? response.stringValue ?? "refused"
        switch waiting {
        case .heartbeat:
            connection?.heartbeatPending = nil
        case .push(let outgoing):
            if ok {
                outgoing.done?.resume()
            } else {
                outgoing.done?.resume(throwing: ClientError(.refused, reason))
            }
        case .join(let topic):
            guard var record = channels[topic], record.joinRef == ref else { return }
            guard ok else {
                drop(topic, reason: reason)
                return
            }
            let recovered = response["recovered"]?.boolValue
            record.tracker.joined(
                epoch: response["epoch"]?.stringValue, seq: response["seq"]?.int64Value.flatMap { $0 >= 0 ? UInt64($0) : nil },
                recovered: recovered)
            record.joined = true
            let waiters = record.waiters
            record.waiters = []
            channels[topic] = record
            record.events.yield(.joined(recovered: recovered))
            for waiter in waiters { waiter.resume() }
            if let meta = record.tracked {
                let ref = makeRef()
                send(
                    topic: topic, event: "presence", payload: ["type": "presence", "event": "track", "payload": .object(meta)], ref: ref,
                    joinRef: record.joinRef)
            }
            flush()
        }
    }

    // MARK: Helpers

    /// Forgets a channel: its waiters and buffered messages fail, its events end.
    private func drop(_ topic: String, reason: String) {
        guard let record = channels.removeValue(forKey: topic) else { return }
        let error = ClientError(record.waiters.isEmpty ? .closed : .refused, reason)
        for waiter in record.waiters { waiter.resume(throwing: error) }
        outbox.removeAll { outgoing in
            guard outgoing.topic == topic else { return false }
            outgoing.done?.resume(throwing: ClientError(.closed, "channel \(record.name) was closed: \(reason)"))
            return true
        }
        for (ref, waiting) in inFlight {
            if let outgoing = waiting.outgoing, outgoing.topic == topic {
                inFlight[ref] = nil
                outgoing.done?.resume(throwing: ClientError(.closed, "channel \(record.name) was closed: \(reason)"))
            }
        }
        record.events.yield(.closed(reason: reason))
        record.events.finish()
    }

    private func joinTimedOut(_ topic: String) {
        guard let record = channels[topic], !record.waiters.isEmpty else { return }
        drop(topic, reason: "no join reply within \(configuration.joinTimeout)")
    }

    private func failInFlight(_ error: ClientError) {
        for outgoing in outbox { outgoing.done?.resume(throwing: error) }
        outbox.removeAll()
        for waiting in inFlight.values { waiting.outgoing?.done?.resume(throwing: error) }
        inFlight.removeAll()
    }

    private func makeRef() -> String {
        nextRef += 1
        return String(nextRef)
    }

    private func setState(_ new: State) {
        guard new != state else { return }
        state = new
        stateSink.yield(new)
    }

    static let wallClock: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: State

    private struct Connection {
        let id: Int
        let queue: AsyncStream<String>.Continuation
        var heartbeatPending: String?
    }

    private struct ChannelRecord {
        let name: String
        let options: ChannelOptions
        let events: AsyncStream<ChannelEvent>.Continuation
        var tracker: ChannelTracker
        var joinRef: String?
        var joined = false
        var tracked: Value.Object?
        var lastSystemMessage: String?
        var waiters: [CheckedContinuation<Void, any Error>] = []

        init(name: String, options: ChannelOptions, events: AsyncStream<ChannelEvent>.Continuation, tracker: ChannelTracker) {
            self.name = name
            self.options = options
            self.events = events
            self.tracker = tracker
        }
    }

    private struct Outgoing {
        let id: UInt64
        let topic: String
        let event: String
        let payload: Value
        let deadline: ContinuousClock.Instant
        let done: CheckedContinuation<Void, any Error>?
    }

    private enum InFlight {
        case heartbeat
        case join(String)
        case push(Outgoing)

        var outgoing: Outgoing? {
            if case .push(let outgoing) = self { return outgoing }
            return nil
        }

        var isPush: Bool { outgoing != nil }
    }
}

/// How a channel is joined.
public struct ChannelOptions: Sendable, Equatable {
    /// Receive your own broadcasts (`config.broadcast.self`).
    public var receiveOwnMessages: Bool
    /// Ask for `presence_state` after each join.
    public var presence: Bool
    /// The presence key (the server generates one when nil).
    public var presenceKey: String?

    public init(receiveOwnMessages: Bool = false, presence: Bool = false, presenceKey: String? = nil) {
        self.receiveOwnMessages = receiveOwnMessages
        self.presence = presence
        self.presenceKey = presenceKey
    }
}

/// A joined channel. Its ``events`` stream delivers messages (each id once, in order),
/// presence and the join's recovery status; it ends when the channel is left or closed.
public struct RealtimeChannel: Sendable {
    public let name: String
    public let events: AsyncStream<ChannelEvent>
    let client: SwitchboardClient
    let topic: String

    init(client: SwitchboardClient, name: String, topic: String, events: AsyncStream<ChannelEvent>) {
        self.client = client
        self.name = name
        self.topic = topic
        self.events = events
    }

    /// Publishes `event` with `payload`; returns once the server acknowledged it. Sent
    /// again after a reconnect until acknowledged, with the same `id` (a UUID unless given),
    /// so subscribers get it once. Fails with `.expired` after `bufferedLifetime` without a
    /// connection, `.refused` when the server says no (the message says why).
    public func send(_ event: String, payload: Value, id: String = UUID().uuidString.lowercased()) async throws {
        try await client.push(
            topic: topic, event: "broadcast",
            payload: ["type": "broadcast", "event": .string(event), "payload": payload, "meta": ["id": .string(id)]])
    }

    /// Tracks this client's presence with `meta` (tracked again after every reconnect).
    public func track(_ meta: Value.Object) async throws {
        try await client.track(topic: topic, meta: meta)
    }

    public func untrack() async throws {
        try await client.untrack(topic: topic)
    }

    /// Leaves the channel; its events end.
    public func leave() async {
        await client.leave(topic: topic)
    }
}
