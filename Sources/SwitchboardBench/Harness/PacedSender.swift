import NIOCore
import NIOWebSocket

/// Sends a bounded number of frames on one connection's event loop, paced one of three ways:
/// as fast as the socket accepts, at a fixed rate, or with at most a window of messages
/// waiting for their acknowledgement. Every bench's publishers are one of these.
///
/// - As fast as possible: batches of ``batchSize`` frames (one flush each) while the channel is
///   writable, yielding to the loop between batches; resumes on `channelWritabilityChanged`.
/// - At a rate: message `i` (from 0) is due at `start + i / rate`. Each wake-up sends what is due
///   (at most `maxBurst`, so a stalled loop catches up in bounded steps) and schedules the next
///   wake-up for the next message, so the schedule does not drift.
/// - With a window: sends until `window` messages are unacknowledged; ``acknowledged(index:)``
///   frees a slot and returns the message's send time.
///
/// The run ends after `count` messages (in window mode: once all are acknowledged), at
/// ``stop()``, or when the connection closes.
final class PacedSender: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// How messages are paced.
    enum Pace: Sendable, Equatable {
        /// As fast as the channel is writable.
        case asFastAsPossible
        /// `rate` messages a second, at most `maxBurst` in one wake-up.
        case rate(Double, maxBurst: Int)
        /// At most `window` messages sent and not yet acknowledged.
        case window(Int)
    }

    /// The frame body of message `index` (from 0), sent at `now` (uptime ns).
    typealias Render = @Sendable (_ index: Int, _ now: UInt64, _ allocator: ByteBufferAllocator) -> ByteBuffer

    /// What was sent, and when (uptime ns).
    struct Report: Sendable {
        var sent = 0
        var acknowledged = 0
        var firstSendNanos: UInt64 = 0
        var lastSendNanos: UInt64 = 0
    }

    /// Frames written per flush when sending as fast as possible.
    static let batchSize = 64
    /// The shortest wait between rate ticks.
    static let minimumTick = TimeAmount.milliseconds(1)
    /// The largest window.
    static let maxWindow = 1 << 16

    private let render: Render
    private let count: Int
    private let pace: Pace
    private let eventLoop: any EventLoop
    private var context: ChannelHandlerContext?
    private var promise: EventLoopPromise<Report>?
    private var report = Report()
    private var startNanos: UInt64 = 0
    private var waitingForWritable = false
    private var tick: Scheduled<Void>?
    private var finished = false
    /// Window mode: the send time of each message in flight, at `index % window`.
    private var sendTimes: [UInt64]
    private var acknowledgedFlags: [Bool]

    /// A sender of `count` messages rendered by `render`, paced by `pace`.
    init(count: Int, pace: Pace, eventLoop: any EventLoop, render: @escaping Render) {
        self.render = render
        self.count = count
        self.pace = pace
        self.eventLoop = eventLoop
        if case .window(let window) = pace {
            let size = max(1, min(window, Self.maxWindow))
            self.sendTimes = Array(repeating: 0, count: size)
            self.acknowledgedFlags = Array(repeating: true, count: size)
        } else {
            self.sendTimes = []
            self.acknowledgedFlags = []
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.finish()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.finish()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if self.waitingForWritable, context.channel.isWritable {
            self.waitingForWritable = false
            self.pump()
        }
        context.fireChannelWritabilityChanged()
    }

    /// Starts sending with the first message due at `startNanos` (uptime ns; now when nil); the
    /// future completes when all were sent (and, with a window, acknowledged), or with what was
    /// sent at ``stop()`` or on close.
    func start(at startNanos: UInt64? = nil) -> EventLoopFuture<Report> {
        if let promise = self.promise {
            return promise.futureResult
        }
        guard let context = self.context, !self.finished, context.channel.isActive else {
            return self.eventLoop.makeFailedFuture(
                BenchError(.connectionClosed, "a sender's connection closed before sending started"))
        }
        let promise = context.eventLoop.makePromise(of: Report.self)
        self.promise = promise
        let now = NIODeadline.now().uptimeNanoseconds
        self.startNanos = startNanos ?? now
        if self.count == 0 {
            self.finish()
            return promise.futureResult
        }
        switch self.pace {
        case .asFastAsPossible, .window:
            if self.startNanos > now {
                self.tick = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(clamping: self.startNanos - now))) {
                    self.pump()
                }
            } else {
                self.pump()
            }
        case .rate:
            if self.startNanos <= now {
                self.wake()
            } else {
                self.schedule(context: context, now: now)
            }
        }
        return promise.futureResult
    }

    /// Stops sending; the start future completes with what was sent.
    func stop() {
        self.finish()
    }

    /// Window mode: message `index` was answered; frees its slot, sends what the window allows,
    /// and returns its send time (nil for an index not in flight).
    func acknowledged(index: Int) -> UInt64? {
        guard !self.sendTimes.isEmpty, index >= 0, index < self.report.sent else { return nil }
        let slot = index % self.sendTimes.count
        guard !self.acknowledgedFlags[slot], self.report.sent - index <= self.sendTimes.count else { return nil }
        self.acknowledgedFlags[slot] = true
        self.report.acknowledged += 1
        let sentAt = self.sendTimes[slot]
        if self.report.acknowledged >= self.count {
            self.finish()
        } else {
            self.pump()
        }
        return sentAt
    }

    private var inFlight: Int { self.report.sent - self.report.acknowledged }

    private func pump() {
        guard !self.finished, let context = self.context else { return }
        let limit: Int
        if case .window(let window) = self.pace {
            limit = max(0, min(Self.batchSize, min(window, self.sendTimes.count) - self.inFlight))
        } else {
            limit = Self.batchSize
        }
        var written = 0
        while self.report.sent < self.count, written < limit, context.channel.isWritable {
            self.writeOne(context: context, now: NIODeadline.now().uptimeNanoseconds)
            written += 1
        }
        if written > 0 {
            context.flush()
        }
        if case .window = self.pace {
            if !context.channel.isWritable { self.waitingForWritable = true }
            return
        }
        if self.report.sent >= self.count {
            self.finish()
        } else if context.channel.isWritable {
            // Yield to the event loop between batches so reads on this loop keep flowing.
            context.eventLoop.assumeIsolated().execute { self.pump() }
        } else {
            self.waitingForWritable = true
        }
    }

    private func dueNanos(of index: Int, rate: Double) -> UInt64 {
        self.startNanos &+ UInt64(Double(index) * 1e9 / rate)
    }

    private func wake() {
        guard !self.finished, let context = self.context, case .rate(let rate, let maxBurst) = self.pace else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        var written = 0
        while self.report.sent < self.count, written < maxBurst, self.dueNanos(of: self.report.sent, rate: rate) <= now,
            context.channel.isWritable
        {
            self.writeOne(context: context, now: NIODeadline.now().uptimeNanoseconds)
            written += 1
        }
        if written > 0 {
            context.flush()
        }
        if self.report.sent >= self.count {
            self.finish()
        } else {
            self.schedule(context: context, now: now)
        }
    }

    private func schedule(context: ChannelHandlerContext, now: UInt64) {
        guard case .rate(let rate, _) = self.pace else { return }
        let due = self.dueNanos(of: self.report.sent, rate: rate)
        let wait = due > now ? TimeAmount.nanoseconds(Int64(clamping: due - now)) : .zero
        self.tick = context.eventLoop.assumeIsolated().scheduleTask(in: max(wait, Self.minimumTick)) {
            self.wake()
        }
    }

    private func writeOne(context: ChannelHandlerContext, now: UInt64) {
        let index = self.report.sent
        let data = self.render(index, now, context.channel.allocator)
        context.write(Self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: data)), promise: nil)
        if !self.sendTimes.isEmpty {
            let slot = index % self.sendTimes.count
            self.sendTimes[slot] = now
            self.acknowledgedFlags[slot] = false
        }
        if index == 0 {
            self.report.firstSendNanos = now
        }
        self.report.lastSendNanos = now
        self.report.sent += 1
    }

    private func finish() {
        guard !self.finished else { return }
        self.finished = true
        self.tick?.cancel()
        self.tick = nil
        self.promise?.succeed(self.report)
    }
}

