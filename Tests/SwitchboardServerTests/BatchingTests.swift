import Foundation
import SwitchboardCore
import Testing

/// Batching end to end: `user:typing` (batch = 100 ms, keep latest by user_id, its own rate
/// limit) under a storm, and unbatched events never waiting for a window. Window timing is
/// checked on the manual clock; the real-clock storm checks what holds whatever the timing.
@Suite struct BatchingTests {
    static let plain: Value = ["broadcast": ["self": false, "ack": false], "presence": ["key": "", "enabled": false], "private": false]
    static let ack: Value = ["broadcast": ["self": false, "ack": true], "presence": ["key": "", "enabled": false], "private": false]

    /// 20 typists at 20 Hz for 5 s on one channel, on the manual clock: each 50 ms tick every
    /// typist sends one update (acknowledged before the clock moves), so each 100 ms window holds
    /// two updates per typist and keeps the latest. A subscriber gets at most 50 updates per
    /// typist (one per window), always in order, each typist's last state, and a comment sent
    /// in the middle.
    @Test func typingStormIsCoalescedAndTheLastStateArrives() async throws {
        let typists = 20
        let ticks = 100  // 20 Hz for 5 s
        let clock = ManualClock.startingNow()
        try await withServer({ $0.clock = clock }) { server in
            let (observer, sockets, commenter) = try await Self.storm(server, typists: typists, config: Self.ack)

            for tick in 0..<ticks {
                for (index, socket) in sockets.enumerated() {
                    try await socket.broadcast(
                        "collaboration:s1:c1", event: "user:typing", payload: ["user_id": .string("typist-\(index)"), "seq": .int(tick)],
                        ref: "t\(tick)", joinRef: "1")
                }
                for socket in sockets { try #require(try await socket.reply(to: "t\(tick)", timeout: .seconds(30)).status == "ok") }
                if tick == ticks / 2 {
                    try await commenter.broadcast(
                        "collaboration:s1:c1", event: "comment:added", payload: ["comment_id": "k1", "text": "in the middle"], ref: "c",
                        joinRef: "1")
                    try #require(try await commenter.reply(to: "c").status == "ok")
                }
                clock.advance(by: .milliseconds(50))
            }
            clock.advance(by: .milliseconds(100))  // closes the last window

            let (received, _) = try await Self.readStorm(observer, typists: typists, last: ticks - 1)
            let most = received.max() ?? 0
            #expect(most <= ticks / 2, "a typist's \(ticks) updates reached the subscriber \(most) times; 100 ms windows of 50 ms ticks keep at most \(ticks / 2)")
            #expect(received.min() ?? 0 >= 1)
            for socket in sockets { await socket.close() }
            await commenter.close()
            await observer.close()
        }
    }

    /// The storm on the real clock, paced at 20 Hz: a busy machine only makes it slower. How
    /// much is coalesced depends on timing, so this checks what must hold whatever the timing:
    /// every typist's updates in order, each typist's last state, and the comment.
    @Test(.timeLimit(.minutes(2)))
    func typingStormInRealTimeDeliversEachLastStateInOrder() async throws {
        let typists = 20
        let perTypist = 100
        try await withServer { server in
            let (observer, sockets, commenter) = try await Self.storm(server, typists: typists, config: Self.plain)

            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, socket) in sockets.enumerated() {
                    group.addTask {
                        for seq in 0..<perTypist {
                            // Pacing the load at 20 Hz, not waiting for a result.
                            try await Task.sleep(until: started + .milliseconds(50 * seq), clock: .continuous)
                            try await socket.broadcast(
                                "collaboration:s1:c1", event: "user:typing",
                                payload: ["user_id": .string("typist-\(index)"), "seq": .int(seq)])
                        }
                    }
                }
                group.addTask {
                    try await Task.sleep(until: started + .milliseconds(2500), clock: .continuous)
                    try await commenter.broadcast(
                        "collaboration:s1:c1", event: "comment:added", payload: ["comment_id": "k1", "text": "in the middle"])
                }
                try await group.waitForAll()
            }
            let (received, _) = try await Self.readStorm(observer, typists: typists, last: perTypist - 1)
            #expect(received.allSatisfy { (1...perTypist).contains($0) })
            for socket in sockets { await socket.close() }
            await commenter.close()
            await observer.close()
        }
    }

    /// An observer (not acknowledging), `typists` typists and a commenter joined to
    /// collaboration:s1:c1, the typists and the commenter with `config`.
    static func storm(_ server: TestServer, typists: Int, config: Value) async throws
        -> (observer: PhoenixSocket, typists: [PhoenixSocket], commenter: PhoenixSocket)
    {
        let observer = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
        try #require(try await observer.join("collaboration:s1:c1", ref: "1", config: plain).status == "ok")
        var sockets: [PhoenixSocket] = []
        for index in 0..<typists {
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(sub: "typist-\(index)", supplierID: "s1"))
            try #require(try await socket.join("collaboration:s1:c1", ref: "1", config: config).status == "ok")
            sockets.append(socket)
        }
        let commenter = try await PhoenixSocket.connect(server, token: try await server.token(sub: "commenter", supplierID: "s1"))
        try #require(try await commenter.join("collaboration:s1:c1", ref: "1", config: config).status == "ok")
        return (observer, sockets, commenter)
    }

    /// Reads typing updates until every typist's `last` seq and the comment have arrived,
    /// checking that each typist's updates arrive in order. Returns the updates per typist.
    static func readStorm(_ observer: PhoenixSocket, typists: Int, last final: Int) async throws -> (received: [Int], comment: Bool) {
        var received = [Int](repeating: 0, count: typists)
        var last = [Int](repeating: -1, count: typists)
        var comment = false
        while !comment || last.contains(where: { $0 != final }) {
            let frame = try await observer.next(timeout: .seconds(30))
            guard frame.event == "broadcast" else { continue }
            let event = frame.payload["event"]?.stringValue
            if event == "comment:added" {
                comment = true
                continue
            }
            #expect(event == "user:typing")
            guard let user = frame.payload["payload"]?["user_id"]?.stringValue, let index = Int(user.dropFirst("typist-".count)),
                let seq = frame.payload["payload"]?["seq"]?.int64Value, last.indices.contains(index)
            else {
                Issue.record("unexpected typing payload \(frame)")
                continue
            }
            #expect(Int(seq) > last[index], "typist \(index)'s updates arrived out of order")
            last[index] = Int(seq)
            received[index] += 1
        }
        return (received, comment)
    }

    /// An unbatched event does not wait for an open window: on the manual clock a typing window
    /// stays open until the test moves the clock, so a comment sent after a typing update
    /// reaches the subscriber first, and the typing update once the window closes.
    @Test func unbatchedEventsAreNeverDelayed() async throws {
        let clock = ManualClock.startingNow()
        try await withServer({ $0.clock = clock }) { server in
            let observer = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
            try #require(try await observer.join("collaboration:s1:c1", ref: "1", config: Self.plain).status == "ok")
            let sender = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await sender.join("collaboration:s1:c1", ref: "1", config: Self.ack).status == "ok")
            try await sender.broadcast("collaboration:s1:c1", event: "user:typing", payload: ["user_id": "s1-user"], ref: "2", joinRef: "1")
            #expect(try await sender.reply(to: "2").status == "ok")
            try await sender.broadcast(
                "collaboration:s1:c1", event: "comment:added", payload: ["comment_id": "k1", "text": "now"], ref: "3", joinRef: "1")
            #expect(try await sender.reply(to: "3").status == "ok")
            let first = try await observer.next { $0.event == "broadcast" }
            #expect(first.payload["event"] == "comment:added")
            clock.advance(by: .milliseconds(100))
            let second = try await observer.next(timeout: .seconds(30)) { $0.event == "broadcast" }
            #expect(second.payload["event"] == "user:typing")
            await sender.close()
            await observer.close()
        }
    }

    /// Typing has its own budget: a storm of it leaves the channel's 100 messages a minute to
    /// real messages, and past its own limit it is refused with a reason naming the event.
    @Test func typingHasItsOwnBudget() async throws {
        let clock = ManualClock.startingNow()
        try await withServer({ $0.clock = clock }) { server in
            let ack: Value = ["broadcast": ["self": false, "ack": true], "presence": ["key": "", "enabled": false], "private": false]
            let sender = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await sender.join("collaboration:s1:c1", ref: "1", config: ack).status == "ok")
            for n in 0..<1200 {
                try await sender.broadcast("collaboration:s1:c1", event: "user:typing", payload: ["user_id": "s1-user"], ref: "t\(n)", joinRef: "1")
            }
            try await sender.broadcast("collaboration:s1:c1", event: "user:typing", payload: ["user_id": "s1-user"], ref: "over", joinRef: "1")
            let over = try await sender.reply(to: "over", timeout: .seconds(10))
            #expect(
                over.reason?.hasPrefix(
                    "ChannelRateLimitReached: event user:typing allows 1200 messages per minute per user on channel collaboration:s1:c1") == true,
                "\(over)")
            // The channel's own budget is untouched.
            try await sender.broadcast(
                "collaboration:s1:c1", event: "comment:added", payload: ["comment_id": "k1", "text": "still here"], ref: "c", joinRef: "1")
            #expect(try await sender.reply(to: "c").status == "ok")
            await sender.close()
        }
    }
}
