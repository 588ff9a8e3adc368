import Foundation
import SwitchboardCore
import SwitchboardWire
import Testing

/// Message identity, replay on join, `recovered`, and idempotent publishing, over real
/// WebSockets and REST.
@Suite struct ReplayTests {
    static let channel = "collaboration:s1:c1"
    static let ackConfig: Value = ["broadcast": ["self": false, "ack": true], "presence": ["key": "", "enabled": false], "private": false]

    static func config(replay: Value) -> Value {
        ["broadcast": ["self": false, "ack": false, "replay": replay], "presence": ["key": "", "enabled": false], "private": false]
    }

    /// A supplier of s1 and a couple c1, both on `collaboration:s1:c1`: the publisher acks.
    struct Pair {
        let subscriber: PhoenixSocket
        let publisher: PhoenixSocket
        let joinReply: PhoenixSocket.Frame
    }

    static func subscriberToken(_ server: TestServer) async throws -> String {
        try await server.token(sub: "s1-user", supplierID: "s1")
    }

    static func pair(_ server: TestServer) async throws -> Pair {
        let subscriber = try await PhoenixSocket.connect(server, token: try await subscriberToken(server))
        let reply = try await subscriber.join(channel, ref: "1")
        try #require(reply.status == "ok", "\(reply)")
        let publisher = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
        try #require(try await publisher.join(channel, ref: "1", config: ackConfig).status == "ok")
        return Pair(subscriber: subscriber, publisher: publisher, joinReply: reply)
    }

    /// Publishes `comment:added` number `n` and waits for the ack.
    static func comment(_ n: Int, from publisher: PhoenixSocket, meta: Value? = nil) async throws {
        var payload: Value.Object = [
            "type": "broadcast", "event": "comment:added", "payload": ["comment_id": .string("c\(n)"), "text": "hello", "n": .int(n)],
        ]
        if let meta { payload["meta"] = meta }
        try await publisher.push("realtime:\(channel)", "broadcast", .object(payload), ref: "m\(n)", joinRef: "1")
        let reply = try await publisher.reply(to: "m\(n)")
        try #require(reply.status == "ok", "\(reply)")
    }

    /// The next user broadcast, skipping nothing else silently: any other frame fails the test.
    static func nextBroadcast(_ socket: PhoenixSocket) async throws -> PhoenixSocket.Frame {
        let frame = try await socket.next()
        try #require(frame.event == "broadcast", "expected a broadcast, got \(frame)")
        return frame
    }

    /// Proves nothing more is queued for `socket`: a heartbeat's reply is the very next frame.
    static func expectNothingMore(_ socket: PhoenixSocket) async throws {
        try await socket.push("phoenix", "heartbeat", .object(.init()), ref: "quiet")
        let frame = try await socket.next()
        #expect(frame.event == "phx_reply" && frame.ref == "quiet", "expected nothing before the heartbeat reply, got \(frame)")
    }

    @Test func everyBroadcastCarriesAnIdAndReplayableOnesAPosition() async throws {
        try await withServer { server in
            let pair = try await Self.pair(server)
            let epoch = try #require(pair.joinReply.payload["response"]?["epoch"]?.stringValue, "the join reply gives the epoch")
            #expect(pair.joinReply.payload["response"]?["seq"] == 0)
            #expect(pair.joinReply.payload["response"]?["recovered"] == nil, "no replay was asked for")
            try await Self.comment(1, from: pair.publisher)
            let first = try await Self.nextBroadcast(pair.subscriber)
            let meta = try #require(first.payload["meta"])
            #expect(meta["seq"] == 1 && meta["epoch"]?.stringValue == epoch && meta["replayed"] == nil)
            #expect((meta["id"]?.stringValue?.count ?? 0) > 0)
            // Typing is ephemeral (replay = false): an id, no position.
            try await pair.publisher.broadcast(Self.channel, event: "user:typing", payload: ["user_id": "c1-user"])
            let typing = try await Self.nextBroadcast(pair.subscriber)
            #expect(typing.payload["event"] == "user:typing")
            #expect(typing.payload["meta"]?["id"] != nil && typing.payload["meta"]?["seq"] == nil)
            try await Self.comment(2, from: pair.publisher)
            let second = try await Self.nextBroadcast(pair.subscriber)
            #expect(second.payload["meta"]?["seq"] == 2, "positions are dense: typing took none")
            #expect(second.payload["meta"]?["id"] != meta["id"])
            await pair.subscriber.close()
            await pair.publisher.close()
        }
    }

