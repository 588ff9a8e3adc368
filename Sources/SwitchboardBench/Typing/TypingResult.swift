import Foundation

/// The outcome of one ``TypingBench`` run. Typing figures are counted at the subscribers only
/// (typists and the commenter receive the storm too, but do not count it).
public struct TypingResult: BenchReport, Sendable, Codable, Equatable {
    /// Whether the typists typed (false: the `--no-storm` baseline).
    public var storm: Bool
    /// Subscriber connections (S).
    public var subscribers: Int
    /// Typist connections (T).
    public var typists: Int
    /// `user:typing` per second per typist (R).
    public var typingRate: Double
    /// The requested storm length in seconds (D).
    public var durationSeconds: Double
    /// `comment:added` per second (C).
    public var commentRate: Double

    /// `user:typing` messages the typists sent (0 without the storm).
    public var typingSent: Int
    /// Of those, how many the server refused.
    public var typingRefused: Int
    /// Typing updates the subscribers received, all together.
    public var typingDelivered: Int
    /// From the first typing send to the last typing delivery.
    public var typingSeconds: Double
    /// typingDelivered / typingSeconds: typing frames per second over all subscribers.
    public var typingFramesPerSecond: Double
    /// typingFramesPerSecond / subscribers.
    public var typingFramesPerSecondPerSubscriber: Double
    /// The most updates one subscriber got from one typist (without batching: every update
    /// the typist sent; with `keep = "latest"` at most one per window).
    public var typingMaxPerPair: Int
    /// (subscriber, typist) pairs whose final update arrived.
    public var finalStates: Int
    /// subscribers × typists when the storm ran, else 0.
    public var finalStatesExpected: Int
    /// Whether every subscriber got every typist's final update (true without the storm).
    public var allFinalStatesArrived: Bool
    /// Updates that arrived after a later one from the same typist.
    public var typingOutOfOrder: Int

    /// Comments the commenter sent.
    public var commentsSent: Int
    /// Of those, how many the server refused.
    public var commentsRefused: Int
    /// Deliveries expected: subscribers × (sent − refused).
    public var commentsExpected: Int
    /// Comment deliveries counted at the subscribers.
    public var commentsDelivered: Int
    /// commentsExpected − commentsDelivered (never negative).
    public var commentsLost: Int
    /// Comment latency percentiles in µs (send → receive, same process clock).
    public var commentLatencyMicros: BenchLatency

    /// Time to connect and join every connection.
    public var connectSeconds: Double
    /// Joined connections the server closed during the run.
    public var disconnected: Int
    /// `phx_close`, `phx_error` and `system` errors other than rate limits received during the run.
    public var channelErrors: Int
    /// The last such server message, if any.
    public var lastServerMessage: String?
    /// The reason the server gave for the last refused send, if any.
    public var lastRefusal: String?

    /// Creates a result; the bench fills this in.
    public init(
        storm: Bool, subscribers: Int, typists: Int, typingRate: Double, durationSeconds: Double, commentRate: Double,
        typingSent: Int, typingRefused: Int, typingDelivered: Int, typingSeconds: Double, typingMaxPerPair: Int,
        finalStates: Int, finalStatesExpected: Int, typingOutOfOrder: Int,
        commentsSent: Int, commentsRefused: Int, commentsDelivered: Int, commentLatencyMicros: BenchLatency,
        connectSeconds: Double, disconnected: Int = 0, channelErrors: Int = 0, lastServerMessage: String? = nil,
        lastRefusal: String? = nil
    ) {
        self.storm = storm
        self.subscribers = subscribers
        self.typists = typists
        self.typingRate = typingRate
        self.durationSeconds = durationSeconds
        self.commentRate = commentRate
        self.typingSent = typingSent
        self.typingRefused = typingRefused
        self.typingDelivered = typingDelivered
        self.typingSeconds = typingSeconds
        self.typingFramesPerSecond = typingSeconds > 0 ? Double(typingDelivered) / typingSeconds : 0
        self.typingFramesPerSecondPerSubscriber = subscribers > 0 ? self.typingFramesPerSecond / Double(subscribers) : 0
        self.typingMaxPerPair = typingMaxPerPair
        self.finalStates = finalStates
        self.finalStatesExpected = finalStatesExpected
        self.allFinalStatesArrived = finalStates >= finalStatesExpected
        self.typingOutOfOrder = typingOutOfOrder
        self.commentsSent = commentsSent
        self.commentsRefused = commentsRefused
        self.commentsExpected = subscribers * max(0, commentsSent - commentsRefused)
        self.commentsDelivered = commentsDelivered
        self.commentsLost = max(0, self.commentsExpected - commentsDelivered)
        self.commentLatencyMicros = commentLatencyMicros
        self.connectSeconds = connectSeconds
        self.disconnected = disconnected
        self.channelErrors = channelErrors
        self.lastServerMessage = lastServerMessage
        self.lastRefusal = lastRefusal
    }

    /// One human-readable line, e.g.
    /// `typing storm=on subs=20 typists=20 rate=20/s duration=5s | typing sent=2000 refused=0 delivered=20400
    /// frames/s=4.1k per_sub=204/s max/pair=51 final=400/400 | comments sent=25 refused=0 delivered=500/500
    /// p50=812µs p99=3.1ms p999=4.0ms max=5.2ms`.
    public func summaryLine() -> String {
        let latency = self.commentLatencyMicros
        var line =
            "typing storm=\(self.storm ? "on" : "off") subs=\(self.subscribers) typists=\(self.typists)"
            + " rate=\(BenchFormat.count(self.typingRate))/s duration=\(BenchFormat.count(self.durationSeconds))s"
        if self.storm {
            line +=
                " | typing sent=\(self.typingSent) refused=\(self.typingRefused) delivered=\(self.typingDelivered)"
                + " frames/s=\(BenchFormat.count(self.typingFramesPerSecond))"
                + " per_sub=\(BenchFormat.count(self.typingFramesPerSecondPerSubscriber))/s"
                + " max/pair=\(self.typingMaxPerPair) final=\(self.finalStates)/\(self.finalStatesExpected)"
            if self.typingOutOfOrder > 0 {
                line += " out_of_order=\(self.typingOutOfOrder)"
            }
        }
        line +=
            " | comments rate=\(BenchFormat.count(self.commentRate))/s sent=\(self.commentsSent) refused=\(self.commentsRefused)"
            + " delivered=\(self.commentsDelivered)/\(self.commentsExpected)"
            + " \(latency.summary)"
        if self.disconnected > 0 || self.channelErrors > 0 {
            line += " disconnected=\(self.disconnected) channelErrors=\(self.channelErrors)"
        }
        return line
    }
}
