/// The timers of one connection and what they decide, with the time passed in: closing a
/// silent socket, closing each join whose token has expired, and closing a consumer that
/// stays too slow. It mutates only its own fields and returns actions; `RealtimeConnection`
/// performs them (schedules the timers on the server's clock, closes, shuts channels down).
///
/// A heartbeat is a frame like any other here: any inbound frame keeps the socket alive, as
/// in Phoenix. The idle timer is not re-armed per frame; when it fires it compares the last
/// read with the deadline and re-arms itself for the rest of the interval.
struct ConnectionStateMachine {
    /// Readings of the server's clock: monotonic nanoseconds (timers) and wall seconds (tokens).
    struct Now: Sendable, Equatable {
        var monotonic: UInt64
        var wall: Double
    }

    enum Timer: Int, CaseIterable, Sendable {
        case idle, tokenExpiry, slowConsumer
    }

    enum Action: Equatable {
        /// Schedule `timer` at a monotonic deadline, replacing any earlier one of that timer.
        case schedule(Timer, at: UInt64)
        case cancel(Timer)
        /// Close the socket: nothing was read for the idle timeout.
        case closeIdle
        /// Close the socket: it stayed over its write-buffer cap for the grace period, or went
        /// far over it.
        case closeSlowConsumer
        /// Shut these joins down: their tokens expired the given number of seconds ago.
        case expire([Expired])
    }

    /// A join whose token has expired, and how long ago (for the message that closes it).
    struct Expired: Equatable {
        let topic: String
        let secondsAgo: Int
    }

    /// Nanoseconds without a frame after which the socket is closed.
    let idleTimeout: UInt64
    /// Nanoseconds a consumer may stay unwritable.
    let slowConsumerGrace: UInt64
    /// Bytes queued while unwritable past which a consumer is closed without waiting.
    let slowConsumerHardCap: Int

    /// When the last frame arrived (monotonic nanoseconds).
    private var lastRead: UInt64
    /// Each join's token expiry, in wall seconds.
    private var expiries: [String: Double] = [:]
    /// The expiry timer's deadline, when one is scheduled.
    private var expiryDeadline: UInt64?
    private var unwritable = false
    private(set) var bytesWhileUnwritable = 0
    /// Heartbeats answered on this connection.
    private(set) var heartbeats = 0

    /// A connection opened at `now`; arm the idle timer with the action `start` returns.
    init(idleTimeoutSeconds: Int, slowConsumerGraceSeconds: Int, slowConsumerBytes: Int, now: Now) {
        idleTimeout = UInt64(max(1, idleTimeoutSeconds)) * 1_000_000_000
        slowConsumerGrace = UInt64(max(0, slowConsumerGraceSeconds)) * 1_000_000_000
        slowConsumerHardCap = slowConsumerBytes * 8
        lastRead = now.monotonic
    }

    /// The first action: the idle timer.
    func start() -> Action { .schedule(.idle, at: lastRead &+ idleTimeout) }

    /// A frame arrived.
    mutating func received(now: Now) {
        lastRead = now.monotonic
    }

    /// A heartbeat arrived (and is answered).
    mutating func heartbeat(now: Now) {
        received(now: now)
        heartbeats += 1
    }

    /// `timer` fired at `now`.
    mutating func fired(_ timer: Timer, now: Now, isWritable: Bool) -> [Action] {
        switch timer {
        case .idle:
            let deadline = lastRead &+ idleTimeout
            return now.monotonic >= deadline ? [.closeIdle] : [.schedule(.idle, at: deadline)]
        case .tokenExpiry:
            expiryDeadline = nil
            let expired = expiries.filter { $0.value <= now.wall }
                .sorted { $0.key < $1.key }
                .map { Expired(topic: $0.key, secondsAgo: Int(now.wall - $0.value)) }
            for entry in expired { expiries[entry.topic] = nil }
            var actions: [Action] = expired.isEmpty ? [] : [.expire(expired)]
            actions += scheduleExpiry(now: now)
            return actions
        case .slowConsumer:
            return unwritable && !isWritable ? [.closeSlowConsumer] : []
        }
    }

    // MARK: Token expiry

    /// A join (or a token refresh on it) whose token expires at `expiresAt` (wall seconds).
    mutating func tokenExpires(topic: String, at expiresAt: Double, now: Now) -> [Action] {
        expiries[topic] = expiresAt
        return scheduleExpiry(now: now)
    }

    /// A join ended.
    mutating func joinEnded(topic: String, now: Now) -> [Action] {
        guard expiries.removeValue(forKey: topic) != nil else { return [] }
        return scheduleExpiry(now: now)
    }

    /// Keeps one expiry timer at the earliest expiry (1 ms after it, so the check finds it past).
    private mutating func scheduleExpiry(now: Now) -> [Action] {
        guard let earliest = expiries.values.min() else {
            guard expiryDeadline != nil else { return [] }
            expiryDeadline = nil
            return [.cancel(.tokenExpiry)]
        }
        let wait = max(0, earliest - now.wall)
        let deadline = now.monotonic &+ UInt64((wait * 1e9).rounded(.up)) &+ 1_000_000
        if let current = expiryDeadline, current <= deadline, current > now.monotonic { return [] }
        expiryDeadline = deadline
        return [.schedule(.tokenExpiry, at: deadline)]
    }

    // MARK: Slow consumers

    /// The socket's writability changed.
    mutating func writabilityChanged(isWritable: Bool, now: Now) -> [Action] {
        if isWritable {
            bytesWhileUnwritable = 0
            guard unwritable else { return [] }
            unwritable = false
            return [.cancel(.slowConsumer)]
        }
        guard !unwritable else { return [] }
        unwritable = true
        return [.schedule(.slowConsumer, at: now.monotonic &+ slowConsumerGrace)]
    }

    /// `bytes` were queued while the socket was unwritable; true when that puts the consumer
    /// past the hard cap (close it now).
    mutating func queuedWhileUnwritable(_ bytes: Int) -> Bool {
        bytesWhileUnwritable += bytes
        return bytesWhileUnwritable > slowConsumerHardCap
    }
}
