import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle

/// The server's database: checked and migrated at start (`open`), then run as a service: the
/// message reader, the history writer and the upkeep, each on connections of its own.
public final class Database: Sendable {
    public let settings: DatabaseSettings
    /// The logical replication slot `realtime.messages` is read from.
    public let slotName: String
    public let health: DatabaseHealth
    /// The replay history kept in the database.
    public let history: HistoryStore
    /// This node's link to the others on the same database.
    public let cluster: ClusterLink
    let logger: Logger

    /// How long partitions of `realtime.messages` are kept (Supabase: 72 hours).
    public static let messageRetention = "72 hours"

    private init(settings: DatabaseSettings, node: String, clusterID: String, slotName: String, health: DatabaseHealth, logger: Logger) {
        self.settings = settings
        self.slotName = slotName
        self.health = health
        self.logger = logger
        self.history = HistoryStore(node: node, settings: settings, health: health, logger: logger)
        self.cluster = ClusterLink(node: node, clusterID: clusterID, settings: settings, health: health, logger: logger)
    }

    /// Connects (retrying until `timeout` passes: the database may still be starting), checks
    /// that it can serve (logical WAL, wal2json), applies pending migrations when `migrate`
    /// (else refuses to start with the list of them), creates the message slot and today's
    /// partitions.
    public static func open(
        _ settings: DatabaseSettings, node: String, migrate: Bool, timeout: Duration, health: DatabaseHealth, logger: Logger
    ) async throws(DatabaseError) -> Database {
        let slot: String
        let clusterID: String
        do {
            (slot, clusterID) = try await withConnection(settings, retryingFor: timeout, logger: logger) { connection in
                let migrator = Migrator(connection: connection, logger: logger)
                if migrate {
                    try await migrator.migrate()
                } else {
                    let status = try await migrator.status(slotName: "", node: node)
                    if !status.pending.isEmpty {
                        throw DatabaseError(
                            "the database lacks migrations \(status.pending.map { "\($0.version) (\($0.name))" }.joined(separator: ", ")); "
                                + "run switchboard db migrate")
                    }
                }
                let slot = try await prepareSlot(on: connection, logger: logger)
                var id = ""
                for try await found in try await connection.query("select id from switchboard.cluster limit 1", logger: logger).decode(String.self) {
                    id = found
                }
                return (slot, id)
            }
        } catch let error as DatabaseError {
            throw error
        } catch {
            throw DatabaseError(DatabaseError.describe(error))
        }
        // Reachable a moment ago: up until the reader says otherwise (so that what is published
        // before the reader's first connection is committed before it is acknowledged).
        health.set(.up)
        return Database(settings: settings, node: node, clusterID: clusterID, slotName: slot, health: health, logger: logger)
    }

    /// The name of this database's message slot.
    public static func slotName(on connection: PostgresConnection, logger: Logger) async throws -> String {
        try await MessageReader.slotName(on: connection, logger: logger)
    }

    /// Creates this database's Postgres Changes slot when missing; returns its name.
    public static func prepareChangesSlot(on connection: PostgresConnection, node: String, logger: Logger) async throws -> String {
        let slot = try await ChangeReader.slotName(on: connection, node: node, logger: logger)
        try await MessageReader.ensureSlot(slot, on: connection, logger: logger)
        return slot
    }

    /// Creates this database's message slot when missing, and the coming days' partitions;
    /// returns the slot's name.
    public static func prepareSlot(on connection: PostgresConnection, logger: Logger) async throws -> String {
        let slot = try await MessageReader.slotName(on: connection, logger: logger)
        try await MessageReader.ensureSlot(slot, on: connection, logger: logger)
        try await connection.run("select switchboard.ensure_message_partitions(3)", logger: logger)
        return slot
    }

