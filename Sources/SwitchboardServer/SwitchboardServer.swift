import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals
import SwitchboardAuth
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardRules
import Synchronization

/// The Switchboard server: one port serving the realtime WebSocket protocol, the REST
/// broadcast API, `/health` and `/metrics`.
public struct SwitchboardServer: Sendable {
    /// The HTTP application (Hummingbird) whose child channel also accepts WebSocket upgrades.
    let application: Application<RouterResponder<BasicRequestContext>>
    /// The service that drains WebSocket connections on graceful shutdown.
    let realtime: RealtimeService
    /// Reloads the rules directory on change or SIGHUP; nil when a policy was injected.
    let reloader: RulesReloadService?
    /// The database's message reader, history writer and upkeep; nil when the server runs embedded.
    let database: (any Service)?
    /// Keeps the relations the rules read from the database fresh; nil without either.
    let relationWatcher: RelationWatcher?
    /// Reads Postgres Changes from their slot; nil without a database.
    let changes: ChangeService?
    /// This server as a node of its database's cluster; nil without a database.
    let cluster: ClusterService?

    /// Builds a server; fails with a clear message when the auth configuration is unusable or
    /// the rules directory does not load (`ServerStartError.rules`, every error with file:line).
    public init(
        configuration: SwitchboardConfiguration,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        // Before the history is read: a cluster node catches up on what was stored after it.
        let started = ContinuousClock.now
        let group = MultiThreadedEventLoopGroup.singleton
        let metrics = ServerMetrics()
        let hub = Hub(group: group, metrics: metrics, clock: configuration.clock)
        let verifier = try await TokenVerifier(configuration.auth)
        let rules: RulesEngine?
        let policy: any Policy
        if let injected = configuration.policy {
            rules = nil
            policy = injected
        } else {
            let engine = try Self.loadRules(configuration, metrics: metrics, logger: logger)
            rules = engine
            policy = engine
        }
        let health = DatabaseHealth { state in metrics.databaseUp.set(state == .up ? 1 : 0) }
        var opened: Database?
        var node = ""
        if let settings = configuration.database {
            metrics.databaseUp.set(0)
            do {
                node = try ClusterLink.validNodeName(configuration.nodeName ?? ClusterLink.defaultNodeName())
                opened = try await Database.open(
                    settings, node: node, migrate: configuration.migrateDatabase, timeout: configuration.databaseStartTimeout, health: health,
                    logger: logger)
            } catch {
                throw ServerStartError.database(error)
            }
        }
        let relations = opened.map { DatabaseRelations(settings: $0.settings, logger: logger) }
        let relationsHealth =
            relations == nil || rules == nil
            ? nil : RelationsHealth { state in metrics.relationsWatching.set(state == .watching ? 1 : 0) }
        if relationsHealth != nil { metrics.relationsWatching.set(0) }
        let changeReader = opened.map { opened in
            ChangeReader(
                settings: opened.settings, node: node, logger: logger, lag: { metrics.changesSlotLag.set($0) },
                deliver: { [hub] changes in await hub.deliverChanges(changes) })
        }
        let shared = RealtimeContext(
            hub: hub, verifier: verifier, policy: policy, rules: rules, configuration: configuration,
            database: opened == nil ? nil : health, relations: relationsHealth, changesCatalog: changeReader?.catalog,
            history: opened?.history, cluster: opened?.cluster, logger: logger)
        if let relations, let rules {
            let errors = await relations.fill(rules.rules) { rules.replaceRelation($0, with: $1, source: .database) }
            if !errors.isEmpty { throw ServerStartError.rules(directory: configuration.rulesDirectory, RulesLoadError(errors: errors)) }
        }
        if let rules { metrics.relations(rules.relationInfo) }
        if let opened {
            try await Self.restoreHistory(from: opened, into: shared, rules: rules)
            let inbox = DatabaseInbox(shared: shared)
            let clock = configuration.clock
            database = opened.service(
                deliver: { messages in await inbox.publish(messages) },
                pruneBefore: { clock.wallClockMilliseconds() - Self.longestRetention(rules) })
        } else {
            database = nil
        }
        if let reader = changeReader {
            do {
                let hold = StartGate()
                let nanoseconds = UInt64(max(0, configuration.changesHold.components.seconds)) * 1_000_000_000
                    + UInt64(max(0, configuration.changesHold.components.attoseconds) / 1_000_000_000)
                _ = configuration.clock.schedule(afterNanoseconds: nanoseconds, on: group.any()) { hold.open() }
                changes = ChangeService(reader: reader, slot: try await reader.prepare(), hold: hold)
            } catch {
                throw ServerStartError.database(DatabaseError("cannot prepare the Postgres Changes slot: \(DatabaseError.describe(error))"))
            }
        } else {
            changes = nil
        }
        let changesSlot = changes?.slot
        let clusterNode = opened.map { ClusterNode(link: $0.cluster, shared: shared, changesSlot: changesSlot, started: started) }
        cluster = clusterNode.map { ClusterService(node: $0) }
        if let relations, let rules, let relationsHealth {
            relationWatcher = RelationWatcher(rules: rules, hub: hub, relations: relations, health: relationsHealth)
        } else {
            relationWatcher = nil
        }
        let router = Router()
        RESTRoutes(shared: shared, cluster: clusterNode).register(on: router)
        let plain = HTTPServerBuilder { responder in RealtimeChildChannel(responder: responder, shared: shared) }
        let server = try Self.tls(configuration).map { try HTTPServerBuilder.tls(plain, tlsConfiguration: $0) } ?? plain
        application = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? configuration.port) },
            eventLoopGroupProvider: .shared(group),
            logger: logger
        )
        realtime = RealtimeService(hub: hub)
        reloader = rules.map {
            RulesReloadService(
                rules: $0, hub: hub, watchFiles: configuration.watchRules, debounce: configuration.rulesReloadDebounce,
                reloadOnHangup: configuration.reloadOnHangup, relations: relations,
                logger: logger)
        }
    }

    /// The TLS configuration from the configured PEM files; nil without them.
    static func tls(_ configuration: SwitchboardConfiguration) throws(ServerStartError) -> TLSConfiguration? {
        switch (configuration.tlsCertificatePath, configuration.tlsKeyPath) {
        case (nil, nil):
            return nil
        case (let certificate?, let key?):
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(certificate)
                guard !chain.isEmpty else { throw ServerStartError.tls("\(certificate) holds no PEM certificate") }
                let privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
                return TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
            } catch let error as ServerStartError {
                throw error
            } catch {
                throw .tls("cannot read the certificate \(certificate) or the key \(key) as PEM: \(error)")
            }
        default:
            throw .tls("TLS needs both a certificate chain and its private key (--tls-cert and --tls-key)")
        }
    }

    /// The longest time any channel keeps its history (the rules' longest `history.seconds`,
    /// at least the standard 5 minutes): what the database must keep.
    static func longestRetention(_ rules: RulesEngine?) -> Int64 {
        let declared = rules?.rules.channels.compactMap { $0.history?.maxAgeMilliseconds }.max() ?? 0
        return max(declared, HistoryRetention.standard.maxAgeMilliseconds)
    }

    /// Puts the replay history the database kept back into memory, before any client comes.
    private static func restoreHistory(from database: Database, into shared: RealtimeContext, rules: RulesEngine?) async throws {
        let since = shared.configuration.clock.wallClockMilliseconds() - longestRetention(rules)
        let saved: [SavedChannel]
        do {
            saved = try await Database.withConnection(database.settings, logger: shared.logger) { connection in
                try await database.history.load(sinceMilliseconds: since, on: connection)
            }
        } catch {
            throw ServerStartError.database(DatabaseError("reading the replay history failed: \(DatabaseError.describe(error))"))
        }
        shared.log.restore(saved) { topic in
            let name = topic.hasPrefix("realtime:") ? String(topic.dropFirst("realtime:".count)) : topic
            guard let channel = try? ChannelName(validating: name) else { return .standard }
            return shared.policy.history(for: channel) ?? .standard
        }
        shared.logger.info(
            "replay history restored from the database",
            metadata: ["channels": "\(saved.count)", "messages": "\(saved.reduce(0) { $0 + $1.records.count })"])
    }

    private static func loadRules(
        _ configuration: SwitchboardConfiguration, metrics: ServerMetrics, logger: Logger
    ) throws(ServerStartError) -> RulesEngine {
        var options = RulesEngine.Options()
        options.onHookError = { error in
            metrics.ruleHookErrors.increment()
            logger.warning("a rule hook failed, so it denied", metadata: ["error": "\(error)"])
        }
        options.onPrint = { line in logger.info("rules: \(line)") }
        do {
            let engine = try RulesEngine(directory: configuration.rulesDirectory, options: options)
            let status = engine.status
            metrics.rulesGeneration.set(status.generation)
            logger.info(
                "rules loaded",
                metadata: ["directory": "\(configuration.rulesDirectory)", "files": "\(status.files.count)", "generation": "\(status.generation)"])
            return engine
        } catch {
            throw .rules(directory: configuration.rulesDirectory, error)
        }
    }

    /// The services to run, in start order (shut down in reverse: WebSockets drain first).
    public var services: [any Service] {
        var services: [any Service] = []
        if let reloader { services.append(reloader) }
        if let database { services.append(database) }
        if let cluster { services.append(cluster) }
        if let relationWatcher { services.append(relationWatcher) }
        if let changes { services.append(changes) }
        return services + [application, realtime]
    }

    /// How long a graceful shutdown may take before the services are cancelled: the HTTP server
    /// waits for its open connections to end, and a client that never closes its socket (or
    /// never answers the close frame) would otherwise hold the shutdown for ever.
    public static let shutdownGrace = Duration.seconds(10)

    /// The services as one group that stops gracefully on `signals` (or when told to), and is
    /// cancelled when a graceful shutdown takes longer than `shutdownGrace`.
    public func serviceGroup(logger: Logger, signals: [UnixSignal] = []) -> ServiceGroup {
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: signals, logger: logger)
        configuration.maximumGracefulShutdownDuration = Self.shutdownGrace
        return ServiceGroup(configuration: configuration)
    }

    /// Runs until SIGTERM or SIGINT, then drains: every client gets a `system` "Server requested
    /// disconnect" message and a close with code 1012; connections still open after
    /// `shutdownGrace` are closed.
    public func run(logger: Logger) async throws {
        try await serviceGroup(logger: logger, signals: [.sigterm, .sigint]).run()
    }
}

