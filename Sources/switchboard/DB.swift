import ArgumentParser
import Foundation
import Logging
import SwitchboardPostgres

/// `switchboard db`: the database's schema.
struct DB: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Migrate or inspect the PostgreSQL database (optional: without one Switchboard runs in memory).",
        subcommands: [Migrate.self, Status.self]
    )

    /// Where the database is; shared by the db commands.
    struct Connection: ParsableArguments {
        @Option(help: "postgres://user:password@host:5432/database[?sslmode=disable|prefer|require|verify-full] (SWITCHBOARD_DATABASE_URL).")
        var databaseURL: String?
        @Option(help: "The node whose Postgres Changes slot to create or report (each server of a cluster has its own; default: this machine's host name, as serve).")
        var nodeName: String?

        func node() throws -> String {
            do {
                return try ClusterLink.validNodeName(nodeName ?? ClusterLink.defaultNodeName())
            } catch {
                throw ValidationError(error.message)
            }
        }

        func settings() throws -> DatabaseSettings {
            guard let url = databaseURL ?? Environment.string("SWITCHBOARD_DATABASE_URL") else {
                throw ValidationError("give --database-url or set SWITCHBOARD_DATABASE_URL")
            }
            do {
                return try DatabaseSettings(url: url)
            } catch {
                throw ValidationError(error.message)
            }
        }
    }

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply the pending migrations (each once, in a transaction; safe to run again), create the message and changes slots, the supabase_realtime publication (when missing) and partitions.",
            discussion: """
                Needs wal_level = logical and the wal2json plugin (Debian: postgresql-15-wal2json) for the slot; the SQL API is
                installed even without them, and the command says what is missing. `serve` also migrates at start unless
                --no-migrate.
                """
        )

        @OptionGroup var connection: Connection
        @Option(help: "Seconds to keep retrying while the database is unreachable (default 10).") var timeout: Int = 10

        func run() async throws {
            let settings = try connection.settings()
            let node = try connection.node()
            let logger = LogSetup.bootstrap(level: .info, format: .text)
            do {
                let (applied, slot) = try await Database.withConnection(settings, retryingFor: .seconds(timeout), logger: logger) {
                    connection in
                    let applied = try await Migrator(connection: connection, logger: logger).migrate()
                    let slot = try await Database.prepareSlot(on: connection, logger: logger)
                    let changes = try await Database.prepareChangesSlot(on: connection, node: node, logger: logger)
                    return (applied.map { "\($0.version) (\($0.name))" }, (slot, changes))
                }
                print(applied.isEmpty ? "\(settings): up to date" : "\(settings): applied \(applied.joined(separator: ", "))")
                print("message slot: \(slot.0)")
                print("changes slot: \(slot.1) (tables join Postgres Changes with: alter publication supabase_realtime add table …)")
            } catch {
                FileHandle.standardError.write(Data("switchboard db migrate: \(DatabaseError.describe(error))\n".utf8))
                throw ExitCode(1)
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the schema version, pending migrations, the WAL level, the message and changes slots and their retained WAL, partitions, and the tables in the supabase_realtime publication.",
            discussion: "Exits 1 when migrations are pending or the database cannot deliver messages or changes (no logical WAL, a slot missing)."
        )

        @OptionGroup var connection: Connection

        func run() async throws {
            let settings = try connection.settings()
            let node = try connection.node()
            let logger = Logger(label: "switchboard") { _ in SwiftLogNoOpLogHandler() }
            let status: DatabaseStatus
            do {
                status = try await Database.withConnection(settings, logger: logger) { connection in
                    try await Migrator(connection: connection, logger: logger).status(
                        slotName: try await Database.slotName(on: connection, logger: logger), node: node)
                }
            } catch {
                FileHandle.standardError.write(Data("switchboard db status: \(DatabaseError.describe(error))\n".utf8))
                throw ExitCode(1)
            }
            print("database:   \(settings) (PostgreSQL \(status.serverVersion))")
            let latest = status.applied.last.map { "\($0.version) (\($0.name), applied \($0.appliedAt))" } ?? "none"
            print("schema:     \(latest)")
            print("pending:    \(status.pending.isEmpty ? "none" : status.pending.map { "\($0.version) (\($0.name))" }.joined(separator: ", "))")
            print("wal_level:  \(status.walLevel)\(status.walLevel == "logical" ? "" : " (needs logical: messages cannot be read)")")
            if let slot = status.slot {
                print("slot:       \(status.slotName) (\(slot.plugin), \(slot.active ? "in use" : "idle"), retains \(slot.retainedBytes) bytes of WAL)")
            } else {
                print("slot:       \(status.slotName) missing (run switchboard db migrate)")
            }
            print("partitions: \(status.partitions.isEmpty ? "none" : status.partitions.joined(separator: ", "))")
            if let slot = status.changesSlot {
                print("changes:    \(status.changesSlotName) of node \(node) (\(slot.plugin), \(slot.active ? "in use" : "idle"), retains \(slot.retainedBytes) bytes of WAL)")
            } else {
                print("changes:    \(status.changesSlotName) of node \(node) missing (run switchboard db migrate, or start the server)")
            }
            if let tables = status.publishedTables {
                print("published:  \(tables.isEmpty ? "no table yet (alter publication supabase_realtime add table …)" : tables.joined(separator: ", "))")
            } else {
                print("published:  no supabase_realtime publication (run switchboard db migrate)")
            }
            let nodes = (try? await Database.withConnection(settings, logger: logger) { connection in
                try await ClusterLink.nodes(on: connection, logger: logger)
            }) ?? []
            let listed = nodes.map { node in
                "\(node.name) (\(node.isGone ? "gone, silent \(Int(node.silenceSeconds)) s" : "alive"), \(node.connections) connections, rules \(node.rulesDigest))"
            }
            print("nodes:      \(listed.isEmpty ? "none has run yet" : listed.joined(separator: "; "))")
            if !status.pending.isEmpty || status.slot == nil || status.changesSlot == nil || status.walLevel != "logical" { throw ExitCode(1) }
        }
    }
}
