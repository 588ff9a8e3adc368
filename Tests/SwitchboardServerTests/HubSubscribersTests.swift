import Logging
import NIOEmbedded
import SwitchboardAuth
import SwitchboardCore
import SwitchboardRules
import Testing

@testable import SwitchboardServer

/// A topic's subscriber list on one loop: found by connection in O(1) once it is large (a leave
/// or a replay's fence), by a scan while small, through every change of mode.
@Suite struct HubSubscribersTests {
    /// `count` connections of one context (nothing runs them: they only stand in the list).
    static func connections(_ count: Int) async throws -> [RealtimeConnection] {
        var configuration = SwitchboardConfiguration(auth: AuthConfiguration(hmacSecret: TestServer.secret))
        configuration.clock = ManualClock.startingNow()
        let rules = try RulesEngine(directory: TestServer.defaultRules)
        let context = RealtimeContext(
            hub: Hub(group: EmbeddedEventLoop(), metrics: ServerMetrics()), verifier: try await TokenVerifier(configuration.auth),
            policy: rules, rules: rules, configuration: configuration,
            logger: Logger(label: "switchboard-test") { _ in SwiftLogNoOpLogHandler() })
        let identity = Identity(subject: "u", role: "authenticated", tier: "paid", expiresAt: 1_900_000_000, claims: ["sub": "u"])
        return (0..<count).map { _ in
            RealtimeConnection(shared: context, version: .v1, identity: identity, token: "", raw: RawFrameWriter())
        }
    }

    /// Every present connection is found where it is, with the fence it was given (its id), and
    /// nothing else is in the list.
    static func check(_ subscribers: HubShard.Subscribers, holds present: [RealtimeConnection]) {
        #expect(subscribers.count == present.count)
        for connection in present {
            guard let position = subscribers.position(of: connection) else {
                Issue.record("connection \(connection.id) is not found")
                continue
            }
            #expect(subscribers.list[position].connection === connection)
            #expect(subscribers.list[position].fenceSeq == connection.id)
        }
    }

    @Test func joinsAndLeavesInAnyOrderKeepEveryPositionAndFence() async throws {
        let all = try await Self.connections(120)
        var subscribers = HubShard.Subscribers()
        var present: [RealtimeConnection] = []
        var absent = all
        // A fixed pseudo-random order (a linear congruential generator), so a failure repeats.
        var state: UInt64 = 0x5EED
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        func join() throws {
            let connection = absent.remove(at: next(absent.count))
            subscribers.append(.init(connection: connection, receivesOwn: false))
            let position = try #require(subscribers.position(of: connection))
            subscribers.setFence(at: position, tag: 1, seq: connection.id)
            present.append(connection)
        }
        func leave() throws {
            let connection = present.remove(at: next(present.count))
            let position = try #require(subscribers.position(of: connection))
            subscribers.remove(at: position)
            #expect(subscribers.position(of: connection) == nil)
            absent.append(connection)
        }
        // Up past the index (32), down below where it is dropped (16), and up and down again.
        for target in [100, 5, 40, 0, 31, 33, 15, 120, 0] {
            while present.count < target { try join() }
            while present.count > target { try leave() }
            Self.check(subscribers, holds: present)
            // Some churn at the same size.
            for _ in 0..<10 where !present.isEmpty && !absent.isEmpty {
                try leave()
                try join()
            }
            Self.check(subscribers, holds: present)
        }
        #expect(subscribers.count == 0)
    }
}
