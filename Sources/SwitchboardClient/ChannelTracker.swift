import SwitchboardCore

/// Tracks one channel's position and the ids it has delivered: what makes delivery exactly
/// once across replays and retries. A pure value; the client keeps one per channel and passes
/// the time (from its configured clock) to ``accept(_:at:)``.
struct ChannelTracker: Sendable {
    /// The epoch and last `seq` seen (from messages and join replies).
    private(set) var epoch: String?
    private(set) var seq: UInt64 = 0
    private var seen: RecentIDs

    /// Remembers delivered ids for `idLifetime`, at most `idCapacity` of them.
    init(idLifetime: Duration, idCapacity: Int) {
        seen = RecentIDs(lifetimeMilliseconds: Self.milliseconds(idLifetime), capacity: idCapacity)
    }

    /// The replay to ask for on a rejoin: everything after the last message seen.
    var resumeFrom: (seq: UInt64, epoch: String)? {
        epoch.map { (seq, $0) }
    }

    /// Takes the channel's position from a join reply: kept when the client already has a
    /// position in the same epoch and the join recovered the gap, otherwise replaced.
    mutating func joined(epoch: String?, seq: UInt64?, recovered: Bool?) {
        guard let epoch, let seq else { return }
        if recovered == true, self.epoch == epoch { return }
        self.epoch = epoch
        self.seq = seq
    }

    /// Whether to deliver `message`, received at `now` (the client's time since it was made):
    /// false for an id already delivered within the id lifetime. Advances the position.
    mutating func accept(_ message: ChannelMessage, at now: Duration) -> Bool {
        if let id = message.id, !seen.insert(id, on: "", at: Self.milliseconds(now)) { return false }
        if let seq = message.seq, let epoch = message.epoch {
            if epoch != self.epoch {
                self.epoch = epoch
                self.seq = seq
            } else {
                self.seq = max(self.seq, seq)
            }
        }
        return true
    }

    /// Whole milliseconds in `duration` (rounded down).
    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (millis, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        return millis + attoseconds / 1_000_000_000_000_000
    }
}
