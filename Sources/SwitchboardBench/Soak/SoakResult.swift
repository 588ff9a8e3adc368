import Foundation

/// The outcome of a ``SoakBench`` run and its verdict against the issue's criteria: the
/// server's RSS flat after warm-up (the window's samples within ±10% of their mean), no
/// replayable message lost or repeated, no unexpected error.
public struct SoakResult: BenchReport, Sendable, Codable {
    /// One RSS reading.
    public struct RSSSample: Sendable, Codable, Equatable {
        /// Seconds since the load started.
        public var seconds: Double
        /// `VmRSS` in bytes.
        public var bytes: Int
    }

    /// The allowed deviation of any RSS sample in the window from the window's mean.
    public static let rssTolerance = 0.10
    /// The window the RSS criterion looks at: the last 10 minutes (of runs of 20 minutes or
    /// more; shorter runs use their second half).
    public static let rssWindow = 600.0

    /// How long the load ran.
    public var durationSeconds: Double
    /// Replay channels.
    public var channels: Int
    /// Replayable messages the publishers sent.
    public var published: Int
    /// Of those, acknowledged with `ok`.
    public var accepted: Int
    /// Answered with an error.
    public var refused: Int
    /// Replayable messages the subscriptions received.
    public var received: Int
    /// Sequence numbers skipped within a subscription, plus messages missing at the end of the
    /// subscriptions alive until the end (their last seq against the channel's).
    public var lost: Int
    /// Messages a subscription received again (a seq not above the last one).
    public var repeated: Int
    /// Subscriptions whose messages were checked, and of those, the ones alive at the end whose
    /// last message was checked against the channel's last seq.
    public var subscriptions: Int
    public var tailChecked: Int
    /// Connections opened.
    public var connects: Int
    /// Joins answered `ok`.
    public var joins: Int
    /// Leaves answered `ok`.
    public var leaves: Int
    /// Presence tracks and untracks sent.
    public var presenceUpdates: Int
    /// `access_token` pushes sent.
    public var tokenRefreshes: Int
    /// Rule switches confirmed through `GET /admin/rules`.
    public var reloads: Int
    /// Errors the soak did not provoke, by kind.
    public var unexpectedErrors: [String: Int]
    /// Errors the soak provoked on purpose, by kind.
    public var expectedErrors: [String: Int]
    /// The first unexpected errors in full.
    public var unexpectedSamples: [String]
    /// The server's RSS over the run.
    public var rss: [RSSSample]
    /// The RSS window: its start (seconds), mean, and the largest deviation of a sample from the mean.
    public var rssWindowStart: Double?
    public var rssWindowMean: Double?
    public var rssWindowDeviation: Double?
    /// Why the run failed; empty when it passed.
    public var failures: [String]

    /// Whether the run met every criterion.
    public var passed: Bool { self.failures.isEmpty }

    init(state: SoakStats.State, durationSeconds: Double, channels: Int, measuresRSS: Bool, setupFailures: [String]) {
        self.durationSeconds = durationSeconds
        self.channels = channels
        self.published = state.published
        self.accepted = state.acceptedPerChannel.reduce(0, +)
        self.refused = state.refused
        self.received = state.received
        self.lost = Int(clamping: state.skipped + state.tailLost)
        self.repeated = state.repeated
        self.subscriptions = state.subscriptions
        self.tailChecked = state.tailChecked
        self.connects = state.connects
        self.joins = state.joins
        self.leaves = state.leaves
        self.presenceUpdates = state.presenceUpdates
        self.tokenRefreshes = state.tokenRefreshes
        self.reloads = state.reloads
        self.unexpectedErrors = state.unexpected
        self.expectedErrors = state.expected
        self.unexpectedSamples = state.unexpectedSamples
        self.rss = state.rss
        var failures = setupFailures
        if measuresRSS {
            let window = durationSeconds >= 2 * Self.rssWindow ? Self.rssWindow : durationSeconds / 2
            let start = durationSeconds - window
            let samples = state.rss.filter { $0.seconds >= start }.map { Double($0.bytes) }
            if samples.isEmpty {
                failures.append("no RSS samples in the window")
            } else {
                let mean = samples.reduce(0, +) / Double(samples.count)
                let deviation = samples.map { abs($0 - mean) / mean }.max() ?? 0
                self.rssWindowStart = start
                self.rssWindowMean = mean
                self.rssWindowDeviation = deviation
                if deviation > Self.rssTolerance {
                    failures.append(String(format: "RSS moved %.1f%% from its mean in the window (allowed ±%.0f%%)", deviation * 100, Self.rssTolerance * 100))
                }
            }
        } else {
            failures.append("no --server-pid: RSS not measured")
        }
        if self.lost > 0 { failures.append("\(self.lost) replayable messages lost") }
        if self.repeated > 0 { failures.append("\(self.repeated) replayable messages repeated") }
        let unexpected = state.unexpected.values.reduce(0, +)
        if unexpected > 0 { failures.append("\(unexpected) unexpected errors") }
        if self.accepted == 0 { failures.append("nothing was published") }
        self.failures = failures
    }

