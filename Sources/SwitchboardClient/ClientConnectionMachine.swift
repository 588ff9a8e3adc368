/// The client's timing decisions as a pure value: when the next heartbeat is due and whether the
/// connection is dead, how long to wait before reconnecting, and which buffered messages have
/// expired. It mutates only its own fields, takes the time (a `Duration` since the client was
/// made, see ``ClientClock``) and any randomness as arguments, and answers with actions that
/// ``SwitchboardClient`` performs. Tests drive it directly, without sockets or sleeps.
struct ClientConnectionMachine: Sendable {
    /// What the heartbeat timer does now.
    enum HeartbeatAction: Sendable, Equatable {
        /// Not due yet: sleep until `until` and ask again.
        case wait(until: Duration)
        /// Send a heartbeat now, then sleep until `nextDue` and ask again.
        case send(nextDue: Duration)
        /// The previous heartbeat is still unanswered: close the connection and reconnect.
        case connectionDead(reason: String)
        /// No connection: the heartbeat timer stops.
        case notConnected
    }

    /// What to do once a connection (or an attempt to make one) has ended.
    enum ReconnectAction: Sendable, Equatable {
        /// Connect again once the time reaches `at` (`after` from now), attempt `attempt`.
        case reconnect(after: Duration, at: Duration, attempt: Int)
        /// The client is closed: stop.
        case stop
    }

    private struct Heartbeat {
        /// When the next heartbeat is due.
        var due: Duration
        /// A heartbeat was sent and not yet answered.
        var pending = false
    }

    let heartbeatInterval: Duration
    let backoff: Backoff
    let bufferedLifetime: Duration

    /// Reconnect attempts since the last successful connection (the next delay's exponent).
    private(set) var attempt = 0
    /// Heartbeat replies received, over every connection.
    private(set) var heartbeatsAnswered = 0
    private(set) var isClosed = false
    /// Set while connected.
    private var heartbeat: Heartbeat?
    /// Deadlines of the messages waiting in the buffer, by outgoing id.
    private var waiting: [UInt64: Duration] = [:]
    /// Deadlines of the messages sent and not yet acknowledged: they do not expire while the
    /// connection lasts, and wait again with their first deadline when it is lost.
    private var sending: [UInt64: Duration] = [:]

    init(heartbeatInterval: Duration, backoff: Backoff, bufferedLifetime: Duration) {
        self.heartbeatInterval = heartbeatInterval
        self.backoff = backoff
        self.bufferedLifetime = bufferedLifetime
    }

    /// The machine for `configuration`'s heartbeat, backoff and buffered lifetime.
    init(_ configuration: ClientConfiguration) {
        self.init(
            heartbeatInterval: configuration.heartbeatInterval, backoff: configuration.backoff,
            bufferedLifetime: configuration.bufferedLifetime)
    }

    // MARK: Connection and heartbeat

    /// Whether a connection is open.
    var isConnected: Bool { heartbeat != nil }

    /// When the next heartbeat is due, while connected.
    var nextHeartbeat: Duration? { heartbeat?.due }

    /// A connection opened at `now`: the backoff starts again, the first heartbeat is due one
    /// interval from now.
    mutating func connected(at now: Duration) {
        attempt = 0
        heartbeat = Heartbeat(due: now + heartbeatInterval)
    }

    /// The heartbeat timer asks what to do at `now`.
    mutating func heartbeatDue(at now: Duration) -> HeartbeatAction {
        guard var current = heartbeat else { return .notConnected }
        guard now >= current.due else { return .wait(until: current.due) }
        if current.pending {
            return .connectionDead(reason: "no heartbeat reply within \(heartbeatInterval)")
        }
        current.pending = true
        current.due = now + heartbeatInterval
        heartbeat = current
        return .send(nextDue: current.due)
    }

    /// The server answered the heartbeat.
    mutating func heartbeatReplied() {
        guard heartbeat?.pending == true else { return }
        heartbeat?.pending = false
        heartbeatsAnswered += 1
    }

    /// The connection (or the attempt to make one) ended at `now`; `random` in 0...1 chooses
    /// the backoff's jitter. Sent messages not yet acknowledged wait in the buffer again.
    mutating func disconnected(at now: Duration, random: Double) -> ReconnectAction {
        heartbeat = nil
        waiting.merge(sending) { first, _ in first }
        sending.removeAll()
        guard !isClosed else { return .stop }
        let delay = backoff.delay(attempt: attempt, random: random)
        defer { attempt += 1 }
        return .reconnect(after: delay, at: now + delay, attempt: attempt)
    }

    /// The client is closed: no heartbeat, no reconnect, nothing buffered.
    mutating func close() {
        isClosed = true
        heartbeat = nil
        waiting.removeAll()
        sending.removeAll()
    }

    // MARK: Outbound buffer

    /// Messages buffered or sent and not yet acknowledged.
    var outstanding: Int { waiting.count + sending.count }

    /// The earliest deadline of a message waiting in the buffer, if any waits.
    var nextExpiry: Duration? { waiting.values.min() }

    /// Message `id` entered the buffer at `now`; returns its deadline.
    @discardableResult
    mutating func buffered(_ id: UInt64, at now: Duration) -> Duration {
        let deadline = now + bufferedLifetime
        waiting[id] = deadline
        return deadline
    }

    /// Message `id` was written to the connection: it no longer expires unless the connection
    /// is lost before it is acknowledged.
    mutating func sent(_ id: UInt64) {
        if let deadline = waiting.removeValue(forKey: id) { sending[id] = deadline }
    }

    /// Message `id` was acknowledged, refused or dropped: forgotten.
    mutating func finished(_ id: UInt64) {
        waiting[id] = nil
        sending[id] = nil
    }

    /// The waiting messages whose deadline has passed at `now`, oldest deadline first; they are
    /// forgotten (their sends fail).
    mutating func expire(at now: Duration) -> [UInt64] {
        let overdue = waiting.filter { $0.value <= now }.sorted { ($0.value, $0.key) < ($1.value, $1.key) }.map(\.key)
        for id in overdue { waiting[id] = nil }
        return overdue
    }
}
