import Foundation
import SwitchboardClient
import SwitchboardCore
import SwitchboardWire
import Testing

/// The Swift client against the real server: reconnects, replay of exactly what was missed,
/// the outbound buffer, the channel cap. The client's timers run on a `ManualClock` the test
/// advances, so nothing here depends on how fast a timer fires (see ``ClientRealClockTests``
/// for the same timers on the real clock).
@Suite struct ClientTests {
    static let channel = "collaboration:s1:c1"

    static func client(_ server: TestServer, sub: String = "s1-user", configure: (inout ClientConfiguration) -> Void = { _ in }) async throws
        -> SwitchboardClient
    {
        var configuration = ClientConfiguration(
            url: "ws://127.0.0.1:\(server.port)/socket/websocket", token: try await server.token(sub: sub, supplierID: "s1"))
        configure(&configuration)
        return SwitchboardClient(configuration)
    }

    /// Publishes `comment:added` number `n`, ... over REST as the backend.
    static func publish(_ numbers: Range<Int>, on server: TestServer) async throws {
        let backend = try await server.token(role: "service_role", sub: "backend")
        let messages = numbers.map { n -> Value in
            ["topic": .string(channel), "event": "comment:added", "payload": ["comment_id": .string("c\(n)"), "text": "hi", "n": .int(n)]]
        }
        let reply = try await HTTPTests.request(server, "POST", "/api/broadcast", token: backend, body: JSON.string(["messages": .array(messages)]))
        try #require(reply.status == 202, "\(reply.body)")
    }

    static func disconnect(_ sub: String, on server: TestServer) async throws {
        let admin = try await server.token(role: "admin", sub: "ops")
        let reply = try await HTTPTests.request(server, "POST", "/admin/disconnect?sub=\(sub)", token: admin, contentType: nil)
        try #require(reply.status == 200 && reply.body.contains(#""disconnected":1"#), "\(reply.status) \(reply.body)")
    }

    static func isDisconnected(_ state: SwitchboardClient.State) -> Bool {
        if case .disconnected = state { return true }
        return false
    }

