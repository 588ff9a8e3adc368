import Foundation
import Logging
import ServiceLifecycle
import SwitchboardAuth
import SwitchboardCore
import SwitchboardServer

/// A real Switchboard server on an ephemeral loopback port, for one test.
struct TestServer {
    static let secret = "switchboard-test-secret-0123456789abcdef"

    /// The repository's default rules directory.
    static let defaultRules = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Rules").path

    let port: Int
    let configuration: SwitchboardConfiguration
    private let logger: Logger
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    /// Starts a server (port 0) and returns once it listens.
    static func start(_ configure: (inout SwitchboardConfiguration) -> Void = { _ in }) async throws -> TestServer {
        var configuration = SwitchboardConfiguration(auth: AuthConfiguration(hmacSecret: secret))
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.rulesDirectory = defaultRules
        configuration.watchRules = false
        // Postgres Changes flow at once; the restart test sets a hold of its own.
        configuration.changesHold = .zero
        configure(&configuration)
        // SWITCHBOARD_TEST_LOG=debug (or any swift-log level) shows the servers' logs on stderr.
        let level = ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_LOG"].flatMap(Logger.Level.init(rawValue:))
        var logger = Logger(label: "switchboard-test") { label in
            level == nil ? SwiftLogNoOpLogHandler() as any LogHandler : StreamLogHandler.standardError(label: label)
        }
        if let level { logger.logLevel = level }
        logger.debug("test server: building")
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let server = try await SwitchboardServer(configuration: configuration, logger: logger) { port in
            continuation.yield(port)
            continuation.finish()
        }
        let group = server.serviceGroup(logger: logger)
        let task = Task {
            // A server that stops before it listens must not leave the wait below hanging.
            defer { continuation.finish() }
            try await group.run()
        }
        logger.debug("test server: waiting for its port")
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            task.cancel()
            do {
                try await task.value
            } catch {
                throw TestServerError.didNotStart(error)
            }
            throw TestServerError.didNotStart(nil)
        }
        logger.debug("test server: listening", metadata: ["port": "\(port)"])
        return TestServer(port: port, configuration: configuration, logger: logger, group: group, task: task)
    }

    /// Graceful shutdown, as on SIGTERM; returns when the server has stopped.
    func stop() async {
        logger.debug("test server: stopping", metadata: ["port": "\(port)"])
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        logger.debug("test server: stopped", metadata: ["port": "\(port)"])
    }

    /// Mints a token signed with the test secret.
    func token(
        role: String = "supplier", sub: String = "u1", tier: String? = "paid", supplierID: String? = nil,
        coupleID: String? = nil, ttl: Double = 3600, extra: Value.Object = .init()
    ) async throws -> String {
        try await TokenMinter(hmacSecret: Self.secret).mint(
            TokenClaims(
                role: role, subject: sub, tier: tier, supplierID: supplierID, coupleID: coupleID,
                expiresAt: Date().timeIntervalSince1970 + ttl, extra: extra))
    }
}

enum TestServerError: Error {
    /// The server stopped before it listened, with the error it stopped on.
    case didNotStart((any Error)?)
}

extension ManualClock {
    /// A manual clock whose wall time starts at the real time now (tokens minted for a test
    /// are valid on it until it is moved past their expiry).
    static func startingNow() -> ManualClock { ManualClock(wallSeconds: Date().timeIntervalSince1970) }
}

/// Runs `body` against a fresh server and always stops it.
func withServer(
    _ configure: (inout SwitchboardConfiguration) -> Void = { _ in },
    _ body: (TestServer) async throws -> Void
) async throws {
    let server = try await TestServer.start(configure)
    do {
        try await body(server)
    } catch {
        await server.stop()
        throw error
    }
    await server.stop()
}
