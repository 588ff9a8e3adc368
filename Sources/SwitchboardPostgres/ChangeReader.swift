import Foundation
import Logging
import PostgresNIO
import Synchronization
import SwitchboardCore
import SwitchboardWire

/// One committed row change of a table in the `supabase_realtime` publication, decoded from the
/// changes slot (wal2json, format 2) into what a `postgres_changes` message carries.
public struct DecodedChange: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case insert = "INSERT"
        case update = "UPDATE"
        case delete = "DELETE"
    }

    public struct Column: Sendable, Equatable {
        public let name: String
        /// PostgreSQL's short type name (`int4`, `text`, `bool`), as Supabase sends it.
        public let type: String
    }

    public let schema: String
    public let table: String
    public let kind: Kind
    /// Supabase's format: `2026-12-06T03:06:33.131Z`.
    public let commitTimestamp: String
    public let columns: [Column]
    /// The new row (INSERT, UPDATE).
    public let record: Value.Object?
    /// The old row (UPDATE, DELETE): every column when the table's replica identity is full,
    /// else its primary key.
    public let oldRecord: Value.Object?
    /// Whether `oldRecord` holds the whole row.
    public let oldIsWhole: Bool

    public init(
        schema: String, table: String, kind: Kind, commitTimestamp: String, columns: [Column], record: Value.Object?,
        oldRecord: Value.Object?, oldIsWhole: Bool
    ) {
        self.schema = schema
        self.table = table
        self.kind = kind
        self.commitTimestamp = commitTimestamp
        self.columns = columns
        self.record = record
        self.oldRecord = oldRecord
        self.oldIsWhole = oldIsWhole
    }
}

/// Reads the changes of the tables in the `supabase_realtime` publication from a logical
/// replication slot of their own (`switchboard_changes_<database hash>`, wal2json), and hands
/// them, in commit order, to `deliver` before moving the slot past them: a change committed
/// while the server is stopped waits in the slot and is delivered when it starts.
///
/// It reads when a watched table's trigger says a statement committed (migration 6; the server
/// puts the trigger on every table of the publication it can) and at least once a second: each
/// read takes the transactions committed up to the WAL position it starts at (at most 16 MiB
/// of WAL per read), all whole. The slot's lag (WAL not yet read) goes to `lag`.
public struct ChangeReader: Sendable {
    public typealias Deliver = @Sendable ([DecodedChange]) async -> Void

    /// The notification channel of the wake-up triggers.
    public static let channel = "switchboard_changes"
    /// The publication whose tables are read, as in Supabase.
    public static let publication = "supabase_realtime"
    /// A read takes at most this much WAL.
    static let readBytes = 16 << 20
    /// The least time between the starts of two reads.
    static let minimumGap = Duration.milliseconds(50)

    let settings: DatabaseSettings
    let logger: Logger
    let deliver: Deliver
    let lag: @Sendable (Int64) -> Void
    /// The published tables and their columns, for checking joins; kept current by the reads.
    public let catalog = PublishedCatalog()
    /// How far this process has delivered. The slot's advance can be lost (the connection drops
    /// between delivery and advance; PostgreSQL persists an advance only at its next
    /// checkpoint), so each session first moves the slot up to here: nothing this process
    /// delivered is delivered again. Across a restart of the server itself, the last read's
    /// changes may come twice if the advance was lost.
    private let delivered = DeliveredPosition()
    /// At start, a slot further behind than this many bytes of WAL is dropped and made anew
    /// (the changes in it are lost, and the log says so): the bound on what a stopped server
    /// makes PostgreSQL keep.
    let maxStartLagBytes: Int64
    /// The cluster node this server is (its slot is its own).
    let node: String

    public init(
        settings: DatabaseSettings, node: String, logger: Logger, maxStartLagBytes: Int64 = 1 << 30, lag: @escaping @Sendable (Int64) -> Void = { _ in },
        deliver: @escaping Deliver
    ) {
        self.settings = settings
        self.node = node
        self.logger = logger
        self.maxStartLagBytes = maxStartLagBytes
        self.lag = lag
        self.deliver = deliver
    }

