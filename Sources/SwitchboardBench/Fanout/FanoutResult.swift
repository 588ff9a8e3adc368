import Foundation

/// The outcome of one ``FanoutBench`` run.
public struct FanoutResult: BenchReport, Sendable, Codable, Equatable {
    /// Delivery latency percentiles in microseconds (send → receive, same process clock).
    public typealias Latency = BenchLatency

    /// The protocol the server spoke.
    public var target: BenchProtocol
    /// Subscriber connections (N).
    public var subscribers: Int
    /// Messages asked for (M).
    public var messages: Int
    /// Approximate user payload size in bytes (S).
    public var size: Int
    /// The requested rate in messages per second; nil for as fast as possible.
    public var rate: Double?
    /// Messages the publisher actually sent.
    public var sent: Int
    /// Deliveries expected: subscribers × sent.
    public var expected: Int
    /// Deliveries counted.
    public var delivered: Int
    /// expected − delivered (never negative).
    public var lost: Int
    /// From the first send to the last delivery.
    public var durationSeconds: Double
    /// delivered / durationSeconds.
    public var deliveredPerSecond: Double
    /// Latency percentiles in µs.
    public var latencyMicros: Latency
    /// Time to connect and join all subscribers and the publisher.
    public var connectSeconds: Double
    /// Joined connections the server closed during the run.
    public var disconnected: Int
    /// `phx_close`, `phx_error` and `system` error messages received during the run.
    public var channelErrors: Int
    /// The last such server message, if any, to explain losses.
    public var lastServerMessage: String?

    /// Creates a result; the bench fills this in.
    public init(
        target: BenchProtocol = .switchboard,
        subscribers: Int, messages: Int, size: Int, rate: Double?, sent: Int, expected: Int,
        delivered: Int, lost: Int, durationSeconds: Double, deliveredPerSecond: Double,
        latencyMicros: Latency, connectSeconds: Double, disconnected: Int = 0, channelErrors: Int = 0,
        lastServerMessage: String? = nil
    ) {
        self.target = target
        self.subscribers = subscribers
        self.messages = messages
        self.size = size
        self.rate = rate
        self.sent = sent
        self.expected = expected
        self.delivered = delivered
        self.lost = lost
        self.durationSeconds = durationSeconds
        self.deliveredPerSecond = deliveredPerSecond
        self.latencyMicros = latencyMicros
        self.connectSeconds = connectSeconds
        self.disconnected = disconnected
        self.channelErrors = channelErrors
        self.lastServerMessage = lastServerMessage
    }

    /// One human-readable line, e.g.
    /// `fanout[switchboard] subs=1000 msgs=2000 size=1024 rate=max delivered=2000000/2000000 (0 lost) 1.93M msg/s p50=812µs p99=3.1ms p999=4.0ms max=5.2ms`.
    public func summaryLine() -> String {
        let rate = self.rate.map { "\(BenchFormat.count($0))/s" } ?? "max"
        var line =
            "fanout[\(self.target.rawValue)] subs=\(self.subscribers) msgs=\(self.messages) size=\(self.size) rate=\(rate)"
            + " delivered=\(self.delivered)/\(self.expected) (\(self.lost) lost)"
            + " \(BenchFormat.count(self.deliveredPerSecond)) msg/s \(self.latencyMicros.summary)"
        if self.sent < self.messages {
            line += " sent=\(self.sent)"
        }
        if self.disconnected > 0 || self.channelErrors > 0 {
            line += " disconnected=\(self.disconnected) channelErrors=\(self.channelErrors)"
        }
        return line
    }
}
