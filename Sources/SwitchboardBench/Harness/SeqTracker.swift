/// Checks one continuous subscription's replayable messages by `meta.seq`: each should be one
/// more than the last, starting after the `seq` of the join reply. Counts what was received,
/// repeated (a seq at or below the last one) and skipped (the numbers a jump passed over).
struct SeqTracker: Sendable, Equatable {
    /// The channel's seq when the subscription started (the join reply's); nil before the reply.
    private(set) var joinSeq: Int64?
    /// The highest seq received (or the join seq).
    private(set) var lastSeq: Int64?
    /// Messages received with a seq.
    private(set) var received = 0
    /// Messages whose seq was not above the last one.
    private(set) var repeated = 0
    /// Sequence numbers skipped by jumps.
    private(set) var skipped: Int64 = 0

    /// The join reply's seq.
    mutating func joined(seq: Int64) {
        self.joinSeq = seq
        self.lastSeq = seq
    }

    /// One message with `seq`; returns false when it was repeated or came after a gap.
    @discardableResult
    mutating func receive(seq: Int64) -> Bool {
        self.received += 1
        guard let last = self.lastSeq else {
            // No join seq (should not happen): the first message is the baseline.
            self.lastSeq = seq
            return true
        }
        if seq <= last {
            self.repeated += 1
            return false
        }
        self.lastSeq = seq
        if seq == last + 1 { return true }
        self.skipped += seq - last - 1
        return false
    }

    /// Messages received once each.
    var distinct: Int { self.received - self.repeated }
}
