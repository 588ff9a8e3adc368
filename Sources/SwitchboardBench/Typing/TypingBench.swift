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
/// ``PacedSender`` on their own event loop (bounded in count, stopped at the hard deadline).
/// Loopback only.
public enum TypingBench {
    /// The most frames one wake-up of a typist or the commenter may send.
    static let maxBurst = 64
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
                let receiver = TypingReceiverHandler(
                    role: role, stats: try stats.require(on: channel.eventLoop), typists: typists, finalSeq: finalSeq)
                try channel.pipeline.syncOperations.addHandler(receiver)
            }
        }

        return try await BenchConnections.closing { connections in
            let sharedTarget = options.sharedTarget
            connections.add(
                contentsOf: try await BenchConnections.openMany(
                    count: options.subscribers, concurrency: options.connectConcurrency, deadline: hardDeadline
                ) { _ in try await open(sharedTarget, role: .subscriber) })
            // Typist i must be typist i (its frames carry its index), so they are opened in order.
            var typistChannels: [any Channel] = []
            typistChannels.reserveCapacity(options.typists)
            for typist in 0..<options.typists {
                guard clock.now < hardDeadline else {
                    throw BenchError(.timedOut, "only \(typistChannels.count) of \(options.typists) typists were open when the run's time ran out")
                }
                let channel = try await open(options.target(typist: typist), role: .typist)
                typistChannels.append(channel)
                connections.add(channel)
            }
            let commenter = try await open(sharedTarget, role: .commenter)
            connections.add(commenter)
            return try await self.measure(
                options: options, typistChannels: typistChannels, commenter: commenter, stats: stats, registry: registry,
                hardDeadline: hardDeadline, connectSeconds: started.duration(to: clock.now).seconds)
        }
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
        let topic = options.realtimeTopic
        // Everyone starts together; the typists are spread evenly over one typing period, as
        // people do not type in step.
        let start = NIODeadline.now().uptimeNanoseconds &+ Self.startDelay
        let typistOffset = 1e9 / options.typingRate / Double(max(1, typistChannels.count))
        var typists: [(sender: NIOLoopBound<PacedSender>, at: UInt64?)] = []
        if options.storm {
            typists.reserveCapacity(typistChannels.count)
            for (index, channel) in typistChannels.enumerated() {
                let template = TypingFrames.typing(topic: topic, typist: index)
                let sender = try await PacedSender.install(
                    on: channel, count: options.messagesPerTypist, pace: .rate(options.typingRate, maxBurst: Self.maxBurst)
                ) { index, _, allocator in template.render([UInt64(index + 1)], allocator: allocator) }
                typists.append((sender, start &+ UInt64(Double(index) * typistOffset)))
            }
        }
        let commentTemplate = TypingFrames.comment(topic: topic)
        let commentSender = try await PacedSender.install(
            on: commenter, count: options.comments, pace: .rate(options.commentRate, maxBurst: Self.maxBurst)
        ) { index, now, allocator in commentTemplate.render([UInt64(index + 1), now], allocator: allocator) }

        // Stopped at the hard deadline if the schedule has not finished by then.
        var reports = try await PacedSender.runAll(typists + [(commentSender, start)], deadline: hardDeadline)
        let commentReport = reports.removeLast()
        let typingReports = reports

        // Drain: until every comment and every final typing state arrived, nothing new arrived
        // for drainTimeout, or the hard deadline.
        let typingSent = typingReports.reduce(0) { $0 + $1.sent }
        let finalExpected = options.storm ? options.subscribers * options.typists : 0
        _ = try await Drain.wait(
            timeout: options.drainTimeout, deadline: hardDeadline, read: { try await stats.snapshot() },
            progress: { $0.typingDelivered + $0.commentsDelivered },
            isComplete: { snapshot in
                let comments = options.subscribers * max(0, commentReport.sent - snapshot.commentsRefused)
                return snapshot.commentsDelivered >= comments && snapshot.finalStates >= finalExpected
            })
        // Refusals may trail the last delivery a little: give them one more poll.
        try await Task.sleep(for: Drain.pollInterval)
        let snapshot = try await stats.snapshot()

        let connectionStats = try await registry.snapshot()
        let latency = try await stats.mergedHistogram { $0.commentLatency }.latency
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