extension PacedSender {
    /// Adds a sender to `channel`'s pipeline and returns it bound to the channel's loop.
    static func install(
        on channel: any Channel, count: Int, pace: Pace, render: @escaping Render
    ) async throws -> NIOLoopBound<PacedSender> {
        try await channel.eventLoop.submit {
            let handler = PacedSender(count: count, pace: pace, eventLoop: channel.eventLoop, render: render)
            try channel.pipeline.syncOperations.addHandler(handler)
            return NIOLoopBound(handler, eventLoop: channel.eventLoop)
        }.get()
    }

    /// Starts `sender` and stops it at `deadline` if it has not finished by then; returns its report.
    static func run(
        _ sender: NIOLoopBound<PacedSender>, at startNanos: UInt64? = nil, deadline: ContinuousClock.Instant
    ) async throws -> Report {
        try await self.runAll([(sender, startNanos)], deadline: deadline)[0]
    }

    /// Starts every sender at its time (now when nil), stops those still sending at `deadline`,
    /// and returns their reports in order.
    static func runAll(
        _ senders: [(sender: NIOLoopBound<PacedSender>, at: UInt64?)], deadline: ContinuousClock.Instant
    ) async throws -> [Report] {
        let remaining = ContinuousClock.now.duration(to: deadline).timeAmount
        let stoppers = senders.map { entry in
            entry.sender.eventLoop.scheduleTask(in: remaining) { entry.sender.value.stop() }
        }
        defer {
            for stopper in stoppers { stopper.cancel() }
        }
        let futures = senders.map { entry in
            entry.sender.eventLoop.flatSubmit { entry.sender.value.start(at: entry.at) }
        }
        var reports: [Report] = []
        reports.reserveCapacity(futures.count)
        for future in futures {
            reports.append(try await future.get())
        }
        return reports
    }
}
