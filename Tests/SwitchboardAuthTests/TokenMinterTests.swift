import SwitchboardCore
import Testing

@testable import SwitchboardAuth

@Suite struct TokenMinterTests {
    @Test func mintedTokenVerifies() async throws {
        let minter = TokenMinter(hmacSecret: Fixture.secret)
        let extra: Value = ["team": "blue", "level": 3, "role": "admin"]
        let claims = TokenClaims(
            role: "couple", subject: "user-7", tier: "scale", supplierID: "sup-1", coupleID: "cp-2",
            expiresAt: Fixture.now + 600, issuedAt: Fixture.now,
            extra: try #require(extra.objectValue))
        let token = try await minter.mint(claims)

        let verifier = try await Fixture.hmacVerifier()
        let identity = try await verifier.verify(token, now: Fixture.now).get()

        #expect(identity.role == "couple")
        #expect(identity.subject == "user-7")
        #expect(identity.tier == "scale")
        #expect(identity.supplierID == "sup-1")
        #expect(identity.coupleID == "cp-2")
        #expect(identity.expiresAt == Fixture.now + 600)
        #expect(identity.claims["team"] == "blue")
        #expect(identity.claims["level"] == 3)
        #expect(identity.claims["iat"] == .number("1750000000"))
        #expect(identity.claims["exp"] == .number("1750000600"))
    }

    @Test func mintedHeaderIsHS256JWT() async throws {
        let token = try await TokenMinter(hmacSecret: Fixture.secret).mint(
            TokenClaims(role: "anon", expiresAt: Fixture.now + 1))
        let header = try #require(token.split(separator: ".").first)

        // {"alg":"HS256","typ":"JWT"} in either key order
        #expect(
            ["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9"].contains(String(header)))
    }

    @Test func shortSecretCannotMint() async {
        await #expect(throws: AuthSetupError.self) {
            try await TokenMinter(hmacSecret: "short").mint(TokenClaims(role: "anon", expiresAt: 1))
        }
    }

    @Test func generatedSecretsAreRandomHex() {
        let first = TokenMinter.generateSecret()
        let second = TokenMinter.generateSecret()

        #expect(first.count == 64)
        #expect(first.allSatisfy { $0.isHexDigit })
        #expect(first != second)
    }

    static let claimArguments: [(String, String, Value)] = [
        ("tier=paid", "tier", "paid"),
        ("beta=true", "beta", true),
        ("beta=false", "beta", false),
        ("gone=null", "gone", nil),
        ("level=42", "level", 42),
        ("ratio=-1.5e3", "ratio", .number("-1.5e3")),
        ("zip=01234", "zip", "01234"),
        ("note=a=b", "note", "a=b"),
        ("empty=", "empty", ""),
        ("teams=[red, blue ,green]", "teams", ["red", "blue", "green"]),
        ("teams=[]", "teams", []),
        ("name=True", "name", "True"),
    ]

    @Test(arguments: claimArguments)
    func claimArgumentsParse(text: String, key: String, value: Value) throws {
        let (parsedKey, parsedValue) = try TokenClaims.parseClaimArgument(text)

        #expect(parsedKey == key)
        #expect(parsedValue == value)
    }

    @Test(arguments: ["novalue", "=x", ""])
    func badClaimArgumentsThrow(text: String) {
        #expect(throws: ClaimArgumentError.self) { try TokenClaims.parseClaimArgument(text) }
    }
}
