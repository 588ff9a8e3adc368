import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// Reads the rows committed to `realtime.messages` from a logical replication slot (wal2json),
/// in commit order, and hands them to the server; then moves the slot past them.
///
/// One round: take the WAL position `upto` (the flushed one, at most `maxRoundBytes` past the
/// slot's), read every inserted message of the transactions that committed before it
/// (`pg_logical_slot_peek_changes(slot, upto, …)`), deliver them, then advance the slot to
/// `upto`. A transaction that commits later is read in a later round whatever order the
/// transactions inserted in; a rolled-back one is never decoded; rows committed while the
/// server was away wait in the slot. A crash between delivering and advancing delivers that
/// round again (same `meta.id`s).
///
/// Rounds run when `realtime.send`'s NOTIFY arrives (a wake-up only: the rows never travel in
/// it) and every `pollInterval` in any case (plain inserts into `realtime.messages` notify
/// nobody). Everything runs on one dedicated connection, which also LISTENs; when it fails the
/// reader marks the database down and reconnects with a capped backoff.
public final class MessageReader: Sendable {
    public typealias Deliver = @Sendable ([DatabaseMessage]) async -> Void

    /// The channel `realtime.send` notifies.
    static let wakeChannel = "switchboard_messages"
    /// The most WAL one round decodes, so that a long backlog is read in bounded pieces.
    static let maxRoundBytes = 16 << 20

    let settings: DatabaseSettings
    let slotName: String
    let health: DatabaseHealth
    let logger: Logger
    let pollInterval: Duration
    let deliver: Deliver

    public init(
        settings: DatabaseSettings, slotName: String, health: DatabaseHealth, logger: Logger, pollInterval: Duration = .seconds(1),
        deliver: @escaping Deliver
    ) {
        self.settings = settings
        self.slotName = slotName
        self.health = health
        self.logger = logger
        self.pollInterval = pollInterval
        self.deliver = deliver
    }

