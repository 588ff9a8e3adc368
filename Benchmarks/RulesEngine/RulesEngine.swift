// Decisions through the Lua rules engine with the repository's default Rules/.
// Each benchmark iteration runs 1,000 decisions (`scalingFactor: .kilo`), so the reported
// wall-clock time is per decision.
import Benchmark
import Foundation
import SwitchboardCore
import SwitchboardRules

/// The repository's Rules/ directory (this file is Benchmarks/RulesEngine/RulesEngine.swift).
private let rulesDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Rules").path

/// The claims a verified supplier or couple token carries (as `switchboard token` mints them).
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
    guard let channel = try? ChannelName(validating: name) else { fatalError("bad benchmark channel \(name)") }
    return channel
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 5_000
    )

    let engine: RulesEngine
    do {
        engine = try RulesEngine(directory: rulesDirectory)
    } catch {
        fatalError("the default rules do not load: \(error)")
    }

    let supplier = identity(role: "supplier", sub: "u-s1", supplier: "s1")
    let otherSupplier = identity(role: "supplier", sub: "u-s2", supplier: "s2")
    let strangerCouple = identity(role: "couple", sub: "u-c9", couple: "c9")
    let dashboard = channel("supplier:dashboard:s1")
    let collaboration = channel("collaboration:s1:c1")
    let comment: Value = ["comment_id": "k1", "text": "Looks good, see you on Saturday"]

    func expect(_ decision: Decision, allowed: Bool, _ what: String) {
        if decision.isAllowed != allowed { fatalError("\(what): unexpected \(decision)") }
    }
    expect(engine.authorizeJoin(supplier, channel: dashboard), allowed: true, "join allow")
    expect(engine.authorizeJoin(otherSupplier, channel: dashboard), allowed: false, "join deny")
    expect(engine.authorizeSend(supplier, channel: collaboration, event: "comment:added", payload: comment), allowed: true, "send allow")
    expect(engine.authorizeSend(strangerCouple, channel: collaboration, event: "comment:added", payload: comment), allowed: false, "send deny")

    // Three suppliers on their own dashboards in turn: with two lanes taken round-robin, no
    // call finds the previous call's claims or channel on its lane (worst case for the
    // engine's per-lane table templates).
    let rotating = (1...3).map { (identity(role: "supplier", sub: "u-s\($0)", supplier: "s\($0)"), channel("supplier:dashboard:s\($0)")) }
    for (user, dashboard) in rotating { expect(engine.authorizeJoin(user, channel: dashboard), allowed: true, "join allow rotating") }

    Benchmark("join allow, 3 users rotating (supplier:dashboard:sN by sN)") { benchmark in
        var next = 0
        for _ in benchmark.scaledIterations {
            let (user, dashboard) = rotating[next]
            blackHole(engine.authorizeJoin(user, channel: dashboard))
            next = next == 2 ? 0 : next + 1
        }
    }

    // A thousand suppliers on their own dashboards in turn: more claims and channels than a
    // lane keeps, so every call converts both tables (the engine's cold path).
    let many = (1...1_000).map { (identity(role: "supplier", sub: "u-m\($0)", supplier: "m\($0)"), channel("supplier:dashboard:m\($0)")) }
    for (user, dashboard) in many.prefix(3) { expect(engine.authorizeJoin(user, channel: dashboard), allowed: true, "join allow many") }

    Benchmark("join allow, 1,000 users in turn (supplier:dashboard:mN by mN)") { benchmark in
        var next = 0
        for _ in benchmark.scaledIterations {
            let (user, dashboard) = many[next]
            blackHole(engine.authorizeJoin(user, channel: dashboard))
            next = next == many.count - 1 ? 0 : next + 1
        }
    }

    Benchmark("join allow (supplier:dashboard:s1 by s1)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(engine.authorizeJoin(supplier, channel: dashboard))
        }
    }

    Benchmark("join deny (supplier:dashboard:s1 by s2)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(engine.authorizeJoin(otherSupplier, channel: dashboard))
        }
    }

    Benchmark("send allow (comment:added on collaboration:s1:c1 by s1)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(engine.authorizeSend(supplier, channel: collaboration, event: "comment:added", payload: comment))
        }
    }

    Benchmark("send deny (comment:added on collaboration:s1:c1 by c9)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(engine.authorizeSend(strangerCouple, channel: collaboration, event: "comment:added", payload: comment))
        }
    }
}
