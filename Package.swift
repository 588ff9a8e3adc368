// swift-tools-version: 6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Switchboard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchboard", targets: ["switchboard"]),
        .library(name: "SwitchboardCore", targets: ["SwitchboardCore"]),
        .library(name: "SwitchboardWire", targets: ["SwitchboardWire"]),
        .library(name: "SwitchboardServer", targets: ["SwitchboardServer"]),
        .library(name: "SwitchboardRules", targets: ["SwitchboardRules"]),
        // For the fuzz targets (Fuzz/), which feed them untrusted bytes directly.
        .library(name: "SwitchboardLua", targets: ["SwitchboardLua"]),
        .library(name: "SwitchboardAuth", targets: ["SwitchboardAuth"]),
        .library(name: "SwitchboardClient", targets: ["SwitchboardClient"]),
        .plugin(name: "CheckRules", targets: ["CheckRules"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", from: "1.6.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        .systemLibrary(
            name: "CLua",
            path: "Sources/CLua",
            pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]
        ),
        .target(
            name: "SwitchboardLua",
            dependencies: ["CLua"],
            swiftSettings: strict
        ),
        .target(
            name: "SwitchboardRules",
            dependencies: ["SwitchboardCore", "SwitchboardLua"],
            swiftSettings: strict
        ),
        .target(
            name: "SwitchboardCore",
            swiftSettings: strict
        ),
        .target(
            name: "SwitchboardWire",
            dependencies: [
                "SwitchboardCore",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SwitchboardAuth",
            dependencies: [
                "SwitchboardCore",
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SwitchboardPostgres",
            dependencies: [
                "SwitchboardCore",
                "SwitchboardWire",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.embedInCode("Migrations")],
            swiftSettings: strict
        ),
        .target(
            name: "SwitchboardServer",
            dependencies: [
                "SwitchboardCore",
                "SwitchboardWire",
                "SwitchboardAuth",
                "SwitchboardRules",
                "SwitchboardPostgres",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            resources: [.embedInCode("Console")],
            swiftSettings: strict
        ),
        .target(
            name: "SwitchboardClient",
            dependencies: [
                "SwitchboardCore",
                "SwitchboardWire",
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SwitchboardBench",
            dependencies: [
                "SwitchboardWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "switchboard",
            dependencies: [
                "SwitchboardServer",
                "SwitchboardAuth",
                "SwitchboardBench",
                "SwitchboardClient",
                "SwitchboardRules",
                "SwitchboardPostgres",
                "SwitchboardWire",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .plugin(
            name: "CheckRules",
            capability: .command(
                intent: .custom(verb: "check-rules", description: "Check a rules directory with switchboard rules check [DIR]")),
            dependencies: ["switchboard"],
            path: "Plugins/CheckRules"
        ),
        .testTarget(name: "SwitchboardPostgresTests", dependencies: ["SwitchboardPostgres", "SwitchboardCore"], swiftSettings: strict),
        .testTarget(name: "SwitchboardCoreTests", dependencies: ["SwitchboardCore"], swiftSettings: strict),
        .testTarget(name: "SwitchboardClientTests", dependencies: ["SwitchboardClient", "SwitchboardCore"], swiftSettings: strict),
        .testTarget(name: "SwitchboardLuaTests", dependencies: ["SwitchboardLua"], swiftSettings: strict),
        .testTarget(name: "SwitchboardRulesTests", dependencies: ["SwitchboardRules", "SwitchboardCore"], swiftSettings: strict),
        .testTarget(
            name: "SwitchboardWireTests",
            dependencies: ["SwitchboardWire", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchboardAuthTests",
            dependencies: ["SwitchboardAuth", .product(name: "JWTKit", package: "jwt-kit")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchboardServerTests",
            dependencies: [
                "SwitchboardServer",
                "SwitchboardAuth",
                "SwitchboardBench",
                "SwitchboardClient",
                "SwitchboardCore",
                "SwitchboardWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                "SwitchboardRules",
                "SwitchboardPostgres",
            ],
            swiftSettings: strict
        ),
    ]
)
