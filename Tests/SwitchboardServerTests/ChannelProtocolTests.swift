import NIOCore
import SwitchboardBench
import SwitchboardCore
import SwitchboardWire
import Testing

/// The channel protocol over real WebSockets: joins, broadcasts, leaves, tokens, limits.
@Suite struct ChannelProtocolTests {
    @Test func heartbeatIsAnswered() async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1"))
            try await socket.heartbeat()
            await socket.close()
        }
    }

    /// The join reply echoes each `postgres_changes` entry unchanged, in order, with an integer
    /// `id` (a missing `filter` stays missing), then a `system` message confirms the bindings;
    /// a malformed filter and a table without a rule are join errors that say what is wrong.
    @Test func joinEchoesPostgresChangesWithIDs() async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1"))
            var config = PhoenixSocket.defaultConfig.objectValue ?? .init()
            config["postgres_changes"] = [
                ["event": "INSERT", "schema": "public", "table": "form_responses", "filter": "form_id=eq.7"],
                ["event": "*", "schema": "public", "table": "journey_steps"],
            ]
            let reply = try await socket.join("collaboration:s1:c1", ref: "1", config: .object(config))
            #expect(reply.status == "ok")
            let bindings = try #require(reply.payload["response"]?["postgres_changes"]?.arrayValue)
            try #require(bindings.count == 2)
            #expect(bindings[0]["event"] == "INSERT")
            #expect(bindings[0]["filter"] == "form_id=eq.7")
            #expect(bindings[0]["id"]?.int64Value != nil)
            #expect(bindings[1].objectValue?.members.map(\.key) == ["event", "schema", "table", "id"], "no filter key added: \(bindings[1])")
            #expect(bindings[0]["id"] != bindings[1]["id"])
            let system = try await socket.event("system", on: "realtime:collaboration:s1:c1")
            #expect(system.payload == [
                "extension": "postgres_changes", "status": "ok", "message": "Subscribed to PostgreSQL", "channel": "collaboration:s1:c1",
            ])
            let empty = try await socket.join("supplier:dashboard:s1", ref: "2")
            #expect(empty.payload["response"]?["postgres_changes"] == .array([]))

            config["postgres_changes"] = [["event": "INSERT", "schema": "public", "table": "form_responses", "filter": "form_id=xx.7"]]
            let malformed = try await socket.join("couple:dashboard:c1", ref: "3", config: .object(config))
            #expect(malformed.status == "error")
            let reason = malformed.payload["response"]?["reason"]?.stringValue ?? ""
            #expect(reason.hasPrefix("InvalidPostgresChanges: Unable to subscribe to changes with given parameters: postgres_changes[0]: filter \"form_id=xx.7\""), "\(reason)")
            #expect(reason.contains("unknown operator \"xx\""), "\(reason)")

            config["postgres_changes"] = [["event": "UPDATE", "schema": "public", "table": "invoices"]]
            let unruled = try await socket.join("supplier:dashboard:s1", ref: "4", config: .object(config))
            #expect(unruled.status == "error")
            #expect(unruled.payload["response"]?["reason"]?.stringValue?.contains("read changes of table public.invoices (no rule says who may") == true)
            await socket.close()
        }
    }

    @Test func broadcastReachesOthersAndSelfOnlyWhenAsked() async throws {
        try await withServer { server in
            let a = try await PhoenixSocket.connect(server, token: try await server.token(sub: "a", supplierID: "s1"))
            let b = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "b", coupleID: "c1"))
            try await a.join("collaboration:s1:c1", ref: "1", config: ["broadcast": ["self": "true", "ack": true]])
            try await b.join("collaboration:s1:c1", ref: "1")
            try await a.broadcast("collaboration:s1:c1", event: "cursor", payload: ["x": .number("3.10")], ref: "2", joinRef: "1")
            // The sender gets its own copy and the ack (the ack is written at once; the copy is
            // queued on the loop like every delivery, so it usually comes second).
            let firstAtA = try await a.next()
            let secondAtA = try await a.next()
            let atA = [firstAtA, secondAtA]
            #expect(atA.contains { $0.event == "broadcast" && $0.payload["event"] == "cursor" }, "\(atA)")
            #expect(atA.contains { $0.event == "phx_reply" && $0.status == "ok" }, "\(atA)")
            let atB = try await b.broadcastEvent("cursor")
            #expect(atB.ref == nil)
            #expect(atB.topic == "realtime:collaboration:s1:c1")
            #expect(atB.payload["payload"]?["x"] == .number("3.10"))

            // B has self off and ack off: no reply, no echo; A gets it, then a marker proves B saw nothing.
            try await b.broadcast("collaboration:s1:c1", event: "from-b", payload: [:], ref: "3", joinRef: "1")
            _ = try await a.broadcastEvent("from-b")
            try await a.broadcast("collaboration:s1:c1", event: "marker", payload: [:], ref: "4", joinRef: "1")
            let next = try await b.next { $0.event == "broadcast" || $0.event == "phx_reply" }
            #expect(next.payload["event"] == "marker", "B got \(next) before A's marker")
            await a.close()
            await b.close()
        }
    }

    @Test func leaveRepliesThenCloses() async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1"))
            try await socket.join("supplier:dashboard:s1", ref: "1")
            try await socket.push("realtime:supplier:dashboard:s1", "phx_leave", [:], ref: "2", joinRef: "1")
            let reply = try await socket.next()
            #expect(reply.event == "phx_reply" && reply.ref == "2" && reply.status == "ok")
            let close = try await socket.next()
            #expect(close.event == "phx_close" && close.ref == "1")
            try await socket.broadcast("supplier:dashboard:s1", event: "e", payload: [:], ref: "3")
            #expect(try await socket.reply(to: "3").reason == "unmatched topic")
            await socket.close()
        }
    }

    @Test func rejoiningClosesTheOldJoinFirst() async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1"))
            try await socket.join("supplier:dashboard:s1", ref: "1")
            try await socket.push("realtime:supplier:dashboard:s1", "phx_join", ["config": PhoenixSocket.defaultConfig], ref: "5", joinRef: "5")
            let close = try await socket.next()
            #expect(close.event == "phx_close" && close.ref == "1")
            let reply = try await socket.next()
            #expect(reply.event == "phx_reply" && reply.ref == "5" && reply.status == "ok")
            await socket.close()
        }
    }

    @Test func bothSocketPathsAndTheHeaderTokenWork() async throws {
        try await withServer { server in
            let token = try await server.token(supplierID: "s1")
            let hosted = try await PhoenixSocket.connect(server, token: token, path: "/realtime/v1/websocket")
            #expect(try await hosted.join("supplier:dashboard:s1", ref: "1").status == "ok")
            let header = try await PhoenixSocket.connect(server, token: nil, headers: [("x-api-key", token)])
            #expect(try await header.join("supplier:dashboard:s1", ref: "1").status == "ok")
            await hosted.close()
            await header.close()
        }
    }

    @Test func deniedJoinSaysWhy() async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", coupleID: "c9"))
            let reply = try await socket.join("collaboration:s1:c1", ref: "1")
            #expect(reply.status == "error")
            let reason = try #require(reply.reason)
            #expect(reason.hasPrefix("Unauthorized: You do not have permissions to read from this Channel topic: collaboration:s1:c1"))
            #expect(reason.contains("supplier s1 and couple c1"))
            #expect(try await socket.join("room-1", ref: "2").reason?.hasPrefix("Unauthorized:") == true)
            try await socket.push("realtime:", "phx_join", [:], ref: "3", joinRef: "3")
            #expect(try await socket.reply(to: "3").reason == "TopicNameRequired: You must provide a topic name")
            try await socket.push("other:room", "phx_join", [:], ref: "4", joinRef: "4")
            #expect(try await socket.reply(to: "4").reason == "unmatched topic")
            await socket.close()
        }
    }

    @Test func freeTierIsRefusedAFourthChannel() async throws {
        try await withServer { server in
            let token = try await server.token(sub: "free-user", tier: "free", supplierID: "s1")
            let socket = try await PhoenixSocket.connect(server, token: token)
            for (index, channel) in ["supplier:dashboard:s1", "collaboration:s1:c1", "system:announcements"].enumerated() {
                #expect(try await socket.join(channel, ref: "\(index)").status == "ok")
            }
            let fourth = try await socket.join("public:directory", ref: "9")
            #expect(fourth.status == "error")
            #expect(fourth.reason?.hasPrefix("ChannelRateLimitReached: Too many channels") == true)
            #expect(fourth.reason?.contains("at most 3") == true)
            try await socket.heartbeat()
            await socket.close()
        }
    }

    @Test func paidTierGetsTenChannels() async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(tier: "paid", supplierID: "s1"))
            for index in 0..<10 {
                #expect(try await socket.join("collaboration:s1:c\(index)", ref: "\(index)").status == "ok")
            }
            #expect(try await socket.join("collaboration:s1:c10", ref: "10").reason?.contains("at most 10") == true)
            await socket.close()
        }
    }

    @Test func oversizeBroadcastIsRefusedAndNeverDelivered() async throws {
        try await withServer { server in
            let a = try await PhoenixSocket.connect(server, token: try await server.token(sub: "a", supplierID: "s1"))
            let b = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "b", coupleID: "c1"))
            try await a.join("collaboration:s1:c1", ref: "1", config: ["broadcast": ["ack": true]])
            try await b.join("collaboration:s1:c1", ref: "1")
            let big = String(repeating: "x", count: 64 * 1024 + 1)
            try await a.broadcast("collaboration:s1:c1", event: "big", payload: ["blob": .string(big)], ref: "2", joinRef: "1")
            let refusal = try await a.reply(to: "2")
            #expect(refusal.status == "error")
            #expect(refusal.reason?.hasPrefix("PayloadTooLarge: the payload is 65548 bytes; at most 65536") == true)
            try await a.broadcast("collaboration:s1:c1", event: "small", payload: ["ok": true], ref: "3", joinRef: "1")
            #expect(try await a.reply(to: "3").status == "ok")
            let next = try await b.next { $0.event == "broadcast" }
            #expect(next.payload["event"] == "small", "the oversize broadcast was delivered")
            await a.close()
            await b.close()
        }
    }

    @Test func onlyAdminsSendOnAnnouncements() async throws {
        try await withServer { server in
            let user = try await PhoenixSocket.connect(server, token: try await server.token(sub: "u", supplierID: "s1"))
            let admin = try await PhoenixSocket.connect(server, token: try await server.token(role: "admin", sub: "boss"))
            let reader = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "r", coupleID: "c1"))
            for socket in [user, admin, reader] {
                #expect(try await socket.join("system:announcements", ref: "1").status == "ok")
            }
            try await user.broadcast("system:announcements", event: "fake", payload: [:], ref: "2", joinRef: "1")
            let refusal = try await user.reply(to: "2")
            #expect(refusal.reason?.hasPrefix("Unauthorized: You do not have permissions to write to this Channel topic: system:announcements") == true)
            try await admin.broadcast("system:announcements", event: "real", payload: ["text": "maintenance at 2am"], ref: "2", joinRef: "1")
            let next = try await reader.next { $0.event == "broadcast" }
            #expect(next.payload["event"] == "real", "a non-admin broadcast was delivered")
            for socket in [user, admin, reader] { await socket.close() }
        }
    }

    @Test func joinWithItsOwnTokenKeepsFrameOrder() async throws {
        try await withServer { server in
            let connectToken = try await server.token(role: "couple", sub: "c", coupleID: "c1")
            let channelToken = try await server.token(sub: "s", supplierID: "s7")
            let socket = try await PhoenixSocket.connect(server, token: connectToken)
            // The join's token is new to the server (an asynchronous check); the broadcast pushed right
            // behind it must wait for the join, not be refused as an unmatched topic.
            try await socket.push(
                "realtime:supplier:dashboard:s7", "phx_join", ["config": ["broadcast": ["ack": true]], "access_token": .string(channelToken)],
                ref: "1", joinRef: "1")
            try await socket.broadcast("supplier:dashboard:s7", event: "e", payload: [:], ref: "2", joinRef: "1")
            #expect(try await socket.reply(to: "1").status == "ok")
            #expect(try await socket.reply(to: "2").status == "ok")
            await socket.close()
        }
    }

    @Test func accessTokenRefreshThatLosesAccessClosesTheChannel() async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(sub: "a", supplierID: "s1"))
            try await socket.join("collaboration:s1:c1", ref: "1")
            try await socket.push(
                "realtime:collaboration:s1:c1", "access_token", ["access_token": .string(try await server.token(sub: "a", supplierID: "s2"))],
                ref: "2", joinRef: "1")
            let system = try await socket.event("system")
            #expect(system.payload["status"] == "error")
            #expect(
                system.payload["message"]
                    == "You no longer have permission to read from this Channel topic: collaboration:s1:c1 (only supplier s1 and couple c1 may collaborate here)")
            #expect(system.payload["channel"] == "collaboration:s1:c1")
            let close = try await socket.event("phx_close")
            #expect(close.ref == "1")
            await socket.close()
        }
    }

    /// On the manual clock: the channel closes once its token's expiry has passed, not before,
    /// and a refresh with a later token moves the expiry.
    @Test func anExpiringTokenClosesItsChannel() async throws {
        let clock = ManualClock.startingNow()
        let ack: Value = ["broadcast": ["self": false, "ack": true], "presence": ["key": "", "enabled": false], "private": false]
        try await withServer({
            $0.clock = clock
            $0.idleTimeoutSeconds = 3600
        }) { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1", ttl: 3000))
            let joined = try await socket.join(
                "supplier:dashboard:s1", ref: "1", config: ack, accessToken: try await server.token(supplierID: "s1", ttl: 60))
            try #require(joined.status == "ok")
            clock.advance(by: .seconds(50))
            // A refresh to a token valid until 170 s after the clock started (tokens are minted on
            // the real clock, which the manual one started from).
            try await socket.push(
                "realtime:supplier:dashboard:s1", "access_token",
                ["access_token": .string(try await server.token(supplierID: "s1", ttl: 170))], ref: "2", joinRef: "1")
            try await socket.heartbeat(ref: "after-refresh")  // frames are handled in order: the refresh is in force
            clock.advance(by: .seconds(60))  // past the first token, not the refreshed one
            try await socket.broadcast("supplier:dashboard:s1", event: "note", payload: [:], ref: "3", joinRef: "1")
            #expect(try await socket.reply(to: "3").status == "ok", "the refreshed channel is still joined")
            clock.advance(by: .seconds(200))  // well past the refreshed one
            let system = try await socket.event("system", timeout: .seconds(30))
            #expect(system.payload["message"]?.stringValue?.hasPrefix("Token has expired") == true, "\(system)")
            #expect(system.payload["channel"] == "supplier:dashboard:s1")
            #expect(try await socket.event("phx_close", timeout: .seconds(30)).ref == "1")
            await socket.close()
        }
    }

    /// The same on the real clock, written so that a slow machine only makes it slower: the
    /// short token arrives as a refresh on a joined channel, and whether it has expired by the
    /// time it is checked (then the refresh is refused) or expires later (then the timer
    /// closes the channel), the channel closes saying the token expired.
    @Test func anExpiringTokenClosesItsChannelInRealTime() async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1"))
            try #require(try await socket.join("supplier:dashboard:s1", ref: "1").status == "ok")
            try await socket.push(
                "realtime:supplier:dashboard:s1", "access_token", ["access_token": .string(try await server.token(supplierID: "s1", ttl: 1))],
                ref: "2", joinRef: "1")
            let system = try await socket.event("system", timeout: .seconds(30))
            #expect(system.payload["message"]?.stringValue?.hasPrefix("Token has expired") == true, "\(system)")
            #expect(try await socket.event("phx_close", timeout: .seconds(30)).ref == "1")
            await socket.close()
        }
    }

    /// On the manual clock: a socket that sends anything (a heartbeat) stays open past the idle
    /// timeout; one silent for the whole timeout is closed with 1001.
    @Test func idleSocketsAreClosedAndHeartbeatsKeepThemOpen() async throws {
        let clock = ManualClock.startingNow()
        try await withServer({ $0.clock = clock }) { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1"))
            try await socket.heartbeat(ref: "0")  // the connection (and its idle timer) exists
            clock.advance(by: .seconds(59))
            try await socket.heartbeat(ref: "59")
            clock.advance(by: .seconds(59))  // 118 s after connecting, 59 s after the last frame
            try await socket.heartbeat(ref: "118")
            clock.advance(by: .seconds(61))  // silent for 61 s
            let (code, reason) = try await socket.closed(timeout: .seconds(30))
            #expect(code == 1001)
            #expect(reason.contains("no data received for 60 s"))
        }
    }

    /// The same on the real clock (1 s): only slower on a busy machine.
    @Test func idleSocketsAreClosed() async throws {
        try await withServer({ $0.idleTimeoutSeconds = 1 }) { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1"))
            let (code, reason) = try await socket.closed(timeout: .seconds(30))
            #expect(code == 1001)
            #expect(reason.contains("no data received for 1 s"))
        }
    }

    @Test func gracefulShutdownTellsClientsAndCloses1012() async throws {
        let server = try await TestServer.start()
        let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1"))
        try await socket.join("supplier:dashboard:s1", ref: "1")
        async let stopped: Void = server.stop()
        let system = try await socket.event("system")
        #expect(system.payload["message"] == "Server requested disconnect")
        #expect(system.payload["status"] == "ok")
        let (code, _) = try await socket.closed()
        #expect(code == 1012)
        await stopped
    }
}
