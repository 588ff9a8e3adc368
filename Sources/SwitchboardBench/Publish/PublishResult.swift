/// The outcome of one ``PublishBench`` run.
public struct PublishResult: BenchReport, Sendable, Codable, Equatable {
    /// Channels (N).
    public var channels: Int
    /// Publishers per channel (P).
    public var publishersPerChannel: Int
    /// Subscribers per channel (S).
    public var subscribersPerChannel: Int
    /// Unacknowledged messages each publisher may have.
    public var window: Int
    /// The padding in each payload.
    public var size: Int
    /// Messages the publishers sent.
    public var sent: Int
    /// Of those, acknowledged with `ok`.
    public var acked: Int
    /// Answered with an error (rate limit, permission, …).
    public var refused: Int
    /// The last refusal's reason.
    public var lastRefusal: String?
    /// From the first send to the last acknowledgement.
    public var publishSeconds: Double
    /// acked / publishSeconds.
    public var publishesPerSecond: Double
    /// Publish → ack latency (µs).
    public var ackLatencyMicros: BenchLatency
    /// Deliveries expected: every acknowledged message to every subscriber of its channel.
    public var expectedDeliveries: Int
    /// Deliveries counted.
    public var delivered: Int
    /// From the first send to the last delivery.
    public var deliverySeconds: Double
    /// delivered / deliverySeconds.
    public var deliveriesPerSecond: Double
    /// Publish → subscriber latency (µs).
    public var deliveryLatencyMicros: BenchLatency
    /// Acknowledged messages a subscriber never received (summed over subscribers).
    public var lost: Int
    /// Messages a subscriber received more than once (by `meta.seq`).
    public var repeated: Int
    /// `meta.seq` numbers a subscriber's sequence jumped over.
    public var seqGaps: Int
    /// Broadcasts that arrived without a `meta.seq` (the event was not replayable).
    public var withoutSeq: Int
    /// The server's CPU time over the publishing (first send to the end of the drain) per
    /// acknowledged message, in µs; nil without `serverPid`.
    public var serverCPUMicrosPerMessage: Double?
    /// The same per delivery.
    public var serverCPUMicrosPerDelivery: Double?
    /// The server's RSS at the end.
    public var serverRSSBytes: Int?
    /// Time to connect and join every connection.
    public var connectSeconds: Double
    /// Joined connections the server closed during the run.
    public var disconnected: Int
    /// `phx_close`, `phx_error` and `system` errors received during the run.
    public var channelErrors: Int
    /// The last such server message.
    public var lastServerMessage: String?

    /// Whether every acknowledged message reached every subscriber once, in order, and nothing was refused.
    public var isClean: Bool {
        self.refused == 0 && self.lost == 0 && self.repeated == 0 && self.seqGaps == 0 && self.withoutSeq == 0
            && self.disconnected == 0 && self.channelErrors == 0 && self.acked == self.sent
    }

    /// One human-readable line, e.g. `publish channels=10 publishers=2/ch subscribers=2/ch window=8
    /// size=100 | acked=20000/20000 refused=0 41.2k pub/s ack p50=… | delivered=40000/40000 82.4k msg/s
    /// lost=0 repeated=0 gaps=0 p50=… | server_cpu=9.8µs/msg`.
    public func summaryLine() -> String {
        var line =
            "publish channels=\(self.channels) publishers=\(self.publishersPerChannel)/ch subscribers=\(self.subscribersPerChannel)/ch"
            + " window=\(self.window) size=\(self.size)"
            + " | acked=\(self.acked)/\(self.sent) refused=\(self.refused) \(BenchFormat.count(self.publishesPerSecond)) pub/s"
            + " ack \(self.ackLatencyMicros.summary)"
            + " | delivered=\(self.delivered)/\(self.expectedDeliveries) \(BenchFormat.count(self.deliveriesPerSecond)) msg/s"
            + " lost=\(self.lost) repeated=\(self.repeated) gaps=\(self.seqGaps)"
        if self.withoutSeq > 0 {
            line += " without_seq=\(self.withoutSeq)"
        }
        if self.subscribersPerChannel > 0 {
            line += " \(self.deliveryLatencyMicros.summary)"
        }
        if let cpu = self.serverCPUMicrosPerMessage {
            line += String(format: " | server_cpu=%.2fµs/msg", cpu)
            if let perDelivery = self.serverCPUMicrosPerDelivery {
                line += String(format: " (%.2fµs/delivery)", perDelivery)
            }
        }
        if let rss = self.serverRSSBytes {
            line += " server_rss=\(BenchFormat.megabytes(rss))"
        }
        if self.disconnected > 0 || self.channelErrors > 0 {
            line += " disconnected=\(self.disconnected) channelErrors=\(self.channelErrors)"
        }
        if let refusal = self.lastRefusal {
            line += " last_refusal=\"\(refusal)\""
        }
        return line
    }
}