    /// The one-line verdict.
    public func summaryLine() -> String {
        var line = "soak \(Self.clock(self.durationSeconds)): "
        line += self.passed ? "PASS" : "FAIL (\(self.failures.joined(separator: "; ")))"
        line += " | replayable sent=\(self.accepted) received=\(self.received) lost=\(self.lost) repeated=\(self.repeated)"
        line += " | unexpected errors=\(self.unexpectedErrors.values.reduce(0, +)) expected=\(self.expectedErrors.values.reduce(0, +))"
        if let mean = self.rssWindowMean, let deviation = self.rssWindowDeviation {
            line += String(format: " | RSS window mean=%@ max deviation=%.1f%%", BenchFormat.megabytes(Int(mean)), deviation * 100)
        }
        return line
    }

    /// The full report: RSS over time (one row per `rowSeconds`), errors by kind, messages,
    /// activity, and the verdict last.
    public func report(rowSeconds: Double) -> String {
        var lines: [String] = []
        lines.append("RSS over time (rows of \(Self.clock(rowSeconds)); \(self.rss.count) samples):")
        lines.append("  elapsed      min      max     last")
        // Row k holds the samples in (k·row, (k+1)·row], the first also the one at 0, the last
        // also any taken just after the end.
        let lastRow = max(0, Int(((self.durationSeconds - 0.001) / rowSeconds).rounded(.down)))
        let rows = Dictionary(grouping: self.rss) { sample in
            min(lastRow, max(0, Int(((sample.seconds - 0.001) / rowSeconds).rounded(.down))))
        }
        for row in rows.keys.sorted() {
            let bytes = rows[row, default: []].map(\.bytes)
            if let low = bytes.min(), let high = bytes.max(), let last = bytes.last {
                lines.append(
                    "  " + Self.pad(Self.clock(min(self.durationSeconds, Double(row + 1) * rowSeconds)), 7)
                        + Self.pad(BenchFormat.megabytes(low), 9) + Self.pad(BenchFormat.megabytes(high), 9)
                        + Self.pad(BenchFormat.megabytes(last), 9))
            }
        }
        if let start = self.rssWindowStart, let mean = self.rssWindowMean, let deviation = self.rssWindowDeviation {
            lines.append(
                String(
                    format: "RSS window (from %@): mean %@, largest deviation %.1f%% (allowed ±%.0f%%)", Self.clock(start),
                    BenchFormat.megabytes(Int(mean)), deviation * 100, Self.rssTolerance * 100))
        }
        lines.append("errors, unexpected: " + Self.kinds(self.unexpectedErrors))
        for sample in self.unexpectedSamples {
            lines.append("  \(sample)")
        }
        lines.append("errors, expected: " + Self.kinds(self.expectedErrors))
        lines.append(
            "replayable messages: sent \(self.published), accepted \(self.accepted), refused \(self.refused); received \(self.received)"
                + " over \(self.subscriptions) subscriptions (\(self.tailChecked) checked to their channel's last seq); lost \(self.lost), repeated \(self.repeated)")
        lines.append(
            "activity: \(self.connects) connects, \(self.joins) joins, \(self.leaves) leaves, \(self.presenceUpdates) presence updates,"
                + " \(self.tokenRefreshes) token refreshes, \(self.reloads) rules reloads confirmed")
        lines.append(self.summaryLine())
        return lines.joined(separator: "\n")
    }

    static func kinds(_ counts: [String: Int]) -> String {
        counts.isEmpty ? "none" : counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    /// `1h02m`, `35m00s`, `12s`.
    static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        if total >= 3600 { return String(format: "%dh%02dm", total / 3600, total % 3600 / 60) }
        if total >= 60 { return String(format: "%dm%02ds", total / 60, total % 60) }
        return "\(total)s"
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}
