// swift-tools-version: 6.2
// Micro-benchmarks (ordo-one/benchmark), kept out of the main package so that its
// `swift build` and `swift test` never fetch or build the benchmark tooling.
// Run: cd Benchmarks && swift package benchmark
import PackageDescription

let package = Package(
    name: "SwitchboardBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Switchboard", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
    ],
    targets: [
        // The allocation budgets checked against Thresholds/ (docs/BENCHMARKS.md, "Allocation budgets").
        .executableTarget(
            name: "AllocationBudgets",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SwitchboardCore", package: "Switchboard"),
                .product(name: "SwitchboardWire", package: "Switchboard"),
                .product(name: "SwitchboardRules", package: "Switchboard"),
                .product(name: "SwitchboardServer", package: "Switchboard"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "AllocationBudgets",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "RulesEngine",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SwitchboardRules", package: "Switchboard"),
                .product(name: "SwitchboardCore", package: "Switchboard"),
            ],
            path: "RulesEngine",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "RulesProfile",
            dependencies: [
                .product(name: "SwitchboardRules", package: "Switchboard"),
                .product(name: "SwitchboardCore", package: "Switchboard"),
            ],
            path: "RulesProfile",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "WireCodec",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SwitchboardWire", package: "Switchboard"),
                .product(name: "SwitchboardCore", package: "Switchboard"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "WireCodec",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
