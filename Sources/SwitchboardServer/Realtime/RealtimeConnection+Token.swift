import SwitchboardAuth
import SwitchboardCore
import SwitchboardWire

/// Tokens: the identity a join or refresh acts as, `access_token` refreshes.
extension RealtimeConnection {
    /// Resolves a token to an identity: the connection's own (checked for expiry), or a
    /// channel token verified on the spot (jwt-kit's algorithms, no await; cached when seen).
    func identity(for token: String?) -> Result<Identity, AuthError> {
        let now = shared.configuration.clock.wallClockSeconds()
        guard let token else {
            if identity.expiresAt <= now {
                return .failure(.expired(secondsAgo: Int64(now - identity.expiresAt)))
            }
            return .success(identity)
        }
        return shared.verifier.verifySynchronously(token, now: now)
    }

    /// `access_token`: re-verifies the new token and re-authorizes the channel with it; a
    /// failure shuts the channel down.
    func refreshToken(_ inbound: InboundFrame, join: Join) {
        guard let token = JoinRequest.channelToken(in: inbound.payload, connectToken: connectToken) else { return }
        switch identity(for: token) {
        case .failure(let error):
            shared.metrics.rejected(.badToken)
            shutDownChannel(topic: inbound.topic, join, message: error.message)
        case .success(let identity):
            if case .deny(let why) = shared.policy.authorizeJoin(identity, channel: join.channel) {
                revoke(topic: inbound.topic, join, .revoked(join.channel, why))
            } else {
                joins[inbound.topic]?.identity = identity
                perform(machine.tokenExpires(topic: inbound.topic, at: identity.expiresAt, now: shared.now()))
            }
        }
    }
}