/// Why a server could not be built.
public enum ServerStartError: Error, CustomStringConvertible {
    /// The rules directory did not load; every problem is listed.
    case rules(directory: String, RulesLoadError)
    /// The database could not be reached, checked or migrated.
    case database(DatabaseError)
    /// The TLS certificate or key could not be used.
    case tls(String)

    public var description: String {
        switch self {
        case .rules(let directory, let failure):
            "the rules in \(directory) did not load:\n" + failure.errors.map { "  \($0)" }.joined(separator: "\n")
        case .database(let error):
            "the database is not usable: \(error.message)"
        case .tls(let problem):
            "TLS is not usable: \(problem)"
        }
    }
}

/// Waits for graceful shutdown, then closes every WebSocket connection politely.
struct RealtimeService: Service {
    let hub: Hub

    func run() async throws {
        try? await gracefulShutdown()
        await hub.drain(reason: "Server requested disconnect")
    }
}

/// Reads Postgres Changes (`ChangeReader`) until a graceful shutdown, from the moment `hold`
/// opens.
struct ChangeService: Service {
    let reader: ChangeReader
    let slot: String
    let hold: StartGate

    func run() async {
        await cancelWhenGracefulShutdown { await reader.run(slot: slot) { await hold.wait() } }
    }
}

/// A gate that opens once; `wait` returns when it is open (at once if it already is, or when
/// the waiting task is cancelled).
final class StartGate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLock { state in
            defer { state = (true, []) }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.open || Task.isCancelled { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            open()
        }
    }
}
