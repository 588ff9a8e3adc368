import Synchronization

/// A clock that moves only when told to: tests (and embedders that replay time) give it to the
/// server and the client in place of the real clocks, then `advance` it instead of waiting.
///
/// It keeps two readings that move together: a monotonic instant (what timers and sleeps are
/// scheduled on) and the wall time (seconds since 1970, what token expiry and history ages are
/// checked against). It is a Swift `Clock`, so `sleep(for:clock:)` works on it; `schedule`
/// registers a callback for code that is not async (the server's event-loop timers).
///
/// `advance(by:)` moves both readings at once, then wakes every sleeper and fires every timer
/// whose deadline has been reached, earliest first. What they do in turn (schedule another
/// timer, send a frame) happens after `advance` returns: a test waits for its effect with a
/// deadline, and uses `waitingCount` to know that the code under test is waiting on the clock
/// before it moves it.
public final class ManualClock: Clock, Sendable {
    /// A point on the manual clock: the time since the clock was made.
    public struct Instant: InstantProtocol, Sendable {
        public var offset: Duration

        public init(offset: Duration) { self.offset = offset }

        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    /// A callback registered with `schedule`; `cancel()` removes it if it has not fired.
    public struct Timer: Sendable {
        let id: UInt64
        let clock: ManualClock

        public func cancel() { clock.cancel(id) }
    }

    private enum Waiter {
        /// `sleep` took an id but has not stored its continuation yet.
        case registering
        /// Cancelled while registering: the sleep throws as soon as it registers.
        case cancelledWhileRegistering
        case sleeper(CheckedContinuation<Void, any Error>)
        case callback(@Sendable () -> Void)

        /// A sleep or timer the clock will wake (not one still registering or cancelled).
        var isWaiting: Bool {
            switch self {
            case .sleeper, .callback: true
            case .registering, .cancelledWhileRegistering: false
            }
        }
    }

    private struct State {
        var now = Instant(offset: .zero)
        /// The wall time when the clock was made; the wall time now adds `now.offset` to it.
        let wallStart: Double
        var nextID: UInt64 = 0
        var waiters: [UInt64: (deadline: Instant, waiter: Waiter)] = [:]
    }

    private let state: Mutex<State>

    /// A clock whose wall time starts at `wallSeconds` (seconds since 1970).
    public init(wallSeconds: Double) {
        state = Mutex(State(wallStart: wallSeconds))
    }

    public var now: Instant { state.withLock { $0.now } }
    public var minimumResolution: Duration { .nanoseconds(1) }

    /// The wall time now, in seconds since 1970.
    public var wallSeconds: Double { state.withLock { $0.wallStart + Self.seconds($0.now.offset) } }

    /// The wall time now, in whole milliseconds since 1970.
    public var wallMilliseconds: Int64 { Int64((wallSeconds * 1000).rounded(.down)) }

    /// How many sleeps and timers are waiting for the clock to move.
    public var waitingCount: Int {
        state.withLock { state in state.waiters.values.count { $0.waiter.isWaiting } }
    }

    /// The earliest deadline anything waits for, if anything does.
    public var nextDeadline: Instant? {
        state.withLock { state in state.waiters.values.filter { $0.waiter.isWaiting }.map(\.deadline).min() }
    }

    /// Moves the clock forward by `duration` (a negative one is ignored) and wakes what is due,
    /// each once: a repeating timer that re-arms itself when woken fires once per `advance`,
    /// however many of its periods the advance spans.
    public func advance(by duration: Duration) {
        let due: [Waiter] = state.withLock { state in
            guard duration > .zero else { return [] }
            state.now = state.now.advanced(by: duration)
            let ready = state.waiters.filter { $0.value.deadline <= state.now && $0.value.waiter.isWaiting }
            .sorted { ($0.value.deadline, $0.key) < ($1.value.deadline, $1.key) }
            for entry in ready { state.waiters[entry.key] = nil }
            return ready.map(\.value.waiter)
        }
        for waiter in due {
            switch waiter {
            case .sleeper(let continuation): continuation.resume()
            case .callback(let fire): fire()
            case .registering, .cancelledWhileRegistering: break
            }
        }
    }

    /// Moves the clock to the earliest deadline anything waits for; false when nothing waits.
    @discardableResult
    public func advanceToNextDeadline() -> Bool {
        guard let next = nextDeadline else { return false }
        advance(by: max(.nanoseconds(1), now.duration(to: next)))
        return true
    }

    /// Calls `fire` once the clock reaches `deadline` (on the caller's thread now, when it already
    /// has; otherwise on the thread that advances the clock).
    @discardableResult
    public func schedule(at deadline: Instant, _ fire: @escaping @Sendable () -> Void) -> Timer {
        let (id, fireNow) = state.withLock { state -> (UInt64, Bool) in
            state.nextID += 1
            if deadline <= state.now { return (state.nextID, true) }
            state.waiters[state.nextID] = (deadline, .callback(fire))
            return (state.nextID, false)
        }
        if fireNow { fire() }
        return Timer(id: id, clock: self)
    }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            state.waiters[state.nextID] = (deadline, .registering)
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Result<Bool, CancellationError> in
                    if case .cancelledWhileRegistering = state.waiters[id]?.waiter {
                        state.waiters[id] = nil
                        return .failure(CancellationError())
                    }
                    if deadline <= state.now {
                        state.waiters[id] = nil
                        return .success(true)
                    }
                    state.waiters[id] = (deadline, .sleeper(continuation))
                    return .success(false)
                }
                switch outcome {
                case .failure(let error): continuation.resume(throwing: error)
                case .success(true): continuation.resume()
                case .success(false): break
                }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                switch state.waiters[id]?.waiter {
                case .sleeper(let continuation):
                    state.waiters[id] = nil
                    return continuation
                case .registering:
                    state.waiters[id]?.waiter = .cancelledWhileRegistering
                    return nil
                default:
                    return nil
                }
            }
            sleeper?.resume(throwing: CancellationError())
        }
    }

    func cancel(_ id: UInt64) {
        state.withLock { state in
            if case .callback = state.waiters[id]?.waiter { state.waiters[id] = nil }
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
