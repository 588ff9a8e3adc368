/// Which keys verify tokens, and the bounds of the verifier.
///
/// At least one of `hmacSecret`, `publicKeyPEMs` and `jwks` must be given. Each key admits the
/// algorithms of its family and no others:
/// - the HMAC secret: HS256, plus HS384 and HS512 when the secret is at least 48 or 64 bytes long
///   (a shorter HMAC key than the hash is refused by jwt-kit);
/// - an RSA public key: RS256, RS384, RS512;
/// - an EC public key: ES256, ES384 or ES512, by its curve;
/// - a JWK: its `alg` when it names one, otherwise its key type's family as above (`OKP` keys
///   admit EdDSA, `oct` keys follow the HMAC rule).
public struct AuthConfiguration: Sendable {
    /// The shared secret of HS256 tokens (Supabase's JWT secret), as text; its UTF-8 bytes are the key.
    public var hmacSecret: String?
    /// RSA or EC public keys as PEM text (`-----BEGIN PUBLIC KEY-----`); the kind is detected.
    public var publicKeyPEMs: [String]
    /// The text of a JSON Web Key Set document (`{"keys":[...]}`), e.g. Supabase's
    /// `/auth/v1/.well-known/jwks.json`.
    public var jwks: String?
    /// Seconds of clock skew allowed on `exp` and `nbf`. Default 0, as Supabase.
    public var leewaySeconds: Double = 0
    /// Verified tokens remembered by ``TokenVerifier/cachedIdentity(for:now:)``. Default 10,000.
    public var cacheCapacity: Int = 10_000
    /// Longest token accepted, in UTF-8 bytes; longer ones are malformed. Default 8 KiB.
    public var maxTokenBytes: Int = 8 * 1024

    /// A configuration with the given keys and the default bounds.
    public init(hmacSecret: String? = nil, publicKeyPEMs: [String] = [], jwks: String? = nil) {
        self.hmacSecret = hmacSecret
        self.publicKeyPEMs = publicKeyPEMs
        self.jwks = jwks
    }
}
