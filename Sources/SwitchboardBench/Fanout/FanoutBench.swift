import NIOCore
import NIOPosix

/// The fan-out load tool: N subscribers join one channel, one publisher broadcasts M messages,
/// and every delivery's latency is recorded (docs/BENCHMARKS.md says what the numbers mean).
///
/// Subscribers are plain NIO channel handlers that scan each frame for its send time and record
/// into a histogram per event loop; the publisher writes on its own event loop. Run it against a
/// server on loopback only: Switchboard, or nginx + nchan for comparison (``FanoutOptions/target``).
public enum FanoutBench {
    /// The most frames one rate tick may send (bounds catch-up after a stall).
    static let maxBurst = 4096

    /// Runs one measurement and closes every connection it opened, also on failure.
    public static func run(
        _ options: FanoutOptions,
        on group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> FanoutResult {
        try options.validate()
        try FileDescriptorLimit.ensure(atLeast: options.subscribers + 64)

        let clock = ContinuousClock()
        let started = clock.now
        let hardDeadline = started.advanced(by: options.maxDuration)
        let registry = try await LoopStatsRegistry.make(for: group)
        let target = options.connectTarget
        let benchProtocol = options.target
        let topics = options.topics
        let maxFrameSize = max(1 << 20, options.size * 2 + 4096)
        let joinTimeout = options.joinTimeout

        let subscribers = try await BenchConnections.openMany(
            count: options.subscribers,
            concurrency: options.connectConcurrency,
            deadline: hardDeadline
        ) { _ in
            try await BenchConnections.open(
                target: target, speaking: benchProtocol, topics: topics, registry: registry, countsDeliveries: true,
                maxFrameSize: maxFrameSize, timeout: joinTimeout, group: group
            )
        }
        return try await BenchConnections.closing(subscribers) { connections in
            let publisherChannel = try await BenchConnections.open(
                target: target, speaking: benchProtocol, topics: topics, registry: registry, countsDeliveries: false,
                maxFrameSize: maxFrameSize, timeout: joinTimeout, group: group
            )
            connections.add(publisherChannel)
            return try await self.measure(
                options: options,
                publisherChannel: publisherChannel,
                registry: registry,
                hardDeadline: hardDeadline,
                connectSeconds: started.duration(to: clock.now).seconds
            )
        }
    }

    private static func measure(
        options: FanoutOptions,
        publisherChannel: any Channel,
        registry: LoopStatsRegistry,
        hardDeadline: ContinuousClock.Instant,
        connectSeconds: Double
    ) async throws -> FanoutResult {
        let template = options.broadcastTemplate
        let pace: PacedSender.Pace = options.rate.map { .rate($0, maxBurst: Self.maxBurst) } ?? .asFastAsPossible
        let publisher = try await PacedSender.install(on: publisherChannel, count: options.messages, pace: pace) { _, now, allocator in
            template.render(sentAt: now, allocator: allocator)
        }
        // Publish, stopping at the hard deadline if the server stops reading.
        let report = try await PacedSender.run(publisher, deadline: hardDeadline)

        let expected = report.sent * options.subscribers
        let snapshot = try await Drain.wait(
            timeout: options.drainTimeout, deadline: hardDeadline, read: { try await registry.snapshot() },
            progress: { $0.delivered }, isComplete: { $0.delivered >= expected })
        let latency = try await registry.mergedHistogram().latency
        let duration: Double =
            snapshot.delivered > 0 && snapshot.lastDeliveryNanos > report.firstSendNanos
            ? Double(snapshot.lastDeliveryNanos - report.firstSendNanos) / 1e9 : 0
        return FanoutResult(
            target: options.target,
            subscribers: options.subscribers,
            messages: options.messages,
            size: options.size,
            rate: options.rate,
            sent: report.sent,
            expected: expected,
            delivered: snapshot.delivered,
            lost: max(0, expected - snapshot.delivered),
            durationSeconds: duration,
            deliveredPerSecond: duration > 0 ? Double(snapshot.delivered) / duration : 0,
            latencyMicros: latency,
            connectSeconds: connectSeconds,
            disconnected: snapshot.disconnected,
            channelErrors: snapshot.channelErrors,
            lastServerMessage: snapshot.lastServerMessage
        )
    }
}
