// One rules decision for a broadcast push (`RulesEngine.decidePush`), with the repository's
// default Rules/: what a connection asks once per push, before the message is encoded.
import Benchmark
import Foundation
import SwitchboardCore
import SwitchboardRules
import SwitchboardWire

/// The repository's Rules/ directory (this file is Benchmarks/AllocationBudgets/DecisionBudgets.swift).
private let rulesDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Rules").path

/// The default rules, loaded as the server loads them.
func defaultRulesEngine() throws -> RulesEngine {
    try RulesEngine(directory: rulesDirectory)
}

/// The claims a verified token carries (as `switchboard token` mints them).
private func identity(role: String, sub: String, supplier: String? = nil, couple: String? = nil) -> Identity {
    var claims: Value.Object = ["role": .string(role), "sub": .string(sub), "tier": "paid", "exp": .int(1_900_000_000)]
    if let supplier { claims["supplier_id"] = .string(supplier) }
    if let couple { claims["couple_id"] = .string(couple) }
    return Identity(
        subject: sub, role: role, tier: "paid", supplierID: supplier, coupleID: couple, expiresAt: 1_900_000_000, claims: claims)
}

func registerDecisionBudgets() {
    let engine: RulesEngine
    let channel: ChannelName
    do {
        engine = try defaultRulesEngine()
        channel = try ChannelName(validating: Sample.channel)
    } catch {
        fatalError("the default rules or the sample channel do not load: \(error)")
    }
    let supplier = identity(role: "supplier", sub: "u-s1", supplier: "s1")
    let strangerCouple = identity(role: "couple", sub: "u-c9", couple: "c9")
    // The size as the server passes it: the frame's length as a free upper bound, the exact
    // size only computed when that bound is over the tier's limit (it never is here).
    let frameBytes = Sample.pushV1.utf8.count
    let payload = Sample.payload

    let cases: [(name: String, user: Identity, allowed: Bool)] = [
        // The event's catalog checks in Swift, then the channel's join hook in Lua (no send hook).
        ("Decision.Push.allow", supplier, true),
        // The same checks; the hook denies with a reason built in Lua.
        ("Decision.Push.deny", strangerCouple, false),
    ]
    for (name, user, allowed) in cases {
        let decision = engine.decidePush(
            user, channel: channel, event: Sample.event, payload: payload, source: .user, sizeOver: PushDecision.size(frameBytes))
        guard (decision.verdict == .allow) == allowed else { fatalError("\(name): unexpected \(decision.verdict)") }
        Benchmark(name) { _ in
            blackHole(
                engine.decidePush(user, channel: channel, event: Sample.event, payload: payload, source: .user) { limit in
                    guard frameBytes > limit else { return nil }
                    let size = JSON.string(payload).utf8.count
                    return size > limit ? size : nil
                })
        }
    }
}
