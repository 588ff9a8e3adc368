import Foundation
import SwitchboardCore
import Testing

/// Per-channel message budgets (100 per minute on every default tier), over real WebSockets
/// and REST, with time moved by hand instead of waited for.
@Suite struct RateLimitTests {
    static let ackConfig: Value = ["broadcast": ["self": false, "ack": true], "presence": ["key": "", "enabled": false], "private": false]

    static func start(_ clock: ManualClock, _ body: (TestServer) async throws -> Void) async throws {
        try await withServer({ $0.clock = clock }, body)
    }

    @Test func theFirstHundredOfAHundredAndFiftyAreDeliveredAndTheRestRefused() async throws {
        let clock = ManualClock.startingNow()
        try await Self.start(clock) { server in
            let subscriber = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await subscriber.join("collaboration:s1:c1", ref: "1").status == "ok")
            let sender = try await PhoenixSocket.connect(
                server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
            try #require(try await sender.join("collaboration:s1:c1", ref: "1", config: Self.ackConfig).status == "ok")

            var accepted = 0
            var refusals: [String] = []
            for n in 0..<150 {
                clock.advance(by: .milliseconds(20))  // 150 messages in 3 s
                try await sender.broadcast("collaboration:s1:c1", event: "tick", payload: ["n": .int(n)], ref: "m\(n)", joinRef: "1")
                let reply = try await sender.reply(to: "m\(n)")
                if reply.status == "ok" { accepted += 1 } else { refusals.append(reply.reason ?? "") }
            }
            #expect(accepted == 100)
            #expect(refusals.count == 50)
            // The first refusal comes 2 s after the first message: the window frees up in 58 s.
            #expect(
                refusals.first?.hasPrefix("ChannelRateLimitReached: channel collaboration:s1:c1 allows 100 messages per minute; try again in 5")
                    == true, "\(refusals.first ?? "")")
            // Exactly the first 100 arrive, in order, and nothing after them.
            for n in 0..<100 {
                let frame = try await subscriber.next()
                #expect(frame.event == "broadcast" && frame.payload["payload"]?["n"] == .int(n), "\(frame)")
            }
            try await subscriber.heartbeat()
            try await sender.heartbeat()

            // Once the window slides past the first messages, the channel takes messages again.
            clock.advance(by: .milliseconds(57_050))
            try await sender.broadcast("collaboration:s1:c1", event: "tick", payload: ["n": 150], ref: "late", joinRef: "1")
            #expect(try await sender.reply(to: "late").status == "ok")
            #expect(try await subscriber.next().payload["payload"]?["n"] == 150)
            await subscriber.close()
            await sender.close()
        }
    }

    @Test func withoutAckTheSenderGetsASystemMessage() async throws {
        let clock = ManualClock.startingNow()
        try await Self.start(clock) { server in
            let sender = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await sender.join("supplier:dashboard:s1", ref: "1").status == "ok")
            for n in 0..<101 {
                try await sender.broadcast("supplier:dashboard:s1", event: "tick", payload: ["n": .int(n)], ref: "m\(n)", joinRef: "1")
            }
            let system = try await sender.event("system")
            #expect(system.topic == "realtime:supplier:dashboard:s1")
            #expect(system.payload["status"] == "error")
            #expect(system.payload["message"]?.stringValue?.hasPrefix("ChannelRateLimitReached: channel supplier:dashboard:s1 allows 100") == true)
            try await sender.heartbeat()
            await sender.close()
        }
    }

    @Test func restCountsAgainstTheSameBudgetAndGets429() async throws {
        let clock = ManualClock.startingNow()
        try await Self.start(clock) { server in
            let sender = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await sender.join("collaboration:s1:c1", ref: "1", config: Self.ackConfig).status == "ok")
            for n in 0..<99 {
                try await sender.broadcast("collaboration:s1:c1", event: "tick", payload: [:], ref: "m\(n)", joinRef: "1")
                try #require(try await sender.reply(to: "m\(n)").status == "ok")
            }
            let admin = try await server.token(role: "service_role", sub: "backend")
            let one = try await HTTPTests.request(server, "POST", "/api/broadcast/collaboration:s1:c1/events/tick", token: admin, body: "{}")
            #expect(one.status == 202)
            let over = try await HTTPTests.request(server, "POST", "/api/broadcast/collaboration:s1:c1/events/tick", token: admin, body: "{}")
            #expect(over.status == 429)
            #expect(over.body.contains("ChannelRateLimitReached: channel collaboration:s1:c1 allows 100 messages per minute"))
            let batch = #"{"messages":[{"topic":"collaboration:s1:c1","event":"a","payload":{}},{"topic":"supplier:dashboard:s1","event":"b","payload":{}}]}"#
            let mixed = try await HTTPTests.request(server, "POST", "/api/broadcast", token: admin, body: batch)
            #expect(mixed.status == 429)
            #expect(mixed.body.contains("1 of 2 messages were published"))
            let metrics = try await HTTPTests.request(server, "GET", "/metrics").body
            #expect(metrics.contains(#"switchboard_rejected_total{reason="rate_limited"} 2"#))
            await sender.close()
        }
    }
}
