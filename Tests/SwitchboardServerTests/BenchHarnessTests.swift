import Foundation
import SwitchboardAuth
import SwitchboardBench
import Testing

/// The load tools against an in-process server: a tiny `bench publish` and a 10-second
/// `bench soak`, checked for what they count (nothing lost, repeated or unexpected), never
/// for speed or memory.
@Suite struct BenchHarnessTests {
    @Test func aSmallPublishBenchDeliversEveryAcknowledgedMessageOnceInOrder() async throws {
        try await withServer { server in
            // Under the default rules' 100 messages a minute per channel.
            let options = PublishOptions(
                port: server.port, token: try await server.token(role: "admin", sub: "bench"), channels: 2,
                publishersPerChannel: 2, subscribersPerChannel: 2, messages: 80, window: 4)
            let result = try await PublishBench.run(options)
            #expect(result.sent == 80)
            #expect(result.acked == 80)
            #expect(result.refused == 0)
            #expect(result.delivered == 160)
            #expect(result.lost == 0)
            #expect(result.repeated == 0)
            #expect(result.seqGaps == 0)
            #expect(result.withoutSeq == 0)
            #expect(result.isClean)
        }
    }

    @Test func aPublishBenchCountsTheRulesRefusals() async throws {
        try await withServer { server in
            // One channel takes 100 a minute: the rest are refused with a reason, and what
            // was accepted still reaches every subscriber.
            let options = PublishOptions(
                port: server.port, token: try await server.token(role: "admin", sub: "bench"), channels: 1,
                publishersPerChannel: 1, subscribersPerChannel: 1, messages: 130, window: 4)
            let result = try await PublishBench.run(options)
            #expect(result.acked == 100)
            #expect(result.refused == 30)
            #expect(result.lastRefusal?.hasPrefix("ChannelRateLimitReached:") == true)
            #expect(result.delivered == 100)
            #expect(result.lost == 0)
            #expect(!result.isClean)
        }
    }

    @Test func aTenSecondSoakFindsNothingWrong() async throws {
        let rules = try RulesCopy()
        defer { rules.delete() }
        try await withServer({ configuration in
            configuration.rulesDirectory = rules.url.path
            configuration.watchRules = true
        }) { server in
            let minter = TokenMinter(hmacSecret: TestServer.secret)
            let options = SoakOptions(
                port: server.port, duration: .seconds(10),
                mint: { request in
                    try await minter.mint(
                        TokenClaims(
                            role: request.role, subject: request.subject, tier: "paid", supplierID: request.supplierID,
                            expiresAt: Date().timeIntervalSince1970 + Double(request.lifetime.components.seconds)))
                },
                serverPid: ProcessInfo.processInfo.processIdentifier, rulesDirectory: rules.url.path, channels: 4,
                subscribers: 4, channelsPerSubscriber: 2, publishers: 2, rate: 4, churners: 2, presenceMembers: 2,
                presenceInterval: .seconds(1), tokenRefreshInterval: .seconds(2), channelTokenLifetime: .seconds(15),
                reloadInterval: .seconds(3), sampleInterval: .seconds(1), reportInterval: .seconds(5))
            let result = try await SoakBench.run(options)
            #expect(result.unexpectedErrors.isEmpty, "\(result.unexpectedSamples)")
            #expect(result.lost == 0)
            #expect(result.repeated == 0)
            #expect(result.accepted > 0)
            #expect(result.accepted == result.published)
            #expect(result.received >= result.accepted)
            #expect(result.tailChecked == 8)
            #expect(result.reloads >= 1)
            #expect(result.tokenRefreshes > 0)
            #expect(result.expectedErrors["join refused by the rules (probe)", default: 0] > 0)
            #expect(!result.rss.isEmpty)
            // The variant file is gone: the directory is as it was.
            #expect(!FileManager.default.fileExists(atPath: rules.url.appendingPathComponent("soak_variant.lua").path))
        }
    }
}
