import Foundation
import Logging
import NIOCore
import SwitchboardAuth
import SwitchboardCore
import SwitchboardPostgres

/// Everything the server needs to start, with the spec's defaults.
public struct SwitchboardConfiguration: Sendable {
    /// Address to listen on.
    public var host: String = "127.0.0.1"
    /// Port to listen on; 0 picks a free one (tests).
    public var port: Int = 4000
    /// How tokens are verified.
    public var auth: AuthConfiguration
    /// The rules directory: Lua rules, `data/*.json` relations, `tests/`.
    public var rulesDirectory: String = "Rules"
    /// Reload the rules when their files change (inotify, polling where unavailable).
    public var watchRules: Bool = true
    /// How long the rules files must stay quiet after a change before the reload starts (an
    /// editor's save is often several writes and a rename).
    public var rulesReloadDebounce: Duration = .milliseconds(200)
    /// Reload the rules on SIGHUP. Off by default for embedders (a process has one handler per
    /// signal); `switchboard serve` turns it on.
    public var reloadOnHangup: Bool = false
    /// The server's ceiling on payload size, in bytes (64 KB). Tier limits come from the rules;
    /// a tier that allows more than this is held to it, since frames are read only up to
    /// `maxFrameBytes`.
    public var maxPayloadBytes: Int = 64 * 1024
    /// Largest presence meta (the tracked payload, as JSON) accepted, in bytes.
    public var maxPresenceMetaBytes: Int = 4 * 1024
    /// Presence updates (track and untrack) per minute per join: a budget of their own.
    public var presenceUpdatesPerMinute: Int = 120
    /// Close a connection after this long without inbound data, in seconds (Phoenix: 60).
    public var idleTimeoutSeconds: Int = 60
    /// A subscriber whose unsent bytes stay above this for `slowConsumerGraceSeconds` is closed.
    public var slowConsumerBytes: Int = 1 << 20
    /// How long a subscriber may stay above `slowConsumerBytes` before it is closed.
    public var slowConsumerGraceSeconds: Int = 5
    /// The cap on replay history over every channel, in bytes (payload, event name and id plus
    /// a fixed overhead per message). Past it, the channels published to least recently lose
    /// their history first.
    public var maxHistoryBytes: Int = 256 * 1024 * 1024
    /// The most channels whose history position (epoch, last `seq`) is remembered.
    public var maxHistoryChannels: Int = 100_000
    /// The most client-chosen message ids remembered (for 5 minutes each) to drop repeats.
    public var maxRecentMessageIDs: Int = 100_000
    /// Messages accepted in one `POST /api/broadcast` request.
    public var maxRESTBatch: Int = 100
    /// TLS (`serve --tls-cert FILE --tls-key FILE`): the PEM certificate chain and private key
    /// files; with both the one port serves `https://` and `wss://` only. nil: plain text.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// Log level and format.
    public var logLevel: Logger.Level = .info

    /// The clock the server reads and schedules its timers on (idle close, token expiry, slow
    /// consumers, batch windows, rate limits, history ages). Tests give it a `ManualClock` and
    /// move time by hand instead of waiting.
    public var clock: any ServerClock = SystemClock()

    /// PostgreSQL, when the server has one (`--database-url`): triggers publish through
    /// Supabase's `realtime.send`. nil: embedded, in memory.
    public var database: DatabaseSettings?
    /// How long after start the server holds back Postgres Changes (`serve --changes-hold`):
    /// the changes committed while it was down wait in their slot until then, so that the
    /// clients reconnecting meanwhile receive them. Measured on `clock`. Default 5 s.
    public var changesHold: Duration = .seconds(5)
    /// This server's name in its database's cluster (`serve --node-name`): 1 to 63 letters,
    /// digits, `.`, `-`, `_` or `:`, unique among the servers sharing the database and the same
    /// across restarts (it names the node's Postgres Changes slot). nil: the host name.
    public var nodeName: String?
    /// Apply pending migrations at start (else refuse to start while any is pending).
    public var migrateDatabase: Bool = true
    /// How long to keep trying to reach the database at start before giving up.
    public var databaseStartTimeout: Duration = .seconds(30)

    /// A policy to use instead of the rules directory (embedders and tests); nil loads
    /// `rulesDirectory` with the Lua rules engine.
    public var policy: (any Policy)?

    public init(auth: AuthConfiguration) {
        self.auth = auth
    }

    /// The WebSocket frame limit: twice the payload limit plus 16 KiB, room for the envelope and
    /// for JSON escaping (a payload of quotes doubles when escaped). The payload itself is
    /// measured exactly after decoding, so this only bounds what is read before that check.
    public var maxFrameBytes: Int { maxPayloadBytes * 2 + 16 * 1024 }
}
