import JWTKit

#if !canImport(Darwin)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One key able to check one algorithm's signatures, and the `kid` tokens name it by.
struct VerificationKey: Sendable {
    let kid: String?
    let algorithm: any JWTAlgorithm
}

/// The configured keys, by the `alg` they verify.
///
/// The keys are jwt-kit's own algorithms, taken out of a `JWTKeyCollection` once at setup: that
/// collection is an actor, so verifying through it would queue every connection of every event
/// loop behind one executor; a `JWTAlgorithm` verifies synchronously on the caller's thread.
struct VerificationKeys: Sendable {
    private(set) var byAlgorithm: [String: [VerificationKey]] = [:]

    /// The algorithms some key verifies, sorted.
    var algorithms: [String] { byAlgorithm.keys.sorted() }

    /// The keys for `alg`, the ones named `kid` first.
    func candidates(alg: String, kid: String?) -> [VerificationKey] {
        guard let keys = byAlgorithm[alg] else { return [] }
        guard let kid, keys.contains(where: { $0.kid == kid }) else { return keys }
        return keys.filter { $0.kid == kid } + keys.filter { $0.kid != kid }
    }

    private mutating func add(_ algorithm: any JWTAlgorithm, kid: String?) {
        byAlgorithm[algorithm.name, default: []].append(VerificationKey(kid: kid, algorithm: algorithm))
    }

    /// Loads every key of the configuration; an ``AuthSetupError`` names the first bad one.
    static func load(_ configuration: AuthConfiguration) async throws -> VerificationKeys {
        var keys = VerificationKeys()
        if let secret = configuration.hmacSecret {
            try await keys.addHMAC(Array(secret.utf8), kid: nil, declaredAlg: nil, label: "the secret in --jwt-secret")
        }
        let pems = configuration.publicKeyPEMs
        for (index, pem) in pems.enumerated() {
            let label =
                pems.count == 1 ? "the public key in --jwt-public-key" : "public key \(index + 1) in --jwt-public-key"
            try await keys.addPEM(pem, label: label)
        }
        if let jwks = configuration.jwks {
            try await keys.addJWKS(jwks)
        }
        guard !keys.byAlgorithm.isEmpty else {
            throw AuthSetupError(
                "no JWT verification key is configured: give --jwt-secret, --jwt-public-key or --jwks")
        }
        return keys
    }

    // MARK: HMAC

    private static let hmacFamily: [(alg: String, digest: DigestAlgorithm, minimumBytes: Int)] = [
        ("HS256", .sha256, 32), ("HS384", .sha384, 48), ("HS512", .sha512, 64),
    ]

    /// HS256, and HS384/HS512 when the key is as long as their hash (jwt-kit refuses shorter keys),
    /// or only `declaredAlg`.
    private mutating func addHMAC(_ key: [UInt8], kid: String?, declaredAlg: String?, label: String) async throws {
        let family = Self.hmacFamily.filter { declaredAlg == nil || $0.alg == declaredAlg }
        guard let first = family.first else {
            throw AuthSetupError("\(label) names alg \(declaredAlg ?? "?"), which is not an HMAC algorithm")
        }
        guard key.count >= first.minimumBytes else {
            throw AuthSetupError(
                "\(label) is \(key.count) bytes long; \(first.alg) needs at least \(first.minimumBytes)")
        }
        for member in family where key.count >= member.minimumBytes {
            let algorithm = try await Self.extract(alg: member.alg, label: label) { collection, kid in
                await collection.add(hmac: HMACKey(from: key), digestAlgorithm: member.digest, kid: kid)
            }
            add(algorithm, kid: kid)
        }
    }

    // MARK: PEM

    private mutating func addPEM(_ pem: String, label: String) async throws {
        if let key = try? ES256PublicKey(pem: pem) {
            add(try await Self.extract(alg: "ES256", label: label) { await $0.add(ecdsa: key, kid: $1) }, kid: nil)
        } else if let key = try? ES384PublicKey(pem: pem) {
            add(try await Self.extract(alg: "ES384", label: label) { await $0.add(ecdsa: key, kid: $1) }, kid: nil)
        } else if let key = try? ES512PublicKey(pem: pem) {
            add(try await Self.extract(alg: "ES512", label: label) { await $0.add(ecdsa: key, kid: $1) }, kid: nil)
        } else {
            let key: Insecure.RSA.PublicKey
            do {
                key = try Insecure.RSA.PublicKey(pem: pem)
            } catch {
                if pem.contains("PRIVATE KEY") {
                    throw AuthSetupError(
                        "\(label) is a private key; give the public key (openssl pkey -in key.pem -pubout)")
                }
                throw AuthSetupError("\(label) is not a valid RSA or EC PEM: \(error)")
            }
            for (alg, digest) in [("RS256", DigestAlgorithm.sha256), ("RS384", .sha384), ("RS512", .sha512)] {
                add(
                    try await Self.extract(alg: alg, label: label) {
                        await $0.add(rsa: key, digestAlgorithm: digest, kid: $1)
                    }, kid: nil)
            }
        }
    }

