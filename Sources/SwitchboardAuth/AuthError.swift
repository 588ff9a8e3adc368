/// Why a token was refused, worded as Supabase Realtime words it so that clients branch on it.
public struct AuthError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure: stable across releases, for code that branches.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case missing, malformed, badSignature, expired, missingClaims, notYetValid
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// No token at all (an empty string).
        public static let missing = Code(.missing)
        /// Not three base64url parts of JSON objects, or too long.
        public static let malformed = Code(.malformed)
        /// Unsigned (`alg: none`), signed with an algorithm or key not configured, or a wrong signature.
        public static let badSignature = Code(.badSignature)
        /// `exp` is in the past.
        public static let expired = Code(.expired)
        /// `role` (a string) or `exp` (a number) is absent.
        public static let missingClaims = Code(.missingClaims)
        /// `nbf` is in the future.
        public static let notYetValid = Code(.notYetValid)

        /// The code's name, e.g. `badSignature`.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// The message of the HTTP 401 body when a connect token fails: `{"error":"<httpMessage>"}`.
    public let httpMessage: String
    /// The sentence after the Supabase prefix, e.g. `Token has expired 12 seconds ago`; what
    /// Supabase sends alone when a refreshed `access_token` fails.
    public let message: String
    /// Supabase's reason prefix, e.g. `InvalidJWTToken`.
    public let prefix: String
    /// More detail for logs (never sent to clients), e.g. which algorithm was refused.
    public let detail: String

    /// The `phx_join` error reason: `<prefix>: <message>`.
    public var joinReason: String { "\(prefix): \(message)" }

    /// The join reason, then the detail when there is one.
    public var description: String { detail.isEmpty ? joinReason : "\(joinReason) (\(detail))" }

    init(code: Code, httpMessage: String, prefix: String, message: String, detail: String = "") {
        self.code = code
        self.httpMessage = httpMessage
        self.prefix = prefix
        self.message = message
        self.detail = detail
    }

    private static let notAJWT = "The token provided is not a valid JWT"
    private static let badSignatureMessage = "Failed to validate JWT signature"
    private static let claimsMessage = "Fields `role` and `exp` are required in JWT"

    /// No token was given. Supabase answers a missing connect token with `API key is missing`;
    /// a join never sees one (it falls back to the connect token), so the join reason is the
    /// malformed one.
    public static let missing = AuthError(
        code: .missing, httpMessage: "API key is missing", prefix: "MalformedJWT", message: notAJWT,
        detail: "the token is empty")

    /// The token is not a JWT.
    public static func malformed(detail: String) -> AuthError {
        AuthError(code: .malformed, httpMessage: notAJWT, prefix: "MalformedJWT", message: notAJWT, detail: detail)
    }

    /// The signature is missing, of an algorithm not configured, or does not verify.
    public static func badSignature(detail: String) -> AuthError {
        AuthError(
            code: .badSignature, httpMessage: badSignatureMessage, prefix: "JwtSignatureError",
            message: badSignatureMessage, detail: detail)
    }

    /// `exp` passed `secondsAgo` seconds ago.
    public static func expired(secondsAgo: Int64) -> AuthError {
        AuthError(
            code: .expired, httpMessage: "Token has expired", prefix: "InvalidJWTToken",
            message: "Token has expired \(secondsAgo) seconds ago")
    }

    /// `role` or `exp` is absent or of the wrong type.
    public static func missingClaims(detail: String) -> AuthError {
        AuthError(
            code: .missingClaims, httpMessage: claimsMessage, prefix: "InvalidJWTToken", message: claimsMessage,
            detail: detail)
    }

    /// `nbf` is `secondsAhead` seconds in the future. Supabase does not check `nbf`, so this
    /// wording is ours, under Supabase's `InvalidJWTToken` prefix.
    public static func notYetValid(secondsAhead: Int64) -> AuthError {
        AuthError(
            code: .notYetValid, httpMessage: "Token is not valid yet", prefix: "InvalidJWTToken",
            message: "Token is not valid yet, it becomes valid in \(secondsAhead) seconds")
    }
}

/// The verifier could not be set up from its configuration: no key, or a key that does not parse.
public struct AuthSetupError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong and which setting to fix.
    public let message: String

    /// An error with the given message.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}
