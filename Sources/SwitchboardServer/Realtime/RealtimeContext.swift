import Foundation
import Logging
import NIOCore
import SwitchboardAuth
import SwitchboardCore
import SwitchboardRules

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

    /// Seconds since 1970, the clock tokens are checked against.
    static func now() -> Double { Date().timeIntervalSince1970 }
}
