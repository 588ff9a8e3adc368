import NIOCore

/// What the connections on one event loop counted in a ``PublishBench`` run: acknowledgements
/// and refusals at the publishers, deliveries at the subscribers, and their latencies.
/// Touched only on its loop (see ``PerLoop``).
final class PublishLoopStats: SnapshotProviding {
    var ackLatency = LatencyHistogram()
    var deliveryLatency = LatencyHistogram()
    var counters = Snapshot()

    /// The counters (a copy of them is the loop's snapshot; the histograms are read apart).
    struct Snapshot: LoopSnapshot {
        var acked = 0
        var refused = 0
        var lastRefusal: String?
        var lastAckNanos: UInt64 = 0
        var delivered = 0
        var lastDeliveryNanos: UInt64 = 0

        mutating func add(_ other: Snapshot) {
            self.acked += other.acked
            self.refused += other.refused
            self.lastRefusal = other.lastRefusal ?? self.lastRefusal
            self.lastAckNanos = max(self.lastAckNanos, other.lastAckNanos)
            self.delivered += other.delivered
            self.lastDeliveryNanos = max(self.lastDeliveryNanos, other.lastDeliveryNanos)
        }
    }

    var snapshot: Snapshot { self.counters }
}
