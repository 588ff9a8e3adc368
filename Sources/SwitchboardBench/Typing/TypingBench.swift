import Histogram
import NIOCore
import NIOPosix

/// The typing-storm load tool: S subscribers, T typists and one commenter join one channel; the
/// typists send `user:typing` at R Hz for D seconds while the commenter sends `comment:added` at
/// C per second carrying its send time. The subscribers count the typing frames delivered to
/// them and record each comment's latency, so a comment's latency can be compared with and
/// without the storm, and the delivered typing frames with and without the server batching them.
///
/// Every connection is a plain NIO channel: a ``TypingReceiverHandler`` in front of the usual
/// ``BenchConnectionHandler`` takes the storm's frames; typists and the commenter send from a
/// ``PacedSenderHandler`` on their own event loop (bounded in count, stopped at the hard deadline).
/// Loopback only.
public enum TypingBench {
    /// How often the drain phase looks at the counters.
    static let pollInterval = Duration.milliseconds(10)
    /// How long after the last connection joined the first message is due.
    static let startDelay: UInt64 = 100_000_000
    /// The largest frame a connection accepts.
    static let maxFrameSize = 1 << 20

    /// Runs one measurement and closes every connection it opened, also on failure.
    public static func run(
        _ options: TypingOptions,
        on group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> TypingResult {
        try options.validate()
        try FileDescriptorLimit.ensure(atLeast: options.subscribers + options.typists + 64)

        let clock = ContinuousClock()
        let started = clock.now
        let hardDeadline = started.advanced(by: options.maxDuration)
        let stats = try await PerLoop.make(for: group) { TypingLoopStats() }
        let registry = try await LoopStatsRegistry.make(for: group)
        let topics = [options.realtimeTopic]
        let joinTimeout = options.joinTimeout
        let typists = options.typists
        let finalSeq = options.messagesPerTypist

        @Sendable func open(_ target: BenchTarget, role: TypingReceiverHandler.Role) async throws -> any Channel {
            try await BenchConnections.open(
                target: target, speaking: .switchboard, topics: topics, registry: registry, countsDeliveries: false,
                maxFrameSize: Self.maxFrameSize, timeout: joinTimeout, group: group
            ) { channel in
                guard let loopStats = stats.value(on: channel.eventLoop) else {
                    throw BenchError(.unsupportedEventLoopGroup, "a connection landed on an event loop the group did not list")
                }
                let receiver = TypingReceiverHandler(role: role, stats: loopStats, typists: typists, finalSeq: finalSeq)
                try channel.pipeline.syncOperations.addHandler(receiver)
            }
        }

        var connections: [any Channel] = []
        do {
            let sharedTarget = options.sharedTarget
            let subscribers = try await BenchConnections.openMany(
                count: options.subscribers, concurrency: options.connectConcurrency, deadline: hardDeadline
            ) { _ in try await open(sharedTarget, role: .subscriber) }
            connections += subscribers
            // Typist i must be typist i (its frames carry its index), so they are opened in order.
            let typistTargets = (0..<options.typists).map { options.target(typist: $0) }
            var typistChannels: [any Channel] = []
            typistChannels.reserveCapacity(options.typists)
            for target in typistTargets {
                guard clock.now < hardDeadline else {
                    throw BenchError(.timedOut, "only \(typistChannels.count) of \(options.typists) typists were open when the run's time ran out")
                }
                let channel = try await open(target, role: .typist)
                typistChannels.append(channel)
                connections.append(channel)
            }
            let commenter = try await open(sharedTarget, role: .commenter)
            connections.append(commenter)
            let connectSeconds = started.duration(to: clock.now).seconds

            let result = try await self.measure(
                options: options, typistChannels: typistChannels, commenter: commenter, stats: stats, registry: registry,
                hardDeadline: hardDeadline, connectSeconds: connectSeconds)
            await BenchConnections.closeAll(connections)
            return result
        } catch {
            await BenchConnections.closeAll(connections)
            throw error
        }
    }

    /// A sender's handler, reachable from any thread by hopping onto its loop.
    private typealias Sender = NIOLoopBound<PacedSenderHandler>

    private static func installSender(
        on channel: any Channel, message: PacedSenderHandler.Message, count: Int, rate: Double
    ) async throws -> Sender {
        try await channel.eventLoop.submit {
            let handler = PacedSenderHandler(message: message, count: count, rate: rate, eventLoop: channel.eventLoop)
            try channel.pipeline.syncOperations.addHandler(handler)
            return NIOLoopBound(handler, eventLoop: channel.eventLoop)
        }.get()
    }

    private static func measure(
        options: TypingOptions,
        typistChannels: [any Channel],
        commenter: any Channel,
        stats: PerLoop<TypingLoopStats>,
        registry: LoopStatsRegistry,
        hardDeadline: ContinuousClock.Instant,
        connectSeconds: Double
    ) async throws -> TypingResult {
        let clock = ContinuousClock()
        let topic = options.realtimeTopic

        var typists: [Sender] = []
        if options.storm {
            typists.reserveCapacity(typistChannels.count)
            for (index, channel) in typistChannels.enumerated() {
                typists.append(
                    try await self.installSender(
                        on: channel, message: .typing(TypingFrames.typing(topic: topic, typist: index)),
                        count: options.messagesPerTypist, rate: options.typingRate))
            }
        }
        let commentSender = try await self.installSender(
            on: commenter, message: .comment(TypingFrames.comment(topic: topic)), count: options.comments,
            rate: options.commentRate)

        // Everyone starts together; the typists are spread evenly over one typing period, as
        // people do not type in step.
        let start = NIODeadline.now().uptimeNanoseconds &+ Self.startDelay
        let typistOffset = 1e9 / options.typingRate / Double(max(1, typists.count))
        var futures: [EventLoopFuture<PacedSenderHandler.Report>] = []
        for (index, sender) in typists.enumerated() {
            let at = start &+ UInt64(Double(index) * typistOffset)
            futures.append(sender.eventLoop.flatSubmit { sender.value.start(at: at) })
        }
        let commentFuture = commentSender.eventLoop.flatSubmit { commentSender.value.start(at: start) }

        // Stop every sender at the hard deadline if the schedule has not finished by then.
        let remaining = clock.now.duration(to: hardDeadline).timeAmount
        let stoppers = (typists + [commentSender]).map { sender in
            sender.eventLoop.scheduleTask(in: remaining) { sender.value.stop() }
        }
        var typingReports: [PacedSenderHandler.Report] = []
        for future in futures {
            typingReports.append(try await future.get())
        }
        let commentReport = try await commentFuture.get()
        for stopper in stoppers {
            stopper.cancel()
        }

        // Drain: until every comment and every final typing state arrived, nothing new arrived
        // for drainTimeout, or the hard deadline.
        let typingSent = typingReports.reduce(0) { $0 + $1.sent }
        let finalExpected = options.storm ? options.subscribers * options.typists : 0
        var snapshot = try await stats.snapshot()
        func isComplete(_ snapshot: TypingLoopStats.Snapshot) -> Bool {
            let comments = options.subscribers * max(0, commentReport.sent - snapshot.commentsRefused)
            return snapshot.commentsDelivered >= comments && snapshot.finalStates >= finalExpected
        }
        var lastProgress = clock.now
        var lastCount = snapshot.typingDelivered + snapshot.commentsDelivered
        while !isComplete(snapshot) {
            let now = clock.now
            if now >= hardDeadline || lastProgress.duration(to: now) >= options.drainTimeout { break }
            try await Task.sleep(for: self.pollInterval)
            snapshot = try await stats.snapshot()
            let count = snapshot.typingDelivered + snapshot.commentsDelivered
            if count > lastCount {
                lastCount = count
                lastProgress = clock.now
            }
        }
        // Refusals may trail the last delivery a little: give them one more poll.
        try await Task.sleep(for: self.pollInterval)
        snapshot = try await stats.snapshot()

        let connectionStats = try await registry.snapshot()
        let histogram = try await stats.mergedCommentLatency()
        let latency =
            histogram.totalCount > 0
            ? FanoutResult.Latency(
                p50: Int(clamping: histogram.valueAtPercentile(50)),
                p99: Int(clamping: histogram.valueAtPercentile(99)),
                p999: Int(clamping: histogram.valueAtPercentile(99.9)),
                max: Int(clamping: histogram.max)
            )
            : FanoutResult.Latency(p50: 0, p99: 0, p999: 0, max: 0)
        let firstTyping = typingReports.filter { $0.sent > 0 }.map(\.firstSendNanos).min() ?? 0
        let typingSeconds =
            snapshot.typingDelivered > 0 && firstTyping > 0 && snapshot.lastTypingNanos > firstTyping
            ? Double(snapshot.lastTypingNanos - firstTyping) / 1e9 : 0
        return TypingResult(
            storm: options.storm,
            subscribers: options.subscribers,
            typists: options.typists,
            typingRate: options.typingRate,
            durationSeconds: options.duration.seconds,
            commentRate: options.commentRate,
            typingSent: typingSent,
            typingRefused: snapshot.typingRefused,
            typingDelivered: snapshot.typingDelivered,
            typingSeconds: typingSeconds,
            typingMaxPerPair: snapshot.maxPerPair,
            finalStates: snapshot.finalStates,
            finalStatesExpected: finalExpected,
            typingOutOfOrder: snapshot.outOfOrder,
            commentsSent: commentReport.sent,
            commentsRefused: snapshot.commentsRefused,
            commentsDelivered: snapshot.commentsDelivered,
            commentLatencyMicros: latency,
            connectSeconds: connectSeconds,
            disconnected: connectionStats.disconnected,
            channelErrors: connectionStats.channelErrors,
            lastServerMessage: connectionStats.lastServerMessage,
            lastRefusal: snapshot.lastRefusal
        )
    }
}
