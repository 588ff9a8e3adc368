import Foundation
import SwitchboardCore
import Testing

/// Batching end to end: `user:typing` (batch = 100 ms, keep latest by user_id, its own rate
/// limit) under a storm, and unbatched events never waiting for a window.
@Suite struct BatchingTests {
    static let plain: Value = ["broadcast": ["self": false, "ack": false], "presence": ["key": "", "enabled": false], "private": false]

    /// 20 typists at 20 Hz for 5 s on one channel: a subscriber gets at most about 10 updates
    /// a second per typist, always each typist's last state, and a comment sent meanwhile.
    @Test(.timeLimit(.minutes(1)))
    func typingStormIsCoalescedAndTheLastStateArrives() async throws {
        let typists = 20
        let perTypist = 100  // 20 Hz for 5 s
        try await withServer { server in
            let observer = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
            try #require(try await observer.join("collaboration:s1:c1", ref: "1", config: Self.plain).status == "ok")
            var sockets: [PhoenixSocket] = []
            for index in 0..<typists {
                let socket = try await PhoenixSocket.connect(server, token: try await server.token(sub: "typist-\(index)", supplierID: "s1"))
                try #require(try await socket.join("collaboration:s1:c1", ref: "1", config: Self.plain).status == "ok")
                sockets.append(socket)
            }
            let commenter = try await PhoenixSocket.connect(server, token: try await server.token(sub: "commenter", supplierID: "s1"))
            try #require(try await commenter.join("collaboration:s1:c1", ref: "1", config: Self.plain).status == "ok")

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

            // Read until every typist's last state and the comment have arrived.
            var received = [Int](repeating: 0, count: typists)
            var last = [Int](repeating: -1, count: typists)
            var comment = false
            while !comment || last.contains(where: { $0 != perTypist - 1 }) {
                let frame = try await observer.next(timeout: .seconds(10))
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
            // 5 s of 100 ms windows: about 50 windows, so at most about 10 updates a second.
            let most = received.max() ?? 0
            #expect(most <= 56, "a typist's 100 updates reached the subscriber \(most) times; batching should keep ~50")
            #expect(received.reduce(0, +) < typists * perTypist, "nothing was coalesced")
            for socket in sockets { await socket.close() }
            await commenter.close()
            await observer.close()
        }
    }

    /// An unbatched event does not wait for an open window: with typing held for a whole second,
    /// a comment sent after a typing update reaches the subscriber first.
    @Test func unbatchedEventsAreNeverDelayed() async throws {
        let rules = try RulesCopy()
        defer { rules.delete() }
        let events = try rules.read("events.lua")
        let slow = events.replacingOccurrences(of: "window_ms = 100,", with: "window_ms = 1000,")
        try #require(slow != events, "events.lua changed; update this test's edit")
        try rules.write("events.lua", slow)
        try await withServer({ $0.rulesDirectory = rules.path }) { server in
            let observer = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
            try #require(try await observer.join("collaboration:s1:c1", ref: "1", config: Self.plain).status == "ok")
            let ack: Value = ["broadcast": ["self": false, "ack": true], "presence": ["key": "", "enabled": false], "private": false]
            let sender = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await sender.join("collaboration:s1:c1", ref: "1", config: ack).status == "ok")
            try await sender.broadcast("collaboration:s1:c1", event: "user:typing", payload: ["user_id": "s1-user"], ref: "2", joinRef: "1")
            #expect(try await sender.reply(to: "2").status == "ok")
            try await sender.broadcast(
                "collaboration:s1:c1", event: "comment:added", payload: ["comment_id": "k1", "text": "now"], ref: "3", joinRef: "1")
            #expect(try await sender.reply(to: "3").status == "ok")
            let first = try await observer.next { $0.event == "broadcast" }
            #expect(first.payload["event"] == "comment:added")
            let second = try await observer.next { $0.event == "broadcast" }
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
