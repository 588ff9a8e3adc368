import Histogram
import NIOCore

/// Delivery counters and the latency histogram of one event loop.
///
/// Touched only on its event loop: subscriber handlers on that loop record into it directly,
/// everything else goes through ``LoopStatsRegistry`` which hops onto the loop. No locks.
final class LoopStats {
    /// Latencies above this (one hour, in µs) are counted in `outOfRange` only.
    static let highestTrackableMicros: UInt64 = 3_600_000_000

    var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1,
        highestTrackableValue: LoopStats.highestTrackableMicros,
        numberOfSignificantValueDigits: .three
    )
    var delivered = 0
    var lastDeliveryNanos: UInt64 = 0
    var outOfRange = 0
    var disconnected = 0
    var channelErrors = 0
    var lastServerMessage: String?

    /// Counts one delivery sent at `sentAt` (uptime ns on this process's monotonic clock).
    @inline(__always)
    func record(sentAt: UInt64) {
        let now = NIODeadline.now().uptimeNanoseconds
        self.delivered &+= 1
        self.lastDeliveryNanos = now
        let micros = now > sentAt ? (now - sentAt) / 1000 : 0
        if !self.histogram.record(micros) {
            self.outOfRange &+= 1
        }
    }

    /// A copy of the counters (not the histogram).
    struct Snapshot: Sendable {
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

    var snapshot: Snapshot {
        Snapshot(
            delivered: self.delivered,
            lastDeliveryNanos: self.lastDeliveryNanos,
            disconnected: self.disconnected,
            channelErrors: self.channelErrors,
            lastServerMessage: self.lastServerMessage
        )
    }
}

/// One ``LoopStats`` per event loop of a group, reachable from any thread by hopping.
struct LoopStatsRegistry: Sendable {
    private let byLoop: [ObjectIdentifier: NIOLoopBound<LoopStats>]

    private init(byLoop: [ObjectIdentifier: NIOLoopBound<LoopStats>]) {
        self.byLoop = byLoop
    }

    /// The most event loops a group may have here (a bound for the enumeration).
    static let maxLoops = 4096

    /// Creates stats on every loop of `group`.
    static func make(for group: any EventLoopGroup) async throws -> LoopStatsRegistry {
        var byLoop: [ObjectIdentifier: NIOLoopBound<LoopStats>] = [:]
        for loop in group.makeIterator().prefix(Self.maxLoops) {
            let bound = try await loop.submit { NIOLoopBound(LoopStats(), eventLoop: loop) }.get()
            byLoop[ObjectIdentifier(loop)] = bound
        }
        guard !byLoop.isEmpty else {
            throw BenchError(.unsupportedEventLoopGroup, "the event loop group does not list its event loops")
        }
        return LoopStatsRegistry(byLoop: byLoop)
    }

    /// The stats of `loop`; call on `loop`.
    func stats(on loop: any EventLoop) -> LoopStats? {
        self.byLoop[ObjectIdentifier(loop)]?.value
    }

    /// The counters summed over all loops.
    func snapshot() async throws -> LoopStats.Snapshot {
        var total = LoopStats.Snapshot()
        for bound in self.byLoop.values {
            total.add(try await bound.eventLoop.submit { bound.value.snapshot }.get())
        }
        return total
    }

    /// The latency histograms merged over all loops, and the count of out-of-range samples.
    func mergedHistogram() async throws -> (Histogram<UInt64>, Int) {
        var merged = Histogram<UInt64>(
            lowestDiscernibleValue: 1,
            highestTrackableValue: LoopStats.highestTrackableMicros,
            numberOfSignificantValueDigits: .three
        )
        var outOfRange = 0
        for bound in self.byLoop.values {
            let (histogram, skipped) = try await bound.eventLoop.submit {
                (bound.value.histogram, bound.value.outOfRange)
            }.get()
            merged.add(histogram)
            outOfRange += skipped
        }
        return (merged, outOfRange)
    }
}
