import Foundation

/// What ``FanoutBench`` measures: N subscribers on one channel, one publisher sending M
/// messages of about S bytes, at a fixed rate or as fast as back-pressure allows.
public struct FanoutOptions: Sendable, Equatable {
    /// The protocol the server speaks: Switchboard (Supabase Realtime) or nginx + nchan.
    public var target: BenchProtocol
    /// The server's host; only loopback addresses are accepted.
    public var host: String
    /// The server's port.
    public var port: Int
    /// The WebSocket path, without a query (`/socket/websocket` or `/realtime/v1/websocket`); for
    /// nchan the prefix the channel name is appended to (`/pubsub/`).
    public var path: String
    /// The connect token, sent as the `apikey` query parameter (unused for nchan).
    public var token: String
    /// The channel name, without the `realtime:` prefix; for nchan only letters, digits and `_ . : -`.
    public var channel: String
    /// The number of subscriber connections (N).
    public var subscribers: Int
    /// The number of messages the publisher sends (M).
    public var messages: Int
    /// The approximate size in bytes of each message's user payload (S).
    public var size: Int
    /// Messages per second, or nil to send as fast as the publisher's socket accepts.
    public var rate: Double?
    /// How many subscriber connections are opened at once.
    public var connectConcurrency: Int
    /// How long the run waits without any new delivery before it gives up on the rest.
    public var drainTimeout: Duration
    /// The hard cap on the whole run, connects included.
    public var maxDuration: Duration
    /// How long one connection may take to connect, upgrade and get its join reply.
    public var joinTimeout: Duration

    /// The most subscribers one run may open.
    public static let maxSubscribers = 100_000
    /// The largest payload one message may carry.
    public static let maxSize = 4 << 20

    /// Creates options; everything but the token has a default. A nil `port` or `path` takes the
    /// target's default (``BenchProtocol/defaultPort``, ``BenchProtocol/defaultPath``).
    public init(
        target: BenchProtocol = .switchboard,
        host: String = "127.0.0.1",
        port: Int? = nil,
        path: String? = nil,
        token: String,
        channel: String = "collaboration:bench:1",
        subscribers: Int = 100,
        messages: Int = 1000,
        size: Int = 1024,
        rate: Double? = nil,
        connectConcurrency: Int = 64,
        drainTimeout: Duration = .seconds(5),
        maxDuration: Duration = .seconds(300),
        joinTimeout: Duration = .seconds(15)
    ) {
        self.target = target
        self.host = host
        self.port = port ?? target.defaultPort
        self.path = path ?? target.defaultPath
        self.token = token
        self.channel = channel
        self.subscribers = subscribers
        self.messages = messages
        self.size = size
        self.rate = rate
        self.connectConcurrency = connectConcurrency
        self.drainTimeout = drainTimeout
        self.maxDuration = maxDuration
        self.joinTimeout = joinTimeout
    }

    /// Throws a ``BenchError`` naming the first option that is out of range.
    public func validate() throws {
        try BenchLimits.validateEndpoint(host: self.host, port: self.port, path: self.path)
        let require = BenchLimits.require
        switch self.target {
        case .switchboard:
            try require(RealtimeFrames.isSafeChannelName(self.channel), "channel must be 1-200 printable ASCII characters without quotes or backslashes")
        case .nchan:
            try require(BenchProtocol.isSafeNchanChannelName(self.channel), "an nchan channel must be 1-200 letters, digits or _ . : -, got \(self.channel)")
        }
        try require((1...Self.maxSubscribers).contains(self.subscribers), "subscribers must be in 1...\(Self.maxSubscribers), got \(self.subscribers)")
        try require(self.messages >= 1, "messages must be at least 1, got \(self.messages)")
        try require((0...Self.maxSize).contains(self.size), "size must be in 0...\(Self.maxSize), got \(self.size)")
        if let rate = self.rate {
            try require(rate.isFinite && rate > 0, "rate must be a positive number of messages per second, got \(rate)")
        }
        try self.limits.validate()
    }
}

extension FanoutOptions {
    /// Where every connection of the run goes.
    var connectTarget: BenchTarget {
        switch self.target {
        case .switchboard:
            return BenchTarget(host: self.host, port: self.port, path: self.path, token: self.token)
        case .nchan:
            return BenchTarget(host: self.host, port: self.port, nchanPathPrefix: self.path, channel: self.channel)
        }
    }

    /// The Realtime topic of the channel.
    var realtimeTopic: String { "realtime:\(self.channel)" }

    /// The topics every connection joins: the Realtime topic, or none for nchan.
    var topics: [String] {
        self.target.speaksPhoenix ? [self.realtimeTopic] : []
    }

    /// The bytes the publisher sends: a Realtime broadcast, or the bare user payload for nchan.
    var broadcastTemplate: RealtimeFrames.BroadcastTemplate {
        switch self.target {
        case .switchboard:
            return RealtimeFrames.BroadcastTemplate(topic: self.realtimeTopic, joinRef: "1", size: self.size)
        case .nchan:
            return RealtimeFrames.BroadcastTemplate(bareSize: self.size)
        }
    }
}

extension FanoutOptions {
    /// The run's connection and time limits.
    var limits: BenchLimits {
        BenchLimits(
            connectConcurrency: self.connectConcurrency, drainTimeout: self.drainTimeout, maxDuration: self.maxDuration,
            joinTimeout: self.joinTimeout)
    }
}