    /// Reads until the task is cancelled.
    public func run() async {
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                try await serveOneConnection()
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                let reason = DatabaseError.describe(error)
                if health.isUp {
                    logger.error("database connection lost; local delivery goes on", metadata: ["error": "\(reason)"])
                    backoff = .milliseconds(100)  // it was serving: start over from the shortest wait
                }
                health.set(.down(reason: reason))
            }
            if Task.isCancelled { return }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(2))
        }
    }

    private func serveOneConnection() async throws {
        let connection = try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.any(), configuration: try settings.connectionConfiguration(), id: 1,
            logger: logger)
        do {
            // Cancelling closes the connection, which ends the LISTEN sequence; a closed
            // connection ends the session even when a statement on it never returns.
            try await connection.guarded { connection in try await self.serve(on: connection) }
        } catch {
            try? await connection.close()
            throw error
        }
    }

    private func serve(on connection: PostgresConnection) async throws {
        try await Self.ensureSlot(slotName, on: connection, logger: logger)
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // Ends (and so ends the connection) when a round fails.
                for await _ in wakeups {
                    do {
                        if try await self.round(on: connection) == .unflushed {
                            // Nothing new, but WAL waits to be flushed: a commit notified
                            // before its flush (synchronous_commit = off) is not decodable yet,
                            // so look again shortly rather than at the next poll.
                            Task {
                                try await Task.sleep(for: Self.unflushedRetry)
                                wake.yield()
                            }
                        }
                    } catch {
                        try? await connection.close()
                        throw error
                    }
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: self.pollInterval)
                    wake.yield()
                }
            }
            try await connection.listen(on: Self.wakeChannel) { notifications in
                logger.info("database connected", metadata: ["database": "\(settings)", "slot": "\(slotName)"])
                health.set(.up)
                wake.yield()  // catch up with what was committed while away
                for try await _ in notifications { wake.yield() }
            }
            throw DatabaseError("the database closed the connection")
        }
    }

    enum RoundResult: Equatable {
        case done
        /// The round found nothing new while WAL was written but not yet flushed: what it
        /// holds is not decodable yet.
        case unflushed
    }

    /// How soon to look again while WAL waits to be flushed (the WAL writer flushes every 200 ms
    /// by default).
    static let unflushedRetry = Duration.milliseconds(20)

    /// One round: read what committed before the flushed WAL position (at most `maxRoundBytes`
    /// past the slot's), deliver, advance. Decoding only ever sees flushed WAL, so the round
    /// stops there, and the slot never moves past what was decoded.
    func round(on connection: PostgresConnection) async throws -> RoundResult {
        var target: (upto: String, behind: Bool, unflushed: Bool)?
        let positions = try await connection.query(
            """
            select least(pg_current_wal_flush_lsn(), confirmed_flush_lsn + \(Self.maxRoundBytes)::numeric)::text,
                   pg_current_wal_flush_lsn() > confirmed_flush_lsn,
                   pg_current_wal_insert_lsn() > pg_current_wal_flush_lsn()
            from pg_replication_slots where slot_name = \(slotName)
            """, logger: logger)
        for try await (upto, behind, unflushed) in positions.decode((String, Bool, Bool).self) { target = (upto, behind, unflushed) }
        guard let target else { throw DatabaseError("the replication slot \(slotName) is gone (dropped while the server ran?)") }
        guard target.behind else { return target.unflushed ? .unflushed : .done }
        var found = false
        var messages: [DatabaseMessage] = []
        let changes = try await connection.query(
            """
            select data from pg_logical_slot_peek_changes(\(slotName), \(target.upto)::pg_lsn, null,
                'format-version', '2', 'add-tables', 'realtime.*', 'include-types', 'false',
                'include-transaction', 'false')
            """, logger: logger)
        for try await data in changes.decode(String.self) {
            if let message = Wal2JSON.message(fromChange: data) { messages.append(message) }
            found = true
        }
        if !messages.isEmpty { await deliver(messages) }
        // Stopping: their history may not be committed, so the slot stays (they are read again).
        try Task.checkCancellation()
        try await connection.run("select pg_replication_slot_advance(\(slotName), \(target.upto)::pg_lsn)", logger: logger)
        return target.unflushed && !found ? .unflushed : .done
    }

    /// Creates the logical replication slot when it does not exist, with a message that says
    /// what to change when the database cannot have one.
    static func ensureSlot(_ name: String, on connection: PostgresConnection, logger: Logger) async throws(DatabaseError) {
        do {
            let level = try await connection.query("show wal_level", logger: logger)
            for try await value in level.decode(String.self) where value != "logical" {
                throw DatabaseError(
                    "the database has wal_level = \(value); Switchboard reads realtime.messages by logical decoding, "
                        + "so set wal_level = logical in postgresql.conf and restart PostgreSQL")
            }
            try await connection.run(
                """
                select pg_create_logical_replication_slot(\(name), 'wal2json')
                where not exists (select 1 from pg_replication_slots where slot_name = \(name))
                """, logger: logger)
        } catch let error as DatabaseError {
            throw error
        } catch {
            let reason = DatabaseError.describe(error)
            if reason.contains("wal2json") {
                throw DatabaseError(
                    "the database cannot load the wal2json output plugin (\(reason)); install it where PostgreSQL runs "
                        + "(Debian: apt-get install postgresql-15-wal2json)")
            }
            throw DatabaseError("could not create the replication slot \(name): \(reason)")
        }
    }

    /// The slot this database's messages are read from: one per database, since slot names
    /// are unique in a whole PostgreSQL cluster.
    static func slotName(on connection: PostgresConnection, logger: Logger) async throws -> String {
        let rows = try await connection.query("select 'switchboard_' || left(md5(current_database()), 16)", logger: logger)
        for try await name in rows.decode(String.self) { return name }
        throw DatabaseError("could not name the replication slot")
    }
}
