import NIOCore
import Synchronization

/// Connections opened by ``IdleBench``; they stay open, heartbeating, until ``close()``.
public final class IdleConnections: Sendable {
    /// How many connections are held.
    public let count: Int
    /// How many channels each connection joined.
    public let channelsPerConnection: Int
    /// How long opening and joining them all took.
    public let connectSeconds: Double

    private let channels: Mutex<[any Channel]>

    init(channels: [any Channel], channelsPerConnection: Int, connectSeconds: Double) {
        self.count = channels.count
        self.channelsPerConnection = channelsPerConnection
        self.connectSeconds = connectSeconds
        self.channels = Mutex(channels)
    }

    /// How many of the connections are still open.
    public var openCount: Int {
        self.channels.withLock { channels in channels.reduce(0) { $0 + ($1.isActive ? 1 : 0) } }
    }

    /// Closes every connection (bounded wait); later calls do nothing.
    public func close() async {
        let channels = self.channels.withLock { channels in
            defer { channels = [] }
            return channels
        }
        await BenchConnections.closeAll(channels)
    }
}
