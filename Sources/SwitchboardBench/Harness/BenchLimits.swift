/// The options every connection-opening bench shares: where it connects, how many connections
/// it opens at once and how long each phase may take.
public struct BenchLimits: Sendable, Equatable {
    /// How many connections are opened at once.
    public var connectConcurrency: Int
    /// How long the run waits without any new delivery before it gives up on the rest.
    public var drainTimeout: Duration
    /// The hard cap on the whole run, connects included.
    public var maxDuration: Duration
    /// How long one connection may take to connect, upgrade and get its join reply.
    public var joinTimeout: Duration

    /// Creates limits.
    public init(
        connectConcurrency: Int = 64, drainTimeout: Duration = .seconds(5), maxDuration: Duration = .seconds(300),
        joinTimeout: Duration = .seconds(15)
    ) {
        self.connectConcurrency = connectConcurrency
        self.drainTimeout = drainTimeout
        self.maxDuration = maxDuration
        self.joinTimeout = joinTimeout
    }

    /// Throws a ``BenchError`` naming the first limit that is out of range.
    func validate() throws {
        try BenchLimits.require(self.connectConcurrency >= 1, "connectConcurrency must be at least 1, got \(self.connectConcurrency)")
        try BenchLimits.require(self.drainTimeout > .zero, "drainTimeout must be positive")
        try BenchLimits.require(self.maxDuration > .zero, "maxDuration must be positive")
        try BenchLimits.require(self.joinTimeout > .zero, "joinTimeout must be positive")
    }

    /// Throws unless the host is loopback, the port in range and the path absolute without a query.
    static func validateEndpoint(host: String, port: Int, path: String) throws {
        try BenchTarget.validateLoopback(host)
        try self.require((1...65535).contains(port), "port must be in 1...65535, got \(port)")
        try self.require(path.hasPrefix("/") && !path.contains("?"), "path must start with / and carry no query, got \(path)")
    }

    /// Throws ``BenchError/Code/invalidOptions`` with `message` unless `condition` holds.
    static func require(_ condition: Bool, _ message: String) throws {
        if !condition { throw BenchError(.invalidOptions, message) }
    }
}
