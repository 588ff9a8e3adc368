import SwitchboardCore
import Testing

@testable import SwitchboardAuth

@Suite struct TokenCacheTests {
    @Test func verifiedTokenIsCachedUntilItExpires() async throws {
        let verifier = try await Fixture.hmacVerifier()
        let token = try await Fixture.hs256(Fixture.claims(expiresAt: Fixture.now + 60))

        #expect(verifier.cachedIdentity(for: token, now: Fixture.now) == nil)
        let identity = try await verifier.verify(token, now: Fixture.now).get()

        #expect(verifier.cachedIdentity(for: token, now: Fixture.now + 59) == identity)
        #expect(verifier.cachedIdentity(for: token, now: Fixture.now + 60) == nil)
        #expect(verifier.cachedTokenCount == 0)
        #expect(
            await verifier.verify(token, now: Fixture.now + 61).failure?.joinReason
                == "InvalidJWTToken: Token has expired 1 seconds ago")
    }

    @Test func failedTokensAreNotCached() async throws {
        let verifier = try await Fixture.hmacVerifier()
        let token = try await Fixture.hs256(Fixture.claims(), secret: "another-secret-that-is-long-enough-to-sign")

        _ = await verifier.verify(token, now: Fixture.now)

        #expect(verifier.cachedIdentity(for: token, now: Fixture.now) == nil)
        #expect(verifier.cachedTokenCount == 0)
    }

    @Test func otherTokensMiss() async throws {
        let verifier = try await Fixture.hmacVerifier()
        let token = try await Fixture.hs256(Fixture.claims())
        _ = try await verifier.verify(token, now: Fixture.now).get()

        #expect(verifier.cachedIdentity(for: token + "x", now: Fixture.now) == nil)
        #expect(verifier.cachedIdentity(for: "", now: Fixture.now) == nil)
    }

    @Test func cacheStaysWithinItsCapacity() async throws {
        let verifier = try await Fixture.hmacVerifier { $0.cacheCapacity = 8 }
        var tokens: [String] = []
        for index in 0..<20 {
            var claims = Fixture.claims()
            claims["n"] = .int(index)
            let token = try await Fixture.hs256(claims)
            tokens.append(token)
            _ = try await verifier.verify(token, now: Fixture.now).get()
            #expect(verifier.cachedTokenCount <= 8)
        }
        #expect(verifier.cachedIdentity(for: tokens[19], now: Fixture.now) != nil)
    }

    @Test func fullCacheDropsExpiredEntriesFirst() {
        var cache = TokenCache(capacity: 4, leeway: 0)
        for index in 0..<3 {
            cache.insert(Identity(role: "r", expiresAt: 10), for: "old-\(index)", now: 0)
        }
        cache.insert(Identity(role: "r", expiresAt: 100), for: "live", now: 0)

        cache.insert(Identity(role: "r", expiresAt: 100), for: "new", now: 50)

        #expect(cache.count == 2)
        #expect(cache.identity(for: "live", now: 50) != nil)
        #expect(cache.identity(for: "new", now: 50) != nil)
    }

    @Test func zeroCapacityCachesNothing() async throws {
        let verifier = try await Fixture.hmacVerifier { $0.cacheCapacity = 0 }
        let token = try await Fixture.hs256(Fixture.claims())

        _ = try await verifier.verify(token, now: Fixture.now).get()

        #expect(verifier.cachedIdentity(for: token, now: Fixture.now) == nil)
    }
}
