import Crypto
import Dispatch
import FuzzSupport
import SwitchboardAuth
import SwitchboardCore
import SwitchboardWire
import Synchronization

/// `TokenVerifier` (HS256 with a fixed secret) on tokens built from the input. The first byte
/// picks how:
/// - 0: the rest of the input is the token;
/// - 1: a validly signed header and payload, then the rest of the input as the signature;
/// - 2: the rest split at the first NUL into a header and a payload, each base64url-encoded
///   and then signed with the right key, so the claims checks after the signature run too.
/// The verifier must answer every token without trapping; a token whose signature is not the
/// one its signing input has must not verify (mode 1), and a correctly signed one (mode 2) must
/// not fail on its signature when its header says HS256.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let rest = UnsafeBufferPointer(start: data + 1, count: size - 1)
    switch data[0] % 3 {
    case 0:
        _ = fixture.verifier.verifySynchronously(String(decoding: rest, as: UTF8.self), now: now)
    case 1:
        let signature = String(decoding: rest, as: UTF8.self)
        let result = fixture.verifier.verifySynchronously(fixture.signingInput + "." + signature, now: now)
        if case .success = result, signature != fixture.signature {
            // base64url text that decodes to the same bytes (unused low bits of the last
            // character) verifies too; anything else would be a forged token.
            fuzzCheck(
                base64URLDecoded(signature) == base64URLDecoded(fixture.signature),
                "a token with signature \(signature.debugDescription) verified")
        }
    default:
        let (header, payload) = split(rest, at: 0)
        let signingInput = base64URL(header) + "." + base64URL(payload)
        let mac = HMAC<SHA256>.authenticationCode(for: Array(signingInput.utf8), using: fixture.key)
        let token = signingInput + "." + base64URL(Array(mac))
        let result = fixture.verifier.verifySynchronously(token, now: now)
        if case .failure(let error) = result, error.code == .badSignature, token.utf8.count <= 8 * 1024 {
            fuzzCheck(!headerSaysHS256(header), "a correctly signed HS256 token failed its signature check: \(error)")
        }
    }
    return 0
}

/// The verification time: 2027-01-15.
private let now: Double = 1_800_000_000

/// The verifier and a token it accepts, made once: libFuzzer calls the target from one thread.
private let fixture = Fixture()

private struct Fixture: Sendable {
    static let secret = "switchboard-fuzzing-secret-0123456789abcdef"
    let verifier: TokenVerifier
    let key = SymmetricKey(data: Array(Fixture.secret.utf8))
    /// `header.payload` of a valid token, and its signature.
    let signingInput: String
    let signature: String

    init() {
        let (verifier, token) = blocking { () async throws -> (TokenVerifier, String) in
            // No cache: a verified token would stay in it, and LeakSanitizer cannot follow
            // Swift's spare-bit-tagged enum pointers, so cached claims read as leaks
            // (docs/FUZZING.md). Every token then goes through the full check.
            var configuration = AuthConfiguration(hmacSecret: Fixture.secret)
            configuration.cacheCapacity = 0
            let verifier = try await TokenVerifier(configuration)
            let token = try await TokenMinter(hmacSecret: Fixture.secret).mint(
                TokenClaims(role: "authenticated", subject: "user-1", tier: "paid", expiresAt: 4_000_000_000))
            return (verifier, token)
        }
        guard let period = token.lastIndex(of: ".") else { fatalError("the minted token has no signature") }
        self.verifier = verifier
        self.signingInput = String(token[..<period])
        self.signature = String(token[token.index(after: period)...])
    }
}

/// Runs async set-up code to completion from synchronous code.
private func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> T {
    let result = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let outcome: Result<T, any Error>
        do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
        result.withLock { $0 = outcome }
        done.signal()
    }
    done.wait()
    switch result.withLock({ $0 }) {
    case .success(let value): return value
    case .failure(let error): fatalError("fuzz set-up failed: \(error)")
    case nil: fatalError("fuzz set-up did not finish")
    }
}

private let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

/// Unpadded base64url (RFC 4648 §5), as JWTs use.
private func base64URL(_ bytes: some Collection<UInt8>) -> String {
    let bytes = Array(bytes)
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var index = 0
    while index < bytes.count {
        let chunk = bytes[index..<min(index + 3, bytes.count)]
        var word = UInt32(0)
        for (offset, byte) in chunk.enumerated() { word |= UInt32(byte) << (16 - 8 * offset) }
        for position in 0...chunk.count { out.append(alphabet[Int(word >> (18 - 6 * position) & 0x3F)]) }
        index += 3
    }
    return String(decoding: out, as: UTF8.self)
}

/// The bytes of base64url text, ignoring padding and the unused bits of the last character;
/// nil for any other character or an impossible length.
private func base64URLDecoded(_ text: String) -> [UInt8]? {
    var bits = UInt32(0), count = 0
    var out: [UInt8] = []
    for byte in text.utf8 where byte != UInt8(ascii: "=") {
        guard let value = alphabet.firstIndex(of: byte) else { return nil }
        bits = bits << 6 | UInt32(value)
        count += 6
        if count >= 8 {
            count -= 8
            out.append(UInt8(truncatingIfNeeded: bits >> UInt32(count)))
        }
    }
    return count >= 6 ? nil : out
}

/// Whether the header is a JSON object whose `alg` is exactly `"HS256"` and which has no `kid`
/// (the fixture's key has none) nor `crit` (which jwt-kit may refuse).
private func headerSaysHS256(_ header: UnsafeBufferPointer<UInt8>) -> Bool {
    guard let value = try? JSON.parse(header), case .object(let object) = value else { return false }
    let keys = object.members.map(\.key)
    return Set(keys).count == keys.count && object["alg"] == "HS256" && object["kid"] == nil && object["crit"] == nil
}