    /// The slot's name for `node` on the database `connection` is on: one per node, since every
    /// node delivers the changes to its own subscribers (slot names are unique in a whole
    /// PostgreSQL cluster, so the database's name is in it too).
    static func slotName(on connection: PostgresConnection, node: String, logger: Logger) async throws -> String {
        let rows = try await connection.query(
            "select 'switchboard_changes_' || left(md5(current_database()), 16) || '_' || left(md5(\(node)), 8)", logger: logger)
        for try await name in rows.decode(String.self) { return name }
        throw DatabaseError("could not name the changes slot")
    }

    /// Creates the slot when missing; drops and recreates one that is more than
    /// `maxStartLagBytes` behind; reads the published tables' columns. Returns the slot's name.
    public func prepare() async throws -> String {
        let slot = try await Database.withConnection(settings, logger: logger) { [logger, maxStartLagBytes, node] connection in
            let slot = try await Self.slotName(on: connection, node: node, logger: logger)
            let rows = try await connection.query(
                """
                select pg_wal_lsn_diff(pg_current_wal_flush_lsn(), confirmed_flush_lsn)::int8 from pg_replication_slots
                where slot_name = \(slot)
                """, logger: logger)
            var behind: Int64?
            for try await value in rows.decode(Int64?.self) { behind = value ?? 0 }
            if let behind, behind > maxStartLagBytes {
                logger.error(
                    "the changes slot is too far behind; it is made anew and the changes in it are not delivered",
                    metadata: ["slot": "\(slot)", "behind_bytes": "\(behind)", "limit_bytes": "\(maxStartLagBytes)"])
                try await connection.run("select pg_drop_replication_slot(\(slot))", logger: logger)
            }
            try await MessageReader.ensureSlot(slot, on: connection, logger: logger)
            return slot
        }
        try await Database.withConnection(settings, logger: logger) { [catalog, logger] connection in
            catalog.set(try await Self.publishedColumns(on: connection, logger: logger))
        }
        return slot
    }

    /// Reads until cancelled, reconnecting (100 ms, doubling to 2 s) when the database goes;
    /// the first read waits for `start` (the server's hold after it starts).
    public func run(slot: String, start: @Sendable () async -> Void = {}) async {
        await start()
        await keepReconnecting { started in
            try await session(slot: slot, started: started)
        } failed: { error, first in
            if first { logger.warning("reading the changes slot stopped; retrying", metadata: ["error": "\(DatabaseError.describe(error))"]) }
        }
    }

