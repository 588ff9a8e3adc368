import Foundation
import Testing

/// `serve --token-cache N`: the size of the verified-token cache (the soak showed it is what
/// grows first under token refreshes, ~1.2 KB a token, up to its cap).
@Suite struct TokenCacheFlagTests {
    @Test func aNegativeSizeIsRefusedWithTheReason() async throws {
        let binary = ClusterTests.binary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "no switchboard binary next to the tests at \(binary)")
        let (status, output) = try await runProcess(binary, ["serve", "--jwt-secret", TestServer.secret, "--token-cache=-1"])
        #expect(status != 0)
        #expect(output.contains("--token-cache must be 0 or more tokens"), "\(output)")
    }

    @Test(.timeLimit(.minutes(2))) func withTheCacheOffTokensStillVerify() async throws {
        let binary = ClusterTests.binary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "no switchboard binary next to the tests at \(binary)")
        let port = try freeLoopbackPort()
        let server = try ChildProcess(
            binary,
            ["serve", "--host", "127.0.0.1", "--port", String(port), "--jwt-secret", TestServer.secret, "--rules-dir", TestServer.defaultRules, "--token-cache", "0"])
        defer { server.killHard() }
        try await server.waitForOutput(containing: "listening")
        let token = try await ClusterTests.token(sub: "s1-user", supplierID: "s1")
        for _ in 0..<2 {
            let reply = try await LoopbackHTTP.request(
                port: port, method: .POST, path: "/api/broadcast", headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
                body: #"{"messages":[{"topic":"collaboration:s1:c1","event":"note","payload":{}}]}"#)
            #expect(reply.status == 202, "\(reply.body)")
        }
        let refused = try await LoopbackHTTP.request(
            port: port, method: .POST, path: "/api/broadcast", headers: [("Authorization", "Bearer \(token)x"), ("Content-Type", "application/json")],
            body: #"{"messages":[]}"#)
        #expect(refused.status == 401)
    }
}
