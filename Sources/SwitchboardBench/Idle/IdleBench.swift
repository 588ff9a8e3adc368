import NIOCore
import NIOPosix

/// Opens many idle, joined connections so the server's memory per connection can be measured.
public enum IdleBench {
    /// The most connections one call may open.
    public static let maxConnections = 100_000
    /// The most channels one connection may join.
    public static let maxChannelsPerConnection = 100

    /// Opens `connections` connections, each joined to `channelsPerConnection` channels named
    /// `<channelPrefix>0`, `<channelPrefix>1`, … (shared by all connections, so the server holds
    /// few channels), and returns once every join is acknowledged. The connections heartbeat
    /// until ``IdleConnections/close()``.
    public static func run(
        host: String = "127.0.0.1",
        port: Int = 4000,
        path: String = "/socket/websocket",
        token: String,
        connections: Int,
        channelsPerConnection: Int = 3,
        channelPrefix: String = "collaboration:bench:idle",
        connectConcurrency: Int = 64,
        joinTimeout: Duration = .seconds(15),
        maxDuration: Duration = .seconds(300),
        on group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> IdleConnections {
        try BenchLimits.validateEndpoint(host: host, port: port, path: path)
        guard (1...Self.maxConnections).contains(connections) else {
            throw BenchError(.invalidOptions, "connections must be in 1...\(Self.maxConnections), got \(connections)")
        }
        guard (0...Self.maxChannelsPerConnection).contains(channelsPerConnection) else {
            throw BenchError(
                .invalidOptions,
                "channelsPerConnection must be in 0...\(Self.maxChannelsPerConnection), got \(channelsPerConnection)"
            )
        }
        guard RealtimeFrames.isSafeChannelName(channelPrefix + "0") else {
            throw BenchError(.invalidOptions, "channelPrefix must be printable ASCII without quotes or backslashes")
        }
        try BenchLimits(connectConcurrency: connectConcurrency, maxDuration: maxDuration, joinTimeout: joinTimeout).validate()
        try FileDescriptorLimit.ensure(atLeast: connections + 64)

        let clock = ContinuousClock()
        let started = clock.now
        let target = BenchTarget(host: host, port: port, path: path, token: token)
        let topics = (0..<channelsPerConnection).map { "realtime:\(channelPrefix)\($0)" }
        let channels = try await BenchConnections.openMany(
            count: connections,
            concurrency: connectConcurrency,
            deadline: started.advanced(by: maxDuration)
        ) { _ in
            try await BenchConnections.open(
                target: target, speaking: .switchboard, topics: topics, registry: nil, countsDeliveries: false,
                maxFrameSize: 1 << 20, timeout: joinTimeout, group: group
            )
        }
        return IdleConnections(
            channels: channels,
            channelsPerConnection: channelsPerConnection,
            connectSeconds: started.duration(to: clock.now).seconds
        )
    }
}
