import Logging
import PostgresNIO

/// One versioned change to the database schema: a `Migrations/mNNNN_name.sql` file of the
/// package, embedded in the binary. Every migration is idempotent on its own, and applied
/// ones are recorded in `switchboard.schema_migrations`, so `db migrate` can run any time.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String

    /// Every migration, oldest first. A new one is a new file plus a line here.
    public static let all: [Migration] = [
        Migration(version: 1, name: "realtime", sql: String(decoding: PackageResources.m0001_realtime_sql, as: UTF8.self)),
        Migration(version: 2, name: "history", sql: String(decoding: PackageResources.m0002_history_sql, as: UTF8.self)),
        Migration(version: 3, name: "notify", sql: String(decoding: PackageResources.m0003_notify_sql, as: UTF8.self)),
        Migration(version: 4, name: "relations", sql: String(decoding: PackageResources.m0004_relations_sql, as: UTF8.self)),
        Migration(
            version: 5, name: "relation_keys", sql: String(decoding: PackageResources.m0005_relation_keys_sql, as: UTF8.self)),
        Migration(version: 6, name: "changes", sql: String(decoding: PackageResources.m0006_changes_sql, as: UTF8.self)),
        Migration(version: 7, name: "cluster", sql: String(decoding: PackageResources.m0007_cluster_sql, as: UTF8.self)),
    ]
}

/// What `switchboard db status` reports.
public struct DatabaseStatus: Sendable {
    public struct Applied: Sendable {
        public let version: Int
        public let name: String
        public let appliedAt: String
    }

    public let serverVersion: String
    public let walLevel: String
    public let applied: [Applied]
    public let pending: [Migration]
    /// The logical replication slot the server reads `realtime.messages` from.
    public let slot: SlotStatus?
    public let slotName: String
    /// `realtime.messages`' daily partitions, oldest first.
    public let partitions: [String]
    /// The slot Postgres Changes are read from.
    public let changesSlot: SlotStatus?
    public let changesSlotName: String
    /// The tables in the `supabase_realtime` publication (`schema.table`); nil without one.
    public let publishedTables: [String]?

    public struct SlotStatus: Sendable {
        public let plugin: String
        public let active: Bool
        /// WAL the slot holds back from being recycled, in bytes.
        public let retainedBytes: Int64
    }
}

/// Applies and reports migrations over one connection.
public struct Migrator: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    public init(connection: PostgresConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    /// A number every Switchboard takes as a transaction-scoped advisory lock while migrating,
    /// so that two nodes starting at once apply each migration once.
    static let advisoryLock: Int64 = 0x5357_4244_4D49_4752  // "SWBDMIGR"

    /// Applies the pending migrations, each in a transaction of its own, and returns them.
    @discardableResult
    public func migrate(_ migrations: [Migration] = Migration.all) async throws(DatabaseError) -> [Migration] {
        do {
            // Under the lock too: `create … if not exists` run at once by two nodes can both
            // try to create (a duplicate key in pg_type).
            try await connection.withTransaction(logger: logger) { connection in
                try await connection.run("select pg_advisory_xact_lock(\(Self.advisoryLock))", logger: logger)
                try await connection.run("create schema if not exists switchboard", logger: logger)
                try await connection.run(
                    """
                    create table if not exists switchboard.schema_migrations (
                        version integer primary key,
                        name text not null,
                        applied_at timestamptz not null default now())
                    """, logger: logger)
            }
            var done: [Migration] = []
            for migration in migrations {
                let applied = try await connection.withTransaction(logger: logger) { connection in
                    try await connection.run("select pg_advisory_xact_lock(\(Self.advisoryLock))", logger: logger)
                    let rows = try await connection.query(
                        "select 1 from switchboard.schema_migrations where version = \(migration.version)", logger: logger)
                    for try await _ in rows { return false }
                    for statement in SQLScript.statements(migration.sql) {
                        try await connection.run(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.run(
                        "insert into switchboard.schema_migrations (version, name) values (\(migration.version), \(migration.name))",
                        logger: logger)
                    return true
                }
                if applied {
                    logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                    done.append(migration)
                }
            }
            return done
        } catch {
            throw DatabaseError("migrating the database failed: \(DatabaseError.describe(error))")
        }
    }

    /// The schema version, what is pending, the WAL level and the message slot.
    public func status(slotName: String, node: String, _ migrations: [Migration] = Migration.all) async throws(DatabaseError) -> DatabaseStatus {
        do {
            let version = try await single("show server_version")
            let walLevel = try await single("show wal_level")
            var applied: [DatabaseStatus.Applied] = []
            let exists = try await single("select (to_regclass('switchboard.schema_migrations') is not null)::text")
            if exists == "true" {
                let rows = try await connection.query(
                    "select version, name, applied_at::text from switchboard.schema_migrations order by version", logger: logger)
                for try await (version, name, at) in rows.decode((Int, String, String).self) {
                    applied.append(.init(version: version, name: name, appliedAt: at))
                }
            }
            let done = Set(applied.map(\.version))
            let slot = try await slotStatus(slotName)
            let changesSlotName = try await ChangeReader.slotName(on: connection, node: node, logger: logger)
            let changesSlot = try await slotStatus(changesSlotName)
            var published: [String]?
            if try await single("select exists (select 1 from pg_publication where pubname = 'supabase_realtime')::text") == "true" {
                var tables: [String] = []
                let rows = try await connection.query(
                    "select schemaname || '.' || tablename from pg_publication_tables where pubname = 'supabase_realtime' order by 1",
                    logger: logger)
                for try await table in rows.decode(String.self) { tables.append(table) }
                published = tables
            }
            var partitions: [String] = []
            let parts = try await connection.query(
                """
                select c.relname::text from pg_inherits i
                join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
                join pg_namespace n on n.oid = p.relnamespace
                where n.nspname = 'realtime' and p.relname = 'messages' order by 1
                """, logger: logger)
            for try await name in parts.decode(String.self) { partitions.append(name) }
            return DatabaseStatus(
                serverVersion: version, walLevel: walLevel, applied: applied, pending: migrations.filter { !done.contains($0.version) },
                slot: slot, slotName: slotName, partitions: partitions, changesSlot: changesSlot, changesSlotName: changesSlotName,
                publishedTables: published)
        } catch {
            throw DatabaseError("reading the database's status failed: \(DatabaseError.describe(error))")
        }
    }

    private func slotStatus(_ name: String) async throws -> DatabaseStatus.SlotStatus? {
        let slots = try await connection.query(
            """
            select plugin::text, active, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::int8
            from pg_replication_slots where slot_name = \(name)
            """, logger: logger)
        for try await (plugin, active, retained) in slots.decode((String, Bool, Int64).self) {
            return .init(plugin: plugin, active: active, retainedBytes: retained)
        }
        return nil
    }

    private func single(_ sql: String) async throws -> String {
        let rows = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        for try await value in rows.decode(String.self) { return value }
        return ""
    }
}
