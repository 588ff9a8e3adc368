import Foundation
import Synchronization
import SwitchboardCore
import SwitchboardWire
import Testing

/// One message, one rules generation: while the rules are reloaded continuously between two
/// sets that disagree on everything a push needs (the send rule, the transform, the channel's
/// history), every message's outcome must be wholly one set's or wholly the other's.
@Suite struct MixedGenerationTests {
    /// Set A allows even `n`, stamps `gen = "a"` and keeps history (delivered with `meta.seq`);
    /// set B allows multiples of 3, stamps `gen = "b"` and keeps none (no `seq`).
    static func rules(_ name: String, allows: String, history: String) -> String {
        """
        tier "free" { max_channels = 10, messages_per_minute = 1000000, max_payload = 65536 }
        default_tier "free"
        allow_undeclared_events(false)
        channel "probe:{id}" {
          kind = "shared",
          join = function() return true end,
          send = function(user, ch, msg)
            if \(allows) then return true end
            return false, "refused by \(name)"
          end,
          history = \(history),
        }
        event "tick" {
          on = { "probe:*" },
          fields = { n = "number" },
          transform = function(msg, user, ch) return { n = msg.payload.n, gen = "\(name)" } end,
        }
        """
    }

    static let setA = rules("a", allows: "msg.payload.n % 2 == 0", history: "{ messages = 1000, seconds = 600 }")
    static let setB = rules("b", allows: "msg.payload.n % 3 == 0", history: "false")

    static let ack: Value = ["broadcast": ["self": false, "ack": true], "presence": ["key": "", "enabled": false], "private": false]
    static let plain: Value = ["broadcast": ["self": false, "ack": false], "presence": ["key": "", "enabled": false], "private": false]

    @Test func everyMessageIsJudgedByOneGeneration() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-mixed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("rules.lua")
        try Self.setA.write(to: file, atomically: true, encoding: .utf8)

        try await withServer(
            { configuration in
                configuration.rulesDirectory = directory.path
                configuration.watchRules = true
                configuration.rulesReloadDebounce = .milliseconds(1)
            }
        ) { server in
            let token = try await server.token(sub: "p1")
            let subscriber = try await PhoenixSocket.connect(server, token: token)
            try #require(try await subscriber.join("probe:1", ref: "1", config: Self.plain).status == "ok")
            let publisher = try await PhoenixSocket.connect(server, token: token)
            try #require(try await publisher.join("probe:1", ref: "1", config: Self.ack).status == "ok")

            // The rules flip between A and B for as long as messages flow (bounded in time).
            let flowing = Atomic<Bool>(true)
            let flipper = Task {
                var flips = 0
                let deadline = ContinuousClock.now + .seconds(60)
                while flowing.load(ordering: .relaxed), ContinuousClock.now < deadline {
                    flips += 1
                    try (flips % 2 == 1 ? Self.setB : Self.setA).write(to: file, atomically: true, encoding: .utf8)
                    // Pacing the rewrites (a load, not a wait for anything): the test holds
                    // whatever timing the machine gives it, and the sender below goes on until
                    // both sets have judged messages.
                    try await Task.sleep(for: .milliseconds(3))
                }
                return flips
            }

            // Pushes go out in windows of 50; every reply is read (none skipped).
            // Pushes go out in windows of 50; every reply is read (none skipped). At least 3,000,
            // and on until each set has refused one (so the rules did flip while messages
            // flowed, however slow the machine), bounded in count and time.
            let window = 50
            var replies: [Int: PhoenixSocket.Frame] = [:]
            var refusedBy: Set<String> = []
            var total = 0
            let deadline = ContinuousClock.now + .seconds(60)
            while total < 3_000 || (refusedBy.count < 2 && total < 30_000 && ContinuousClock.now < deadline) {
                let upper = total + window
                for k in total..<upper {
                    try await publisher.broadcast("probe:1", event: "tick", payload: ["n": .int(k)], ref: "m\(k)", joinRef: "1")
                }
                while replies.count < upper {
                    let frame = try await publisher.next()
                    guard frame.event == "phx_reply", let ref = frame.ref, ref.hasPrefix("m"), let k = Int(ref.dropFirst()) else { continue }
                    replies[k] = frame
                    let reason = frame.payload["response"]?["reason"]?.stringValue ?? ""
                    if reason.contains("refused by a") { refusedBy.insert("a") }
                    if reason.contains("refused by b") { refusedBy.insert("b") }
                }
                total = upper
            }
            flowing.store(false, ordering: .relaxed)
            let flips = try await flipper.value

            var delivered: [Int: PhoenixSocket.Frame] = [:]
            let expected = replies.values.filter { $0.status == "ok" }.count
            while delivered.count < expected {
                let frame = try await subscriber.next()
                guard frame.event == "broadcast", let k = frame.payload["payload"]?["n"]?.int64Value else { continue }
                delivered[Int(k)] = frame
            }

            var byA = 0
            var byB = 0
            var mixed: [String] = []
            for k in 0..<total {
                guard let reply = replies[k] else {
                    mixed.append("\(k): no reply")
                    continue
                }
                if reply.status == "ok" {
                    guard let frame = delivered[k] else {
                        mixed.append("\(k): acknowledged but not delivered")
                        continue
                    }
                    let gen = frame.payload["payload"]?["gen"]?.stringValue
                    let seq = frame.payload["meta"]?["seq"]
                    switch gen {
                    case "a" where k % 2 == 0 && seq != nil: byA += 1
                    case "b" where k % 3 == 0 && seq == nil: byB += 1
                    default: mixed.append("\(k): delivered with gen \(gen ?? "none"), seq \(seq.map { JSON.string($0) } ?? "none")")
                    }
                } else {
                    let reason = reply.payload["response"]?["reason"]?.stringValue ?? ""
                    if reason.contains("refused by a"), k % 2 != 0 {
                        byA += 1
                    } else if reason.contains("refused by b"), k % 3 != 0 {
                        byB += 1
                    } else {
                        mixed.append("\(k): refused with \"\(reason)\"")
                    }
                }
            }
            #expect(mixed.isEmpty, "messages judged by two generations: \(mixed.prefix(10))")
            // Meaningful only if both sets judged messages and the rules really flipped.
            #expect(byA > 0 && byB > 0 && refusedBy.count == 2, "A judged \(byA), B judged \(byB)")
            let status = try await HotReloadTests.adminStatus(server)
            let generation = status["generation"]?.int64Value ?? 0
            #expect(generation >= 2, "only \(generation) generations loaded in \(flips) rewrites")
            await publisher.close()
            await subscriber.close()
        }
    }
}
