import JWTKit
import SwitchboardCore
import Synchronization

#if !canImport(Darwin)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Checks Supabase-style JWTs against the configured keys and turns them into an ``Identity``.
///
/// A token passes when it is a compact JWS whose `alg` is one the configured keys verify (never
/// `none`), whose signature verifies with one of those keys (the one its `kid` names first),
/// which carries `role` (a string) and `exp` (a number), has not expired and, if it has `nbf`,
/// is already valid. Tokens that pass are remembered, so the same token presented again (a join
/// carrying the connection's token) costs a dictionary lookup.
public final class TokenVerifier: Sendable {
    private let keys: VerificationKeys
    private let parser = DefaultJWTParser()
    private let cache: Mutex<TokenCache>
    private let leeway: Double
    private let maxTokenBytes: Int

    /// Loads the configured keys; throws ``AuthSetupError`` when there is none or one is invalid.
    ///
    /// Async because jwt-kit only hands out its key algorithms through an actor.
    public init(_ configuration: AuthConfiguration) async throws {
        keys = try await VerificationKeys.load(configuration)
        leeway = max(0, configuration.leewaySeconds)
        maxTokenBytes = configuration.maxTokenBytes
        cache = Mutex(TokenCache(capacity: configuration.cacheCapacity, leeway: leeway))
    }

    /// The `alg` values accepted, sorted, e.g. `["ES256", "HS256"]`: for the startup log.
    public var algorithms: [String] { keys.algorithms }

    /// Verifies `token` at time `now` (seconds since 1970).
    ///
    /// Runs on the caller's task: there is no I/O and no actor behind it.
    public func verify(_ token: String, now: Double) async -> Result<Identity, AuthError> {
        verifySynchronously(token, now: now)
    }

    /// Verifies `token` at time `now` (seconds since 1970) on the calling thread.
    ///
    /// A cached token costs a lookup; otherwise a JSON decode and one signature check per
    /// candidate key: about 15 µs for HS256, 30 µs for RS256, 70 µs for ES256 (release build),
    /// so an event loop may call it.
    public func verifySynchronously(_ token: String, now: Double) -> Result<Identity, AuthError> {
        if let identity = cachedIdentity(for: token, now: now) { return .success(identity) }
        let result = check(token, now: now)
        if case .success(let identity) = result {
            cache.withLock { $0.insert(identity, for: token, now: now) }
        }
        return result
    }

    /// The identity of a token that already verified, if it has not expired by `now`; nil otherwise.
    public func cachedIdentity(for token: String, now: Double) -> Identity? {
        cache.withLock { $0.identity(for: token, now: now) }
    }

    /// Tokens currently cached (for metrics and tests).
    public var cachedTokenCount: Int { cache.withLock { $0.count } }

    private func check(_ token: String, now: Double) -> Result<Identity, AuthError> {
        guard !token.isEmpty else { return .failure(.missing) }
        let bytes = Array(token.utf8)
        guard bytes.count <= maxTokenBytes else {
            return .failure(
                .malformed(detail: "the token is \(bytes.count) bytes; at most \(maxTokenBytes) are accepted"))
        }

        let header: JWTHeader
        let payload: ClaimsPayload
        let signature: Data
        do {
            (header, payload, signature) = try parser.parse(bytes, as: ClaimsPayload.self)
        } catch {
            return .failure(.malformed(detail: Self.describe(error)))
        }
        // The parser has checked that the token has exactly two periods; the signature covers
        // everything before the second.
        guard let secondPeriod = bytes.lastIndex(of: UInt8(ascii: ".")) else {
            return .failure(.malformed(detail: "the token is not three parts"))
        }

        guard let alg = header.alg else {
            return .failure(.malformed(detail: "the header has no `alg`"))
        }
        guard alg.lowercased() != "none" else {
            return .failure(.badSignature(detail: "unsigned tokens (alg none) are not accepted"))
        }
        let candidates = keys.candidates(alg: alg, kid: header.kid)
        guard !candidates.isEmpty else {
            let configured = keys.algorithms.joined(separator: ", ")
            return .failure(.badSignature(detail: "tokens signed with \(alg) are not accepted; configured: \(configured)"))
        }
        let signingInput = bytes[..<secondPeriod]
        // A signature of the wrong shape makes some algorithms throw rather than answer false.
        guard candidates.contains(where: { (try? $0.algorithm.verify(signature, signs: signingInput)) == true }) else {
            return .failure(.badSignature(detail: "the \(alg) signature does not match any configured key"))
        }
        return Self.identity(from: payload.claims, now: now, leeway: leeway)
    }

    /// The identity the claims describe, if `role` and `exp` are there and the token is valid at `now`.
    static func identity(from claims: Value.Object, now: Double, leeway: Double) -> Result<Identity, AuthError> {
        guard let roleClaim = claims["role"], let expClaim = claims["exp"] else {
            let absent = ["role", "exp"].filter { claims[$0] == nil }.joined(separator: " and ")
            return .failure(.missingClaims(detail: "the token has no \(absent)"))
        }
        guard case .string(let role) = roleClaim else {
            return .failure(.missingClaims(detail: "`role` is not a string"))
        }
        guard let expiresAt = expClaim.doubleValue, expiresAt.isFinite else {
            return .failure(.missingClaims(detail: "`exp` is not a number"))
        }
        guard now < expiresAt + leeway else {
            return .failure(.expired(secondsAgo: wholeSeconds(now - expiresAt)))
        }
        if let nbfClaim = claims["nbf"] {
            guard let notBefore = nbfClaim.doubleValue, notBefore.isFinite else {
                return .failure(.malformed(detail: "`nbf` is not a number"))
            }
            guard notBefore - leeway <= now else {
                return .failure(.notYetValid(secondsAhead: wholeSeconds((notBefore - now).rounded(.up))))
            }
        }
        return .success(
            Identity(
                subject: claims["sub"]?.stringValue, role: role, tier: claims["tier"]?.stringValue,
                supplierID: claims["supplier_id"]?.stringValue, coupleID: claims["couple_id"]?.stringValue,
                expiresAt: expiresAt, claims: claims))
    }

    /// Whole seconds, rounded down and clamped to `0...Int64.max`, so that no claim value can trap.
    private static func wholeSeconds(_ seconds: Double) -> Int64 {
        guard seconds > 0 else { return 0 }
        guard seconds < 9.2e18 else { return Int64.max }
        return Int64(seconds)
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? JWTError, let reason = error.reason { return reason }
        return String(describing: error)
    }
}
