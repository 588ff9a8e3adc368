import Synchronization

/// Everything the soak's tasks count, behind one lock (a few hundred updates a second at most).
final class SoakStats: Sendable {
    struct State: Sendable {
        var unexpected: [String: Int] = [:]
        var expected: [String: Int] = [:]
        /// The first unexpected errors in full, to explain them.
        var unexpectedSamples: [String] = []
        var published = 0
        var acceptedPerChannel: [Int]
        var refused = 0
        var received = 0
        /// Broadcasts with a seq as they arrive (``received`` counts ended subscriptions).
        var delivered = 0
        var repeated = 0
        var skipped: Int64 = 0
        var tailLost: Int64 = 0
        var subscriptions = 0
        var tailChecked = 0
        var baseSeq: [Int64?]
        var connects = 0
        var joins = 0
        var leaves = 0
        var presenceUpdates = 0
        var tokenRefreshes = 0
        var reloads = 0
        var rss: [SoakResult.RSSSample] = []
        var openConnections = 0
    }

    /// The most unexpected errors kept in full.
    static let maxSamples = 20

    let state: Mutex<State>
    /// Told of each unexpected error as it happens (the first ``maxSamples`` in full).
    private let report: @Sendable (String) -> Void

    init(channels: Int, report: @escaping @Sendable (String) -> Void = { _ in }) {
        self.state = Mutex(State(acceptedPerChannel: Array(repeating: 0, count: channels), baseSeq: Array(repeating: nil, count: channels)))
        self.report = report
    }

    /// Counts an error the soak did not provoke: `kind` groups it, `detail` explains it.
    func unexpected(_ kind: String, _ detail: String) {
        let sample = "\(kind): \(detail)"
        let kept = self.state.withLock { state in
            state.unexpected[kind, default: 0] += 1
            guard state.unexpectedSamples.count < Self.maxSamples else { return false }
            state.unexpectedSamples.append(sample)
            return true
        }
        if kept { self.report(sample) }
    }

    /// Counts an error the soak provoked on purpose.
    func expected(_ kind: String) {
        self.state.withLock { $0.expected[kind, default: 0] += 1 }
    }

    func update(_ body: (inout State) -> Void) {
        self.state.withLock { body(&$0) }
    }

    var snapshot: State { self.state.withLock { $0 } }
}

/// Where the run is: publishing, draining (publishers done; subscribers wait for the channels'
/// last messages), or done.
final class SoakControl: Sendable {
    enum Phase: Sendable, Equatable {
        case running
        /// The load has stopped: each channel's last seq, and until when to wait for it.
        case draining(finalSeq: [Int64], until: ContinuousClock.Instant)
        /// Stop now.
        case done
    }

    private let state = Mutex(Phase.running)

    var phase: Phase { self.state.withLock { $0 } }

    func set(_ phase: Phase) {
        self.state.withLock { $0 = phase }
    }
}

/// Counts the long-lived subscribers that have joined (or failed to), so the load starts
/// after all of them.
final class SoakGate: Sendable {
    private let state = Mutex<(joined: Int, failure: String?)>((0, nil))

    func joined() {
        self.state.withLock { $0.joined += 1 }
    }

    func failed(_ reason: String) {
        self.state.withLock { state in
            if state.failure == nil { state.failure = reason }
        }
    }

    /// Waits (polling, bounded by `timeout`) until `count` have joined; throws the first failure.
    func wait(for count: Int, timeout: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let (joined, failure) = self.state.withLock { $0 }
            if let failure { throw BenchError(.joinFailed, failure) }
            if joined >= count { return }
            guard ContinuousClock.now < deadline else {
                throw BenchError(.timedOut, "only \(joined) of \(count) subscribers joined within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
