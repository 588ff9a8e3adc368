import Foundation
import NIOCore
import SwitchboardCore

/// The time the server reads and schedules its timers on: connection idle and token-expiry
/// checks, the slow-consumer grace, batch windows, rate-limit windows and history ages.
///
/// `SystemClock` (the default) is NIO's monotonic clock and the real wall time; tests give the
/// server a `ManualClock` and move it by hand, so no test waits for a real timer.
public protocol ServerClock: Sendable {
    /// Nanoseconds on a monotonic clock: what timers are scheduled on.
    func monotonicNanoseconds() -> UInt64
    /// Seconds since 1970: what tokens expire and history ages are measured on.
    func wallClockSeconds() -> Double
    /// Runs `task` on `loop` once the monotonic clock reaches `deadline` (nanoseconds).
    func schedule(at deadline: UInt64, on loop: any EventLoop, _ task: @escaping @Sendable () -> Void) -> ServerTimer
}

extension ServerClock {
    /// Seconds on the monotonic clock (rate-limit windows, channel activity).
    public func monotonicSeconds() -> Double { Double(monotonicNanoseconds()) / 1e9 }

    /// Whole milliseconds since 1970 (history ages, Supabase's replay `since`).
    public func wallClockMilliseconds() -> Int64 { Int64((wallClockSeconds() * 1000).rounded(.down)) }

    /// Runs `task` on `loop` after `delay` nanoseconds on this clock.
    func schedule(afterNanoseconds delay: UInt64, on loop: any EventLoop, _ task: @escaping @Sendable () -> Void) -> ServerTimer {
        schedule(at: monotonicNanoseconds() &+ delay, on: loop, task)
    }
}

/// A timer scheduled on a `ServerClock`; cancelling one that already ran does nothing.
public struct ServerTimer: Sendable {
    private let cancellation: @Sendable () -> Void

    public init(cancel: @escaping @Sendable () -> Void) {
        cancellation = cancel
    }

    public func cancel() { cancellation() }
}

/// The real clocks: NIO's monotonic clock (the one event-loop tasks run on) and the system's
/// wall time.
public struct SystemClock: ServerClock {
    public init() {}

    public func monotonicNanoseconds() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    public func wallClockSeconds() -> Double { Date().timeIntervalSince1970 }

    public func schedule(at deadline: UInt64, on loop: any EventLoop, _ task: @escaping @Sendable () -> Void) -> ServerTimer {
        let scheduled = loop.scheduleTask(deadline: .uptimeNanoseconds(deadline), task)
        return ServerTimer { scheduled.cancel() }
    }
}

extension ManualClock: ServerClock {
    /// Where the manual clock's monotonic reading starts, so that it is never zero.
    static let monotonicOrigin: UInt64 = 1_000_000_000_000

    public func monotonicNanoseconds() -> UInt64 {
        Self.monotonicOrigin &+ Self.nanoseconds(now.offset)
    }

    public func wallClockSeconds() -> Double { wallSeconds }

    /// Runs `task` on `loop` (as an ordinary task, in order with everything else queued there)
    /// when the clock is advanced to `deadline`.
    public func schedule(at deadline: UInt64, on loop: any EventLoop, _ task: @escaping @Sendable () -> Void) -> ServerTimer {
        let offset = deadline > Self.monotonicOrigin ? deadline - Self.monotonicOrigin : 0
        let timer = schedule(at: Instant(offset: .nanoseconds(Int64(clamping: offset)))) { loop.execute(task) }
        return ServerTimer { timer.cancel() }
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }
}
