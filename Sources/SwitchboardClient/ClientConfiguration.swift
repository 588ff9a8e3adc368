import Foundation
import Logging

/// How a ``SwitchboardClient`` connects, keeps its connection and buffers.
public struct ClientConfiguration: Sendable {
    /// The socket URL, e.g. `ws://127.0.0.1:4000/socket/websocket` (the token and `vsn` are added).
    public var url: String
    /// The JWT the connection and its joins authenticate with.
    public var token: String
    /// How often a heartbeat is sent (Phoenix's server closes a socket silent for 60 s). A
    /// heartbeat still unanswered when the next is due means the connection is dead: it is
    /// closed and reconnected.
    public var heartbeatInterval: Duration = .seconds(30)
    /// The delay before each reconnect attempt.
    public var backoff = Backoff()
    /// The most channels one client joins (the server's paid tiers allow 10 per connection).
    public var maxChannels = 10
    /// The most messages waiting to be sent (while disconnected, or not yet acknowledged).
    public var maxBuffered = 1000
    /// How long a message may wait for a connection before it is dropped and its `send` fails.
    public var bufferedLifetime: Duration = .seconds(300)
    /// How long a delivered message id is remembered to drop a repeat (the server's replay
    /// window is 5 minutes), and how many ids per channel at most.
    public var dedupeLifetime: Duration = .seconds(300)
    public var dedupeCapacity = 10_000
    /// How long `channel(_:)` waits for the first join reply (also while still connecting).
    public var joinTimeout: Duration = .seconds(30)
    public var logger = Logger(label: "switchboard-client")

    public init(url: String, token: String) {
        self.url = url
        self.token = token
    }
}

/// Exponential backoff with jitter: attempt n waits `initial × multiplier^n`, at most
/// `maximum`, each delay scaled by a random factor in `1 ± jitter`. Defaults: 0.5 s, ×2, at most
/// 30 s, ±20%: 0.5, 1, 2, 4, 8, 16, 30, 30, … seconds.
public struct Backoff: Sendable, Equatable {
    public var initial: Duration
    public var multiplier: Double
    public var maximum: Duration
    public var jitter: Double

    public init(initial: Duration = .milliseconds(500), multiplier: Double = 2, maximum: Duration = .seconds(30), jitter: Double = 0.2) {
        self.initial = initial
        self.multiplier = max(1, multiplier)
        self.maximum = maximum
        self.jitter = min(max(0, jitter), 1)
    }

    /// The delay before reconnect attempt `attempt` (0 for the first after a drop), with
    /// `random` in 0...1 choosing the jitter.
    public func delay(attempt: Int, random: Double) -> Duration {
        let base = Self.seconds(initial) * pow(multiplier, Double(min(max(0, attempt), 64)))
        let capped = min(base, Self.seconds(maximum))
        let factor = 1 + jitter * (2 * min(max(random, 0), 1) - 1)
        return .nanoseconds(Int64(max(0, capped * factor) * 1e9))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
