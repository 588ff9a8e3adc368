import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket
import SwitchboardAuth
import SwitchboardCore
import SwitchboardRules
import SwitchboardWire
import Testing

@testable import SwitchboardServer

/// `RealtimeConnection` below the socket: an `EmbeddedChannel` on an embedded event loop, the
/// manual clock, the default rules. No network, no real timer: cheaper than a real connection
/// where the socket is not what is tested.
@Suite struct ConnectionHandlerTests {
    /// One connection in an embedded pipeline.
    final class Harness {
        let clock = ManualClock.startingNow()
        let loop = EmbeddedEventLoop()
        let channel: EmbeddedChannel
        let context: RealtimeContext
        let verifier: TokenVerifier

        init(_ configure: (inout SwitchboardConfiguration) -> Void = { _ in }) async throws {
            var configuration = SwitchboardConfiguration(auth: AuthConfiguration(hmacSecret: TestServer.secret))
            configuration.clock = clock
            configure(&configuration)
            let logger = Logger(label: "switchboard-test") { _ in SwiftLogNoOpLogHandler() }
            verifier = try await TokenVerifier(configuration.auth)
            let rules = try RulesEngine(directory: TestServer.defaultRules)
            context = RealtimeContext(
                hub: Hub(group: loop, metrics: ServerMetrics()), verifier: verifier, policy: rules, rules: rules,
                configuration: configuration, logger: logger)
            channel = EmbeddedChannel(loop: loop)
        }

        /// Connects with a token for supplier s1 that expires `ttl` seconds from the clock's now.
        func connect(ttl: Double = 3600) async throws {
            let token = try await TokenMinter(hmacSecret: TestServer.secret).mint(
                TokenClaims(role: "supplier", subject: "s1-user", tier: "paid", supplierID: "s1", expiresAt: clock.wallSeconds + ttl))
            let identity = try verifier.verifySynchronously(token, now: clock.wallSeconds).get()
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).get()
            let raw = RawFrameWriter()
            try channel.pipeline.syncOperations.addHandler(raw)
            try channel.pipeline.syncOperations.addHandler(
                RealtimeConnection(shared: context, version: .v1, identity: identity, token: token, raw: raw))
        }

        func send(_ frame: Value) throws {
            let text = JSON.string(frame)
            try channel.writeInbound(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text)))
        }

        /// Moves the clock and runs what that queued on the loop.
        func advance(by duration: Duration) {
            clock.advance(by: duration)
            loop.run()
        }

        /// Every frame written so far: (opcode, payload).
        func written() throws -> [(opcode: UInt8, payload: ByteBuffer)] {
            var frames: [(UInt8, ByteBuffer)] = []
            while var bytes = try channel.readOutbound(as: ByteBuffer.self) {
                while bytes.readableBytes > 0 {
                    guard let first = bytes.readInteger(as: UInt8.self), let second = bytes.readInteger(as: UInt8.self) else { break }
                    var length = Int(second & 0x7F)
                    switch length {
                    case 126: length = Int(bytes.readInteger(as: UInt16.self) ?? 0)
                    case 127: length = Int(bytes.readInteger(as: UInt64.self) ?? 0)
                    default: break
                    }
                    guard let payload = bytes.readSlice(length: length) else { break }
                    frames.append((first & 0x0F, payload))
                }
            }
            return frames
        }

        /// The text frames written so far, decoded.
        func messages() throws -> [Value] {
            try written().filter { $0.opcode == 0x1 }.map { try JSON.parse(Array($0.payload.readableBytesView)) }
        }

        /// The close code written, if a close frame was.
        func closeCode() throws -> UInt16? {
            guard var close = try written().first(where: { $0.opcode == 0x8 })?.payload else { return nil }
            return close.readInteger(as: UInt16.self)
        }
    }

    static func join(_ channel: String, ref: String, accessToken: String? = nil) -> Value {
        var payload: Value.Object = ["config": ["broadcast": ["ack": true]]]
        if let accessToken { payload["access_token"] = .string(accessToken) }
        return ["topic": .string("realtime:\(channel)"), "event": "phx_join", "payload": .object(payload), "ref": .string(ref), "join_ref": .string(ref)]
    }

    @Test func aSilentConnectionIsClosedWhenTheIdleTimeoutPasses() async throws {
        let harness = try await Harness()
        try await harness.connect()
        harness.advance(by: .seconds(59))
        try harness.send(["topic": "phoenix", "event": "heartbeat", "payload": [:], "ref": "1"])
        harness.advance(by: .seconds(59))
        #expect(try harness.closeCode() == nil, "a heartbeat 59 s in keeps it open at 118 s")
        harness.advance(by: .seconds(1))
        #expect(try harness.closeCode() == 1001)
    }

    @Test func aJoinIsShutWhenItsTokenExpires() async throws {
        let harness = try await Harness { $0.idleTimeoutSeconds = 3600 }
        try await harness.connect(ttl: 30)
        try harness.send(Self.join("supplier:dashboard:s1", ref: "1"))
        let reply = try #require(try harness.messages().first)
        #expect(reply["payload"]?["status"] == "ok", "\(reply)")
        harness.advance(by: .seconds(29))
        #expect(try harness.messages().isEmpty)
        harness.advance(by: .seconds(2))
        let frames = try harness.messages()
        #expect(frames.map { $0["event"]?.stringValue } == ["system", "phx_close"])
        #expect(frames.first?["payload"]?["message"]?.stringValue?.hasPrefix("Token has expired") == true)
        #expect(try harness.closeCode() == nil, "the connection stays; only the join ends")
    }

    @Test func aConsumerUnwritableForTheGraceIsClosed() async throws {
        let harness = try await Harness { $0.idleTimeoutSeconds = 3600 }
        try await harness.connect()
        harness.channel.isWritable = false
        harness.channel.pipeline.fireChannelWritabilityChanged()
        harness.advance(by: .seconds(4))
        harness.channel.isWritable = true
        harness.channel.pipeline.fireChannelWritabilityChanged()
        harness.advance(by: .seconds(10))
        #expect(try harness.closeCode() == nil, "writable again within the grace")
        harness.channel.isWritable = false
        harness.channel.pipeline.fireChannelWritabilityChanged()
        harness.advance(by: .seconds(5))
        #expect(try harness.closeCode() == 1008)
    }

    @Test func refusalsAreCountedAndExplained() async throws {
        let harness = try await Harness()
        try await harness.connect()
        try harness.send(["topic": "realtime:nowhere", "event": "broadcast", "payload": ["type": "broadcast", "event": "x", "payload": [:]], "ref": "1"])
        try harness.send(["topic": "phoenix", "event": "nonsense", "payload": [:], "ref": "2"])
        try harness.send(Self.join("supplier:dashboard:s2", ref: "3"))
        let replies = try harness.messages()
        let reasons = replies.map { $0["payload"]?["response"]?["reason"]?.stringValue }
        #expect(reasons.count == 3)
        #expect(reasons.prefix(2) == ["unmatched topic", "UnknownEvent: topic phoenix only accepts heartbeat, not nonsense"])
        #expect(
            reasons.last??.hasPrefix("Unauthorized: You do not have permissions to read from this Channel topic: supplier:dashboard:s2 (") == true,
            "\(reasons)")
        let metrics = String(decoding: harness.context.metrics.exposition(), as: UTF8.self)
        for reason in ["unmatched_topic", "unknown_event", "unauthorized"] {
            #expect(metrics.contains(#"switchboard_rejected_total{reason="\#(reason)"} 1"#), "\(reason)")
        }
    }
}

