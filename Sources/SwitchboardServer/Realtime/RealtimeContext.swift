import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SwitchboardAuth
import SwitchboardCore
import SwitchboardRules
import SwitchboardWire

/// What every connection shares: the hub, the token verifier, the policy and the limits.
final class RealtimeContext: Sendable {
    let hub: Hub
    let verifier: TokenVerifier
    let policy: any Policy
    /// The rules engine behind `policy`, unless the configuration injected a policy of its own.
    let rules: RulesEngine?
    let configuration: SwitchboardConfiguration
    let metrics: ServerMetrics
    let logger: Logger
    let rateLimiter = ChannelRateLimiter()
    let presence = PresenceRegistry(seed: UInt64(Date().timeIntervalSince1970 * 1000))
    private let connectionIDs = NIOLockedValueBox<UInt64>(0)

    /// A process-unique id for a connection (the owner of its presence entries).
    func nextConnectionID() -> UInt64 {
        connectionIDs.withLockedValue { id in
            id += 1
            return id
        }
    }

    init(
        hub: Hub, verifier: TokenVerifier, policy: any Policy, rules: RulesEngine?, configuration: SwitchboardConfiguration,
        logger: Logger
    ) {
        self.hub = hub
        self.verifier = verifier
        self.policy = policy
        self.rules = rules
        self.configuration = configuration
        self.metrics = hub.metrics
        self.logger = logger
    }

    /// The identity's tier limits, with the payload limit held to the server's ceiling (frames
    /// larger than `maxFrameBytes` are never read whole).
    func limits(for identity: Identity) -> Limits {
        var limits = policy.limits(for: identity)
        limits.maxPayloadBytes = min(limits.maxPayloadBytes, configuration.maxPayloadBytes)
        return limits
    }

    /// Counts one message against `channel`'s budget (the sender's tier limit per minute).
    func attemptMessage(on channel: ChannelName, limit: Int) -> SlidingWindow.Outcome {
        let outcome = rateLimiter.attempt(channel: channel.rawValue, limit: limit, now: configuration.monotonicSeconds())
        if case .refused = outcome { metrics.rejected(.rateLimited) }
        return outcome
    }

    /// Sends a `presence_diff` to every subscriber of `topic`, the tracker included.
    func publishPresence(_ diff: ChannelPresence.Diff?, topic: String, allocator: ByteBufferAllocator) {
        guard let diff, !diff.isEmpty else { return }
        let frame = OutboundFrame(joinRef: nil, ref: nil, topic: topic, event: "presence_diff", payload: diff.payload)
        hub.publish(topic: topic, message: EncodedBroadcast(event: frame, allocator: allocator), sender: nil)
    }

    /// A presence key for a join that gave none (Supabase generates one too).
    static func generatedPresenceKey() -> String { UUID().uuidString.lowercased() }

    /// Seconds since 1970, the clock tokens are checked against.
    static func now() -> Double { Date().timeIntervalSince1970 }
}
