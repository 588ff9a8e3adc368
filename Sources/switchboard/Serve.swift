import ArgumentParser
import Foundation
import Logging
import SwitchboardAuth
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardServer

/// `switchboard serve`: runs the server.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the server. Every option also reads a SWITCHBOARD_* environment variable.",
        discussion: """
            With no --jwt-secret, --jwt-public-key or --jwks (and none in the environment) the server runs in
            dev mode: it generates a secret and prints it with a ready dev token and an example.
            """
    )

    @Option(help: "Address to listen on (SWITCHBOARD_HOST).") var host: String?
    @Option(help: "Port to listen on; 0 picks a free one (SWITCHBOARD_PORT).") var port: Int?
    @Option(help: "HS256 secret for tokens (SWITCHBOARD_JWT_SECRET).") var jwtSecret: String?
    @Option(help: "PEM file with an RS256 or ES256 public key; repeatable (SWITCHBOARD_JWT_PUBLIC_KEY, one path).")
    var jwtPublicKey: [String] = []
    @Option(help: "JWKS JSON file with public keys (SWITCHBOARD_JWKS).") var jwks: String?
    @Option(help: "Rules directory (SWITCHBOARD_RULES_DIR).") var rulesDir: String?
    @Option(help: "Ceiling on payload size in bytes; tier limits come from the rules (SWITCHBOARD_MAX_PAYLOAD_BYTES, default 65536).")
    var maxPayloadBytes: Int?
    @Flag(inversion: .prefixedNo, help: "Reload the rules when their files change (SWITCHBOARD_WATCH_RULES=0 turns it off; SIGHUP always reloads).")
    var watchRules: Bool = true
    @Option(help: "Seconds without inbound data before a socket is closed (SWITCHBOARD_IDLE_TIMEOUT, default 60).")
    var idleTimeout: Int?
    @Option(help: "Unsent bytes above which a subscriber is a slow consumer (SWITCHBOARD_SLOW_CONSUMER_BYTES, default 1048576).")
    var slowConsumerBytes: Int?
    @Option(help: "Cap on replay history over all channels, in bytes (SWITCHBOARD_MAX_HISTORY_BYTES, default 268435456).")
    var maxHistoryBytes: Int?
    @Option(help: "Verified tokens remembered, so that a token seen again is not verified again; about 1.2 KB each (SWITCHBOARD_TOKEN_CACHE, default 10000; 0 turns the cache off).")
    var tokenCache: Int?
    @Option(help: "PostgreSQL as the system of record: postgres://user:password@host:5432/database (SWITCHBOARD_DATABASE_URL; none: in memory).")
    var databaseURL: String?
    @Flag(inversion: .prefixedNo, help: "Apply pending database migrations at start (SWITCHBOARD_DATABASE_MIGRATE=0 turns it off; then pending ones stop the start).")
    var migrate: Bool = true
    @Option(help: "Seconds to keep trying to reach the database at start before giving up (SWITCHBOARD_DATABASE_START_TIMEOUT, default 30).")
    var databaseStartTimeout: Int?
    @Option(help: "Seconds after start that Postgres Changes are held back, so that clients reconnecting meanwhile receive what was committed while the server was down (SWITCHBOARD_CHANGES_HOLD, default 5).")
    var changesHold: Int?
    @Option(help: "This server's name among the servers sharing the database, which form one cluster: 1 to 63 letters, digits, '.', '-', '_' or ':', unique in the cluster and kept across restarts (SWITCHBOARD_NODE_NAME; default: the host name).")
    var nodeName: String?
    @Option(help: "PEM certificate chain: with --tls-key the port serves https:// and wss:// only (SWITCHBOARD_TLS_CERT).")
    var tlsCert: String?
    @Option(help: "PEM private key of --tls-cert (SWITCHBOARD_TLS_KEY).")
    var tlsKey: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (SWITCHBOARD_LOG_LEVEL, default info).")
    var logLevel: Logger.Level?
    @Option(help: "text or json (SWITCHBOARD_LOG_FORMAT, default text).") var logFormat: LogFormat?
    @Flag(help: .hidden) var benchmarkAllowEverything = false

    func run() async throws {
        let level = try logLevel ?? Environment.string("SWITCHBOARD_LOG_LEVEL").map(Self.parseLevel) ?? .info
        let format = try logFormat ?? Environment.string("SWITCHBOARD_LOG_FORMAT").map(Self.parseFormat) ?? .text
        let logger = LogSetup.bootstrap(level: level, format: format)

        var auth = AuthConfiguration()
        auth.hmacSecret = jwtSecret ?? Environment.string("SWITCHBOARD_JWT_SECRET")
        let keyPaths = jwtPublicKey.isEmpty ? Environment.string("SWITCHBOARD_JWT_PUBLIC_KEY").map { [$0] } ?? [] : jwtPublicKey
        auth.publicKeyPEMs = try keyPaths.map { try Self.read($0, what: "public key") }
        auth.jwks = try (jwks ?? Environment.string("SWITCHBOARD_JWKS")).map { try Self.read($0, what: "JWKS") }
        auth.cacheCapacity = try tokenCache ?? Environment.int("SWITCHBOARD_TOKEN_CACHE") ?? auth.cacheCapacity
        guard auth.cacheCapacity >= 0 else { throw ValidationError("--token-cache must be 0 or more tokens") }
        let devMode = auth.hmacSecret == nil && auth.publicKeyPEMs.isEmpty && auth.jwks == nil
        if devMode { auth.hmacSecret = TokenMinter.generateSecret() }

        var configuration = SwitchboardConfiguration(auth: auth)
        configuration.host = host ?? Environment.string("SWITCHBOARD_HOST") ?? configuration.host
        configuration.port = try port ?? Environment.int("SWITCHBOARD_PORT") ?? configuration.port
        configuration.rulesDirectory = rulesDir ?? Environment.string("SWITCHBOARD_RULES_DIR") ?? configuration.rulesDirectory
        let watchFromEnvironment = try Environment.bool("SWITCHBOARD_WATCH_RULES") ?? true
        configuration.watchRules = watchRules && watchFromEnvironment
        configuration.reloadOnHangup = true
        configuration.maxPayloadBytes =
            try maxPayloadBytes ?? Environment.int("SWITCHBOARD_MAX_PAYLOAD_BYTES") ?? configuration.maxPayloadBytes
        configuration.idleTimeoutSeconds =
            try idleTimeout ?? Environment.int("SWITCHBOARD_IDLE_TIMEOUT") ?? configuration.idleTimeoutSeconds
        configuration.slowConsumerBytes =
            try slowConsumerBytes ?? Environment.int("SWITCHBOARD_SLOW_CONSUMER_BYTES") ?? configuration.slowConsumerBytes
        configuration.maxHistoryBytes =
            try maxHistoryBytes ?? Environment.int("SWITCHBOARD_MAX_HISTORY_BYTES") ?? configuration.maxHistoryBytes
        configuration.logLevel = level
        if let url = databaseURL ?? Environment.string("SWITCHBOARD_DATABASE_URL") {
            do {
                configuration.database = try DatabaseSettings(url: url)
            } catch {
                throw ValidationError(error.message)
            }
            configuration.migrateDatabase = try migrate && (Environment.bool("SWITCHBOARD_DATABASE_MIGRATE") ?? true)
            let timeout = try databaseStartTimeout ?? Environment.int("SWITCHBOARD_DATABASE_START_TIMEOUT") ?? 30
            guard timeout >= 0 else { throw ValidationError("--database-start-timeout must be 0 or more seconds") }
            configuration.databaseStartTimeout = .seconds(timeout)
            let hold = try changesHold ?? Environment.int("SWITCHBOARD_CHANGES_HOLD") ?? 5
            guard (0...600).contains(hold) else { throw ValidationError("--changes-hold must be 0...600 seconds") }
            configuration.changesHold = .seconds(hold)
            if let name = nodeName ?? Environment.string("SWITCHBOARD_NODE_NAME") {
                do {
                    configuration.nodeName = try ClusterLink.validNodeName(name)
                } catch {
                    throw ValidationError(error.message)
                }
            }
        } else if nodeName != nil {
            throw ValidationError("--node-name names this server in a cluster, which needs --database-url")
        }
        configuration.tlsCertificatePath = tlsCert ?? Environment.string("SWITCHBOARD_TLS_CERT")
        configuration.tlsKeyPath = tlsKey ?? Environment.string("SWITCHBOARD_TLS_KEY")
        if (configuration.tlsCertificatePath == nil) != (configuration.tlsKeyPath == nil) {
            throw ValidationError("TLS needs both --tls-cert and --tls-key")
        }
        try Self.validate(configuration)
        if benchmarkAllowEverything {
            // Only for measuring what the rules cost (docs/BENCHMARKS.md): loopback only.
            guard ["127.0.0.1", "::1", "localhost"].contains(configuration.host) else {
                throw ValidationError("--benchmark-allow-everything only listens on loopback addresses")
            }
            configuration.policy = AllowEverythingPolicy()
            logger.warning("--benchmark-allow-everything: no rules apply; every token may join and send anywhere")
        }

        let secret = devMode ? auth.hmacSecret : nil
        let host = configuration.host
        let tls = configuration.tlsCertificatePath != nil
        let server = try await SwitchboardServer(configuration: configuration, logger: logger) { port in
            logger.info("listening", metadata: ["address": "\(host):\(port)", "tls": "\(tls)"])
            if let secret { await Self.printDevBanner(secret: secret, host: host, port: port, tls: tls) }
        }
        try await server.run(logger: logger)
    }

    static func validate(_ configuration: SwitchboardConfiguration) throws {
        guard (0...65535).contains(configuration.port) else { throw ValidationError("--port must be 0...65535") }
        guard (1...16 << 20).contains(configuration.maxPayloadBytes) else {
            throw ValidationError("--max-payload-bytes must be between 1 and 16777216")
        }
        guard configuration.idleTimeoutSeconds >= 1 else { throw ValidationError("--idle-timeout must be at least 1 second") }
        guard configuration.maxHistoryBytes >= 0 else {
            throw ValidationError("--max-history-bytes must be 0 (no history kept) or more")
        }
        guard configuration.slowConsumerBytes >= 64 * 1024 else {
            throw ValidationError("--slow-consumer-bytes must be at least 65536")
        }
    }

    static func read(_ path: String, what: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ValidationError("cannot read the \(what) file \(path): \(error.localizedDescription)")
        }
    }

    static func parseLevel(_ text: String) throws -> Logger.Level {
        guard let level = Logger.Level(rawValue: text) else {
            throw ValidationError("SWITCHBOARD_LOG_LEVEL=\(text) is not one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return level
    }

    static func parseFormat(_ text: String) throws -> LogFormat {
        guard let format = LogFormat(rawValue: text) else { throw ValidationError("SWITCHBOARD_LOG_FORMAT must be text or json") }
        return format
    }

    static func printDevBanner(secret: String, host: String, port: Int, tls: Bool) async {
        let (http, ws) = tls ? ("https", "wss") : ("http", "ws")
        let minter = TokenMinter(hmacSecret: secret)
        let day = Date().timeIntervalSince1970 + 86400
        let supplier = try? await minter.mint(
            TokenClaims(role: "supplier", subject: "dev-supplier", tier: "paid", supplierID: "s1", expiresAt: day))
        let admin = try? await minter.mint(TokenClaims(role: "admin", subject: "dev-admin", tier: "paid", expiresAt: day))
        let base = "\(host):\(port)"
        // Written straight to the descriptor: print() is block-buffered when stdout is a file or pipe.
        FileHandle.standardOutput.write(Data(
            """

            ── Switchboard dev mode ────────────────────────────────────────────────
            No JWT secret was given, so this run generated one (tokens die with it):
              SWITCHBOARD_JWT_SECRET=\(secret)

            A supplier token (sub dev-supplier, supplier_id s1, tier paid, 24 h):
              \(supplier ?? "(could not mint)")
            An admin token (may send on system:announcements, 24 h):
              \(admin ?? "(could not mint)")

            The operator console, signed in with that admin token:
              \(http)://\(base)/console#token=\(admin ?? "TOKEN")

            Try it (Python: pip install realtime==2.34.1):
              python3 -c "
            import asyncio; from realtime import AsyncRealtimeClient
            async def main():
                c = AsyncRealtimeClient('\(ws)://\(base)/socket', '\(supplier ?? "TOKEN")')
                await c.connect(); ch = c.channel('collaboration:s1:c1', {'config': {'broadcast': {'self': True}}})
                ch.on_broadcast('hello', lambda m: print('got', m))
                await ch.subscribe(); await asyncio.sleep(0.5)
                await ch.send_broadcast('hello', {'text': 'hi'}); await asyncio.sleep(5)
            asyncio.run(main())"
            Or publish over REST to a subscribed client:
              curl -i -X POST \(http)://\(base)/api/broadcast -H 'Authorization: Bearer \(admin ?? "TOKEN")' \\
                -H 'Content-Type: application/json' \\
                -d '{"messages":[{"topic":"collaboration:s1:c1","event":"hello","payload":{"text":"hi"}}]}'
            More tokens: switchboard token --secret <secret above> --role couple --sub u2 --couple-id c1
            ─────────────────────────────────────────────────────────────────────────

            """.utf8))
    }
}
