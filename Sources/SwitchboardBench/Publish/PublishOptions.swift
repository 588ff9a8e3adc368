/// What ``PublishBench`` measures: N channels, P publisher connections and S subscribers on
/// each, every publisher sending replayable messages with `ack` on, at most a window of them
/// unacknowledged at a time.
public struct PublishOptions: Sendable, Equatable {
    /// The server's host; only loopback addresses are accepted.
    public var host: String
    /// The server's port.
    public var port: Int
    /// The WebSocket path, without a query.
    public var path: String
    /// The connect token (it must allow joining the channels and sending `event` on them; an
    /// admin token does under the default rules).
    public var token: String
    /// Channels (N): `<channelPrefix>0` … `<channelPrefix>N-1`.
    public var channels: Int
    /// The channel name before its number. The default, `collaboration:bench:pub`, names
    /// collaboration channels, which keep history under the default rules.
    public var channelPrefix: String
    /// Publisher connections per channel (P).
    public var publishersPerChannel: Int
    /// Subscriber connections per channel (S), each checking the channel's `meta.seq`.
    public var subscribersPerChannel: Int
    /// Messages in all, spread evenly over the publishers (each sends at least one).
    public var messages: Int
    /// The most messages one publisher has sent and not yet had acknowledged.
    public var window: Int
    /// The event; it must be replayable on the channels (the default rules' `document:saved`).
    public var event: String
    /// Bytes of padding in each payload (besides `document_id`, `version` and the send time).
    public var size: Int
    /// The server's process id, to measure its CPU time over the publishing and its RSS.
    public var serverPid: Int32?
    /// Connection and time limits.
    public var limits: BenchLimits

    /// The most channels one run may use.
    public static let maxChannels = 1000
    /// The most publishers or subscribers per channel.
    public static let maxPerChannel = 100
    /// The most connections one run may open.
    public static let maxConnections = 20_000
    /// The most messages one run may send.
    public static let maxMessages = 10_000_000

    /// Creates options; everything but the token has a default.
    public init(
        host: String = "127.0.0.1",
        port: Int = 4000,
        path: String = "/socket/websocket",
        token: String,
        channels: Int = 10,
        channelPrefix: String = "collaboration:bench:pub",
        publishersPerChannel: Int = 2,
        subscribersPerChannel: Int = 2,
        messages: Int = 20_000,
        window: Int = 8,
        event: String = "document:saved",
        size: Int = 100,
        serverPid: Int32? = nil,
        limits: BenchLimits = BenchLimits()
    ) {
        self.host = host
        self.port = port
        self.path = path
        self.token = token
        self.channels = channels
        self.channelPrefix = channelPrefix
        self.publishersPerChannel = publishersPerChannel
        self.subscribersPerChannel = subscribersPerChannel
        self.messages = messages
        self.window = window
        self.event = event
        self.size = size
        self.serverPid = serverPid
        self.limits = limits
    }

    /// Throws a ``BenchError`` naming the first option that is out of range.
    public func validate() throws {
        try BenchLimits.validateEndpoint(host: self.host, port: self.port, path: self.path)
        let require = BenchLimits.require
        try require((1...Self.maxChannels).contains(self.channels), "channels must be in 1...\(Self.maxChannels), got \(self.channels)")
        try require(
            RealtimeFrames.isSafeChannelName(self.channelPrefix + String(self.channels)),
            "the channel prefix must be printable ASCII without quotes or backslashes")
        try require(
            (1...Self.maxPerChannel).contains(self.publishersPerChannel),
            "publishers per channel must be in 1...\(Self.maxPerChannel), got \(self.publishersPerChannel)")
        try require(
            (0...Self.maxPerChannel).contains(self.subscribersPerChannel),
            "subscribers per channel must be in 0...\(Self.maxPerChannel), got \(self.subscribersPerChannel)")
        try require(
            self.connections <= Self.maxConnections, "at most \(Self.maxConnections) connections, got \(self.connections)")
        try require((1...Self.maxMessages).contains(self.messages), "messages must be in 1...\(Self.maxMessages), got \(self.messages)")
        try require((1...PacedSender.maxWindow).contains(self.window), "window must be in 1...\(PacedSender.maxWindow), got \(self.window)")
        try require(RealtimeFrames.isSafeChannelName(self.event), "the event must be printable ASCII without quotes or backslashes")
        try require((0...60_000).contains(self.size), "size must be in 0...60000, got \(self.size)")
        try self.limits.validate()
    }

    /// Publisher connections in all.
    public var publishers: Int { self.channels * self.publishersPerChannel }

    /// Every connection the run opens.
    public var connections: Int { self.channels * (self.publishersPerChannel + self.subscribersPerChannel) }

    /// Messages each publisher sends.
    public var messagesPerPublisher: Int { max(1, (self.messages + self.publishers - 1) / self.publishers) }

    /// The name of channel `index`.
    func channel(_ index: Int) -> String { "\(self.channelPrefix)\(index)" }

    var target: BenchTarget { BenchTarget(host: self.host, port: self.port, path: self.path, token: self.token) }
}
