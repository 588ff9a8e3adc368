import Foundation
import NIOCore
import NIOPosix
import SwitchboardServer
import Testing

/// A graceful shutdown ends even when clients do not play along: the HTTP server waits for its
/// open connections, so a client that never finishes its request or never reads its close
/// frame would otherwise hold the server (and a test's `withServer`) for ever.
@Suite struct ShutdownTests {
    @Test func aShutdownEndsWhileClientsHoldTheirConnectionsOpen() async throws {
        let server = try await TestServer.start()
        // A request whose headers never end, on a connection that never reads.
        let halfRequest = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: false)
            .channelInitializer { channel in channel.pipeline.addHandler(SlowConsumerTests.StalledHandler()) }
            .connect(host: "127.0.0.1", port: server.port).get()
        try await halfRequest.writeAndFlush(ByteBuffer(string: "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")).get()
        // A WebSocket subscriber that never reads again (so never answers the close frame).
        let stalled = try await SlowConsumerTests.stalledSubscriber(
            port: server.port, token: try await server.token(role: "couple", sub: "slow", coupleID: "c1"), channel: "collaboration:s1:c1")
        try await SlowConsumerTests.waitForMetric(server, #"switchboard_subscriptions{scope="collaboration"} 1"#)

        // The stop runs in a task of its own, so that a stop that never ends fails this test
        // instead of hanging the run. The deadline is only that failsafe: a stop is expected
        // after `shutdownGrace`, and minutes of slack keep a busy machine from failing it.
        let (outcomes, outcome) = AsyncStream.makeStream(of: Bool.self)
        Task {
            await server.stop()
            outcome.yield(true)
        }
        let deadline = Task {
            try? await Task.sleep(for: SwitchboardServer.shutdownGrace + .seconds(300))
            outcome.yield(false)
        }
        var iterator = outcomes.makeAsyncIterator()
        let stopped = await iterator.next() ?? false
        deadline.cancel()
        #expect(stopped, "the server did not stop while two clients held their connections open")
        try? await halfRequest.close()
        try? await stalled.close()
    }
}
