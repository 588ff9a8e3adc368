import Logging
import PostgresNIO
import SwitchboardCore
import SwitchboardWire

/// Runs the queries of relations the rules declare from the database (`relation "name" { sql
/// = … }`): each row is a pair, the first column the key and the second the member, as text
/// (numbers as their decimal text, so `42` and `'42'` are the same id; rows with a null are
/// skipped).
public enum RelationQuery {
    /// How long one relation's query may run.
    public static let timeout = "10s"

    /// The channel watched tables notify (migrations 4 and 5).
    public static let changes = "switchboard_relations"

    /// One relation to read.
    public struct Spec: Sendable {
        public let name: String
        public let sql: String
        /// The tables whose changes it follows (`schema.table` or `table`).
        public let watch: [String]
        /// For watched tables that name one: the column holding the relation's key.
        public let keyColumns: [String: String]
        /// More rows than this is an error.
        public let maxRows: Int
        /// Read only the rows of these keys (after a change that named them); nil: every row.
        public var onlyKeys: Set<String>?

        public init(
            name: String, sql: String, watch: [String] = [], keyColumns: [String: String] = [:], maxRows: Int,
            onlyKeys: Set<String>? = nil
        ) {
            self.name = name
            self.sql = sql
            self.watch = watch
            self.keyColumns = keyColumns
            self.maxRows = maxRows
            self.onlyKeys = onlyKeys
        }
    }

    /// What a read does besides reading the pairs.
    public enum Purpose: Sendable {
        /// A rules load: check the columns and put the change triggers on the watched tables.
        case load
        /// A refresh after a change: only the pairs.
        case refresh
        /// `rules check`: check the columns and that the watched tables (and key columns)
        /// exist; change nothing.
        case check
    }

    /// The pairs of each relation, or why its query failed (or its watched tables could not be
    /// given their triggers); all on one connection. Throws when the database cannot be reached.
    public static func fetch(
        _ relations: [Spec], settings: DatabaseSettings, purpose: Purpose, logger: Logger
    ) async throws -> [String: Result<[(a: String, b: String)], DatabaseError>] {
        // A table has one key column (the rules check that): a relation watching it without
        // naming one still gets the keyed triggers another relation asked for.
        var keyColumnOf: [String: String] = [:]
        for relation in relations {
            for (table, column) in relation.keyColumns { keyColumnOf[qualified(table)] = column }
        }
        return try await Database.withConnection(settings, logger: logger) { [keyColumnOf] connection in
            try await connection.run("set statement_timeout = '\(unescaped: timeout)'", logger: logger)
            // The triggers' DDL gives up rather than queue the table's writers behind it.
            try await connection.run("set lock_timeout = '2s'", logger: logger)
            var results: [String: Result<[(a: String, b: String)], DatabaseError>] = [:]
            for relation in relations {
                do {
                    let sql = statement(relation.sql)
                    switch purpose {
                    case .refresh: break
                    case .load:
                        try await checkColumns(sql, on: connection, logger: logger)
                        for table in relation.watch {
                            try await watch(table, keyColumn: keyColumnOf[qualified(table)], on: connection, logger: logger)
                        }
                    case .check:
                        try await checkColumns(sql, on: connection, logger: logger)
                        for table in relation.watch {
                            try await checkExists(table, keyColumn: keyColumnOf[qualified(table)], on: connection, logger: logger)
                        }
                    }
                    results[relation.name] = .success(
                        try await pairs(sql, maxRows: relation.maxRows, onlyKeys: relation.onlyKeys, on: connection, logger: logger))
                } catch let error as DatabaseError {
                    results[relation.name] = .failure(error)
                } catch {
                    if connection.isClosed { throw error }
                    results[relation.name] = .failure(DatabaseError(DatabaseError.describe(error)))
                }
            }
            return results
        }
    }