    /// Waits, for at most `timeout` of real time, until `condition` holds.
    static func eventually(_ what: String, timeout: Duration = .seconds(20), _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !(await condition()) {
            guard ContinuousClock.now < deadline else { throw TestFailure("\(what): not within \(timeout)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits until `client` has lost its connection and `sleepers` timers wait on `clock`: its
    /// reconnect backoff, plus one per other timer the test expects (a buffered message's
    /// expiry, a join timeout). The clock does not move, so the client stays away until the
    /// test advances it.
    static func waitUntilAway(_ client: SwitchboardClient, on clock: ManualClock, sleepers: Int = 1) async throws {
        try await eventually("the client sleeping on its backoff with \(sleepers) timer(s) waiting") {
            isDisconnected(await client.state) && clock.waitingCount >= sleepers
        }
    }

    @Test(.timeLimit(.minutes(2))) func theClientReconnectsByItselfAndGetsExactlyTheMissedFiftyThenLiveMessages() async throws {
        try await withServer { server in
            let clock = ManualClock.startingNow()
            let client = try await Self.client(server) {
                $0.clock = clock
                $0.backoff = Backoff(initial: .seconds(2), jitter: 0)
            }
            let states = Inbox(client.states)
            let channel = try await client.channel(Self.channel)
            let events = Inbox(channel.events)
            #expect(try await events.next() == .joined(recovered: nil))
            try await Self.publish(0..<5, on: server)
            for n in 0..<5 {
                guard case .message(let message) = try await events.next() else { throw TestFailure("expected message \(n)") }
                #expect(message.payload["n"] == .int(n) && !message.replayed)
            }

            try await Self.disconnect("s1-user", on: server)
            try await states.next(where: Self.isDisconnected)
            // The client sleeps on its backoff until the clock moves: publish while it is away.
            try await Self.waitUntilAway(client, on: clock)
            #expect(clock.nextDeadline == clock.now.advanced(by: .seconds(2)), "the first reconnect waits the initial backoff")
            try await Self.publish(5..<55, on: server)
            clock.advance(by: .seconds(2))

            #expect(try await events.next(timeout: .seconds(20)) == .joined(recovered: true))
            for n in 5..<55 {
                guard case .message(let message) = try await events.next() else { throw TestFailure("expected message \(n)") }
                #expect(message.payload["n"] == .int(n), "\(message)")
                #expect(message.replayed)
                #expect(message.seq == UInt64(n + 1))
            }
            try await Self.publish(55..<56, on: server)
            guard case .message(let live) = try await events.next() else { throw TestFailure("expected the live message") }
            #expect(live.payload["n"] == 55 && !live.replayed)
            await client.close()
        }
    }

    @Test(.timeLimit(.minutes(2))) func aSendWhileDisconnectedIsDeliveredOnceAfterTheReconnect() async throws {
        try await withServer { server in
            let subscriber = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
            try #require(try await subscriber.join(Self.channel, ref: "1").status == "ok")
            let clock = ManualClock.startingNow()
            let client = try await Self.client(server) {
                $0.clock = clock
                $0.backoff = Backoff(initial: .milliseconds(300), jitter: 0)
            }
            let channel = try await client.channel(Self.channel)
            try await Self.disconnect("s1-user", on: server)
            try await Self.waitUntilAway(client, on: clock)
            // Buffered now (its expiry timer is the second sleeper); acknowledged once the
            // client is back and has rejoined.
            async let away: Void = channel.send("comment:added", payload: ["comment_id": "c1", "text": "sent while away"], id: "away-1")
            try await Self.waitUntilAway(client, on: clock, sleepers: 2)
            clock.advance(by: .milliseconds(300))
            try await away
            let frame = try await subscriber.broadcastEvent("comment:added", timeout: .seconds(20))
            #expect(frame.payload["payload"]?["text"] == "sent while away")
            #expect(frame.payload["meta"]?["id"] == "away-1")
            // A retry with the same id (as after a lost ack) is acknowledged and not delivered again.
            try await channel.send("comment:added", payload: ["comment_id": "c1", "text": "sent while away"], id: "away-1")
            try await channel.send("comment:added", payload: ["comment_id": "c2", "text": "marker"])
            let next = try await subscriber.broadcastEvent("comment:added", timeout: .seconds(20))
            #expect(next.payload["payload"]?["text"] == "marker")
            await client.close()
            await subscriber.close()
        }
    }

    @Test(.timeLimit(.minutes(2))) func aBufferedMessageExpiresWithAnErrorWhenTheServerStaysAway() async throws {
        let server = try await TestServer.start()
        let clock = ManualClock.startingNow()
        let client = try await Self.client(server) {
            $0.clock = clock
            $0.bufferedLifetime = .seconds(30)
            // Longer than the lifetime: no reconnect attempt (to a port another test may reuse).
            $0.backoff = Backoff(initial: .seconds(60), jitter: 0)
        }
        let channel = try await client.channel(Self.channel)
        await server.stop()
        try await Self.waitUntilAway(client, on: clock)
        async let sent: Void = channel.send("comment:added", payload: ["comment_id": "c1", "text": "nobody hears"])
        try await Self.waitUntilAway(client, on: clock, sleepers: 2)
        let buffered = clock.now
        clock.advance(by: .seconds(29))
        #expect(clock.nextDeadline == buffered.advanced(by: .seconds(30)), "still waiting one second before its lifetime ends")
        clock.advance(by: .seconds(1))
        do {
            try await sent
            Issue.record("the send succeeded without a server")
        } catch let error as ClientError {
            #expect(error.code == .expired, "\(error)")
            #expect(error.message == "not sent within 30.0 seconds: no connection to the server")
        }
        await client.close()
    }

    @Test(.timeLimit(.minutes(2))) func aJoinWithoutAReplyFailsAfterTheJoinTimeout() async throws {
        let clock = ManualClock(wallSeconds: 0)
        var configuration = ClientConfiguration(url: "ws://127.0.0.1:1/socket/websocket", token: "unused")  // nothing listens on port 1
        configuration.clock = clock
        configuration.joinTimeout = .seconds(10)
        configuration.backoff = Backoff(initial: .seconds(60), jitter: 0)
        let client = SwitchboardClient(configuration)
        async let joined = client.channel(Self.channel)
        // The join timer and the backoff after the refused connection.
        try await Self.waitUntilAway(client, on: clock, sleepers: 2)
        #expect(clock.nextDeadline == ManualClock.Instant(offset: .seconds(10)))
        clock.advance(by: .seconds(10))
        do {
            _ = try await joined
            Issue.record("joined without a server")
        } catch let error as ClientError {
            #expect(error.code == .refused && error.message == "no join reply within 10.0 seconds", "\(error)")
        }
        await client.close()
    }

    @Test(.timeLimit(.minutes(2))) func presenceIsTrackedAgainAfterAReconnect() async throws {
        try await withServer { server in
            let watcher = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
            try #require(try await watcher.join(Self.channel, ref: "1").status == "ok")
            let clock = ManualClock.startingNow()
            let client = try await Self.client(server) {
                $0.clock = clock
                $0.backoff = Backoff(initial: .milliseconds(100), jitter: 0)
            }
            let channel = try await client.channel(Self.channel, options: ChannelOptions(presenceKey: "anna"))
            try await channel.track(["user": "anna", "status": "online"])
            let joined = try await watcher.event("presence_diff", timeout: .seconds(20))
            #expect(joined.payload["joins"]?["anna"]?["metas"]?.arrayValue?.first?["status"] == "online")

            try await Self.disconnect("s1-user", on: server)
            let left = try await watcher.event("presence_diff", timeout: .seconds(20))
            #expect(left.payload["leaves"]?["anna"] != nil, "the dropped socket left")
            try await Self.waitUntilAway(client, on: clock)
            clock.advance(by: .milliseconds(100))
            let back = try await watcher.event("presence_diff", timeout: .seconds(20))
            #expect(back.payload["joins"]?["anna"]?["metas"]?.arrayValue?.first?["status"] == "online", "tracked again after the reconnect")

            try await channel.untrack()
            let untracked = try await watcher.event("presence_diff", timeout: .seconds(20))
            #expect(untracked.payload["leaves"]?["anna"] != nil)
            await client.close()
            await watcher.close()
        }
    }

    /// One manual clock for the server (60 s idle timeout) and the client (30 s heartbeat): five
    /// heartbeats, each answered before the clock moves on, carry an otherwise silent connection
    /// through 150 s, and it is still the first connection. (With heartbeats off the server
    /// closes it at 60 s; `ClientRealClockTests` has the same on the real clock.)
    @Test func heartbeatsKeepAnOtherwiseSilentConnectionPastTheIdleTimeout() async throws {
        let clock = ManualClock.startingNow()
        try await withServer({ $0.clock = clock }) { server in
            let client = try await Self.client(server) { $0.clock = clock }
            let states = Inbox(client.states)
            _ = try await client.channel(Self.channel)
            for beat in 1...5 {
                clock.advance(by: .seconds(30))
                try await Self.eventually("heartbeat \(beat) answered") { await client.heartbeatsAnswered >= beat }
            }
            #expect(try await states.next() == .connecting)
            #expect(try await states.next() == .connected)
            #expect(await client.state == .connected, "still the first connection")
            await client.close()
            let last = try await states.next()
            #expect(last == .closed, "no disconnect before the close, got \(last)")
        }
    }

    @Test func aClientJoinsAtMostTenChannels() async throws {
        try await withServer { server in
            let client = try await Self.client(server)
            for n in 0..<10 {
                _ = try await client.channel("collaboration:s1:c\(n)")
            }
            do {
                _ = try await client.channel("collaboration:s1:c10")
                Issue.record("an 11th channel was joined")
            } catch let error as ClientError {
                #expect(error.code == .tooManyChannels)
                #expect(error.message == "a client joins at most 10 channels; leave one first")
            }
            // A refused join is an error with the server's reason.
            let other = try await Self.client(server, sub: "other")
            do {
                _ = try await other.channel("supplier:dashboard:s9")
                Issue.record("a supplier of s1 joined s9's dashboard")
            } catch let error as ClientError {
                #expect(error.code == .refused && error.message.hasPrefix("Unauthorized:"), "\(error)")
            }
            await other.close()
            await client.close()
        }
    }
}


/// The client's timers on the real clock, end to end: written so that a slow machine only
/// makes them slower (generous deadlines on conditions, no upper bound on elapsed time, no
/// timer that must fire within a short window).
@Suite struct ClientRealClockTests {
    @Test(.timeLimit(.minutes(2))) func heartbeatsAreSentAndAnswered() async throws {
        try await withServer { server in
            let client = try await ClientTests.client(server) { $0.heartbeatInterval = .seconds(2) }
            _ = try await client.channel(ClientTests.channel)
            // Counted over every connection: a reply that came too late (a reconnect) only
            // delays this.
            try await ClientTests.eventually("two heartbeats answered", timeout: .seconds(60)) { await client.heartbeatsAnswered >= 2 }
            await client.close()
        }
    }

    @Test(.timeLimit(.minutes(2))) func theClientReconnectsAfterItsBackoffAndMissesNothing() async throws {
        try await withServer { server in
            let client = try await ClientTests.client(server)  // the default backoff: 0.5 s ± 20 %
            let states = Inbox(client.states)
            let channel = try await client.channel(ClientTests.channel)
            let events = Inbox(channel.events)
            #expect(try await events.next() == .joined(recovered: nil))
            try await ClientTests.publish(0..<3, on: server)
            for n in 0..<3 {
                guard case .message(let message) = try await events.next(timeout: .seconds(20)) else { throw TestFailure("expected message \(n)") }
                #expect(message.payload["n"] == .int(n))
            }
            try await ClientTests.disconnect("s1-user", on: server)
            try await states.next(timeout: .seconds(20), where: ClientTests.isDisconnected)
            // Published while away or after the rejoin, depending on the machine's speed: each
            // arrives once, in order, either way.
            try await ClientTests.publish(3..<6, on: server)
            try await states.next(timeout: .seconds(20)) { $0 == .connected }
            var numbers: [Value] = []
            var others: [ChannelEvent] = []
            while numbers.count < 3 || others.isEmpty {
                switch try await events.next(timeout: .seconds(20)) {
                case .message(let message): numbers.append(message.payload["n"] ?? .null)
                case let event: others.append(event)
                }
            }
            #expect(numbers == [3, 4, 5])
            #expect(others == [.joined(recovered: true)])
            await client.close()
        }
    }

    @Test(.timeLimit(.minutes(2))) func aBufferedMessageExpiresAfterItsLifetime() async throws {
        let server = try await TestServer.start()
        let client = try await ClientTests.client(server) {
            $0.bufferedLifetime = .seconds(1)
            // No reconnect attempt while the test runs (to a port another test may reuse).
            $0.backoff = Backoff(initial: .seconds(60))
        }
        let states = Inbox(client.states)
        let channel = try await client.channel(ClientTests.channel)
        await server.stop()
        try await states.next(timeout: .seconds(20), where: ClientTests.isDisconnected)
        do {
            try await channel.send("comment:added", payload: ["comment_id": "c1", "text": "nobody hears"])
            Issue.record("the send succeeded without a server")
        } catch let error as ClientError {
            #expect(error.code == .expired, "\(error)")
        }
        await client.close()
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Collects what an async stream yields, for a test to take one at a time with a deadline.
actor Inbox<Element: Sendable> {
    private var buffered: [Element] = []
    private var ended = false
    private var waiter: CheckedContinuation<Element?, Never>?

    init(_ stream: AsyncStream<Element>) {
        Task { await self.read(stream) }
    }

    private func read(_ stream: AsyncStream<Element>) async {
        for await element in stream { put(element) }
        ended = true
        waiter?.resume(returning: nil)
        waiter = nil
    }

    private func put(_ element: Element) {
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: element)
        } else {
            buffered.append(element)
        }
    }

    /// The next element, waiting at most `timeout`.
    func next(timeout: Duration = .seconds(10)) async throws -> Element {
        if !buffered.isEmpty { return buffered.removeFirst() }
        guard !ended else { throw TestFailure("the stream ended") }
        let timer = Task {
            try await Task.sleep(for: timeout)
            self.expire()
        }
        defer { timer.cancel() }
        let element = await withCheckedContinuation { waiter = $0 }
        guard let element else { throw TestFailure(ended ? "the stream ended" : "nothing within \(timeout)") }
        return element
    }

    /// Skips elements until one matches, within `timeout` overall.
    func next(timeout: Duration = .seconds(10), where matches: (Element) -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw TestFailure("no match within \(timeout)") }
            if matches(try await next(timeout: left)) { return }
        }
    }

    private func expire() {
        waiter?.resume(returning: nil)
        waiter = nil
    }
}
