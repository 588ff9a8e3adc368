import NIOCore

/// Delivery counters and the latency histogram of one event loop: what subscriber
/// connections of ``BenchConnectionHandler`` count, and the disconnects and server errors of
/// every bench connection.
///
/// Touched only on its event loop: handlers on that loop record into it directly, everything
/// else goes through ``PerLoop`` which hops onto the loop. No locks.
final class LoopStats: SnapshotProviding {
    var latency = LatencyHistogram()
    var counters = Snapshot()

    /// Counts one delivery sent at `sentAt` (uptime ns on this process's monotonic clock).
    @inline(__always)
    func record(sentAt: UInt64) {
        let now = NIODeadline.now().uptimeNanoseconds
        self.counters.delivered &+= 1
        self.counters.lastDeliveryNanos = now
        self.latency.record(sentAt: sentAt, now: now)
    }

    /// The counters (a copy of them is the loop's snapshot; the histogram is read apart).
    struct Snapshot: LoopSnapshot {
        var delivered = 0
        var lastDeliveryNanos: UInt64 = 0
        var disconnected = 0
        var channelErrors = 0
        var lastServerMessage: String?

        mutating func add(_ other: Snapshot) {
            self.delivered += other.delivered
            self.lastDeliveryNanos = max(self.lastDeliveryNanos, other.lastDeliveryNanos)
            self.disconnected += other.disconnected
            self.channelErrors += other.channelErrors
            self.lastServerMessage = other.lastServerMessage ?? self.lastServerMessage
        }
    }

    var snapshot: Snapshot { self.counters }
}

/// One ``LoopStats`` per event loop of a group.
typealias LoopStatsRegistry = PerLoop<LoopStats>

extension PerLoop where Value == LoopStats {
    /// Creates stats on every loop of `group`.
    static func make(for group: any EventLoopGroup) async throws -> LoopStatsRegistry {
        try await Self.make(for: group) { LoopStats() }
    }

    /// The stats of `loop`; call on `loop`.
    func stats(on loop: any EventLoop) -> LoopStats? {
        self.value(on: loop)
    }

    /// The delivery latency histograms merged over all loops.
    func mergedHistogram() async throws -> LatencyHistogram {
        try await self.mergedHistogram { $0.latency }
    }
}