    /// Connects and LISTENs for the changes of watched tables: calls `connected` once
    /// listening, then `changed` with each changed table's `schema.table` and the keys the
    /// change touched (nil: unknown, so every key). Ends, always by throwing, when the
    /// connection does (or the task is cancelled).
    public static func listenForChanges(
        settings: DatabaseSettings, logger: Logger, connected: @escaping @Sendable () -> Void,
        changed: @escaping @Sendable (_ table: String, _ keys: [String]?) -> Void
    ) async throws {
        let connection = try await Database.connect(settings, logger: logger)
        do {
            try await connection.guarded { connection in
                try await connection.listen(on: changes) { notifications in
                    connected()
                    for try await notification in notifications {
                        let (table, keys) = change(notification.payload)
                        changed(table, keys)
                    }
                }
            }
            throw DatabaseError("the database closed the connection")
        } catch {
            // Closed before it is released (postgres-nio asserts that).
            try? await connection.close()
            throw error
        }
    }

    /// A notification's table and keys: `{"table": "app.t", "keys": ["s1"]}` (migration 5), or
    /// the table's name alone (migration 4, or keys too many to send).
    static func change(_ payload: String) -> (table: String, keys: [String]?) {
        guard payload.hasPrefix("{"), let object = try? JSON.parse(Array(payload.utf8)), let table = object["table"]?.stringValue
        else { return (payload, nil) }
        return (table, object["keys"]?.arrayValue?.compactMap(\.stringValue))
    }

    /// `supplier_team` → `public.supplier_team`, as the triggers name a table.
    public static func qualified(_ table: String) -> String {
        table.contains(".") ? table : "public.\(table)"
    }

    /// Puts the change triggers on `table` (`schema.table` or `table`; names already checked by
    /// the rules: letters, digits and `_`). With a key column, one trigger per event reports the
    /// keys changed (migration 5), and TRUNCATE the table alone; without, one statement-level
    /// trigger reports the table (migration 4).
    static func watch(_ table: String, keyColumn: String?, on connection: PostgresConnection, logger: Logger) async throws {
        let quoted = table.split(separator: ".").map { "\"\($0)\"" }.joined(separator: ".")
        var statements: [String] = []
        if let keyColumn {
            try await checkExists(table, keyColumn: keyColumn, on: connection, logger: logger)
            let function = "switchboard.relation_keys_changed('\(keyColumn)')"
            statements = [
                """
                create or replace trigger switchboard_relation_inserted after insert on \(quoted)
                referencing new table as switchboard_new for each statement execute function \(function)
                """,
                """
                create or replace trigger switchboard_relation_deleted after delete on \(quoted)
                referencing old table as switchboard_old for each statement execute function \(function)
                """,
                """
                create or replace trigger switchboard_relation_updated after update on \(quoted)
                referencing old table as switchboard_old new table as switchboard_new for each statement execute function \(function)
                """,
                """
                create or replace trigger switchboard_relation_changed after truncate on \(quoted)
                for each statement execute function switchboard.relation_changed()
                """,
            ]
        } else {
            statements = [
                "drop trigger if exists switchboard_relation_inserted on \(quoted)",
                "drop trigger if exists switchboard_relation_deleted on \(quoted)",
                "drop trigger if exists switchboard_relation_updated on \(quoted)",
                """
                create or replace trigger switchboard_relation_changed
                after insert or update or delete or truncate on \(quoted)
                for each statement execute function switchboard.relation_changed()
                """,
            ]
        }
        do {
            for statement in statements { try await connection.run(PostgresQuery(unsafeSQL: statement), logger: logger) }
        } catch {
            throw DatabaseError("cannot watch \(table) for changes: \(DatabaseError.describe(error))")
        }
    }