/// Reading a `phx_join` without a socket.
@Suite struct JoinRequestTests {
    @Test func aJoinConfigIsReadWithItsDefaults() throws {
        let request = try JoinRequest.parse(
            topic: "realtime:collaboration:s1:c1",
            payload: [
                "config": [
                    "broadcast": ["self": true, "replay": ["since_seq": 4, "epoch": "e"]], "presence": ["key": "", "enabled": true],
                    "postgres_changes": [["event": "*", "schema": "public"]],
                ]
            ]
        ).get()
        #expect(request.channel.rawValue == "collaboration:s1:c1")
        #expect(request.receivesOwn && !request.ack && request.presenceEnabled)
        #expect(request.presenceKey == nil, "an empty key is generated later")
        #expect(request.bindings == [["event": "*", "schema": "public"]])
        #expect(request.changes.map(\.event) == [.all])
        #expect(request.changes.first?.table == nil)
        #expect(request.replay == .sequence(4, epoch: "e"))
    }

    static let badJoins: [(topic: String, payload: Value, reason: String)] = [
        ("phoenix", [:], "unmatched topic"),
        ("realtime:", [:], "TopicNameRequired: You must provide a topic name"),
        ("realtime:a b", [:], "InvalidTopicName:"),
        ("realtime:x:y", ["config": ["postgres_changes": "all"]], "InvalidJoinConfig: config.postgres_changes must be a list of objects"),
        (
            "realtime:x:y", ["config": ["postgres_changes": [["event": "UPSERT", "schema": "public"]]]],
            "InvalidPostgresChanges: Unable to subscribe to changes with given parameters: postgres_changes[0]: event must be one of *, INSERT, UPDATE, DELETE"
        ),
        ("realtime:x:y", ["config": ["broadcast": ["replay": ["since_seq": 3]]]], "UnableToReplayMessages: replay.since_seq needs the epoch"),
        ("realtime:x:y", ["config": ["broadcast": ["replay": ["since": 1, "limit": 0]]]], "UnableToReplayMessages: replay.limit must be"),
    ]

    @Test(arguments: badJoins)
    func badJoinsAreRefusedWithAReason(_ bad: (topic: String, payload: Value, reason: String)) {
        let (topic, payload, reason) = bad
        guard case .failure(let refusal) = JoinRequest.parse(topic: topic, payload: payload) else {
            Issue.record("\(topic) \(payload) was accepted")
            return
        }
        #expect(refusal.reason.hasPrefix(reason), "\(refusal.reason)")
    }

    @Test func theConnectionsOwnTokenAndAPIKeysAreNotChannelTokens() {
        #expect(JoinRequest.channelToken(in: ["access_token": "abc"], connectToken: "abc") == nil)
        #expect(JoinRequest.channelToken(in: ["access_token": "sb_publishable_x"], connectToken: "abc") == nil)
        #expect(JoinRequest.channelToken(in: ["user_token": "xyz"], connectToken: "abc") == "xyz")
        #expect(JoinRequest.channelToken(in: [:], connectToken: "abc") == nil)
    }
}
