/// What ``SoakBench`` runs: a mixed load against a running server for a while — steady
/// replayable broadcasts checked by `meta.seq`, connects and disconnects, joins and leaves,
/// presence updates, token refreshes and a rules reload every 10 s — while it samples the
/// server's memory.
public struct SoakOptions: Sendable {
    /// A token the soak asks for: an admin for its own connections, or a user the rules refuse.
    public struct TokenRequest: Sendable, Equatable {
        /// `admin`, or `supplier` for the refused-join probe.
        public var role: String
        /// The token's `sub`.
        public var subject: String
        /// The `supplier_id` claim, if any.
        public var supplierID: String?
        /// How long the token is valid.
        public var lifetime: Duration
    }

    /// Mints a token signed with the server's secret.
    public typealias Minter = @Sendable (TokenRequest) async throws -> String

    /// The server's host; only loopback addresses are accepted.
    public var host: String
    /// The server's port.
    public var port: Int
    /// The WebSocket path, without a query.
    public var path: String
    /// How long the load runs.
    public var duration: Duration
    /// Mints every token the soak uses.
    public var mint: Minter
    /// The server's process id: its RSS is sampled from `/proc/PID/status`.
    public var serverPid: Int32?
    /// The directory the server was started with (`serve --rules-dir`): the soak alternates two
    /// rule sets there (adding and removing one event declaration in a file of its own) and
    /// confirms each reload through `GET /admin/rules`. Nil: no reloads.
    public var rulesDirectory: String?
    /// Channels carrying the replayable broadcasts.
    public var channels: Int
    /// Connections that stay for the whole run, each joined to ``channelsPerSubscriber`` channels.
    public var subscribers: Int
    /// Channels each long-lived subscriber joins.
    public var channelsPerSubscriber: Int
    /// Publisher connections; each publishes on its share of the channels.
    public var publishers: Int
    /// Replayable messages per second over all channels (the default rules allow 100 a minute per channel).
    public var rate: Double
    /// Tasks that connect, join, stay a few seconds, leave and disconnect, over and over.
    public var churners: Int
    /// Connections that update their presence every ``presenceInterval``.
    public var presenceMembers: Int
    /// How often a presence member updates.
    public var presenceInterval: Duration
    /// How often every long-lived connection refreshes its channel tokens with `access_token`.
    public var tokenRefreshInterval: Duration
    /// The lifetime of channel tokens (longer than the refresh interval, so a missed refresh shows).
    public var channelTokenLifetime: Duration
    /// How often the rules are switched.
    public var reloadInterval: Duration
    /// How often the server's RSS is read.
    public var sampleInterval: Duration
    /// How often a progress line is printed (and the RSS table's row width).
    public var reportInterval: Duration
    /// Where progress lines go as the run goes (the CLI prints them).
    public var progress: @Sendable (String) -> Void

    /// The longest soak.
    public static let maxDuration = Duration.seconds(24 * 3600)
    /// The most messages a channel may take per minute under the default rules.
    public static let maxPerChannelPerMinute = 100.0

    /// Creates options; everything but the minter has a default.
    public init(
        host: String = "127.0.0.1", port: Int = 4000, path: String = "/socket/websocket", duration: Duration = .seconds(60),
        mint: @escaping Minter, serverPid: Int32? = nil, rulesDirectory: String? = nil, channels: Int = 8, subscribers: Int = 16,
        channelsPerSubscriber: Int = 4, publishers: Int = 4, rate: Double = 8, churners: Int = 4, presenceMembers: Int = 4,
        presenceInterval: Duration = .seconds(2), tokenRefreshInterval: Duration = .seconds(30),
        channelTokenLifetime: Duration = .seconds(120), reloadInterval: Duration = .seconds(10),
        sampleInterval: Duration = .seconds(5), reportInterval: Duration = .seconds(60),
        progress: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.host = host
        self.port = port
        self.path = path
        self.duration = duration
        self.mint = mint
        self.serverPid = serverPid
        self.rulesDirectory = rulesDirectory
        self.channels = channels
        self.subscribers = subscribers
        self.channelsPerSubscriber = channelsPerSubscriber
        self.publishers = publishers
        self.rate = rate
        self.churners = churners
        self.presenceMembers = presenceMembers
        self.presenceInterval = presenceInterval
        self.tokenRefreshInterval = tokenRefreshInterval
        self.channelTokenLifetime = channelTokenLifetime
        self.reloadInterval = reloadInterval
        self.sampleInterval = sampleInterval
        self.reportInterval = reportInterval
        self.progress = progress
    }

    /// Throws a ``BenchError`` naming the first option that is out of range.
    public func validate() throws {
        try BenchLimits.validateEndpoint(host: self.host, port: self.port, path: self.path)
        let require = BenchLimits.require
        try require(self.duration >= .seconds(5) && self.duration <= Self.maxDuration, "duration must be 5 s … 24 h")
        try require((1...100).contains(self.channels), "channels must be 1...100")
        try require((1...1000).contains(self.subscribers), "subscribers must be 1...1000")
        try require(
            (1...min(8, self.channels)).contains(self.channelsPerSubscriber),
            "channels per subscriber must be 1...\(min(8, self.channels)) (a paid token joins at most 10)")
        try require((1...self.channels).contains(self.publishers), "publishers must be 1...channels")
        try require(self.rate.isFinite && self.rate > 0, "rate must be positive")
        try require(
            self.rate / Double(self.channels) * 60 <= Self.maxPerChannelPerMinute * 0.8,
            "rate must keep each channel under 80 messages a minute (the default rules allow 100), got \(Int(self.rate / Double(self.channels) * 60))")
        try require((0...100).contains(self.churners), "churners must be 0...100")
        try require((0...100).contains(self.presenceMembers), "presence members must be 0...100")
        try require(self.presenceInterval >= .milliseconds(600), "presence updates at most every 0.6 s (the rules allow 120 a minute)")
        try require(self.tokenRefreshInterval >= .seconds(1), "token refresh interval must be at least 1 s")
        try require(
            self.channelTokenLifetime > self.tokenRefreshInterval + .seconds(10),
            "channel tokens must outlive the refresh interval by more than 10 s")
        try require(self.reloadInterval >= .seconds(1), "reload interval must be at least 1 s")
        try require(self.sampleInterval >= .milliseconds(100), "sample interval must be at least 0.1 s")
        try require(self.reportInterval >= self.sampleInterval, "report interval must be at least the sample interval")
    }

    /// A target with the connect token.
    func target(token: String) -> BenchTarget { BenchTarget(host: self.host, port: self.port, path: self.path, token: token) }
}
