/// The end of every bench run: waits until what was sent has arrived, nothing new arrived
/// for the drain timeout, or the run's hard deadline.
enum Drain {
    /// How often the counters are read.
    static let pollInterval = Duration.milliseconds(10)

    /// Reads `read` every ``pollInterval`` until `isComplete` holds for it, `progress` (a count
    /// that grows with every arrival) has not grown for `timeout`, or `deadline`; returns the last reading.
    static func wait<Snapshot: Sendable>(
        timeout: Duration,
        deadline: ContinuousClock.Instant,
        read: () async throws -> Snapshot,
        progress: (Snapshot) -> Int,
        isComplete: (Snapshot) -> Bool
    ) async throws -> Snapshot {
        let clock = ContinuousClock()
        var snapshot = try await read()
        var lastProgress = clock.now
        var lastCount = progress(snapshot)
        while !isComplete(snapshot) {
            let now = clock.now
            if now >= deadline || lastProgress.duration(to: now) >= timeout { break }
            try await Task.sleep(for: self.pollInterval)
            snapshot = try await read()
            let count = progress(snapshot)
            if count > lastCount {
                lastCount = count
                lastProgress = clock.now
            }
        }
        return snapshot
    }
}
