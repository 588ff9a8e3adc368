import Foundation
import NIOCore
import NIOPosix
import SwitchboardCore
import Testing

/// A subscriber that stops reading is closed instead of growing the server's memory, and the
/// publisher and the other subscribers carry on.
@Suite struct SlowConsumerTests {
    /// A WebSocket client that joins a channel and then never reads another byte.
    final class StalledHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
    }

    static func stalledSubscriber(port: Int, token: String, channel: String) async throws -> any Channel {
        let connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: false)
            .channelInitializer { channel in channel.pipeline.addHandler(StalledHandler()) }
            .connect(host: "127.0.0.1", port: port).get()
        let request =
            "GET /socket/websocket?vsn=1.0.0&apikey=\(token) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        let join = #"{"topic":"realtime:\#(channel)","event":"phx_join","payload":{"config":{}},"ref":"1","join_ref":"1"}"#
        var frame = ByteBufferAllocator().buffer(capacity: join.utf8.count + 8)
        frame.writeBytes([0x81, 0x80 | 126])  // FIN + text; masked, 16-bit length
        frame.writeInteger(UInt16(join.utf8.count))
        frame.writeBytes([0, 0, 0, 0])  // a zero mask leaves the payload as is
        frame.writeString(join)
        try await connection.writeAndFlush(ByteBuffer(string: request)).get()
        try await connection.writeAndFlush(frame).get()
        return connection
    }

    @Test(.timeLimit(.minutes(1)))
    func stalledSubscriberIsClosedAndOthersKeepReceiving() async throws {
        // 2,000 messages on one channel: far over the default 100 per minute.
        let rules = try RulesCopy(messagesPerMinute: 1_000_000)
        defer { rules.delete() }
        try await withServer({
            $0.rulesDirectory = rules.path
            $0.slowConsumerBytes = 64 * 1024
            $0.slowConsumerGraceSeconds = 1
        }) { server in
            let stalled = try await Self.stalledSubscriber(
                port: server.port, token: try await server.token(role: "couple", sub: "slow", coupleID: "c1"),
                channel: "collaboration:s1:c1")
            let reader = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "r", coupleID: "c1"))
            let publisher = try await PhoenixSocket.connect(server, token: try await server.token(sub: "p", supplierID: "s1"))
            try await reader.join("collaboration:s1:c1", ref: "1")
            try await publisher.join("collaboration:s1:c1", ref: "1")
            try await Self.waitForMetric(server, #"switchboard_subscriptions{scope="collaboration"} 3"#)

            let blob = Value.string(String(repeating: "x", count: 60_000))
            var sent = 0
            var closed = false
            while sent < 2_000, !closed {
                try await publisher.broadcast("collaboration:s1:c1", event: "chunk", payload: ["n": .int(sent), "blob": blob], ref: nil)
                sent += 1
                if sent % 20 == 0 {
                    closed = try await Self.metrics(server).contains(#"switchboard_rejected_total{reason="slow_consumer"} 1"#)
                }
            }
            #expect(closed, "the stalled subscriber was still open after \(sent) messages of 60 KB")
            try await Self.waitForMetric(server, #"switchboard_subscriptions{scope="collaboration"} 2"#)
            // The reader got every message, in order, up to the last.
            var expected = 0
            while expected < sent {
                let frame = try await reader.broadcastEvent("chunk", timeout: .seconds(10))
                #expect(frame.payload["payload"]?["n"]?.int64Value == Int64(expected))
                expected += 1
            }
            try await publisher.heartbeat()
            try await stalled.close()
            await reader.close()
            await publisher.close()
        }
    }

    static func metrics(_ server: TestServer) async throws -> String {
        try await HTTPTests.request(server, "GET", "/metrics").body
    }

    /// Polls /metrics until `line` appears, within a deadline.
    static func waitForMetric(_ server: TestServer, _ line: String, timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await metrics(server).contains(line) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("metric '\(line)' did not appear within \(timeout)")
    }
}
