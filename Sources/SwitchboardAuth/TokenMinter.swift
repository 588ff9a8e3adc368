import JWTKit
import SwitchboardCore

/// The claims of a token to mint: Switchboard's typed claims plus any custom ones.
public struct TokenClaims: Sendable, Hashable {
    /// `role`, e.g. `supplier`, `couple`, `admin`, `authenticated`.
    public var role: String
    /// `sub`: the user id.
    public var subject: String?
    /// `tier`: `free`, `paid` or `scale`.
    public var tier: String?
    /// `supplier_id`.
    public var supplierID: String?
    /// `couple_id`.
    public var coupleID: String?
    /// `exp`, seconds since 1970; written as an integer when it is whole.
    public var expiresAt: Double
    /// `iat`, seconds since 1970, when given.
    public var issuedAt: Double?
    /// Custom claims. The typed fields above win over an extra claim of the same name.
    public var extra: Value.Object

    /// Claims with the given fields.
    public init(
        role: String, subject: String? = nil, tier: String? = nil, supplierID: String? = nil,
        coupleID: String? = nil, expiresAt: Double, issuedAt: Double? = nil, extra: Value.Object = .init()
    ) {
        self.role = role
        self.subject = subject
        self.tier = tier
        self.supplierID = supplierID
        self.coupleID = coupleID
        self.expiresAt = expiresAt
        self.issuedAt = issuedAt
        self.extra = extra
    }

    /// All claims as one object: the typed ones first, then the extra ones not overridden.
    public var object: Value.Object {
        var object = Value.Object()
        object["role"] = .string(role)
        if let subject { object["sub"] = .string(subject) }
        if let tier { object["tier"] = .string(tier) }
        if let supplierID { object["supplier_id"] = .string(supplierID) }
        if let coupleID { object["couple_id"] = .string(coupleID) }
        object["exp"] = Self.number(expiresAt)
        if let issuedAt { object["iat"] = Self.number(issuedAt) }
        for member in extra.members where object[member.key] == nil {
            object[member.key] = member.value
        }
        return object
    }

    /// Whole seconds, rounded down (so a token never outlives what was asked): RFC 7519 allows
    /// fractions, but many verifiers accept only integers.
    private static func number(_ seconds: Double) -> Value {
        if let whole = Int64(exactly: seconds.rounded(.down)) { return .int(whole) }
        return .number(String(seconds))
    }
}

/// Signs HS256 tokens with a shared secret: for `switchboard token` and for tests.
public struct TokenMinter: Sendable {
    private let secret: [UInt8]

    /// A minter signing with the UTF-8 bytes of `hmacSecret`.
    public init(hmacSecret: String) {
        secret = Array(hmacSecret.utf8)
    }

    /// The signed token (`alg: HS256`, `typ: JWT`) carrying `claims`.
    ///
    /// Throws ``AuthSetupError`` when the secret is shorter than 32 bytes, which HS256 needs.
    public func mint(_ claims: TokenClaims) async throws -> String {
        guard secret.count >= 32 else {
            throw AuthSetupError("the secret is \(secret.count) bytes long; HS256 needs at least 32")
        }
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return try await keys.sign(ClaimsPayload(claims: claims.object))
    }

    /// A new random secret: 32 bytes from the system's secure generator, as 64 hex digits.
    public static func generateSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        var text = ""
        text.reserveCapacity(64)
        for _ in 0..<32 {
            let byte = UInt8.random(in: .min ... .max, using: &generator)
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return text
    }
}