    @Test(arguments: [ProtocolVersion.v1, .v2])
    func aReconnectingClientGetsExactlyTheFiftyItMissedInOrderThenLiveMessages(version: ProtocolVersion) async throws {
        try await withServer { server in
            let pair = try await Self.pair(server)
            for n in 0..<5 { try await Self.comment(n, from: pair.publisher) }
            var last: Value = .null
            for _ in 0..<5 { last = try await Self.nextBroadcast(pair.subscriber).payload["meta"] ?? .null }
            let seq = try #require(last["seq"]?.int64Value)
            let epoch = try #require(last["epoch"]?.stringValue)
            await pair.subscriber.close()

            for n in 5..<55 { try await Self.comment(n, from: pair.publisher) }

            let back = try await PhoenixSocket.connect(server, token: try await Self.subscriberToken(server), version: version)
            let reply = try await back.join(Self.channel, ref: "2", config: Self.config(replay: ["since_seq": .int(seq), "epoch": .string(epoch)]))
            #expect(reply.status == "ok", "\(reply)")
            #expect(reply.payload["response"]?["recovered"] == true)
            #expect(reply.payload["response"]?["seq"] == 55)
            for n in 5..<55 {
                let frame = try await Self.nextBroadcast(back)
                #expect(frame.payload["payload"]?["n"] == .int(n), "\(frame)")
                #expect(frame.payload["meta"]?["replayed"] == true)
                #expect(frame.payload["meta"]?["seq"] == .int(n + 1))
            }
            try await Self.comment(55, from: pair.publisher)
            let live = try await Self.nextBroadcast(back)
            #expect(live.payload["payload"]?["n"] == 55 && live.payload["meta"]?["replayed"] == nil)
            #expect(live.payload["meta"]?["seq"] == 56)
            try await Self.expectNothingMore(back)
            await back.close()
            await pair.publisher.close()
        }
    }

    @Test func messagesPublishedWhileTheReplayIsTakenArriveOnce() async throws {
        // A publisher streams while a client rejoins with a replay: every message reaches the
        // client exactly once, in order, whether it came by replay or live.
        let rules = try RulesCopy(messagesPerMinute: 10_000)
        defer { rules.delete() }
        try await withServer({ $0.rulesDirectory = rules.path }) { server in
            let pair = try await Self.pair(server)
            try await Self.comment(0, from: pair.publisher)
            let meta = try await Self.nextBroadcast(pair.subscriber).payload["meta"] ?? .null
            let epoch = try #require(meta["epoch"]?.stringValue)
            await pair.subscriber.close()
            let streamer = Task {
                for n in 1...300 { try await Self.comment(n, from: pair.publisher) }
            }
            let back = try await PhoenixSocket.connect(server, token: try await Self.subscriberToken(server))
            let reply = try await back.join(Self.channel, ref: "2", config: Self.config(replay: ["since_seq": 1, "epoch": .string(epoch)]))
            #expect(reply.payload["response"]?["recovered"] == true)
            try await streamer.value
            for n in 1...300 {
                let frame = try await Self.nextBroadcast(back)
                #expect(frame.payload["payload"]?["n"] == .int(n), "message \(n): \(frame)")
                #expect(frame.payload["meta"]?["seq"] == .int(n + 1))
            }
            try await Self.expectNothingMore(back)
            await back.close()
            await pair.publisher.close()
        }
    }

