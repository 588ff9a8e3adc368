import NIOCore
import NIOWebSocket

/// Sends a fixed number of frames at a fixed rate from a given start time, on the connection's
/// event loop: a typist's `user:typing` updates or the commenter's `comment:added` messages.
///
/// Message `i` (from 0) is due at `start + i / rate`. Each wake-up sends what is due (at most
/// ``maxBurst``, so a stalled loop catches up in bounded steps) and schedules the next wake-up
/// for the next message: nothing runs between messages, and the schedule does not drift. The
/// run ends after `count` messages, at ``stop()``, or when the connection closes.
final class PacedSenderHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// What a sender sends.
    enum Message: Sendable {
        /// `user:typing`; message `i` carries `seq` = i + 1.
        case typing(TypingFrames.NumberTemplate)
        /// `comment:added`; message `i` carries comment number i + 1 and its send time.
        case comment(TypingFrames.NumberTemplate)

        func render(index: Int, now: UInt64, allocator: ByteBufferAllocator) -> ByteBuffer {
            switch self {
            case .typing(let template):
                return template.render([UInt64(index + 1)], allocator: allocator)
            case .comment(let template):
                return template.render([UInt64(index + 1), now], allocator: allocator)
            }
        }
    }

    /// What was sent, and when (uptime ns).
    struct Report: Sendable {
        var sent = 0
        var firstSendNanos: UInt64 = 0
        var lastSendNanos: UInt64 = 0
    }

    /// The most frames one wake-up may send.
    static let maxBurst = 64
    /// The shortest wait between wake-ups.
    static let minimumTick = TimeAmount.milliseconds(1)

    private let message: Message
    private let count: Int
    private let intervalNanos: Double
    private let eventLoop: any EventLoop
    private var context: ChannelHandlerContext?
    private var promise: EventLoopPromise<Report>?
    private var report = Report()
    private var startNanos: UInt64 = 0
    private var tick: Scheduled<Void>?
    private var finished = false

    /// A sender of `count` messages at `rate` per second.
    init(message: Message, count: Int, rate: Double, eventLoop: any EventLoop) {
        self.message = message
        self.count = count
        self.intervalNanos = 1e9 / rate
        self.eventLoop = eventLoop
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

    /// Starts sending with the first message due at `startNanos` (uptime ns); the future
    /// completes when all were written, or with what was sent at ``stop()`` or on close.
    func start(at startNanos: UInt64) -> EventLoopFuture<Report> {
        if let promise = self.promise {
            return promise.futureResult
        }
        guard let context = self.context, !self.finished, context.channel.isActive else {
            return self.eventLoop.makeFailedFuture(
                BenchError(.connectionClosed, "a sender's connection closed before sending started"))
        }
        let promise = context.eventLoop.makePromise(of: Report.self)
        self.promise = promise
        self.startNanos = startNanos
        if self.count == 0 {
            self.finish()
        } else {
            self.schedule(context: context, now: NIODeadline.now().uptimeNanoseconds)
        }
        return promise.futureResult
    }

    /// Stops sending; the start future completes with what was sent.
    func stop() {
        self.finish()
    }

    private func dueNanos(of index: Int) -> UInt64 {
        self.startNanos &+ UInt64(Double(index) * self.intervalNanos)
    }

    private func wake() {
        guard !self.finished, let context = self.context else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        var written = 0
        while self.report.sent < self.count, written < Self.maxBurst, self.dueNanos(of: self.report.sent) <= now,
            context.channel.isWritable
        {
            let sentAt = NIODeadline.now().uptimeNanoseconds
            let data = self.message.render(index: self.report.sent, now: sentAt, allocator: context.channel.allocator)
            context.write(Self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: data)), promise: nil)
            if self.report.sent == 0 {
                self.report.firstSendNanos = sentAt
            }
            self.report.lastSendNanos = sentAt
            self.report.sent += 1
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
        let due = self.dueNanos(of: self.report.sent)
        let wait = due > now ? TimeAmount.nanoseconds(Int64(clamping: due - now)) : .zero
        self.tick = context.eventLoop.assumeIsolated().scheduleTask(in: max(wait, Self.minimumTick)) {
            self.wake()
        }
    }

    private func finish() {
        guard !self.finished else { return }
        self.finished = true
        self.tick?.cancel()
        self.tick = nil
        self.promise?.succeed(self.report)
    }
}
