import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// Reads the rows committed to `realtime.messages` and hands them to the server, each once, in
/// commit order, as soon as their transaction commits; and moves the logical replication slot
/// (wal2json) past them once they are delivered and their history is stored.
///
/// Two roads, one ledger (`DeliveryLedger`):
/// - **Announced rows**: migration 3's trigger sends each inserted row as the payload of a
///   NOTIFY, which PostgreSQL delivers only if the transaction commits, in commit order. The
///   reader delivers those at once. A row too big for a notification is announced by its id
///   only, and read from the slot (a catch-up) before anything after it is delivered.
/// - **The slot**: every `pollInterval` a read of the slot up to the flushed WAL position runs
///   on a second connection without holding up delivery; its rows are matched against what
///   notifications delivered when the reader's own *fence* notification comes back (see
///   `DeliveryLedger`), the rare row no notification announced is delivered then, and the slot
///   advances. At connect, and whenever notifications were dropped because the server fell
///   behind, a catch-up reads the slot to the current WAL end and delivers everything not yet
///   delivered before the next announced row.
///
/// Decoding is not on the delivery path, which is what makes delivery cheap: a read of the slot
/// decodes from the slot's restart position, which PostgreSQL moves only every 15–25 s, so a
/// read costs tens of milliseconds under load however little is new.
///
/// A rolled-back transaction is never announced nor decoded; rows committed while the server
/// was away wait in the slot. A crash between delivering and advancing delivers those rows
/// again (same `meta.id`s). When either connection fails the reader marks the database down
/// and reconnects with a capped backoff; what it delivered is remembered across connections.
public final class MessageReader: Sendable {
    /// Publishes rows in order; returns once their history is stored, false when some of it
    /// could not be (the session then ends without moving the slot past them).
    public typealias Deliver = @Sendable ([DatabaseMessage]) async -> Bool

    /// The channel `switchboard.notify_message()` notifies.
    static let channel = "switchboard_messages"
    /// The most WAL one read decodes, so that a long backlog is read in bounded pieces.
    static let maxRoundBytes = 16 << 20
    /// How many notifications may wait to be handled; past that they are dropped and a catch-up
    /// reads the rows from the slot instead.
    static let queueCapacity = 10_000
    /// How soon to look again while a catch-up waits for WAL to be flushed (a commit can be
    /// announced before its WAL is flushed with synchronous_commit = off; the WAL writer flushes
    /// every 200 ms by default).
    static let unflushedRetry = Duration.milliseconds(20)

    let settings: DatabaseSettings
    let slotName: String
    let health: DatabaseHealth
    let logger: Logger
    let pollInterval: Duration
    let deliver: Deliver
    /// What was delivered and not yet passed by the slot, kept from one connection to the next.
    private let ledger = Mutex(DeliveryLedger())
    /// Tells this reader's fences from those of another server on the same database.
    let token = String(UInt64.random(in: 0...UInt64.max), radix: 36)

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

    /// The advisory lock (per database) held by the node that reads `realtime.messages`.
    static let readerLock: Int64 = 0x5377_6974_6368_01

    /// Another node holds the reader's lock.
    struct NotLeader: Error {}

    /// Reads until the task is cancelled (in a cluster, while this node holds the reader's lock;
    /// the others wait and try again every second).
    public func run() async {
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                try await serveOneConnection()
            } catch is CancellationError {
                return
            } catch is NotLeader {
                // Another node reads the messages; try again in a second (it may be gone by then).
                if health.isUp { logger.info("another node reads realtime.messages now") }
                health.set(.down(reason: "another node reads realtime.messages"))
                try? await Task.sleep(for: .seconds(1))
                continue
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

    private func connect(id: Int) async throws -> PostgresConnection {
        try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.any(), configuration: try settings.connectionConfiguration(), id: id,
            logger: logger)
    }

    /// One connection LISTENs; the other reads and advances the slot and sends fences.
    private func serveOneConnection() async throws {
        let listener = try await connect(id: 1)
        let slot: PostgresConnection
        do {
            slot = try await connect(id: 2)
        } catch {
            try? await listener.close()
            throw error
        }
        @Sendable func closeBoth() {
            _ = listener.close() as EventLoopFuture<Void>
            _ = slot.close() as EventLoopFuture<Void>
        }
        defer { ledger.withLock { $0.connectionEnded() } }
        do {
            // Cancelling closes the connections, which ends the LISTEN sequence; either
            // connection closing ends the session even when a statement on it never returns.
            try await listener.guarded { listener in
                try await slot.guarded { slot in try await self.serve(listener: listener, slot: slot, closeBoth: closeBoth) }
            }
        } catch {
            closeBoth()
            try? await listener.closeFuture.get()
            try? await slot.closeFuture.get()
            throw error
        }
    }

