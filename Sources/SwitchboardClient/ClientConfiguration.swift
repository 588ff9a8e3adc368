import Logging
import NIOSSL

/// How a ``SwitchboardClient`` connects, keeps its connection and buffers.
public struct ClientConfiguration: Sendable {
    /// The socket URL, e.g. `ws://127.0.0.1:4000/socket/websocket` (the token and `vsn` are added).
    public var url: String
    /// Other servers of the same cluster (sharing one database), tried in turn, after `url`,
    /// whenever a connection fails or drops: a client whose server dies resumes on another
    /// (with replay) without a load balancer in front. Empty: `url` only.
    public var fallbackURLs: [String] = []
    /// TLS settings for `wss://` URLs (trust roots, for example a private CA); nil: the system's
    /// defaults.
    public var tlsConfiguration: TLSConfiguration?
    /// The JWT the connection and its joins authenticate with.
    public var token: String
    /// How often a heartbeat is sent (Phoenix's server closes a socket silent for 60 s). A
    /// heartbeat still unanswered when the next is due means the connection is dead: it is
    /// closed and reconnected.
    public var heartbeatInterval: Duration = .seconds(30)
    /// The clock every timer of the client runs on: the heartbeat, the reconnect backoff, the
    /// buffered-message lifetime, the join timeout and the delivered-id lifetime. Tests give
    /// it a `ManualClock` (from SwitchboardCore) and advance it instead of waiting.
    public var clock: any Clock<Duration> = ContinuousClock()
    /// The delay before each reconnect attempt.
    public var backoff = Backoff()
    /// The most channels one client joins (the server's paid tiers allow 10 per connection).
    public var maxChannels = 10
    /// The most messages waiting to be sent (while disconnected, or not yet acknowledged).
    public var maxBuffered = 1000
    /// How long a message may wait for a connection before it is dropped and its `send` fails.
    public var bufferedLifetime: Duration = .seconds(300)
    /// How long a delivered message id is remembered to drop a repeat (the server's replay
    /// window is 5 minutes).
    public var dedupeLifetime: Duration = .seconds(300)
    /// The most delivered ids remembered per channel.
    public var dedupeCapacity = 10_000
    /// How long `channel(_:)` waits for the first join reply (also while still connecting).
    public var joinTimeout: Duration = .seconds(30)
    /// Where the client logs (connection losses and reconnects at debug level).
    public var logger = Logger(label: "switchboard-client")

    /// The defaults, connecting to `url` with `token`.
    public init(url: String, token: String) {
        self.url = url
        self.token = token
    }
}
