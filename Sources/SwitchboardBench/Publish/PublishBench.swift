import NIOCore
import NIOPosix
import Synchronization

/// The many-publishers load tool: N channels, each with P publisher connections and S
/// subscribers. Every publisher sends its share of the messages as a replayable event with
/// `ack` on, keeping at most a window unacknowledged; the subscribers check each channel's
/// `meta.seq` (nothing lost, repeated or out of order) and record delivery latency.
///
/// Built on the harness: ``BenchConnections`` opens and joins, a ``PacedSender`` in window mode
/// publishes, ``AckReader`` and ``SeqCheckHandler`` count into ``PublishLoopStats`` per loop.
/// Loopback only.
public enum PublishBench {
    /// The largest frame a connection accepts.
    static let maxFrameSize = 1 << 20

    /// Runs one measurement and closes every connection it opened, also on failure.
    public static func run(
        _ options: PublishOptions,
        on group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> PublishResult {
        try options.validate()
        try FileDescriptorLimit.ensure(atLeast: options.connections + 64)

        let clock = ContinuousClock()
        let started = clock.now
        let hardDeadline = started.advanced(by: options.limits.maxDuration)
        let stats = try await PerLoop.make(for: group) { PublishLoopStats() }
        let registry = try await LoopStatsRegistry.make(for: group)
        let target = options.target
        let joinTimeout = options.limits.joinTimeout
        let subscribersPerChannel = options.subscribersPerChannel
        let topics = (0..<options.channels).map { "realtime:\(options.channel($0))" }

        return try await BenchConnections.closing { connections in
            // Subscribers first, so that they see every message from seq 1 after their join.
            let checkers = Checkers()
            let subscriberChannels = try await BenchConnections.openMany(
                count: options.channels * subscribersPerChannel, concurrency: options.limits.connectConcurrency,
                deadline: hardDeadline
            ) { index in
                let channelIndex = index / subscribersPerChannel
                return try await BenchConnections.open(
                    target: target, speaking: .switchboard, topics: [topics[channelIndex]], registry: registry,
                    countsDeliveries: false, maxFrameSize: Self.maxFrameSize, timeout: joinTimeout, group: group
                ) { channel in
                    let checker = SeqCheckHandler(channelIndex: channelIndex, stats: try stats.require(on: channel.eventLoop))
                    try channel.pipeline.syncOperations.addHandler(checker)
                    checkers.add(NIOLoopBound(checker, eventLoop: channel.eventLoop))
                }
            }
            connections.add(contentsOf: subscriberChannels)

            let readers = Readers()
            let publisherChannels = try await BenchConnections.openMany(
                count: options.publishers, concurrency: options.limits.connectConcurrency, deadline: hardDeadline
            ) { index in
                let channel = try await BenchConnections.open(
                    target: target, speaking: .switchboard, topics: [topics[index / options.publishersPerChannel]],
                    registry: registry, countsDeliveries: false, maxFrameSize: Self.maxFrameSize, timeout: joinTimeout,
                    group: group, join: RealtimeFrames.JoinConfig(ack: true)
                ) { channel in
                    let reader = AckReader(stats: try stats.require(on: channel.eventLoop))
                    try channel.pipeline.syncOperations.addHandler(reader)
                    readers.add(channel, index: index, NIOLoopBound(reader, eventLoop: channel.eventLoop))
                }
                return channel
            }
            connections.add(contentsOf: publisherChannels)
            let connectSeconds = started.duration(to: clock.now).seconds

            return try await self.measure(
                options: options, publisherChannels: publisherChannels, readers: readers, checkers: checkers.all,
                stats: stats, registry: registry, topics: topics, hardDeadline: hardDeadline, connectSeconds: connectSeconds)
        }
    }

    private static func measure(
        options: PublishOptions,
        publisherChannels: [any Channel],
        readers: Readers,
        checkers: [NIOLoopBound<SeqCheckHandler>],
        stats: PerLoop<PublishLoopStats>,
        registry: LoopStatsRegistry,
        topics: [String],
        hardDeadline: ContinuousClock.Instant,
        connectSeconds: Double
    ) async throws -> PublishResult {
        // Connections come back in completion order: each one's reader knows its publisher index.
        var senders: [(sender: NIOLoopBound<PacedSender>, at: UInt64?)] = []
        let perPublisher = options.messagesPerPublisher
        for channel in publisherChannels {
            guard let (index, reader) = readers.entry(for: channel) else {
                throw BenchError(.connectionClosed, "a publisher connection lost its ack reader")
            }
            let channelIndex = index / options.publishersPerChannel
            let template = PublishFrames.push(
                topic: topics[channelIndex], event: options.event, channel: channelIndex,
                publisher: index % options.publishersPerChannel, size: options.size)
            let sender = try await PacedSender.install(on: channel, count: perPublisher, pace: .window(options.window)) {
                index, now, allocator in
                template.render([UInt64(index), now, UInt64(index) + PublishFrames.firstPushRef], allocator: allocator)
            }
            try await channel.eventLoop.submit { reader.value.sender = sender.value }.get()
            senders.append((sender, nil))
        }

        let probe = ServerProbe.start(options.serverPid)
        let reports = try await PacedSender.runAll(senders, deadline: hardDeadline)
        let firstSend = reports.filter { $0.sent > 0 }.map(\.firstSendNanos).min() ?? 0

        // Every subscriber of a channel should get each message accepted on it.
        var acceptedPerChannel = Array(repeating: 0, count: options.channels)
        for channel in publisherChannels {
            guard let (index, reader) = readers.entry(for: channel) else { continue }
            acceptedPerChannel[index / options.publishersPerChannel] += try await channel.eventLoop.submit { reader.value.accepted }.get()
        }
        let counters = try await stats.snapshot()
        let expected = options.subscribersPerChannel * counters.acked
        let snapshot = try await Drain.wait(
            timeout: options.limits.drainTimeout, deadline: hardDeadline, read: { try await stats.snapshot() },
            progress: { $0.delivered }, isComplete: { $0.delivered >= expected })
        let cpuSeconds = probe?.cpuSeconds()
        let rss = probe?.rss()

        var lost = 0
        var repeated = 0
        var gaps: Int64 = 0
        var withoutSeq = 0
        for checker in checkers {
            let report = try await checker.eventLoop.submit { checker.value.report }.get()
            lost += max(0, acceptedPerChannel[report.channelIndex] - report.tracker.distinct)
            repeated += report.tracker.repeated
            gaps += report.tracker.skipped
            withoutSeq += report.withoutSeq
        }
        let ackLatency = try await stats.mergedHistogram { $0.ackLatency }.latency
        let deliveryLatency = try await stats.mergedHistogram { $0.deliveryLatency }.latency
        let connectionStats = try await registry.snapshot()
        let sent = reports.reduce(0) { $0 + $1.sent }
        let publishSeconds =
            snapshot.lastAckNanos > firstSend && firstSend > 0 ? Double(snapshot.lastAckNanos - firstSend) / 1e9 : 0
        let deliverySeconds =
            snapshot.lastDeliveryNanos > firstSend && firstSend > 0 ? Double(snapshot.lastDeliveryNanos - firstSend) / 1e9 : 0
        return PublishResult(
            channels: options.channels,
            publishersPerChannel: options.publishersPerChannel,
            subscribersPerChannel: options.subscribersPerChannel,
            window: options.window,
            size: options.size,
            sent: sent,
            acked: snapshot.acked,
            refused: snapshot.refused,
            lastRefusal: snapshot.lastRefusal,
            publishSeconds: publishSeconds,
            publishesPerSecond: publishSeconds > 0 ? Double(snapshot.acked) / publishSeconds : 0,
            ackLatencyMicros: ackLatency,
            expectedDeliveries: expected,
            delivered: snapshot.delivered,
            deliverySeconds: deliverySeconds,
            deliveriesPerSecond: deliverySeconds > 0 ? Double(snapshot.delivered) / deliverySeconds : 0,
            deliveryLatencyMicros: deliveryLatency,
            lost: lost,
            repeated: repeated,
            seqGaps: Int(clamping: gaps),
            withoutSeq: withoutSeq,
            serverCPUMicrosPerMessage: cpuSeconds.flatMap { snapshot.acked > 0 ? $0 * 1e6 / Double(snapshot.acked) : nil },
            serverCPUMicrosPerDelivery: cpuSeconds.flatMap { snapshot.delivered > 0 ? $0 * 1e6 / Double(snapshot.delivered) : nil },
            serverRSSBytes: rss,
            connectSeconds: connectSeconds,
            disconnected: connectionStats.disconnected,
            channelErrors: connectionStats.channelErrors,
            lastServerMessage: connectionStats.lastServerMessage
        )
    }
}

/// The subscribers' checkers, collected as their connections open (on any thread).
private final class Checkers: Sendable {
    private let list = Mutex<[NIOLoopBound<SeqCheckHandler>]>([])

    func add(_ checker: NIOLoopBound<SeqCheckHandler>) {
        self.list.withLock { $0.append(checker) }
    }

    var all: [NIOLoopBound<SeqCheckHandler>] { self.list.withLock { $0 } }
}

/// The publishers' ack readers with their publisher index, by connection, collected as they open.
private final class Readers: Sendable {
    private let byChannel = Mutex<[ObjectIdentifier: (index: Int, reader: NIOLoopBound<AckReader>)]>([:])

    func add(_ channel: any Channel, index: Int, _ reader: NIOLoopBound<AckReader>) {
        self.byChannel.withLock { $0[ObjectIdentifier(channel)] = (index, reader) }
    }

    func entry(for channel: any Channel) -> (index: Int, reader: NIOLoopBound<AckReader>)? {
        self.byChannel.withLock { $0[ObjectIdentifier(channel)] }
    }
}