    private func serve(listener: PostgresConnection, slot: PostgresConnection, closeBoth: @escaping @Sendable () -> Void) async throws {
        // One node of a cluster reads the messages: the one holding this session lock (it goes
        // with the connection, so a node that dies hands it on).
        let rows = try await slot.query("select pg_try_advisory_lock(\(Self.readerLock))", logger: logger)
        var leader = false
        for try await held in rows.decode(Bool.self) { leader = held }
        guard leader else { throw NotLeader() }
        try await Self.ensureSlot(slotName, on: slot, logger: logger)
        let events = ReaderEvents(capacity: Self.queueCapacity)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await ReaderSession(reader: self, slot: slot, events: events).run()
                } catch {
                    closeBoth()  // ends the LISTEN below
                    throw error
                }
            }
            group.addTask {
                while true {
                    try await Task.sleep(for: self.pollInterval)
                    events.push(.tick)
                }
            }
            try await listener.listen(on: Self.channel) { notifications in
                logger.info("database connected", metadata: ["database": "\(settings)", "slot": "\(slotName)"])
                health.set(.up)
                events.push(.listening)
                for try await notification in notifications { events.push(.notification(notification.payload)) }
            }
            throw DatabaseError("the database closed the connection")
        }
    }

    // MARK: - The slot

    enum ReadTarget {
        /// What is flushed now: a background read.
        case flushed
        /// Everything written so far, waiting for it to be flushed: a catch-up.
        case written
    }

    struct SlotRead: Sendable {
        /// Where the read stopped; nil when there was nothing new to read.
        let upto: LSN?
        let rows: [DatabaseMessage]
        /// Whether it reached its target (else it stopped after `maxRoundBytes`).
        let reached: Bool
    }

    /// Reads the rows of the transactions that committed before the target position (at most
    /// `maxRoundBytes` past the slot's, or `after`, the furthest this connection read), without
    /// moving the slot.
    func read(on connection: PostgresConnection, to target: ReadTarget, after: LSN?) async throws -> SlotRead {
        while true {
            var positions: (flushed: String, written: String, confirmed: String?)?
            let rows = try await connection.query(
                """
                select pg_current_wal_flush_lsn()::text, pg_current_wal_insert_lsn()::text, confirmed_flush_lsn::text
                from pg_replication_slots where slot_name = \(slotName)
                """, logger: logger)
            for try await row in rows.decode((String, String, String?).self) { positions = row }
            guard let positions, let flushed = LSN(positions.flushed), let written = LSN(positions.written) else {
                throw DatabaseError("the replication slot \(slotName) is gone (dropped while the server ran?)")
            }
            let want = target == .written ? written : flushed
            if want > flushed {
                // Decoding only ever sees flushed WAL.
                try await Task.sleep(for: Self.unflushedRetry)
                continue
            }
            let confirmed = positions.confirmed.flatMap(LSN.init) ?? LSN(0)
            let from = max(confirmed, after ?? confirmed)
            let upto = min(want, from.adding(Self.maxRoundBytes))
            guard upto > from else { return SlotRead(upto: nil, rows: [], reached: true) }
            var messages: [DatabaseMessage] = []
            let changes = try await connection.query(
                """
                select data from pg_logical_slot_peek_changes(\(slotName), \(upto.description)::pg_lsn, null,
                    'format-version', '2', 'add-tables', 'realtime.*', 'include-types', 'false',
                    'include-transaction', 'false')
                """, logger: logger)
            for try await data in changes.decode(String.self) {
                if let message = Wal2JSON.message(fromChange: data) { messages.append(message) }
            }
            return SlotRead(upto: upto, rows: messages, reached: upto == want)
        }
    }

    /// Moves the slot to `position`: PostgreSQL may then recycle the WAL before it.
    func advance(on connection: PostgresConnection, to position: LSN) async throws {
        try await connection.run("select pg_replication_slot_advance(\(slotName), \(position.description)::pg_lsn)", logger: logger)
    }

    func sendFence(_ fence: Int, on connection: PostgresConnection) async throws {
        try await connection.run("select pg_notify(\(Self.channel), \(Self.fencePrefix + token + ":" + String(fence)))", logger: logger)
    }

    static let fencePrefix = "fence:"

    /// What a notification says.
    enum Announcement: Equatable {
        case row(DatabaseMessage)
        /// A row too big to travel in a notification: read it from the slot.
        case tooBig(id: String)
        /// One of this reader's fences.
        case fence(Int)
        /// Another reader's fence, or nothing this reader knows.
        case other
        /// Something happened that only the slot can tell (a wake-up without a row).
        case wake
    }

    func announcement(_ payload: String) -> Announcement {
        if payload.isEmpty { return .wake }
        if payload.hasPrefix(Self.fencePrefix) {
            let rest = payload.dropFirst(Self.fencePrefix.count)
            guard rest.hasPrefix(token + ":"), let fence = Int(rest.dropFirst(token.count + 1)) else { return .other }
            return .fence(fence)
        }
        if payload.hasPrefix("{") {
            if let message = DatabaseMessage(notification: payload) { return .row(message) }
            return .wake
        }
        return .tooBig(id: payload)
    }

    func withLedger<Result: Sendable>(_ body: (inout DeliveryLedger) -> Result) -> Result { ledger.withLock { body(&$0) } }

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
            // Made meanwhile by another server starting at the same moment (the check and the
            // creation are not one step).
            if reason.contains("42710") { return }
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
