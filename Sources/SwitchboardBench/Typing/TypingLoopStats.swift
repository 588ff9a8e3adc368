import NIOCore

/// What the connections on one event loop counted: typing updates and comments delivered to
/// subscribers, with the comments' latency, and the sends the server refused to typists and
/// the commenter. Touched only on its loop (see ``PerLoop``).
final class TypingLoopStats: SnapshotProviding {
    var commentLatency = LatencyHistogram()
    var counters = Snapshot()

    /// Records one comment sent at `sentAt` (uptime ns).
    func recordComment(sentAt: UInt64, now: UInt64) {
        self.counters.commentsDelivered += 1
        self.commentLatency.record(sentAt: sentAt, now: now)
    }

    /// The counters (a copy of them is the loop's snapshot; the histogram is read apart).
    struct Snapshot: LoopSnapshot {
        var typingDelivered = 0
        var lastTypingNanos: UInt64 = 0
        /// (subscriber, typist) pairs whose final update arrived.
        var finalStates = 0
        /// Typing updates that arrived after a later one from the same typist.
        var outOfOrder = 0
        /// The most updates one subscriber got from one typist.
        var maxPerPair = 0
        /// Typing updates naming a typist outside the run.
        var unknownTypist = 0
        var commentsDelivered = 0
        /// `user:typing` sends the server refused (an error reply, or a rate-limit `system` message).
        var typingRefused = 0
        /// `comment:added` sends the server refused.
        var commentsRefused = 0
        /// The reason of the last refusal.
        var lastRefusal: String?

        mutating func add(_ other: Snapshot) {
            self.typingDelivered += other.typingDelivered
            self.lastTypingNanos = max(self.lastTypingNanos, other.lastTypingNanos)
            self.finalStates += other.finalStates
            self.outOfOrder += other.outOfOrder
            self.maxPerPair = max(self.maxPerPair, other.maxPerPair)
            self.unknownTypist += other.unknownTypist
            self.commentsDelivered += other.commentsDelivered
            self.typingRefused += other.typingRefused
            self.commentsRefused += other.commentsRefused
            self.lastRefusal = other.lastRefusal ?? self.lastRefusal
        }
    }

    var snapshot: Snapshot { self.counters }
}
