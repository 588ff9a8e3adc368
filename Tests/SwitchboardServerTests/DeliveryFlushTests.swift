import NIOCore
import NIOEmbedded
import SwitchboardRules
@_spi(Benchmarks) @testable import SwitchboardServer
import SwitchboardWire
import Testing

/// How a loop's deliveries reach the sockets: `HubShard.deliver` queues each subscriber's write,
/// and one task queued after the burst flushes every subscriber once, so the messages of a burst
/// leave in one syscall per subscriber. `EmbeddedChannel` hands out only what was flushed.
@Suite struct DeliveryFlushTests {
    private static let topic = "realtime:collaboration:flush"

    private static func message(_ id: Int) -> DeliveryBenchmarkShard.Message {
        let frame = BroadcastFrame(
            topic: topic, event: "typing", payload: nil, meta: ["id": .string("m-\(id)")],
            payloadJSON: ByteBuffer(string: #"{"n":\#(id)}"#))
        return DeliveryBenchmarkShard.Message(frame, asBinary: false)
    }

    /// The message ids a subscriber can read now, in order.
    private static func flushed(_ channel: EmbeddedChannel) throws -> [String] {
        var ids: [String] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            let text = buffer.readString(length: buffer.readableBytes) ?? ""
            guard let start = text.range(of: #""id":""#), let end = text[start.upperBound...].firstIndex(of: "\"") else {
                Issue.record("a frame without a message id: \(text)")
                continue
            }
            ids.append(String(text[start.upperBound..<end]))
        }
        return ids
    }

    @Test func aBurstIsFlushedOnceAfterItsWrites() async throws {
        let setup = try await DeliveryBenchmarkShard.Setup(policy: try RulesEngine(directory: TestServer.defaultRules))
        let loop = EmbeddedEventLoop()
        let shard = DeliveryBenchmarkShard(loop: loop, setup: setup, topic: Self.topic)
        var channels: [EmbeddedChannel] = []
        for version in [ProtocolVersion.v1, .v2, .v1] {
            let channel = EmbeddedChannel(loop: loop)
            channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 4000), promise: nil)
            try shard.subscribe(channel, version: version)
            channels.append(channel)
        }
        loop.run()
        for channel in channels { _ = try Self.flushed(channel) }

        // One message: written, not flushed, until the loop runs the flush task.
        shard.deliver(Self.message(1))
        for channel in channels { #expect(try Self.flushed(channel) == []) }
        loop.run()
        for channel in channels { #expect(try Self.flushed(channel) == ["m-1"]) }

        // A burst: one flush for all of it, in order.
        for id in 2...5 { shard.deliver(Self.message(id)) }
        for channel in channels { #expect(try Self.flushed(channel) == []) }
        loop.run()
        for channel in channels { #expect(try Self.flushed(channel) == ["m-2", "m-3", "m-4", "m-5"]) }
        loop.run()
        for channel in channels { #expect(try Self.flushed(channel) == []) }
        for channel in channels { _ = try channel.finish() }
    }
}