    // MARK: JWKS

    private struct RawJWKS: Decodable {
        var keys: [JSONValue]
    }

    private static let curveAlgorithms = ["P-256": "ES256", "P-384": "ES384", "P-521": "ES512"]
    private static let asymmetricAlgorithms: Set<String> = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    ]

    /// Adds the signing keys of a JWKS. Encryption keys (`use: enc`) and key types or algorithms
    /// jwt-kit cannot verify are skipped; a set left with no key at all is an error.
    private mutating func addJWKS(_ text: String) async throws {
        let raw: RawJWKS
        do {
            raw = try JSONDecoder().decode(RawJWKS.self, from: Data(text.utf8))
        } catch {
            throw AuthSetupError("the JWKS in --jwks is not a JSON object with a `keys` array: \(error)")
        }
        let before = byAlgorithm.values.reduce(0) { $0 + $1.count }
        for (index, entry) in raw.keys.enumerated() {
            guard case .object(var object) = entry.value else {
                throw AuthSetupError("key \(index + 1) in --jwks is not a JSON object")
            }
            let kid = object["kid"]?.stringValue
            let label = kid.map { "key \"\($0)\" in --jwks" } ?? "key \(index + 1) in --jwks"
            let declaredAlg = object["alg"]?.stringValue
            if object["use"]?.stringValue == "enc" { continue }
            switch object["kty"]?.stringValue {
            case "oct":
                guard let secret = object["k"]?.stringValue.flatMap(Self.base64URLDecode) else {
                    throw AuthSetupError("\(label) is an `oct` key without a valid base64url `k`")
                }
                try await addHMAC(secret, kid: kid, declaredAlg: declaredAlg, label: label)
            case let kty? where ["RSA", "EC", "OKP"].contains(kty):
                let algs: [String]
                if let declaredAlg {
                    guard Self.asymmetricAlgorithms.contains(declaredAlg) else { continue }
                    algs = [declaredAlg]
                } else if kty == "RSA" {
                    algs = ["RS256", "RS384", "RS512"]
                } else if kty == "EC" {
                    guard let alg = object["crv"]?.stringValue.flatMap({ Self.curveAlgorithms[$0] }) else {
                        throw AuthSetupError("\(label) is an EC key on a curve other than P-256, P-384 or P-521")
                    }
                    algs = [alg]
                } else {
                    algs = ["EdDSA"]
                }
                // jwt-kit files JWKs by kid; a key without one gets a placeholder, never named by tokens.
                object["kid"] = .string(kid ?? "switchboard-jwks-\(index)")
                let jwk: JWK
                do {
                    jwk = try JSONDecoder().decode(JWK.self, from: JSONEncoder().encode(JSONValue(.object(object))))
                } catch {
                    throw AuthSetupError("\(label) is not a valid JWK: \(error)")
                }
                for alg in algs {
                    add(
                        try await Self.extract(alg: alg, label: label) { collection, _ in
                            try await collection.add(jwk: jwk)
                        }, kid: kid)
                }
            default:
                continue
            }
        }
        guard byAlgorithm.values.reduce(0, { $0 + $1.count }) > before else {
            throw AuthSetupError(
                "the JWKS in --jwks has no signing key Switchboard can use (kty RSA, EC, OKP or oct)")
        }
    }

    // MARK: Helpers

    /// Adds one key to a fresh `JWTKeyCollection` and takes back jwt-kit's algorithm for `alg`.
    /// A fresh collection per key and algorithm, because a JWK without `alg` keeps the first
    /// signer it is asked for.
    private static func extract(
        alg: String, label: String,
        _ add: @Sendable (JWTKeyCollection, JWKIdentifier) async throws -> Void
    ) async throws -> any JWTAlgorithm {
        let collection = JWTKeyCollection()
        let kid = JWKIdentifier(string: "switchboard-key")
        let algorithm: any JWTAlgorithm
        do {
            try await add(collection, kid)
            algorithm = try await collection.getKey(for: kid, alg: alg)
        } catch {
            throw AuthSetupError("\(label) cannot verify \(alg): \(error)")
        }
        guard algorithm.name == alg else {
            throw AuthSetupError("\(label) verifies \(algorithm.name), not \(alg)")
        }
        return algorithm
    }

    /// The bytes of unpadded base64url text, or nil if it is not base64url.
    static func base64URLDecode(_ text: String) -> [UInt8]? {
        var base64 = String(text.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        return Data(base64Encoded: base64).map(Array.init)
    }
}
