import JWTKit
import SwitchboardCore
import Testing

@testable import SwitchboardAuth

@Suite struct TokenVerifierTests {
    @Test func hs256TokenBecomesIdentityWithAllClaims() async throws {
        let verifier = try await Fixture.hmacVerifier()
        let token = try await Fixture.hs256(Fixture.claims())

        let identity = try await verifier.verify(token, now: Fixture.now).get()

        #expect(identity.subject == "user-1")
        #expect(identity.role == "supplier")
        #expect(identity.tier == "paid")
        #expect(identity.supplierID == "sup-9")
        #expect(identity.coupleID == "cp-3")
        #expect(identity.expiresAt == Fixture.now + 3600)
        #expect(identity.claims["plan"] == ["a", "b"])
        #expect(identity.claims["beta"] == true)
        #expect(identity.claims["exp"] == .number("1750003600"))
        #expect(identity.claims.count == 8)
    }

    @Test func typedClaimsOfOtherTypesAreLeftOutButKept() async throws {
        let verifier = try await Fixture.hmacVerifier()
        let claims: Value = [
            "role": "couple", "exp": 1_750_003_600, "sub": 42, "tier": ["paid"], "score": .number("1.5"),
        ]
        let token = try await Fixture.hs256(try #require(claims.objectValue))

        let identity = try await verifier.verify(token, now: Fixture.now).get()

        #expect(identity.subject == nil)
        #expect(identity.tier == nil)
        #expect(identity.claims["sub"] == 42)
        #expect(identity.claims["tier"] == ["paid"])
        #expect(identity.claims["score"] == .number("1.5"))
    }

    @Test func expiredTokenSaysHowLongAgo() async throws {
        let verifier = try await Fixture.hmacVerifier()
        let token = try await Fixture.hs256(Fixture.claims(expiresAt: Fixture.now - 12))

        let result = await verifier.verify(token, now: Fixture.now)

        let error = try #require(result.failure)
        #expect(error.code == .expired)
        #expect(error.httpMessage == "Token has expired")
        #expect(error.joinReason == "InvalidJWTToken: Token has expired 12 seconds ago")
        #expect(error.message == "Token has expired 12 seconds ago")
    }

    @Test func tokenExpiresAtExpNotAfterIt() async throws {
        let verifier = try await Fixture.hmacVerifier()
        let token = try await Fixture.hs256(Fixture.claims(expiresAt: Fixture.now))

        #expect(await verifier.verify(token, now: Fixture.now - 0.5).failure == nil)
        #expect(
            await verifier.verify(token, now: Fixture.now).failure?.joinReason
                == "InvalidJWTToken: Token has expired 0 seconds ago")
    }

    @Test func leewayAcceptsRecentlyExpiredTokens() async throws {
        let verifier = try await Fixture.hmacVerifier { $0.leewaySeconds = 30 }
        let token = try await Fixture.hs256(Fixture.claims(expiresAt: Fixture.now - 12))

        #expect(await verifier.verify(token, now: Fixture.now).failure == nil)
        #expect(await verifier.verify(token, now: Fixture.now + 20).failure?.code == .expired)
    }

    @Test func wrongSecretFailsTheSignature() async throws {
        let verifier = try await Fixture.hmacVerifier()
        let token = try await Fixture.hs256(Fixture.claims(), secret: "another-secret-that-is-long-enough-to-sign")

        let error = try #require(await verifier.verify(token, now: Fixture.now).failure)

        #expect(error.code == .badSignature)
        #expect(error.httpMessage == "Failed to validate JWT signature")
        #expect(error.joinReason == "JwtSignatureError: Failed to validate JWT signature")
    }

    @Test func tamperedPayloadFailsTheSignature() async throws {
        let verifier = try await Fixture.hmacVerifier()
        let token = try await Fixture.hs256(Fixture.claims())
        let parts = token.split(separator: ".")
        var claims = Fixture.claims()
        claims["role"] = "admin"
        let forged = try await Fixture.hs256(claims).split(separator: ".")[1]

        let result = await verifier.verify("\(parts[0]).\(forged).\(parts[2])", now: Fixture.now)

        #expect(result.failure?.code == .badSignature)
    }

