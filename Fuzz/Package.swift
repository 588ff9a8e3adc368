// swift-tools-version: 6.2
// libFuzzer targets for the parsers that read untrusted input, kept out of the main package so
// that its `swift build` and `swift test` never compile them. They only link with
// `-sanitize=fuzzer` (libFuzzer brings `main`): run them with scripts/fuzz.sh (docs/FUZZING.md).
import PackageDescription

/// `-parse-as-library`: each target defines `LLVMFuzzerTestOneInput` and no top-level code.
let fuzzTarget: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .unsafeFlags(["-parse-as-library"]),
]

let package = Package(
    name: "SwitchboardFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Switchboard", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
    ],
    targets: [
        .target(
            name: "FuzzSupport",
            dependencies: [
                .product(name: "SwitchboardCore", package: "Switchboard"),
                .product(name: "SwitchboardWire", package: "Switchboard"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6), .enableUpcomingFeature("ExistentialAny")]
        ),
        .executableTarget(
            name: "wire-text",
            dependencies: ["FuzzSupport", .product(name: "SwitchboardWire", package: "Switchboard")],
            swiftSettings: fuzzTarget
        ),
        .executableTarget(
            name: "wire-binary",
            dependencies: ["FuzzSupport", .product(name: "SwitchboardWire", package: "Switchboard")],
            swiftSettings: fuzzTarget
        ),
        .executableTarget(
            name: "json",
            dependencies: ["FuzzSupport", .product(name: "SwitchboardWire", package: "Switchboard")],
            swiftSettings: fuzzTarget
        ),
        .executableTarget(
            name: "tape",
            dependencies: [
                "FuzzSupport", .product(name: "SwitchboardLua", package: "Switchboard"),
                .product(name: "SwitchboardRules", package: "Switchboard"),
            ],
            swiftSettings: fuzzTarget
        ),
        .executableTarget(
            name: "channel",
            dependencies: ["FuzzSupport", .product(name: "SwitchboardRules", package: "Switchboard")],
            swiftSettings: fuzzTarget
        ),
        .executableTarget(
            name: "token",
            dependencies: [
                "FuzzSupport", .product(name: "SwitchboardAuth", package: "Switchboard"),
                .product(name: "SwitchboardWire", package: "Switchboard"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: fuzzTarget
        ),
    ]
)
