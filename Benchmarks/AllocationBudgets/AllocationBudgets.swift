// Allocation budgets (issue 15): mallocs per operation on the paths every message takes —
// decoding a broadcast push, encoding and framing the broadcast, the rules decision, the
// delivery on a loop. Thresholds/<toolchain>/ holds the budgets; `./check-allocations.sh`
// (docs/BENCHMARKS.md, "Allocation budgets") fails when a count differs from its budget.
import Benchmark

/// One operation per iteration: allocation counts are exact, so each is checked as it is.
/// Wall time is shown for information only: the budgets hold no time, and the wide tolerance
/// below keeps a thresholds file that did from failing on a busy machine. No `.instructions`:
/// on Linux without perf counters (this project's machines) it is not reported, yet reading
/// it allocates 16 times per iteration, which would be counted in every budget.
func budgetConfiguration() -> Benchmark.Configuration {
    Benchmark.Configuration(
        metrics: [.mallocCountTotal, .wallClock],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        scalingFactor: .one,
        maxDuration: .seconds(1),
        maxIterations: 10_000,
        thresholds: [
            .mallocCountTotal: .init(absolute: [.p90: 0]),
            .wallClock: .init(relative: [.p90: 10_000]),
        ]
    )
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = budgetConfiguration()
    // The measurement's own allocations: none, or every budget would include them.
    Benchmark("Harness.Empty") { _ in }
    registerCodecBudgets()
    registerDecisionBudgets()
    registerDeliveryBudgets()
}
