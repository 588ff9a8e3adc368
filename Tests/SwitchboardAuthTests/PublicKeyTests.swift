import JWTKit
import SwitchboardCore
import Testing

@testable import SwitchboardAuth

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

@Suite struct PublicKeyTests {
    @Test func rs256PublicKeyPEMVerifies() async throws {
        let privateKey = Fixture.rsaPrivateKey
        let verifier = try await TokenVerifier(
            AuthConfiguration(publicKeyPEMs: [privateKey.publicKey.pemRepresentation]))
        let token = try await Fixture.sign(Fixture.claims()) { await $0.add(rsa: privateKey, digestAlgorithm: .sha256) }

        let identity = try await verifier.verify(token, now: Fixture.now).get()

        #expect(identity.role == "supplier")
        #expect(verifier.algorithms == ["RS256", "RS384", "RS512"])
    }

    @Test func es256PublicKeyPEMVerifies() async throws {
        let privateKey = ES256PrivateKey()
        let verifier = try await TokenVerifier(
            AuthConfiguration(publicKeyPEMs: [privateKey.publicKey.pemRepresentation]))
        let token = try await Fixture.sign(Fixture.claims()) { await $0.add(ecdsa: privateKey) }

        let identity = try await verifier.verify(token, now: Fixture.now).get()

        #expect(identity.subject == "user-1")
        #expect(verifier.algorithms == ["ES256"])
    }

    @Test func anotherEC256KeyFailsTheSignature() async throws {
        let verifier = try await TokenVerifier(
            AuthConfiguration(publicKeyPEMs: [ES256PrivateKey().publicKey.pemRepresentation]))
        let token = try await Fixture.sign(Fixture.claims()) { await $0.add(ecdsa: ES256PrivateKey()) }

        #expect(await verifier.verify(token, now: Fixture.now).failure?.code == .badSignature)
    }

    @Test func everyConfiguredKeyIsTried() async throws {
        let first = ES256PrivateKey()
        let second = ES256PrivateKey()
        let verifier = try await TokenVerifier(
            AuthConfiguration(
                hmacSecret: Fixture.secret,
                publicKeyPEMs: [
                    first.publicKey.pemRepresentation, second.publicKey.pemRepresentation,
                    Fixture.rsaPrivateKey.publicKey.pemRepresentation,
                ]))

        for key in [first, second] {
            let token = try await Fixture.sign(Fixture.claims()) { await $0.add(ecdsa: key) }
            #expect(await verifier.verify(token, now: Fixture.now).failure == nil)
        }
        let hmacToken = try await Fixture.hs256(Fixture.claims())
        #expect(await verifier.verify(hmacToken, now: Fixture.now).failure == nil)
    }

    /// The classic confusion attack: an HS256 token whose secret is the public key's PEM text.
    @Test func publicKeyUsedAsHMACSecretIsRefused() async throws {
        let pem = Fixture.rsaPrivateKey.publicKey.pemRepresentation
        let verifier = try await TokenVerifier(AuthConfiguration(publicKeyPEMs: [pem]))
        let token = try await Fixture.hs256(Fixture.claims(), secret: pem)

        #expect(await verifier.verify(token, now: Fixture.now).failure?.code == .badSignature)
    }

    @Test func jwksWithECAndRSAKeysVerifiesByKid() async throws {
        let ecKey = ES256PrivateKey()
        let parameters = try #require(ecKey.publicKey.parameters)
        let primitives = try Fixture.rsaPrivateKey.publicKey.getKeyPrimitives()
        let jwks = """
            {"keys":[
              {"kty":"EC","crv":"P-256","kid":"ec-1","use":"sig","alg":"ES256","x":"\(parameters.x)","y":"\(parameters.y)"},
              {"kty":"RSA","kid":"rsa-1","n":"\(Fixture.base64URL(primitives.modulus))","e":"\(Fixture.base64URL(primitives.publicExponent))"},
              {"kty":"RSA","kid":"enc-1","use":"enc","alg":"RSA-OAEP","n":"AQAB","e":"AQAB"}
            ]}
            """
        let verifier = try await TokenVerifier(AuthConfiguration(jwks: jwks))

        let ecToken = try await Fixture.sign(Fixture.claims(), kid: "ec-1") { await $0.add(ecdsa: ecKey) }
        let rsaToken = try await Fixture.sign(Fixture.claims(), kid: "rsa-1") {
            await $0.add(rsa: Fixture.rsaPrivateKey, digestAlgorithm: .sha384)
        }

        #expect(try await verifier.verify(ecToken, now: Fixture.now).get().coupleID == "cp-3")
        #expect(try await verifier.verify(rsaToken, now: Fixture.now).get().coupleID == "cp-3")
        #expect(verifier.algorithms == ["ES256", "RS256", "RS384", "RS512"])
    }

    @Test func jwksOctKeyVerifiesHS256() async throws {
        let secret = "a-jwks-oct-secret-of-at-least-32-bytes"
        let jwks = #"{"keys":[{"kty":"oct","kid":"hs","alg":"HS256","k":"\#(Fixture.base64URL(Data(secret.utf8)))"}]}"#
        let verifier = try await TokenVerifier(AuthConfiguration(jwks: jwks))
        let token = try await Fixture.hs256(Fixture.claims(), secret: secret)

        #expect(await verifier.verify(token, now: Fixture.now).failure == nil)
    }

    static let badConfigurations: [(String, AuthConfiguration, String)] = [
        ("nothing", AuthConfiguration(), "no JWT verification key is configured"),
        ("short secret", AuthConfiguration(hmacSecret: "short"), "HS256 needs at least 32"),
        (
            "garbage PEM", AuthConfiguration(publicKeyPEMs: ["hello"]),
            "the public key in --jwt-public-key is not a valid RSA or EC PEM"
        ),
        ("private PEM", AuthConfiguration(publicKeyPEMs: [Fixture.rsaPrivateKeyPEM]), "is a private key"),
        (
            "second PEM bad", AuthConfiguration(publicKeyPEMs: [ES256PrivateKey().publicKey.pemRepresentation, "x"]),
            "public key 2 in --jwt-public-key"
        ),
        ("JWKS not JSON", AuthConfiguration(jwks: "{"), "the JWKS in --jwks is not a JSON object"),
        ("JWKS empty", AuthConfiguration(jwks: #"{"keys":[]}"#), "has no signing key"),
        (
            "JWKS bad EC",
            AuthConfiguration(jwks: #"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"AA","y":"AA"}]}"#),
            #"key "k" in --jwks"#
        ),
    ]

    @Test(arguments: badConfigurations)
    func setupErrorsSayWhatIsWrong(name: String, configuration: AuthConfiguration, expected: String) async {
        do {
            _ = try await TokenVerifier(configuration)
            Issue.record("\(name): expected a setup error")
        } catch let error as AuthSetupError {
            #expect(error.message.contains(expected), "\(name): \(error.message)")
        } catch {
            Issue.record("\(name): unexpected \(error)")
        }
    }
}
