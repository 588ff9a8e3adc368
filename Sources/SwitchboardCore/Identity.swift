/// Who a connection or a channel join acts as: the verified claims of a JWT.
public struct Identity: Sendable, Hashable {
    /// `sub`: the user id, when the token has one.
    public var subject: String?
    /// `role`: `supplier`, `couple`, `admin`, or Supabase's `anon`, `authenticated`, `service_role`.
    public var role: String
    /// `tier`: `free`, `paid`, `scale`; nil when the token carries none (the free tier then applies).
    public var tier: String?
    public var supplierID: String?
    public var coupleID: String?
    /// Expiry, seconds since 1970.
    public var expiresAt: Double
    /// Every claim of the token, including the ones above, for rules that read custom claims.
    public var claims: Value.Object

    public init(
        subject: String? = nil, role: String, tier: String? = nil, supplierID: String? = nil,
        coupleID: String? = nil, expiresAt: Double, claims: Value.Object = .init()
    ) {
        self.subject = subject
        self.role = role
        self.tier = tier
        self.supplierID = supplierID
        self.coupleID = coupleID
        self.expiresAt = expiresAt
        self.claims = claims
    }

    /// True for the platform's own publishers: `admin` users and the `service_role` backend.
    public var isAdmin: Bool { role == "admin" || role == "service_role" }
}
