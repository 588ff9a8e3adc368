/// The configured clock read as the time since the client was made: the time the connection
/// machine and the channel trackers take, and the deadlines the client's timers sleep until.
///
/// It opens the `any Clock<Duration>` of ``ClientConfiguration/clock`` once, so the rest of the
/// client deals only in `Duration`s (an instant of an existential clock cannot be compared).
struct ClientClock: Sendable {
    private let elapsed: @Sendable () -> Duration
    private let sleeper: @Sendable (Duration) async throws -> Void

    /// Starts counting on `clock` now.
    init(_ clock: any Clock<Duration>) {
        self = Self.starting(clock)
    }

    private init(elapsed: @escaping @Sendable () -> Duration, sleeper: @escaping @Sendable (Duration) async throws -> Void) {
        self.elapsed = elapsed
        self.sleeper = sleeper
    }

    private static func starting<C: Clock<Duration>>(_ clock: C) -> ClientClock {
        let start = clock.now
        return ClientClock(
            elapsed: { start.duration(to: clock.now) },
            sleeper: { offset in try await clock.sleep(until: start.advanced(by: offset), tolerance: nil) })
    }

    /// The time since the client was made.
    var now: Duration { elapsed() }

    /// Sleeps until `deadline` (a time since the client was made); throws when cancelled.
    func sleep(until deadline: Duration) async throws {
        try await sleeper(deadline)
    }
}
