import NIOCore
import NIOPosix

/// The fan-out load tool: N subscribers join one channel, one publisher broadcasts M messages,
/// and every delivery's latency is recorded (see FANOUT.md for what the numbers mean).
///
/// Subscribers are plain NIO channel handlers that scan each frame for its send time and record
/// into a histogram per event loop; the publisher writes on its own event loop. Run it against a
/// server on loopback only: Switchboard, or nginx + nchan for comparison (``FanoutOptions/target``).
public enum FanoutBench {
    /// How often the drain phase looks at the delivery counters.
    static let pollInterval = Duration.milliseconds(10)

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
        var connections = subscribers
        do {
            let publisherChannel = try await BenchConnections.open(
                target: target, speaking: benchProtocol, topics: topics, registry: registry, countsDeliveries: false,
                maxFrameSize: maxFrameSize, timeout: joinTimeout, group: group
            )
            connections.append(publisherChannel)
            let connectSeconds = started.duration(to: clock.now).seconds

            let result = try await self.measure(
                options: options,
                publisherChannel: publisherChannel,
                registry: registry,
                hardDeadline: hardDeadline,
                connectSeconds: connectSeconds
            )
            await BenchConnections.closeAll(connections)
            return result
        } catch {
            await BenchConnections.closeAll(connections)
            throw error
        }
    }

    private static func measure(
        options: FanoutOptions,
        publisherChannel: any Channel,
        registry: LoopStatsRegistry,
        hardDeadline: ContinuousClock.Instant,
        connectSeconds: Double
    ) async throws -> FanoutResult {
        let clock = ContinuousClock()
        let template = options.broadcastTemplate
        let messages = options.messages
        let rate = options.rate
        let publisher = try await publisherChannel.eventLoop.submit {
            let handler = PublisherHandler(
                template: template, messages: messages, rate: rate, eventLoop: publisherChannel.eventLoop
            )
            try publisherChannel.pipeline.syncOperations.addHandler(handler)
            return NIOLoopBound(handler, eventLoop: publisherChannel.eventLoop)
        }.get()

        // Publish, stopping at the hard deadline if the server stops reading.
        let remaining = clock.now.duration(to: hardDeadline)
        let stopper = publisherChannel.eventLoop.scheduleTask(in: remaining.timeAmount) {
            publisher.value.stop()
        }
        let report = try await publisherChannel.eventLoop.flatSubmit { publisher.value.start() }.get()
        stopper.cancel()

        // Drain: until everything arrived, nothing new arrived for drainTimeout, or the hard deadline.
        let expected = report.sent * options.subscribers
        var snapshot = try await registry.snapshot()
        var lastProgress = clock.now
        var lastDelivered = snapshot.delivered
        while snapshot.delivered < expected {
            let now = clock.now
            if now >= hardDeadline || lastProgress.duration(to: now) >= options.drainTimeout { break }
            try await Task.sleep(for: self.pollInterval)
            snapshot = try await registry.snapshot()
            if snapshot.delivered > lastDelivered {
                lastDelivered = snapshot.delivered
                lastProgress = clock.now
            }
        }

        let (histogram, _) = try await registry.mergedHistogram()
        let duration: Double =
            snapshot.delivered > 0 && snapshot.lastDeliveryNanos > report.firstSendNanos
            ? Double(snapshot.lastDeliveryNanos - report.firstSendNanos) / 1e9 : 0
        let latency = histogram.totalCount > 0
            ? FanoutResult.Latency(
                p50: Int(clamping: histogram.valueAtPercentile(50)),
                p99: Int(clamping: histogram.valueAtPercentile(99)),
                p999: Int(clamping: histogram.valueAtPercentile(99.9)),
                max: Int(clamping: histogram.max)
            )
            : FanoutResult.Latency(p50: 0, p99: 0, p999: 0, max: 0)
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
