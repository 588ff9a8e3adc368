import SwitchboardCore
import Testing

/// Presence over the raw protocol: track/untrack replies, presence_state, presence_diff with both
/// joins and leaves, leaves when a join ends, and the rules' say on where presence is allowed.
@Suite struct PresenceTests {
    static func config(key: String, enabled: Bool = true) -> Value {
        ["broadcast": ["self": false, "ack": false], "presence": ["key": .string(key), "enabled": .bool(enabled)], "private": false]
    }

    static func track(_ socket: PhoenixSocket, _ channel: String, _ meta: Value, ref: String) async throws -> PhoenixSocket.Frame {
        try await socket.push("realtime:\(channel)", "presence", ["type": "presence", "event": "track", "payload": meta], ref: ref, joinRef: "1")
        return try await socket.reply(to: ref)
    }

    @Test func trackDiffStateAndLeave() async throws {
        try await withServer { server in
            let anna = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await anna.join("collaboration:s1:c1", ref: "1", config: Self.config(key: "anna")).status == "ok")
            #expect(try await anna.event("presence_state").payload == [:])
            #expect(try await Self.track(anna, "collaboration:s1:c1", ["status": "online"], ref: "2").status == "ok")
            // The tracker receives its own diff.
            let own = try await anna.event("presence_diff")
            #expect(own.payload["leaves"] == [:])
            let annaMeta = try #require(own.payload["joins"]?["anna"]?["metas"]?.arrayValue?.first)
            #expect(annaMeta["status"] == "online")
            #expect(annaMeta["phx_ref"]?.stringValue?.isEmpty == false)

            // A later joiner with presence enabled gets the state.
            let ben = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
            try #require(try await ben.join("collaboration:s1:c1", ref: "1", config: Self.config(key: "")).status == "ok")
            let state = try await ben.event("presence_state")
            #expect(state.payload["anna"]?["metas"] == [annaMeta])

            // Untrack is a leave; phx_leave after a new track is a leave too.
            try await anna.push("realtime:collaboration:s1:c1", "presence", ["event": "UNTRACK"], ref: "3", joinRef: "1")
            #expect(try await anna.reply(to: "3").status == "ok")
            let untracked = try await ben.event("presence_diff")
            #expect(untracked.payload == ["joins": [:], "leaves": ["anna": ["metas": [annaMeta]]]])
            #expect(try await Self.track(anna, "collaboration:s1:c1", ["status": "back"], ref: "4").status == "ok")
            #expect(try await ben.event("presence_diff").payload["joins"]?["anna"] != nil)
            try await anna.push("realtime:collaboration:s1:c1", "phx_leave", [:], ref: "5", joinRef: "1")
            let left = try await ben.event("presence_diff")
            #expect(left.payload["leaves"]?["anna"]?["metas"]?.arrayValue?.first?["status"] == "back")
            await anna.close()
            await ben.close()
        }
    }

    @Test func presenceFollowsTheRulesAndTheLimits() async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await socket.join("supplier:dashboard:s1", ref: "1", config: Self.config(key: "a")).status == "ok")
            let refused = try await Self.track(socket, "supplier:dashboard:s1", ["status": "online"], ref: "2")
            #expect(refused.status == "error")
            #expect(
                refused.reason
                    == "Unauthorized: You do not have permissions to track presence on this Channel topic: supplier:dashboard:s1 (presence is not enabled on supplier:dashboard:s1)"
            )

            try #require(try await socket.join("collaboration:s1:c1", ref: "1", config: Self.config(key: "a")).status == "ok")
            let notAMap = try await Self.track(socket, "collaboration:s1:c1", ["a", "list"], ref: "3")
            #expect(notAMap.reason == "Presence track payload must be a map")
            let huge = try await Self.track(socket, "collaboration:s1:c1", ["blob": .string(String(repeating: "x", count: 5000))], ref: "4")
            #expect(huge.reason?.hasPrefix("PayloadTooLarge: the presence meta is 5011 bytes; at most 4096") == true, "\(huge)")
            try await socket.push("realtime:collaboration:s1:c1", "presence", ["event": "wave"], ref: "5", joinRef: "1")
            #expect(try await socket.reply(to: "5").reason?.hasPrefix("UnknownEvent:") == true)
            try await socket.heartbeat()
            await socket.close()
        }
    }

    @Test func aClosedSocketLeaves() async throws {
        try await withServer { server in
            let watcher = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
            try #require(try await watcher.join("collaboration:s1:c1", ref: "1", config: Self.config(key: "watcher")).status == "ok")
            let leaver = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await leaver.join("collaboration:s1:c1", ref: "1", config: Self.config(key: "leaver")).status == "ok")
            #expect(try await Self.track(leaver, "collaboration:s1:c1", ["status": "online"], ref: "2").status == "ok")
            #expect(try await watcher.event("presence_diff").payload["joins"]?["leaver"] != nil)
            await leaver.close()
            let left = try await watcher.event("presence_diff", timeout: .seconds(2))
            #expect(left.payload["joins"] == [:])
            #expect(left.payload["leaves"]?["leaver"]?["metas"]?.arrayValue?.count == 1)
            await watcher.close()
        }
    }

    @Test func presenceUpdatesHaveTheirOwnBudget() async throws {
        let clock = ManualClock.startingNow()
        try await withServer({
            $0.clock = clock
            $0.presenceUpdatesPerMinute = 5
            $0.idleTimeoutSeconds = 3600  // the clock moves a silent minute
        }) { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await socket.join("collaboration:s1:c1", ref: "1", config: Self.config(key: "a")).status == "ok")
            for n in 0..<5 {
                #expect(try await Self.track(socket, "collaboration:s1:c1", ["n": .int(n)], ref: "t\(n)").status == "ok")
            }
            let over = try await Self.track(socket, "collaboration:s1:c1", ["n": 5], ref: "over")
            #expect(
                over.reason?.hasPrefix(
                    "ChannelRateLimitReached: presence on channel collaboration:s1:c1 allows 5 updates per minute per connection") == true,
                "\(over)")
            // Messages are not affected, and the budget comes back as the window slides.
            let ack: Value = ["broadcast": ["self": false, "ack": true], "presence": ["key": "a", "enabled": false], "private": false]
            try #require(try await socket.join("supplier:dashboard:s1", ref: "5", config: ack).status == "ok")
            try await socket.broadcast("supplier:dashboard:s1", event: "note", payload: [:], ref: "m", joinRef: "5")
            #expect(try await socket.reply(to: "m").status == "ok")
            clock.advance(by: .seconds(61))
            #expect(try await Self.track(socket, "collaboration:s1:c1", ["n": 6], ref: "later").status == "ok")
            await socket.close()
        }
    }
}
