import Foundation
import Logging
import NIOCore
import SwitchboardAuth
import SwitchboardCore

/// What every connection shares: the hub, the token verifier, the policy and the limits.
final class RealtimeContext: Sendable {
    let hub: Hub
    let verifier: TokenVerifier
    let policy: any Policy
    let configuration: SwitchboardConfiguration
    let metrics: ServerMetrics
    let logger: Logger

    init(hub: Hub, verifier: TokenVerifier, policy: any Policy, configuration: SwitchboardConfiguration, logger: Logger) {
        self.hub = hub
        self.verifier = verifier
        self.policy = policy
        self.configuration = configuration
        self.metrics = hub.metrics
        self.logger = logger
    }

    /// Seconds since 1970, the clock tokens are checked against.
    static func now() -> Double { Date().timeIntervalSince1970 }
}
