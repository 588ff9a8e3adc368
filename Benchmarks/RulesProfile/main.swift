// A plain loop over one rules-engine decision, for callgrind/perf (not a benchmark target).
// Usage: RulesProfile <scenario> [iterations]   scenario: join, rotating, many, deny, send, senddeny
import Foundation
import SwitchboardCore
import SwitchboardRules

private let rulesDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Rules").path

private func identity(role: String, sub: String, supplier: String? = nil, couple: String? = nil) -> Identity {
    var claims: Value.Object = ["role": .string(role), "sub": .string(sub), "tier": "paid"]
    if let supplier { claims["supplier_id"] = .string(supplier) }
    if let couple { claims["couple_id"] = .string(couple) }
    claims["exp"] = .int(1_900_000_000)
    claims["iat"] = .int(1_800_000_000)
    return Identity(
        subject: sub, role: role, tier: "paid", supplierID: supplier, coupleID: couple, expiresAt: 1_900_000_000,
        claims: claims)
}

private func channel(_ name: String) -> ChannelName {
    guard let channel = try? ChannelName(validating: name) else { fatalError("bad channel \(name)") }
    return channel
}

let arguments = CommandLine.arguments
let scenario = arguments.count > 1 ? arguments[1] : "join"
let iterations = arguments.count > 2 ? Int(arguments[2]) ?? 1_000_000 : 1_000_000
let engine = try RulesEngine(directory: rulesDirectory)
let supplier = identity(role: "supplier", sub: "u-s1", supplier: "s1")
let otherSupplier = identity(role: "supplier", sub: "u-s2", supplier: "s2")
let strangerCouple = identity(role: "couple", sub: "u-c9", couple: "c9")
let dashboard = channel("supplier:dashboard:s1")
let collaboration = channel("collaboration:s1:c1")
let comment: Value = ["comment_id": "k1", "text": "Looks good, see you on Saturday"]
let many = (1...1_000).map { (identity(role: "supplier", sub: "u-m\($0)", supplier: "m\($0)"), channel("supplier:dashboard:m\($0)")) }
let rotating = (1...3).map { (identity(role: "supplier", sub: "u-s\($0)", supplier: "s\($0)"), channel("supplier:dashboard:s\($0)")) }

var allowed = 0
let start = ContinuousClock.now
for i in 0..<iterations {
    let decision: Decision
    switch scenario {
    case "rotating":
        let (user, dashboard) = rotating[i % 3]
        decision = engine.authorizeJoin(user, channel: dashboard)
    case "many":
        let (user, dashboard) = many[i % many.count]
        decision = engine.authorizeJoin(user, channel: dashboard)
    case "deny": decision = engine.authorizeJoin(otherSupplier, channel: dashboard)
    case "send": decision = engine.authorizeSend(supplier, channel: collaboration, event: "comment:added", payload: comment)
    case "senddeny": decision = engine.authorizeSend(strangerCouple, channel: collaboration, event: "comment:added", payload: comment)
    default: decision = engine.authorizeJoin(supplier, channel: dashboard)
    }
    if decision.isAllowed { allowed += 1 }
}
let elapsed = ContinuousClock.now - start
let ns = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
print("\(scenario): \(iterations) decisions, \(allowed) allowed, \(Int(ns / Double(iterations))) ns each")