    /// Throws unless `table` names a table or view (with a column `keyColumn`, when given).
    static func checkExists(_ table: String, keyColumn: String?, on connection: PostgresConnection, logger: Logger) async throws {
        let rows = try await connection.query(
            """
            select to_regclass(\(table))::text,
                   exists (select 1 from pg_attribute where attrelid = to_regclass(\(table)) and attname = \(keyColumn ?? "")
                           and attnum > 0 and not attisdropped)
            """, logger: logger)
        for try await (found, hasColumn) in rows.decode((String?, Bool).self) {
            guard found != nil else { break }
            if let keyColumn, !hasColumn {
                throw DatabaseError("cannot watch \(table) for changes: it has no column \(keyColumn) (the key column named in watch)")
            }
            return
        }
        throw DatabaseError("cannot watch \(table) for changes: there is no such table")
    }

    /// `sql` without the whitespace and semicolons that may end it (the query is wrapped in a
    /// subquery, where a `;` would be a syntax error).
    static func statement(_ sql: String) -> String {
        var text = Substring(sql)
        while let last = text.last, last == ";" || last.isWhitespace { text = text.dropLast() }
        return String(text)
    }

    /// Checks, without running it, that the query returns exactly two columns (its plan's
    /// output list, so that a query with no rows yet is checked too, whatever its column names).
    static func checkColumns(_ sql: String, on connection: PostgresConnection, logger: Logger) async throws {
        let rows = try await connection.query(
            PostgresQuery(unsafeSQL: "explain (verbose, format json) select * from (\(sql)) as q"), logger: logger)
        var plan = ""
        for try await line in rows.decode(String.self) { plan += line }
        guard let output = try? JSON.parse(Array(plan.utf8)).arrayValue?.first?["Plan"]?["Output"]?.arrayValue else { return }
        guard output.count == 2 else { throw columnCount(output.compactMap(\.stringValue)) }
    }

    static func columnCount(_ columns: [String]) -> DatabaseError {
        DatabaseError(
            "the query returns \(columns.count) column(s) (\(columns.joined(separator: ", "))); it must return two: the key, then the member")
    }

    /// One query's rows as pairs (with `onlyKeys`, the rows whose key is one of them). Each row
    /// travels as JSON (`row_to_json` keeps the columns in order and turns any column type into
    /// JSON) so that every type reads the same way. More than `maxRows` rows is an error (the
    /// query asks for one more, to know).
    static func pairs(
        _ sql: String, maxRows: Int, onlyKeys: Set<String>? = nil, on connection: PostgresConnection, logger: Logger
    ) async throws -> [(a: String, b: String)] {
        var bindings = PostgresBindings()
        var filter = ""
        if let onlyKeys {
            // The columns renamed by position, so that the key can be named whatever it is called.
            filter = " where q.k::text = any($1)"
            bindings.append(Array(onlyKeys))
        }
        let wrapped = "select row_to_json(q)::text from (\(sql)) as q\(onlyKeys == nil ? "" : "(k, m)")\(filter) limit \(maxRows + 1)"
        var pairs: [(a: String, b: String)] = []
        // Many rows share a key: keep one copy of each (fewer, longer-lived allocations).
        var keys: Set<String> = []
        var read = 0
        let rows = try await connection.query(PostgresQuery(unsafeSQL: wrapped, binds: bindings), logger: logger)
        for try await text in rows.decode(String.self) {
            read += 1
            if read > maxRows {
                throw DatabaseError("the query returns more than \(maxRows) rows (its max_rows); narrow it, or raise max_rows if the memory is there")
            }
            let row = try JSON.parse(Array(text.utf8))
            guard let columns = row.objectValue?.members else { throw DatabaseError("a row is not a record") }
            guard columns.count == 2 else { throw columnCount(columns.map(\.key)) }
            guard let a = id(columns[0].value), let b = id(columns[1].value) else {
                if columns[0].value == .null || columns[1].value == .null { continue }
                throw DatabaseError("column \(columns[0].value == .null ? columns[1].key : columns[0].key) must be text or a number")
            }
            pairs.append((keys.insert(a).memberAfterInsert, b))
        }
        return pairs
    }

    private static func id(_ value: Value) -> String? {
        switch value {
        case .string(let text): text
        case .number(let text): text
        default: nil
        }
    }
}