    @Test func moreThanAHundredMissedIsNotRecoveredAndNothingIsReplayed() async throws {
        let rules = try RulesCopy(messagesPerMinute: 10_000)
        defer { rules.delete() }
        try await withServer({ $0.rulesDirectory = rules.path }) { server in
            let pair = try await Self.pair(server)
            let epoch = try #require(pair.joinReply.payload["response"]?["epoch"]?.stringValue)
            await pair.subscriber.close()
            for n in 0..<101 { try await Self.comment(n, from: pair.publisher) }
            let back = try await PhoenixSocket.connect(server, token: try await Self.subscriberToken(server))
            let reply = try await back.join(Self.channel, ref: "2", config: Self.config(replay: ["since_seq": 0, "epoch": .string(epoch)]))
            #expect(reply.status == "ok")
            #expect(reply.payload["response"]?["recovered"] == false)
            try await Self.expectNothingMore(back)
            // One message later, exactly 100 are missed from seq 1: recovered.
            let again = try await PhoenixSocket.connect(server, token: try await Self.subscriberToken(server))
            let full = try await again.join(Self.channel, ref: "3", config: Self.config(replay: ["since_seq": 1, "epoch": .string(epoch)]))
            #expect(full.payload["response"]?["recovered"] == true)
            for n in 1..<101 { #expect(try await Self.nextBroadcast(again).payload["payload"]?["n"] == .int(n)) }
            try await Self.expectNothingMore(again)
            await back.close()
            await again.close()
            await pair.publisher.close()
        }
    }

    @Test func messagesOlderThanFiveMinutesAreNotRecovered() async throws {
        let clock = ManualClock.startingNow()
        try await withServer({ $0.clock = clock }) { server in
            let pair = try await Self.pair(server)
            let epoch = try #require(pair.joinReply.payload["response"]?["epoch"]?.stringValue)
            await pair.subscriber.close()
            for n in 0..<3 { try await Self.comment(n, from: pair.publisher) }
            clock.advance(by: .seconds(4 * 60))
            let inTime = try await PhoenixSocket.connect(server, token: try await Self.subscriberToken(server))
            let first = try await inTime.join(Self.channel, ref: "2", config: Self.config(replay: ["since_seq": 0, "epoch": .string(epoch)]))
            #expect(first.payload["response"]?["recovered"] == true)
            for n in 0..<3 { #expect(try await Self.nextBroadcast(inTime).payload["payload"]?["n"] == .int(n)) }
            await inTime.close()

            clock.advance(by: .milliseconds(60 * 1000 + 1))
            let late = try await PhoenixSocket.connect(server, token: try await Self.subscriberToken(server))
            let second = try await late.join(Self.channel, ref: "2", config: Self.config(replay: ["since_seq": 0, "epoch": .string(epoch)]))
            #expect(second.status == "ok")
            #expect(second.payload["response"]?["recovered"] == false)
            try await Self.expectNothingMore(late)
            await late.close()
            await pair.publisher.close()
        }
    }

    @Test func supabasesReplaySinceATimeGivesTheNewestUpToTheLimit() async throws {
        let clock = ManualClock.startingNow()
        try await withServer({ $0.clock = clock }) { server in
            let pair = try await Self.pair(server)
            let start = clock.wallMilliseconds
            for n in 0..<4 {
                clock.advance(by: .seconds(1))
                try await Self.comment(n, from: pair.publisher)
            }
            let client = try await PhoenixSocket.connect(server, token: try await Self.subscriberToken(server))
            let reply = try await client.join(Self.channel, ref: "2", config: Self.config(replay: ["since": .int(start + 1500), "limit": 2]))
            #expect(reply.status == "ok")
            #expect(reply.payload["response"]?["recovered"] == false, "3 messages are after since; the limit gave 2")
            for n in 2..<4 {
                let frame = try await Self.nextBroadcast(client)
                #expect(frame.payload["payload"]?["n"] == .int(n) && frame.payload["meta"]?["replayed"] == true)
            }
            try await Self.expectNothingMore(client)
            await client.close()
            await pair.subscriber.close()
            await pair.publisher.close()
        }
    }

    @Test func badReplayRequestsAreRefusedWithAReason() async throws {
        let rules = try RulesCopy()
        defer { rules.delete() }
        let channels = try rules.read("channels.lua")
        let noHistory = channels.replacingOccurrences(
            of: "channel \"collaboration:{supplier_id}:{couple_id}\" {\n  kind = \"shared\",",
            with: "channel \"collaboration:{supplier_id}:{couple_id}\" {\n  kind = \"shared\",\n  history = false,")
        try #require(noHistory != channels)
        try rules.write("channels.lua", noHistory)
        try await withServer({ $0.rulesDirectory = rules.path }) { server in
            let client = try await PhoenixSocket.connect(server, token: try await Self.subscriberToken(server))
            let cases: [(Value, String)] = [
                ("yesterday", "UnableToReplayMessages: config.broadcast.replay must be an object"),
                (["since_seq": 3], "UnableToReplayMessages: replay.since_seq needs the epoch"),
                (["since_seq": -1, "epoch": "e"], "UnableToReplayMessages: replay.since_seq must be a whole number"),
                (["since": 0, "limit": 0], "UnableToReplayMessages: replay.limit must be a whole number in 1...1000"),
                (["limit": 5], "UnableToReplayMessages: replay needs since"),
                (["since": 0], "UnableToReplayMessages: Replay is not allowed on channel collaboration:s1:c1: its rules keep no history"),
            ]
            for (index, (replay, reason)) in cases.enumerated() {
                let reply = try await client.join(Self.channel, ref: "r\(index)", config: Self.config(replay: replay))
                #expect(reply.status == "error")
                #expect(reply.reason?.hasPrefix(reason) == true, "\(replay): \(reply.reason ?? "")")
            }
            // Without a replay the channel works, and its messages carry no position.
            let reply = try await client.join(Self.channel, ref: "ok")
            #expect(reply.status == "ok" && reply.payload["response"]?["epoch"] == nil)
            await client.close()
        }
    }

    @Test func aRepeatedIdIsAcknowledgedEveryTimeAndDeliveredOnce() async throws {
        try await withServer { server in
            let pair = try await Self.pair(server)
            for attempt in 0..<5 {
                var payload: Value.Object = [
                    "type": "broadcast", "event": "comment:added", "payload": ["comment_id": "x", "text": "retry me"], "meta": ["id": "client-1"],
                ]
                payload["ignored"] = .int(attempt)
                try await pair.publisher.push("realtime:\(Self.channel)", "broadcast", .object(payload), ref: "try\(attempt)", joinRef: "1")
                #expect(try await pair.publisher.reply(to: "try\(attempt)").status == "ok", "attempt \(attempt) is acknowledged")
            }
            let admin = try await server.token(role: "service_role", sub: "backend")
            let body = #"{"messages":[{"topic":"collaboration:s1:c1","event":"comment:added","payload":{"comment_id":"y","text":"rest"},"id":"rest-1"}]}"#
            for _ in 0..<5 {
                let reply = try await HTTPTests.request(server, "POST", "/api/broadcast", token: admin, body: body)
                #expect(reply.status == 202, "\(reply.body)")
            }
            for _ in 0..<5 {
                let reply = try await HTTPTests.request(
                    server, "POST", "/api/broadcast/collaboration:s1:c1/events/comment:added?id=rest-2", token: admin,
                    body: #"{"comment_id":"z","text":"single"}"#)
                #expect(reply.status == 202, "\(reply.body)")
            }
            let first = try await Self.nextBroadcast(pair.subscriber)
            #expect(first.payload["meta"]?["id"] == "client-1" && first.payload["payload"]?["text"] == "retry me")
            let second = try await Self.nextBroadcast(pair.subscriber)
            #expect(second.payload["meta"]?["id"] == "rest-1")
            let third = try await Self.nextBroadcast(pair.subscriber)
            #expect(third.payload["meta"]?["id"] == "rest-2")
            try await Self.expectNothingMore(pair.subscriber)
            // A bad id is refused with a reason.
            let long = String(repeating: "x", count: 101)
            try await Self.comment(99, from: pair.publisher, meta: ["id": "fine"])
            try await pair.publisher.push(
                "realtime:\(Self.channel)", "broadcast",
                ["type": "broadcast", "event": "comment:added", "payload": ["comment_id": "q", "text": "t"], "meta": ["id": .string(long)]],
                ref: "long", joinRef: "1")
            #expect(try await pair.publisher.reply(to: "long").reason == "MalformedMessage: meta.id must be a string of 1 to 100 bytes without NUL")
            // A NUL could never be stored in PostgreSQL: refused in an id and in an event name.
            try await pair.publisher.push(
                "realtime:\(Self.channel)", "broadcast",
                ["type": "broadcast", "event": "comment:added", "payload": ["comment_id": "q", "text": "t"], "meta": ["id": "a\u{0}b"]],
                ref: "nul-id", joinRef: "1")
            #expect(try await pair.publisher.reply(to: "nul-id").reason?.hasPrefix("MalformedMessage: meta.id") == true)
            try await pair.publisher.push(
                "realtime:\(Self.channel)", "broadcast", ["type": "broadcast", "event": "odd\u{0}event", "payload": [:]], ref: "nul-event",
                joinRef: "1")
            #expect(try await pair.publisher.reply(to: "nul-event").reason == "MalformedMessage: an event name cannot contain a NUL character")
            await pair.subscriber.close()
            await pair.publisher.close()
        }
    }

    @Test func afterARestartTheEpochChangesAndAResumingClientIsNotRecovered() async throws {
        var epoch = ""
        var seq: Int64 = 0
        try await withServer { server in
            let pair = try await Self.pair(server)
            for n in 0..<3 { try await Self.comment(n, from: pair.publisher) }
            for _ in 0..<3 {
                let meta = try await Self.nextBroadcast(pair.subscriber).payload["meta"]
                epoch = meta?["epoch"]?.stringValue ?? ""
                seq = meta?["seq"]?.int64Value ?? 0
            }
            await pair.subscriber.close()
            await pair.publisher.close()
        }
        #expect(seq == 3)
        try await withServer { server in
            let client = try await PhoenixSocket.connect(server, token: try await Self.subscriberToken(server))
            let reply = try await client.join(Self.channel, ref: "1", config: Self.config(replay: ["since_seq": .int(seq), "epoch": .string(epoch)]))
            #expect(reply.status == "ok")
            #expect(reply.payload["response"]?["recovered"] == false)
            #expect(reply.payload["response"]?["epoch"]?.stringValue != epoch)
            try await Self.expectNothingMore(client)
            await client.close()
        }
    }
}