    /// One pair of connections: one LISTENs for wake-ups, the other reads the slot.
    private func session(slot: String, started: @escaping @Sendable () -> Void) async throws {
        let reader = try await Database.connect(settings, logger: logger)
        do {
            try await reader.guarded { reader in
                try await reader.run("set timezone = 'UTC'", logger: logger)
                // DDL (the wake-up triggers) gives up rather than queue the table's writers.
                try await reader.run("set lock_timeout = '2s'", logger: logger)
                try await recreateIfLost(slot, on: reader)
                if let done = delivered.position {
                    try await reader.run(
                        """
                        select pg_replication_slot_advance(slot_name, \(done.description)::pg_lsn) from pg_replication_slots
                        where slot_name = \(slot) and confirmed_flush_lsn < \(done.description)::pg_lsn
                        """, logger: logger)
                }
                let types = try await Self.typeNames(on: reader, logger: logger)
                let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
                // Three tasks: the LISTEN, a tick a second, the reads. The first to end (a
                // connection lost, a read failing) ends the others and the session.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        let listener = try await Database.connect(settings, logger: logger)
                        do {
                            try await listener.guarded { listener in
                                try await listener.listen(on: Self.channel) { notifications in
                                    for try await _ in notifications { wake.yield() }
                                }
                            }
                        } catch {
                            try? await listener.close()
                            throw error
                        }
                        try? await listener.close()
                        throw DatabaseError("the database closed the connection")
                    }
                    group.addTask {
                        while !Task.isCancelled {
                            try await Task.sleep(for: .seconds(1))
                            wake.yield()
                        }
                    }
                    group.addTask {
                        var triggered: Set<String> = []
                        let clock = ContinuousClock()
                        var lastStart = clock.now - .seconds(1)
                        var lastCost = Duration.zero
                        for await _ in wakeups {
                            // Every read decodes the WAL from the slot's restart point, which
                            // PostgreSQL moves only every 15 s or so: on a busy database a read
                            // costs milliseconds of its CPU. Reads start at least `minimumGap`
                            // apart, and at least as far apart as the last one took, so that
                            // reading never takes more than about half of a PostgreSQL core;
                            // wake-ups meanwhile coalesce.
                            let next = lastStart + max(Self.minimumGap, lastCost)
                            if next > clock.now { try await Task.sleep(until: next, clock: clock) }
                            lastStart = clock.now
                            // Read until a read finds nothing left behind its position.
                            while try await read(slot: slot, types: types, triggered: &triggered, on: reader) {}
                            lastCost = lastStart.duration(to: clock.now)
                        }
                        throw CancellationError()
                    }
                    started()
                    wake.yield()
                    defer { group.cancelAll() }
                    try await group.next()
                    throw DatabaseError("the changes reader stopped")
                }
            }
        } catch {
            try? await reader.close()
            throw error
        }
        try? await reader.close()
    }

    /// Makes the slot anew when it is gone (dropped by hand) or lost (PostgreSQL invalidated it
    /// past `max_slot_wal_keep_size`): the changes it held are lost, and the log says so loudly,
    /// but the stream goes on instead of failing for good.
    private func recreateIfLost(_ slot: String, on connection: PostgresConnection) async throws {
        let rows = try await connection.query(
            "select coalesce((select wal_status from pg_replication_slots where slot_name = \(slot)), 'gone')", logger: logger)
        var status = "gone"
        for try await value in rows.decode(String.self) { status = value }
        guard status == "gone" || status == "lost" else { return }
        logger.error(
            "the changes slot was \(status == "gone" ? "dropped" : "invalidated by PostgreSQL (max_slot_wal_keep_size)"); it is made anew, and the changes it held are not delivered",
            metadata: ["slot": "\(slot)"])
        if status == "lost" { try await connection.run("select pg_drop_replication_slot(\(slot))", logger: logger) }
        try await MessageReader.ensureSlot(slot, on: connection, logger: logger)
        delivered.position = nil
    }

    /// PostgreSQL's short type names by oid (`int4`, `text`), as Supabase reports columns.
    static func typeNames(on connection: PostgresConnection, logger: Logger) async throws -> [Int64: String] {
        var names: [Int64: String] = [:]
        let rows = try await connection.query("select oid::int8, typname::text from pg_type", logger: logger)
        for try await (oid, name) in rows.decode((Int64, String).self) { names[oid] = name }
        return names
    }

    /// One read: delivers the changes committed up to the position it starts at (at most
    /// `readBytes` of WAL past the slot) and moves the slot there. Returns whether WAL was left
    /// behind that position (read again at once).
    private func read(slot: String, types: [Int64: String], triggered: inout Set<String>, on connection: PostgresConnection) async throws
        -> Bool
    {
        let tables = try await publishedTables(on: connection)
        for table in tables where !triggered.contains(table.qualified) {
            triggered.insert(table.qualified)
            await installWakeup(table, on: connection)
        }
        // Again when the publication's tables change, and every 10 s for new columns.
        if Set(tables.map(\.qualified)) != Set((catalog.current ?? [:]).keys) || catalog.age > .seconds(10) {
            catalog.set(try await Self.publishedColumns(on: connection, logger: logger))
        }
        let position = try await connection.query(
            """
            select least(pg_current_wal_flush_lsn(), confirmed_flush_lsn + \(Self.readBytes)::numeric)::text,
                   pg_wal_lsn_diff(pg_current_wal_flush_lsn(), confirmed_flush_lsn)::int8,
                   pg_wal_lsn_diff(pg_current_wal_flush_lsn(), confirmed_flush_lsn + \(Self.readBytes)::numeric)::int8
            from pg_replication_slots where slot_name = \(slot)
            """, logger: logger)
        var upto: String?
        var behind: Int64 = 0
        var leftOver: Int64 = 0
        for try await (lsn, lagBytes, rest) in position.decode((String?, Int64?, Int64?).self) {
            upto = lsn
            behind = lagBytes ?? 0
            leftOver = rest ?? 0
        }
        guard let upto else { throw DatabaseError("the changes slot \(slot) is gone") }
        lag(behind)
        guard behind > 0 else { return false }
        if !tables.isEmpty {
            let filter = tables.map(\.wal2jsonName).joined(separator: ",")
            let rows = try await connection.query(
                """
                select data from pg_logical_slot_peek_changes(\(slot), \(upto)::pg_lsn, null,
                    'format-version', '2', 'include-timestamp', '1', 'include-type-oids', '1', 'include-pk', '1',
                    'include-transaction', '0', 'add-tables', \(filter))
                """, logger: logger)
            var changes: [DecodedChange] = []
            for try await data in rows.decode(String.self) {
                if let change = Self.decode(data, types: types) { changes.append(change) }
            }
            if !changes.isEmpty { await deliver(changes) }
        }
        // Delivered up to here: even if the advance below is lost (the connection drops, the
        // database crashes before its next checkpoint), the next session moves the slot here
        // before reading.
        if let position = LSN(upto) { delivered.position = position }
        try await connection.run("select pg_replication_slot_advance(\(slot), \(upto)::pg_lsn)", logger: logger)
        return leftOver > 0
    }

    /// Each published table's columns, in order, by `schema.table`.
    static func publishedColumns(on connection: PostgresConnection, logger: Logger) async throws -> [String: [String]] {
        let rows = try await connection.query(
            """
            select p.schemaname || '.' || p.tablename, a.attname::text
            from pg_publication_tables p
            join pg_attribute a on a.attrelid = format('%I.%I', p.schemaname, p.tablename)::regclass
            where p.pubname = \(publication) and a.attnum > 0 and not a.attisdropped
            order by 1, a.attnum
            """, logger: logger)
        var columns: [String: [String]] = [:]
        for try await (table, column) in rows.decode((String, String).self) { columns[table, default: []].append(column) }
        return columns
    }

    struct PublishedTable: Sendable {
        let schema: String
        let name: String
        var qualified: String { "\(schema).\(name)" }
        /// wal2json's `add-tables` form: `.` and `,` inside a name escaped with `\`.
        var wal2jsonName: String { "\(Self.escaped(schema)).\(Self.escaped(name))" }

        static func escaped(_ part: String) -> String {
            var out = ""
            for character in part {
                if character == "." || character == "," || character == "\\" || character == " " { out.append("\\") }
                out.append(character)
            }
            return out
        }
    }

    private func publishedTables(on connection: PostgresConnection) async throws -> [PublishedTable] {
        let rows = try await connection.query(
            "select schemaname::text, tablename::text from pg_publication_tables where pubname = \(Self.publication)", logger: logger)
        var tables: [PublishedTable] = []
        for try await (schema, name) in rows.decode((String, String).self) { tables.append(PublishedTable(schema: schema, name: name)) }
        return tables
    }

    /// Puts the wake-up trigger on `table`; without it (no privilege) its changes still arrive
    /// within the next second's read.
    private func installWakeup(_ table: PublishedTable, on connection: PostgresConnection) async {
        let quoted = "\"\(table.schema.replacingOccurrences(of: "\"", with: "\"\""))\".\"\(table.name.replacingOccurrences(of: "\"", with: "\"\""))\""
        do {
            // Already there (the usual case after a reconnect): no DDL, so no lock on the table.
            let existing = try await connection.query(
                """
                select count(*)::int8 from pg_trigger
                where tgrelid = to_regclass(\(quoted)) and tgname = 'switchboard_changes_wakeup'
                """, logger: logger)
            for try await count in existing.decode(Int64.self) where count > 0 { return }
            try await connection.run(
                PostgresQuery(
                    unsafeSQL: """
                        create or replace trigger switchboard_changes_wakeup
                        after insert or update or delete or truncate on \(quoted)
                        for each statement execute function switchboard.changes_wakeup()
                        """), logger: logger)
        } catch {
            logger.warning(
                "cannot put the wake-up trigger on a published table; its changes arrive within a second instead of at once",
                metadata: ["table": "\(table.qualified)", "error": "\(DatabaseError.describe(error))"])
        }
    }

    // MARK: Decoding

    /// A wal2json (format 2) change as a `DecodedChange`; nil for anything else.
    static func decode(_ data: String, types: [Int64: String]) -> DecodedChange? {
        guard let change = try? JSON.parse(data.utf8), let schema = change["schema"]?.stringValue,
            let table = change["table"]?.stringValue
        else { return nil }
        let kind: DecodedChange.Kind
        switch change["action"]?.stringValue {
        case "I": kind = .insert
        case "U": kind = .update
        case "D": kind = .delete
        default: return nil
        }
        let (columns, record) = row(change["columns"], types: types)
        let (identityColumns, identity) = row(change["identity"], types: types)
        let keyNames = (change["pk"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        var old: Value.Object?
        var oldIsWhole = false
        switch kind {
        case .insert:
            break
        case .update, .delete:
            if let identity, !identity.isEmpty {
                // A full replica identity logs every column; the default logs the key only.
                oldIsWhole = identityColumns.count > keyNames.count
                // An UPDATE that changed the key, without the whole old row: the old key is not
                // sent (the rule cannot judge a bare key, and it may be another owner's).
                let keyChanged = kind == .update && !oldIsWhole && identity.members.contains { record?[$0.key] != $0.value }
                old = keyChanged ? nil : identity
            } else if let record {
                // The key did not change: the old key is the new row's.
                old = Value.Object(keyNames.map { ($0, record[$0] ?? .null) })
            }
        }
        let shown = kind == .delete ? identityColumns : columns
        return DecodedChange(
            schema: schema, table: table, kind: kind, commitTimestamp: supabaseTimestamp(change["timestamp"]?.stringValue ?? ""),
            columns: shown, record: kind == .delete ? nil : record ?? Value.Object(), oldRecord: old, oldIsWhole: oldIsWhole)
    }

    /// wal2json's column list as columns and a record; json and jsonb values (text in
    /// wal2json) become JSON.
    private static func row(_ list: Value?, types: [Int64: String]) -> ([DecodedChange.Column], Value.Object?) {
        guard let list = list?.arrayValue else { return ([], nil) }
        var columns: [DecodedChange.Column] = []
        var record = Value.Object()
        for column in list {
            guard let name = column["name"]?.stringValue else { continue }
            let oid = column["typeoid"]?.int64Value ?? 0
            let type = types[oid] ?? column["type"]?.stringValue ?? "unknown"
            columns.append(DecodedChange.Column(name: name, type: type))
            var value = column["value"] ?? .null
            if type == "json" || type == "jsonb", let text = value.stringValue, let parsed = try? JSON.parse(text.utf8) { value = parsed }
            record[name] = value
        }
        return (columns, record)
    }

    /// `2026-12-06 03:06:33.13111+00` (the session is in UTC) → `2026-12-06T03:06:33.131Z`.
    static func supabaseTimestamp(_ text: String) -> String {
        guard text.count >= 19 else { return text }
        let date = text.prefix(10)
        let time = text.dropFirst(11).prefix(8)
        var fraction = ""
        let rest = text.dropFirst(19)
        if rest.hasPrefix(".") {
            let digits = rest.dropFirst().prefix { $0.isNumber }
            fraction = String(digits.prefix(3))
            while fraction.count < 3 { fraction += "0" }
        } else {
            fraction = "000"
        }
        return "\(date)T\(time).\(fraction)Z"
    }
}

/// The tables of the `supabase_realtime` publication and their columns, as the changes reader
/// last read them (at start, and whenever the publication's tables change): what a join's
/// `postgres_changes` bindings are checked against. nil until first read.
public final class PublishedCatalog: Sendable {
    private let state = Mutex<(tables: [String: [String]]?, readAt: ContinuousClock.Instant)>((nil, .now))

    public init() {}

    /// Columns by `schema.table`.
    public var current: [String: [String]]? { state.withLock { $0.tables } }

    /// How long ago it was read.
    var age: Duration { ContinuousClock.now - state.withLock { $0.readAt } }

    func set(_ new: [String: [String]]) { state.withLock { $0 = (new, .now) } }
}

/// The WAL position up to which a `ChangeReader` has delivered, kept across its connections.
final class DeliveredPosition: Sendable {
    private let value = Mutex<LSN?>(nil)

    var position: LSN? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