    /// One new connection (the caller closes it).
    public static func connect(_ settings: DatabaseSettings, logger: Logger) async throws -> PostgresConnection {
        try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.any(), configuration: try settings.connectionConfiguration(), id: 0, logger: logger)
    }

    /// Runs `body` on one connection, retrying the connection (not the body) until `timeout`;
    /// `body` ends when the connection closes or the task is cancelled (`guarded`).
    @discardableResult
    public static func withConnection<Result: Sendable>(
        _ settings: DatabaseSettings, retryingFor timeout: Duration = .zero, logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let configuration = try settings.connectionConfiguration()
        let deadline = ContinuousClock.now + timeout
        var attempt = 0
        var connection: PostgresConnection?
        while connection == nil {
            attempt += 1
            do {
                connection = try await PostgresConnection.connect(
                    on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration, id: attempt, logger: logger)
            } catch {
                let reason = DatabaseError.describe(error)
                guard ContinuousClock.now < deadline else {
                    throw DatabaseError("cannot reach the database at \(settings) after \(attempt) attempt(s): \(reason)")
                }
                logger.warning("the database is not reachable yet; retrying", metadata: ["database": "\(settings)", "error": "\(reason)"])
                try await Task.sleep(for: .milliseconds(min(2000, 250 * attempt)))
            }
        }
        guard let connection else { throw DatabaseError("unreachable") }
        do {
            let result = try await connection.guarded(body)
            try? await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// The reader (handing committed messages to `deliver`), the history writer, the partition
    /// upkeep and the history pruning (every 10 minutes, of messages published before
    /// `pruneBefore()`, in ms since 1970), until the task is cancelled or a graceful shutdown.
    public func service(deliver: @escaping MessageReader.Deliver, pruneBefore: @escaping @Sendable () -> Int64) -> some Service {
        DatabaseService(
            // The reader's health is its own: in a cluster only one node reads, and the database
            // counts as up for all of them while their cluster link listens.
            database: self, reader: MessageReader(settings: settings, slotName: slotName, health: DatabaseHealth(), logger: logger, deliver: deliver),
            pruneBefore: pruneBefore)
    }

    /// Creates the coming days' partitions and drops those past the retention.
    func upkeep() async {
        do {
            try await Self.withConnection(settings, logger: logger) { [logger] connection in
                try await connection.run("select switchboard.ensure_message_partitions(3)", logger: logger)
                try await connection.run(
                    "select switchboard.drop_message_partitions(\(Self.messageRetention)::interval)", logger: logger)
            }
        } catch {
            logger.warning("partition upkeep of realtime.messages failed", metadata: ["error": "\(DatabaseError.describe(error))"])
        }
    }

    /// The cluster's upkeep (`ClusterLink.upkeep`): gone nodes' slots and rows, old relayed messages.
    func clusterUpkeep() async {
        do {
            try await Self.withConnection(settings, logger: logger) { [logger] connection in
                try await ClusterLink.upkeep(on: connection, logger: logger)
            }
        } catch {
            logger.warning("cluster upkeep failed", metadata: ["error": "\(DatabaseError.describe(error))"])
        }
    }
}

struct DatabaseService: Service {
    let database: Database
    let reader: MessageReader
    let pruneBefore: @Sendable () -> Int64

    /// Stops in order: the reader first (a round waiting for its rows' history gives up without
    /// moving the slot), then what waits is written (at most 5 s), then the writer.
    func run() async throws {
        await withDiscardingTaskGroup { outer in
            outer.addTask { await database.history.run() }
            await withDiscardingTaskGroup { group in
                group.addTask { await reader.run() }
                group.addTask {
                    while !Task.isCancelled {
                        await database.history.prune(before: pruneBefore())
                        try? await Task.sleep(for: .seconds(600))
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        await database.upkeep()
                        try? await Task.sleep(for: .seconds(3600))
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(60))
                        if Task.isCancelled { break }
                        await database.clusterUpkeep()
                    }
                }
                try? await gracefulShutdown()
                group.cancelAll()
            }
            // The sockets are closed by now (services stop in reverse order): write what waits.
            await database.history.flush(within: .seconds(5))
            outer.cancelAll()
        }
    }
}
