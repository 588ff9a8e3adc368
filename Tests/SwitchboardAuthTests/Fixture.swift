import JWTKit
import SwitchboardCore

@testable import SwitchboardAuth

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Keys, clocks and token builders shared by the auth tests.
enum Fixture {
    /// A fixed instant, seconds since 1970.
    static let now: Double = 1_750_000_000
    /// A 43-byte HS256 secret (Supabase's default secret is of this shape).
    static let secret = "super-secret-jwt-token-with-at-least-32-chars"

    /// A 2048-bit RSA test key, generated once with `openssl genpkey -algorithm RSA` (jwt-kit
    /// cannot generate RSA keys). Test use only.
    static let rsaPrivateKeyPEM = """
        -----BEGIN PRIVATE KEY-----
        MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDLKVnpJa5WMgbj
        Cn5mCv1Wd09ltrw0/nYzEAHjx2+hzOjkjNiPhwlwLnd88cFunADmebjOu+NueK4q
        k1cMMUzlYmVk7br0rWi1aQM1cJxCX28B1NdeDWDbY5myHbe2sroUh3NVTSaTwc/F
        +DQRSJsDIzViWUqBZh23DsbBtbXoT1BIh0WDALFbJeiaB0CDp44jQMRR+GrQXnnE
        +JfjhbtDFE83lXH0FUBzqyBJy6rQRtLfK/qc4zq+gLwUHP8WCPTsY9ouo7v7mgK4
        bH0r2WebGkbL1fRZX+9td+Az3Gd2kZxHsZmU2+3SKB32u7XI2y7R5B2jhzBKI42q
        yEPKGfblAgMBAAECggEAJbnDSCvW3Is0I690assCIa8Ml5jwCJAzD0ba7vr/FAba
        vWwZH8fl3QbH6fPzpTBDa4jxZDRYJpCy2NWc7bbu7k6QAQazN5HG9p7uOVt0rM+P
        a8HkD0NBN+QeK4jgr0SvkLXZWR73OatdA4hUVNxMaq/8TwvBLdeyT2anSlvNkHpq
        +Oml6qNvou0t0NdeRd+ob0zcg3wJgEAhlu3OblvYDqwxa4BZO7ujETXcONuXc4ZY
        /RUz7VMLdioWBj3VDG0ibfzgAXIoItqkkO8Q3fvKLs8GJW4JeL14sSaWx0dVeszn
        r/s+ShMdHl82G9CzIwXN9BhV9Dxfxx5ya250vttveQKBgQD29WIjgRbrTIjmMBnh
        3oo7kaZB2t1yRodeUrs/sfdw3991VDyVT9RHWKJp2Rtvh+dCFCCOU3iIFOsqq6YC
        mq9ZI4jUuDtM2Wpe/xsV970QVk02+QcB3lM8FeFFx8deysuNl4JGvwhnIIByWRyS
        iW4wPKFXgDOL4fWCpAGKJm0c7QKBgQDSmXsZXcOA+oBywpbPdb+rilhh4lQu5OFZ
        iDQB8C5wB9p2uKz5RQMIPnm+l5vF5pO2hbI506Crbqgk1JC6WbhziQwz/f2Uyucg
        LNVGeIrBDjgpPavl/tBG2P048KL9APtAd2vagl5xONWY3JysGLSVvi9iGy3R0sTD
        dcjcoDH62QKBgQCQ0R5mkYl+G9hfm69hy10mR2fGUHDxVTiGcF9Ln7HpZ+6i3+3S
        5QgnemtrRJwZEAnlruXUcFBLBHFPCW8FMe5HiFXx38MucoQ1BsW8YRVmYiVPakLY
        rqYCoxYCFH/uL1+kPUdw8w8bYmzQIT9nEt4hvTwjkpMnoS6WGFSqzZPIlQKBgQDP
        9heE+P4xwyxMJrNdsdzPvBGCt0iB9ipBiyowL8jrgBXO3paQoAFahrcZ6gQ87HA4
        8NUKHVyvbNpFZFJ2clqeXFrcjJd38tVBBISmzinWcgArWWcB+xoYm/WR4K5SQEHb
        axHp+IriK0lhZZigqNTKeb+4lTYt2H/Ms+bhVp+EIQKBgC2CHo4jXTnH1YLZ4OnB
        S8SSRrXT/O/MlVTAA9NOThofEwB/XnkPeWqLbTNj3FH8W8Uy8PSvvAkyNvJHN76g
        WLNm+WXWJ622C2ALxdZSqknk2QY2tXm8BiS7RUP6s4fLeUxV5o61SPh7Rg0mKHmn
        WAZNN6d0cTvDAX+fDSizMgHE
        -----END PRIVATE KEY-----
        """

    static let rsaPrivateKey: Insecure.RSA.PrivateKey = {
        do { return try Insecure.RSA.PrivateKey(pem: rsaPrivateKeyPEM) } catch {
            fatalError("fixture RSA key: \(error)")
        }
    }()

    /// Claims with every typed field, a custom claim, and `exp` an hour after `now`.
    static func claims(expiresAt: Double = now + 3600) -> Value.Object {
        let value: Value = [
            "sub": "user-1", "role": "supplier", "tier": "paid", "supplier_id": "sup-9", "couple_id": "cp-3",
            "exp": .int(Int64(expiresAt)), "plan": ["a", "b"], "beta": true,
        ]
        return value.objectValue ?? .init()
    }

    /// `claims` signed with HS256 and `secret`.
    static func hs256(_ claims: Value.Object, secret: String = secret) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return try await keys.sign(ClaimsPayload(claims: claims))
    }

    /// `claims` signed by an RSA or EC private key (whatever `add` registers), with an optional `kid`.
    static func sign(
        _ claims: Value.Object, kid: String? = nil,
        with add: @Sendable (JWTKeyCollection) async -> Void
    ) async throws -> String {
        let keys = JWTKeyCollection()
        await add(keys)
        var header = JWTHeader()
        if let kid { header.kid = kid }
        return try await keys.sign(ClaimsPayload(claims: claims), header: header)
    }

    /// A token assembled by hand: base64url of the header and payload JSON, then `signature`.
    static func handmade(header: String, payload: String, signature: String = "") -> String {
        "\(base64URL(Data(header.utf8))).\(base64URL(Data(payload.utf8))).\(signature)"
    }

    static func base64URL(_ data: Data) -> String {
        String(
            data.base64EncodedString().compactMap { character -> Character? in
                switch character {
                case "+": "-"
                case "/": "_"
                case "=": nil
                default: character
                }
            })
    }

    /// A verifier with just the HS256 secret.
    static func hmacVerifier(
        secret: String = secret, configure: (inout AuthConfiguration) -> Void = { _ in }
    ) async throws -> TokenVerifier {
        var configuration = AuthConfiguration(hmacSecret: secret)
        configure(&configuration)
        return try await TokenVerifier(configuration)
    }
}
