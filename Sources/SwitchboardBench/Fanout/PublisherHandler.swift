import NIOCore
import NIOWebSocket

/// Sends the bench broadcasts on the publisher connection's event loop.
///
/// Without a rate it writes batches while the channel is writable (one flush per batch) and
/// resumes on `channelWritabilityChanged`; with a rate it wakes at most every millisecond and
/// sends whatever is due by then, so the schedule does not drift.
final class PublisherHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// What was sent, and when (uptime ns).
    struct Report: Sendable {
        var sent = 0
        var firstSendNanos: UInt64 = 0
        var lastSendNanos: UInt64 = 0
    }

    /// Frames written per flush when sending as fast as possible.
    static let batchSize = 64
    /// The most frames one rate tick may send (bounds catch-up after a stall).
    static let maxBurst = 4096
    /// The shortest wait between rate ticks.
    static let minimumTick = TimeAmount.milliseconds(1)

    private let template: RealtimeFrames.BroadcastTemplate
    private let messages: Int
    private let rate: Double?
    private let eventLoop: any EventLoop
    private var context: ChannelHandlerContext?
    private var promise: EventLoopPromise<Report>?
    private var report = Report()
    private var startNanos: UInt64 = 0
    private var waitingForWritable = false
    private var tick: Scheduled<Void>?
    private var finished = false

    init(template: RealtimeFrames.BroadcastTemplate, messages: Int, rate: Double?, eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.template = template
        self.messages = messages
        self.rate = rate
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
        if self.waitingForWritable, context.channel.isWritable, self.rate == nil {
            self.waitingForWritable = false
            self.pump()
        }
        context.fireChannelWritabilityChanged()
    }

    /// Starts publishing; the future completes when all messages are written or ``stop()`` is called.
    func start() -> EventLoopFuture<Report> {
        if let promise = self.promise {
            return promise.futureResult
        }
        guard let context = self.context, !self.finished, context.channel.isActive else {
            return self.eventLoop.makeFailedFuture(
                BenchError(.connectionClosed, "the publisher connection closed before publishing started")
            )
        }
        let promise = context.eventLoop.makePromise(of: Report.self)
        self.promise = promise
        self.startNanos = NIODeadline.now().uptimeNanoseconds
        if self.messages == 0 {
            self.finish()
        } else if self.rate == nil {
            self.pump()
        } else {
            self.rateTick()
        }
        return promise.futureResult
    }

    /// Stops publishing early; the start future completes with what was sent.
    func stop() {
        self.finish()
    }

    private func pump() {
        guard !self.finished, let context = self.context else { return }
        var written = 0
        while self.report.sent < self.messages, written < Self.batchSize, context.channel.isWritable {
            self.writeOne(context: context)
            written += 1
        }
        if written > 0 {
            context.flush()
        }
        if self.report.sent >= self.messages {
            self.finish()
        } else if context.channel.isWritable {
            // Yield to the event loop between batches so reads on this loop keep flowing.
            context.eventLoop.assumeIsolated().execute { self.pump() }
        } else {
            self.waitingForWritable = true
        }
    }

    private func rateTick() {
        guard !self.finished, let context = self.context, let rate = self.rate else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        let elapsed = Double(now &- self.startNanos) / 1e9
        let due = min(self.messages, Int(elapsed * rate) + 1)
        var written = 0
        while self.report.sent < due, written < Self.maxBurst, context.channel.isWritable {
            self.writeOne(context: context)
            written += 1
        }
        if written > 0 {
            context.flush()
        }
        if self.report.sent >= self.messages {
            self.finish()
            return
        }
        let nextDue = self.startNanos &+ UInt64(Double(self.report.sent) / rate * 1e9)
        let wait = nextDue > now ? TimeAmount.nanoseconds(Int64(min(nextDue - now, UInt64(Int64.max)))) : .zero
        self.tick = context.eventLoop.assumeIsolated().scheduleTask(in: max(wait, Self.minimumTick)) {
            self.rateTick()
        }
    }

    private func writeOne(context: ChannelHandlerContext) {
        let now = NIODeadline.now().uptimeNanoseconds
        let data = self.template.render(sentAt: now, allocator: context.channel.allocator)
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: data)
        context.write(Self.wrapOutboundOut(frame), promise: nil)
        if self.report.sent == 0 {
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
