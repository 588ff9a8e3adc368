import Logging
import SwitchboardAuth
import SwitchboardCore

/// Everything the server needs to start, with the spec's defaults.
public struct SwitchboardConfiguration: Sendable {
    /// Address to listen on.
    public var host: String = "127.0.0.1"
    /// Port to listen on; 0 picks a free one (tests).
    public var port: Int = 4000
    /// How tokens are verified.
    public var auth: AuthConfiguration
    /// The rules directory (read by the rules engine; unused until it lands).
    public var rulesDirectory: String = "Rules"
    /// Channels per connection on the paid and scale tiers.
    public var maxChannels: Int = 10
    /// Channels per connection on the free tier (also when a token has no `tier`).
    public var freeMaxChannels: Int = 3
    /// Largest user payload accepted, in bytes (64 KB).
    public var maxPayloadBytes: Int = 64 * 1024
    /// Messages per minute per channel (enforced by the rate-limit issue).
    public var messagesPerMinute: Int = 100
    /// Close a connection after this long without inbound data, in seconds (Phoenix: 60).
    public var idleTimeoutSeconds: Int = 60
    /// A subscriber whose unsent bytes stay above this for `slowConsumerGraceSeconds` is closed.
    public var slowConsumerBytes: Int = 1 << 20
    /// How long a subscriber may stay above `slowConsumerBytes` before it is closed.
    public var slowConsumerGraceSeconds: Int = 5
    /// Messages accepted in one `POST /api/broadcast` request.
    public var maxRESTBatch: Int = 100
    /// Log level and format.
    public var logLevel: Logger.Level = .info

    /// The policy deciding joins and sends; the convention policy until the rules engine lands.
    public var policy: (any Policy)?

    public init(auth: AuthConfiguration) {
        self.auth = auth
    }

    /// The WebSocket frame limit: twice the payload limit plus 16 KiB, room for the envelope and
    /// for JSON escaping (a payload of quotes doubles when escaped). The payload itself is
    /// measured exactly after decoding, so this only bounds what is read before that check.
    public var maxFrameBytes: Int { maxPayloadBytes * 2 + 16 * 1024 }

    /// The policy in force.
    var effectivePolicy: any Policy {
        policy
            ?? ConventionPolicy.standard(
                maxChannels: maxChannels, freeMaxChannels: freeMaxChannels, maxPayloadBytes: maxPayloadBytes,
                messagesPerMinute: messagesPerMinute)
    }
}
