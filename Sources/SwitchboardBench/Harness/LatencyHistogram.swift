import Histogram

/// A latency histogram in microseconds (1 µs to one hour, three significant digits) with the
/// count of samples outside that range; every bench records its latencies in one per event loop.
struct LatencyHistogram: Sendable {
    /// Latencies above this (one hour, in µs) are counted in `outOfRange` only.
    static let highestTrackableMicros: UInt64 = 3_600_000_000

    private(set) var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1,
        highestTrackableValue: LatencyHistogram.highestTrackableMicros,
        numberOfSignificantValueDigits: .three
    )
    /// Samples above ``highestTrackableMicros``.
    private(set) var outOfRange = 0

    /// Records the time from `sentAt` to `now` (uptime ns); a `now` before `sentAt` counts as 0.
    @inline(__always)
    mutating func record(sentAt: UInt64, now: UInt64) {
        self.record(micros: now > sentAt ? (now - sentAt) / 1000 : 0)
    }

    /// Records one latency in µs.
    @inline(__always)
    mutating func record(micros: UInt64) {
        if !self.histogram.record(micros) {
            self.outOfRange &+= 1
        }
    }

    /// Adds `other`'s samples.
    mutating func add(_ other: LatencyHistogram) {
        self.histogram.add(other.histogram)
        self.outOfRange += other.outOfRange
    }

    /// Samples recorded in range.
    var count: UInt64 { self.histogram.totalCount }

    /// p50, p99, p99.9 and max; zeros when empty.
    var latency: BenchLatency {
        guard self.histogram.totalCount > 0 else { return BenchLatency(p50: 0, p99: 0, p999: 0, max: 0) }
        return BenchLatency(
            p50: Int(clamping: self.histogram.valueAtPercentile(50)),
            p99: Int(clamping: self.histogram.valueAtPercentile(99)),
            p999: Int(clamping: self.histogram.valueAtPercentile(99.9)),
            max: Int(clamping: self.histogram.max)
        )
    }
}

/// Latency percentiles in microseconds (send → receive, same process clock).
public struct BenchLatency: Sendable, Codable, Equatable {
    /// The median.
    public var p50: Int
    /// The 99th percentile.
    public var p99: Int
    /// The 99.9th percentile.
    public var p999: Int
    /// The largest latency seen.
    public var max: Int

    /// Creates latency figures (µs).
    public init(p50: Int, p99: Int, p999: Int, max: Int) {
        self.p50 = p50
        self.p99 = p99
        self.p999 = p999
        self.max = max
    }

    /// `p50=812µs p99=3.1ms p999=4.0ms max=5.2ms`.
    public var summary: String {
        "p50=\(BenchFormat.micros(self.p50)) p99=\(BenchFormat.micros(self.p99))"
            + " p999=\(BenchFormat.micros(self.p999)) max=\(BenchFormat.micros(self.max))"
    }
}
