import Histogram
import NIOCore

/// What the connections on one event loop counted: typing updates and comments delivered to
/// subscribers, with the comments' latency, and the sends the server refused to typists and
/// the commenter. Touched only on its loop (see ``PerLoop``).
final class TypingLoopStats {
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
    var commentLatency = Histogram<UInt64>(
        lowestDiscernibleValue: 1,
        highestTrackableValue: LoopStats.highestTrackableMicros,
        numberOfSignificantValueDigits: .three
    )
    var commentsOutOfRange = 0
    /// `user:typing` sends the server refused (an error reply, or a rate-limit `system` message).
    var typingRefused = 0
    /// `comment:added` sends the server refused.
    var commentsRefused = 0
    /// The reason of the last refusal.
    var lastRefusal: String?

    /// Records one comment sent at `sentAt` (uptime ns).
    func recordComment(sentAt: UInt64, now: UInt64) {
        self.commentsDelivered += 1
        let micros = now > sentAt ? (now - sentAt) / 1000 : 0
        if !self.commentLatency.record(micros) {
            self.commentsOutOfRange += 1
        }
    }

    /// The counters (not the histogram).
    struct Snapshot: Sendable {
        var typingDelivered = 0
        var lastTypingNanos: UInt64 = 0
        var finalStates = 0
        var outOfOrder = 0
        var maxPerPair = 0
        var unknownTypist = 0
        var commentsDelivered = 0
        var commentsOutOfRange = 0
        var typingRefused = 0
        var commentsRefused = 0
        var lastRefusal: String?

        mutating func add(_ other: Snapshot) {
            self.typingDelivered += other.typingDelivered
            self.lastTypingNanos = max(self.lastTypingNanos, other.lastTypingNanos)
            self.finalStates += other.finalStates
            self.outOfOrder += other.outOfOrder
            self.maxPerPair = max(self.maxPerPair, other.maxPerPair)
            self.unknownTypist += other.unknownTypist
            self.commentsDelivered += other.commentsDelivered
            self.commentsOutOfRange += other.commentsOutOfRange
            self.typingRefused += other.typingRefused
            self.commentsRefused += other.commentsRefused
            self.lastRefusal = other.lastRefusal ?? self.lastRefusal
        }
    }

    var snapshot: Snapshot {
        Snapshot(
            typingDelivered: self.typingDelivered, lastTypingNanos: self.lastTypingNanos, finalStates: self.finalStates,
            outOfOrder: self.outOfOrder, maxPerPair: self.maxPerPair, unknownTypist: self.unknownTypist,
            commentsDelivered: self.commentsDelivered, commentsOutOfRange: self.commentsOutOfRange,
            typingRefused: self.typingRefused, commentsRefused: self.commentsRefused, lastRefusal: self.lastRefusal)
    }
}

extension PerLoop where Value == TypingLoopStats {
    /// The counters summed over all loops.
    func snapshot() async throws -> TypingLoopStats.Snapshot {
        var total = TypingLoopStats.Snapshot()
        for part in try await self.collect({ $0.snapshot }) {
            total.add(part)
        }
        return total
    }

    /// The comment latency histograms merged over all loops.
    func mergedCommentLatency() async throws -> Histogram<UInt64> {
        var merged = Histogram<UInt64>(
            lowestDiscernibleValue: 1,
            highestTrackableValue: LoopStats.highestTrackableMicros,
            numberOfSignificantValueDigits: .three
        )
        for histogram in try await self.collect({ $0.commentLatency }) {
            merged.add(histogram)
        }
        return merged
    }
}