    @Test(arguments: ["none", "None", "NONE"])
    func unsignedTokensAreRefused(alg: String) async throws {
        let verifier = try await Fixture.hmacVerifier()
        let token = Fixture.handmade(
            header: #"{"alg":"\#(alg)","typ":"JWT"}"#, payload: #"{"role":"admin","exp":1750003600}"#)

        let error = try #require(await verifier.verify(token, now: Fixture.now).failure)

        #expect(error.code == .badSignature)
        #expect(error.joinReason == "JwtSignatureError: Failed to validate JWT signature")
        #expect(error.detail.contains("alg none"))
    }

    @Test func unconfiguredAlgorithmIsRefused() async throws {
        let verifier = try await Fixture.hmacVerifier()
        let token = try await Fixture.sign(Fixture.claims()) { await $0.add(ecdsa: ES256PrivateKey()) }

        let error = try #require(await verifier.verify(token, now: Fixture.now).failure)

        #expect(error.code == .badSignature)
        #expect(error.detail.contains("ES256"))
    }

    @Test func hs512NeedsASecretAsLongAsItsHash() async throws {
        let long = String(repeating: "k", count: 64)
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: long), digestAlgorithm: .sha512)
        let token = try await keys.sign(ClaimsPayload(claims: Fixture.claims()))

        let accepting = try await Fixture.hmacVerifier(secret: long)
        #expect(accepting.algorithms == ["HS256", "HS384", "HS512"])
        #expect(await accepting.verify(token, now: Fixture.now).failure == nil)

        let refusing = try await Fixture.hmacVerifier()
        #expect(refusing.algorithms == ["HS256"])
        #expect(await refusing.verify(token, now: Fixture.now).failure?.code == .badSignature)
    }

    static let malformedTokens: [String] = [
        "abc",
        "a.b.c",
        "a.b",
        "a.b.c.d",
        "...",
        "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9",
        // header `[1]`: JSON, but not an object
        "WzFd.eyJyb2xlIjoiYW5vbiIsImV4cCI6MX0.c2ln",
        // payload `"x"`: JSON, but not an object
        "eyJhbGciOiJIUzI1NiJ9.Ing.c2ln",
        // header without alg
        "e30.eyJyb2xlIjoiYW5vbiIsImV4cCI6MX0.c2ln",
        // signature not base64url
        "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiIsImV4cCI6MX0.***",
        "not a token at all",
        String(repeating: "x", count: 9000),
    ]

    @Test(arguments: malformedTokens)
    func malformedTokensAreNotJWTs(token: String) async throws {
        let verifier = try await Fixture.hmacVerifier()

        let error = try #require(await verifier.verify(token, now: Fixture.now).failure)

        #expect(error.code == .malformed)
        #expect(error.httpMessage == "The token provided is not a valid JWT")
        #expect(error.joinReason == "MalformedJWT: The token provided is not a valid JWT")
    }

    @Test func emptyTokenIsMissing() async throws {
        let verifier = try await Fixture.hmacVerifier()

        let error = try #require(await verifier.verify("", now: Fixture.now).failure)

        #expect(error.code == .missing)
        #expect(error.httpMessage == "API key is missing")
        #expect(error.joinReason.hasPrefix("MalformedJWT: "))
    }

    static let claimsWithoutRoleOrExp: [Value] = [
        ["sub": "u", "exp": 1_750_003_600],
        ["sub": "u", "role": "supplier"],
        [:],
        ["role": 7, "exp": 1_750_003_600],
        ["role": nil, "exp": 1_750_003_600],
        ["role": "supplier", "exp": "1750003600"],
        ["role": "supplier", "exp": nil],
    ]

    @Test(arguments: claimsWithoutRoleOrExp)
    func roleAndExpAreRequired(claims: Value) async throws {
        let verifier = try await Fixture.hmacVerifier()
        let token = try await Fixture.hs256(try #require(claims.objectValue))

        let error = try #require(await verifier.verify(token, now: Fixture.now).failure)

        #expect(error.code == .missingClaims)
        #expect(error.httpMessage == "Fields `role` and `exp` are required in JWT")
        #expect(error.joinReason == "InvalidJWTToken: Fields `role` and `exp` are required in JWT")
    }

    @Test func notBeforeIsHonoured() async throws {
        let verifier = try await Fixture.hmacVerifier()
        var claims = Fixture.claims()
        claims["nbf"] = .int(Int64(Fixture.now) + 30)
        let token = try await Fixture.hs256(claims)

        let error = try #require(await verifier.verify(token, now: Fixture.now).failure)
        #expect(error.code == .notYetValid)
        #expect(error.joinReason.hasPrefix("InvalidJWTToken: "))
        #expect(error.message.contains("30 seconds"))

        #expect(await verifier.verify(token, now: Fixture.now + 30).failure == nil)
    }

    @Test func verifySynchronouslyAgreesWithVerify() async throws {
        let verifier = try await Fixture.hmacVerifier()
        let token = try await Fixture.hs256(Fixture.claims())

        let identity = try verifier.verifySynchronously(token, now: Fixture.now).get()

        #expect(try await verifier.verify(token, now: Fixture.now).get() == identity)
    }
}

extension Result {
    /// The error of a failure, nil on success.
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
