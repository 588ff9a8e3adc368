import Logging
import SwitchboardCore
import SwitchboardWire
import WSClient

/// A Switchboard (Supabase Realtime protocol, vsn 1.0.0) client with delivery guarantees:
/// one WebSocket per client, a heartbeat, reconnects with exponential backoff and jitter, an
/// outbound buffer while disconnected, rejoins that ask for exactly the missed messages
/// (`since_seq`), and delivery of each message id at most once.
///
/// Every timer runs on ``ClientConfiguration/clock``; the timing decisions are made by a pure
/// state machine (`ClientConnectionMachine`) and the actor performs what it answers.
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
        /// Opening the WebSocket.
        case connecting
        /// Open: joins, pushes and heartbeats flow.
        case connected
        /// Lost or not yet made; the client retries after its backoff delay.
        case disconnected(reason: String)
        /// ``close()`` was called.
        case closed
    }

    /// What the client was made with.
    public nonisolated let configuration: ClientConfiguration
    /// Every state change, in order (buffers the newest 100 when nobody reads).
    public nonisolated let states: AsyncStream<State>
    let stateSink: AsyncStream<State>.Continuation
    /// The current state (the last one ``states`` reported).
    public private(set) var state: State = .disconnected(reason: "not started")

    /// The configured clock, read as the time since the client was made.
    let clock: ClientClock
    /// The heartbeat, backoff and buffer-expiry decisions.
    var machine: ClientConnectionMachine
    var channels: [String: ChannelRecord] = [:]
    /// Pushes waiting for a connection or a join, in order.
    var outbox: [Outgoing] = []
    /// Frames sent and waiting for their reply, by ref.
    var inFlight: [String: InFlight] = [:]
    var connection: Connection?
    var nextRef = 0
    var nextConnectionID = 0
    var nextOutgoingID: UInt64 = 0
    var runner: Task<Void, Never>?
    /// The one timer that fails buffered messages, set while any waits.
    var expiryTimer: ExpiryTimer?
    var nextExpiryTimer = 0
    var isClosed = false
    let logger: Logger

    /// A client for `configuration`; it connects on ``start()`` or the first ``channel(_:options:)``.
    public init(_ configuration: ClientConfiguration) {
        self.configuration = configuration
        (states, stateSink) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(100))
        logger = configuration.logger
        clock = ClientClock(configuration.clock)
        machine = ClientConnectionMachine(configuration)
    }

    // MARK: Public API

    /// Heartbeat replies received so far, over every connection of this client.
    public var heartbeatsAnswered: Int { machine.heartbeatsAnswered }

    /// Starts connecting (``channel(_:options:)`` does it too). Idempotent.
    public func start() {
        guard runner == nil, !isClosed else { return }
        runner = Task { await self.run() }
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
        channels[topic] = ChannelRecord(
            name: name, options: options, events: sink,
            tracker: ChannelTracker(idLifetime: configuration.dedupeLifetime, idCapacity: configuration.dedupeCapacity))
        start()
        if connection != nil { sendJoin(topic) }
        let clock = self.clock
        let deadline = clock.now + configuration.joinTimeout
        let timeout = Task {
            do { try await clock.sleep(until: deadline) } catch { return }
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
        machine.close()
        runner?.cancel()
        expiryTimer?.task.cancel()
        expiryTimer = nil
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
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            outbox.append(Outgoing(id: id, topic: topic, event: event, payload: payload, done: done))
            machine.buffered(id, at: clock.now)
            flush()
            scheduleExpiry()
        }
    }

    /// Remembers the presence meta (it is tracked again after a reconnect) and tracks it.
    func track(topic: String, meta: Value.Object) async throws {
        channels[topic]?.tracked = meta
        try await push(topic: topic, event: "presence", payload: ["type": "presence", "event": "track", "payload": .object(meta)])
    }

    /// Forgets the presence meta and untracks it.
    func untrack(topic: String) async throws {
        channels[topic]?.tracked = nil
        try await push(topic: topic, event: "presence", payload: ["type": "presence", "event": "untrack"])
    }

    /// Leaves `topic` (telling the server when connected) and forgets it.
    func leave(topic: String) {
        guard let record = channels[topic] else { return }
        if connection != nil, record.joined {
            send(topic: topic, event: "phx_leave", payload: .object(.init()), ref: makeRef(), joinRef: record.joinRef)
        }
        drop(topic, reason: "left")
    }

    // MARK: Connection loop

    private func run() async {
        let servers = [configuration.url] + configuration.fallbackURLs
        var server = 0
        while !isClosed, !Task.isCancelled {
            setState(.connecting)
            nextConnectionID += 1
            let id = nextConnectionID
            let base = servers[server % servers.count]
            // The next attempt goes to the next server of the cluster.
            server += 1
            let separator = base.contains("?") ? "&" : "?"
            let url = "\(base)\(separator)apikey=\(configuration.token)&vsn=1.0.0"
            var reason = "the server closed the connection"
            do {
                let close = try await WebSocketClient.connect(
                    url: url, configuration: WebSocketClientConfiguration(maxFrameSize: 1 << 24),
                    tlsConfiguration: configuration.tlsConfiguration, logger: logger
                ) { inbound, outbound, _ in
                    try await self.serve(inbound: inbound, outbound: outbound, id: id)
                }
                if let close { reason = "closed (\(close.closeCode))\(close.reason.map { ": \($0)" } ?? "")" }
            } catch {
                reason = "\(error)"
            }
            guard case .reconnect(let delay, let deadline, _) = connectionEnded(id, reason: reason), !Task.isCancelled else { break }
            logger.debug("reconnecting", metadata: ["in": "\(delay)", "reason": "\(reason)"])
            do { try await clock.sleep(until: deadline) } catch { break }
        }
    }

    /// One connection: writes what the queue gets, beats, and reads until any of them ends.
    private func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, id: Int) async throws {
        let (queue, sink) = AsyncStream<String>.makeStream()
        opened(id: id, queue: sink)
        let clock = self.clock
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await text in queue { try await outbound.write(.text(text)) }
            }
            group.addTask {
                while true {
                    switch await self.heartbeatTimer(connection: id) {
                    case .wait(let until), .send(let until): try await clock.sleep(until: until)
                    case .connectionDead(let reason): throw ClientError(.closed, reason)
                    case .notConnected: return
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
        machine.connected(at: clock.now)
        setState(.connected)
        for topic in channels.keys { sendJoin(topic) }
    }

    /// Connection `id` (or the attempt to make it) ended: what was sent and not acknowledged
    /// waits in the buffer again; the machine says when to reconnect.
    private func connectionEnded(_ id: Int, reason: String) -> ClientConnectionMachine.ReconnectAction {
        if connection?.id == id {
            connection?.queue.finish()
            connection = nil
        }
        // Sent but not acknowledged: back to the front of the buffer, in order, to be sent
        // again with the same id (the server drops a repeat).
        let unacknowledged = inFlight.values.compactMap(\.outgoing).sorted { $0.id < $1.id }
        outbox.insert(contentsOf: unacknowledged, at: 0)
        inFlight.removeAll()
        for topic in channels.keys { channels[topic]?.joined = false }
        let action = machine.disconnected(at: clock.now, random: Double.random(in: 0...1))
        scheduleExpiry()
        if !isClosed { setState(.disconnected(reason: reason)) }
        return action
    }

    // MARK: Helpers

    /// Forgets a channel: its waiters and buffered messages fail, its events end.
    func drop(_ topic: String, reason: String) {
        guard let record = channels.removeValue(forKey: topic) else { return }
        let error = ClientError(record.waiters.isEmpty ? .closed : .refused, reason)
        for waiter in record.waiters { waiter.resume(throwing: error) }
        let closed = ClientError(.closed, "channel \(record.name) was closed: \(reason)")
        outbox.removeAll { outgoing in
            guard outgoing.topic == topic else { return false }
            machine.finished(outgoing.id)
            outgoing.done?.resume(throwing: closed)
            return true
        }
        for (ref, waiting) in inFlight {
            if let outgoing = waiting.outgoing, outgoing.topic == topic {
                inFlight[ref] = nil
                machine.finished(outgoing.id)
                outgoing.done?.resume(throwing: closed)
            }
        }
        scheduleExpiry()
        record.events.yield(.closed(reason: reason))
        record.events.finish()
    }

    private func joinTimedOut(_ topic: String) {
        guard let record = channels[topic], !record.waiters.isEmpty else { return }
        drop(topic, reason: "no join reply within \(configuration.joinTimeout)")
    }

    private func failInFlight(_ error: ClientError) {
        for outgoing in outbox {
            machine.finished(outgoing.id)
            outgoing.done?.resume(throwing: error)
        }
        outbox.removeAll()
        for waiting in inFlight.values {
            guard let outgoing = waiting.outgoing else { continue }
            machine.finished(outgoing.id)
            outgoing.done?.resume(throwing: error)
        }
        inFlight.removeAll()
        scheduleExpiry()
    }

    func makeRef() -> String {
        nextRef += 1
        return String(nextRef)
    }

    private func setState(_ new: State) {
        guard new != state else { return }
        state = new
        stateSink.yield(new)
    }
}
