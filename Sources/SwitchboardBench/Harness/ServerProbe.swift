/// The server process's CPU time and memory around a run (`--server-pid`), read from `/proc`.
public struct ServerProbe: Sendable {
    /// The server's process id.
    public let pid: Int32
    /// CPU seconds (user + system) when the probe started; nil where `/proc` cannot be read.
    public let cpuAtStart: Double?
    /// RSS in bytes when the probe started.
    public let rssAtStart: Int?

    /// Starts a probe of `pid`: reads its CPU time and RSS now.
    public init(pid: Int32) {
        self.pid = pid
        self.cpuAtStart = ProcessStats.readCPUSeconds(pid: pid)
        self.rssAtStart = ProcessStats.readRSSBytes(pid: pid)
    }

    /// Starts a probe when there is a pid.
    public static func start(_ pid: Int32?) -> ServerProbe? {
        pid.map(ServerProbe.init(pid:))
    }

    /// CPU seconds the server used since the probe started.
    public func cpuSeconds() -> Double? {
        guard let before = self.cpuAtStart, let after = ProcessStats.readCPUSeconds(pid: self.pid) else { return nil }
        return after - before
    }

    /// CPU µs per message since the probe started; nil without `/proc` or messages.
    public func cpuMicros(per messages: Int) -> Double? {
        guard messages > 0, let seconds = self.cpuSeconds() else { return nil }
        return seconds * 1e6 / Double(messages)
    }

    /// The server's RSS now.
    public func rss() -> Int? {
        ProcessStats.readRSSBytes(pid: self.pid)
    }
}
