import Foundation

/// What ``TypingBench`` measures: T typists sending `user:typing` at R Hz for D seconds on one
/// channel, S subscribers on it, and one commenter sending `comment:added` at C per second
/// meanwhile, whose latency the subscribers record.
public struct TypingOptions: Sendable, Equatable {
    /// The server's host; only loopback addresses are accepted.
    public var host: String
    /// The server's port.
    public var port: Int
    /// The WebSocket path, without a query.
    public var path: String
    /// The token of the subscribers and the commenter (it must allow joining the channel and
    /// sending `comment:added` on it; the bench's admin token does under the default rules).
    public var token: String
    /// One token per typist, or empty for every typist to use ``token``. Rules that budget
    /// typing per user (the default rules: 1200 a minute) need one subject per typist.
    public var typistTokens: [String]
    /// The channel name, without the `realtime:` prefix.
    public var channel: String
    /// Typist connections (T).
    public var typists: Int
    /// `user:typing` messages per second per typist (R).
    public var typingRate: Double
    /// How long the typists type and the commenter comments (D).
    public var duration: Duration
    /// Subscriber connections (S).
    public var subscribers: Int
    /// `comment:added` messages per second (C).
    public var commentRate: Double
    /// Whether the typists send; without the storm they connect and join but stay silent, so
    /// the comments' latency can be compared with and without it.
    public var storm: Bool
    /// How many connections are opened at once.
    public var connectConcurrency: Int
    /// How long the run waits after sending without any new delivery before it gives up on the rest.
    public var drainTimeout: Duration
    /// The hard cap on the whole run, connects included.
    public var maxDuration: Duration
    /// How long one connection may take to connect, upgrade and get its join reply.
    public var joinTimeout: Duration

    /// The most typists one run may open.
    public static let maxTypists = 1000
    /// The most subscribers one run may open.
    public static let maxSubscribers = 10_000
    /// The most (subscriber, typist) pairs tracked; each subscriber keeps two counters per typist.
    public static let maxPairs = 1_000_000
    /// The highest typing or comment rate, per second.
    public static let maxRate = 1000.0
    /// The longest storm.
    public static let maxStormDuration = Duration.seconds(3600)

    /// Creates options; everything but the token has a default (the storm: 20 typists at
    /// 20 Hz for 5 s, 10 subscribers, 5 comments a second).
    public init(
        host: String = "127.0.0.1",
        port: Int = 4000,
        path: String = "/socket/websocket",
        token: String,
        typistTokens: [String] = [],
        channel: String = "collaboration:bench:1",
        typists: Int = 20,
        typingRate: Double = 20,
        duration: Duration = .seconds(5),
        subscribers: Int = 10,
        commentRate: Double = 5,
        storm: Bool = true,
        connectConcurrency: Int = 64,
        drainTimeout: Duration = .seconds(2),
        maxDuration: Duration? = nil,
        joinTimeout: Duration = .seconds(15)
    ) {
        self.host = host
        self.port = port
        self.path = path
        self.token = token
        self.typistTokens = typistTokens
        self.channel = channel
        self.typists = typists
        self.typingRate = typingRate
        self.duration = duration
        self.subscribers = subscribers
        self.commentRate = commentRate
        self.storm = storm
        self.connectConcurrency = connectConcurrency
        self.drainTimeout = drainTimeout
        self.maxDuration = maxDuration ?? duration + .seconds(120)
        self.joinTimeout = joinTimeout
    }

    /// Throws a ``BenchError`` naming the first option that is out of range.
    public func validate() throws {
        try BenchLimits.validateEndpoint(host: self.host, port: self.port, path: self.path)
        let require = BenchLimits.require
        try require(RealtimeFrames.isSafeChannelName(self.channel), "channel must be 1-200 printable ASCII characters without quotes or backslashes")
        try require((1...Self.maxTypists).contains(self.typists), "typists must be in 1...\(Self.maxTypists), got \(self.typists)")
        try require((1...Self.maxSubscribers).contains(self.subscribers), "subscribers must be in 1...\(Self.maxSubscribers), got \(self.subscribers)")
        try require(
            self.typists * self.subscribers <= Self.maxPairs,
            "typists × subscribers must be at most \(Self.maxPairs), got \(self.typists * self.subscribers)")
        try require(
            self.typistTokens.isEmpty || self.typistTokens.count == self.typists,
            "give one token per typist (\(self.typists)) or none, got \(self.typistTokens.count)")
        try require(
            self.typingRate.isFinite && self.typingRate > 0 && self.typingRate <= Self.maxRate,
            "typing rate must be in (0, \(Int(Self.maxRate))] per second, got \(self.typingRate)")
        try require(
            self.commentRate.isFinite && self.commentRate > 0 && self.commentRate <= Self.maxRate,
            "comment rate must be in (0, \(Int(Self.maxRate))] per second, got \(self.commentRate)")
        try require(
            self.duration > .zero && self.duration <= Self.maxStormDuration,
            "duration must be in (0, \(Self.maxStormDuration.seconds)] seconds, got \(self.duration.seconds)")
        try require(self.messagesPerTypist >= 1, "typing rate × duration must give each typist at least one message")
        try require(self.comments >= 1, "comment rate × duration must give at least one comment")
        try require(self.maxDuration > self.duration, "maxDuration must be longer than the duration")
        try self.limits.validate()
    }

    /// `user:typing` messages each typist sends: R × D, rounded.
    public var messagesPerTypist: Int {
        Int((self.typingRate * self.duration.seconds).rounded())
    }

    /// `comment:added` messages the commenter sends: C × D, rounded.
    public var comments: Int {
        Int((self.commentRate * self.duration.seconds).rounded())
    }
}

extension TypingOptions {
    /// The connect target of typist `index`, with its own token when there is one.
    func target(typist index: Int) -> BenchTarget {
        let token = self.typistTokens.indices.contains(index) ? self.typistTokens[index] : self.token
        return BenchTarget(host: self.host, port: self.port, path: self.path, token: token)
    }

    /// The connect target of the subscribers and the commenter.
    var sharedTarget: BenchTarget {
        BenchTarget(host: self.host, port: self.port, path: self.path, token: self.token)
    }

    /// The Realtime topic of the channel.
    var realtimeTopic: String { "realtime:\(self.channel)" }
}

extension TypingOptions {
    /// The run's connection and time limits.
    var limits: BenchLimits {
        BenchLimits(
            connectConcurrency: self.connectConcurrency, drainTimeout: self.drainTimeout, maxDuration: self.maxDuration,
            joinTimeout: self.joinTimeout)
    }
}
