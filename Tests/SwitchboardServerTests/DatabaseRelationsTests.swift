import Foundation
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardServer
import Testing

/// Relations the rules declare from the database (`relation "name" { sql = … }`), with a real
/// PostgreSQL: read at start and on every reload, before the new rules are in force.
@Suite struct DatabaseRelationsTests {
    static func rules(sql: String, watch: String? = nil) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-relation-rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try write(sql: sql, watch: watch, in: url)
        return url
    }

    static func write(sql: String, watch: String? = nil, extra: String = "", in url: URL) throws {
        try """
            channel "team:{id}" { kind = "shared",
              join = function(user, ch) return member("supplier_team", ch.id, user.sub), "not on team " .. ch.id end }

            relation "supplier_team" {
              sql = [[\(sql)]],\(watch.map { " watch = { \"\($0)\" }," } ?? "")\(extra)
            }
            allow_undeclared_events(true)
            """.write(to: url.appendingPathComponent("rules.lua"), atomically: true, encoding: .utf8)
    }

    static func joins(_ server: TestServer, _ subject: String, _ channel: String) async throws -> Bool {
        let socket = try await PhoenixSocket.connect(server, token: try await server.token(sub: subject))
        let joined = try await socket.join(channel, ref: "1").status == "ok"
        await socket.client.close()
        return joined
    }

    static let schema = "create schema app"
    static let table = "create table app.supplier_team (supplier_id text, user_id int)"
    static let query = "select supplier_id, user_id from app.supplier_team"

    /// A database of `postgres` whose app.supplier_team holds `rows` (an SQL values list).
    static func teamDatabase(_ postgres: TestPostgres, rows: String) async throws -> DatabaseSettings {
        let database = try await postgres.makeDatabase()
        try await postgres.execute(database, schema, table, "insert into app.supplier_team values \(rows)")
        return database
    }

    /// Runs `body` with a server on `database` whose rules read supplier_team with `sql`
    /// (watching `watch`); the rules directory is removed after.
    static func withTeamServer(
        _ database: DatabaseSettings, sql: String = query, watch: String? = nil, watchRules: Bool = false,
        _ body: (TestServer, URL) async throws -> Void
    ) async throws {
        let rules = try rules(sql: sql, watch: watch)
        defer { try? FileManager.default.removeItem(at: rules) }
        try await withServer({
            $0.database = database
            $0.rulesDirectory = rules.path
            $0.watchRules = watchRules
        }) { server in try await body(server, rules) }
    }

    /// Waits until `/health` reports the relations `state` ("watching" or "stale").
    static func waitForRelations(_ server: TestServer, _ state: String) async throws {
        try await ClientTests.eventually("health says the relations are \(state)", timeout: .seconds(60)) {
            (try? await HTTPTests.request(server, "GET", "/health").body)?.contains(#""relations":"\#(state)""#) == true
        }
    }

    @Test func aDeclaredRelationIsReadAtStartAndOnEveryReload() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await Self.teamDatabase(postgres, rows: "('s1', 7), (null, 9)")
        try await Self.withTeamServer(database, watchRules: true) { server, rules in
            // An integer column is read as its decimal text, like member()'s ids.
            #expect(try await Self.joins(server, "7", "team:s1"))
            #expect(try await !Self.joins(server, "8", "team:s1"))
            var status = try await HotReloadTests.adminStatus(server)
            let relation = status["relations"]?["supplier_team"]
            #expect(relation?["rows"] == 1, "a row with a null is skipped: \(status)")
            #expect(relation?["source"] == "database", "\(status)")
            #expect(relation?["declared_at"]?.stringValue?.hasSuffix("rules.lua:4") == true, "\(status)")
            #expect(relation?["refreshed_at"]?.stringValue?.isEmpty == false, "\(status)")
            let metrics = try await HTTPTests.request(server, "GET", "/metrics").body
            #expect(metrics.contains(#"switchboard_relation_rows{relation="supplier_team",source="database"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"switchboard_relation_refreshed_timestamp_seconds{relation="supplier_team"}"#), "\(metrics)")

            // A reload reads the table again.
            try await postgres.execute(database, "insert into app.supplier_team values ('s1', 8)")
            try Self.write(sql: Self.query + " where true", in: rules)
            try await HotReloadTests.waitForStatus(server, timeout: .seconds(60)) { $0["generation"] == 2 }
            #expect(try await Self.joins(server, "8", "team:s1"))

            // A query that fails is a reload error at its declaration; the rules and rows in
            // force keep serving.
            try Self.write(sql: "select supplier_id, user_id, 1 from app.supplier_team", in: rules)
            status = try await HotReloadTests.waitForStatus(server, timeout: .seconds(60)) { $0["last_error"] != .null }
            let error = try #require(status["last_error"]?.arrayValue?.first)
            #expect(error["code"] == "relation_query")
            #expect(error["location"]?.stringValue?.hasSuffix("rules.lua:4") == true, "\(error)")
            #expect(error["message"]?.stringValue?.contains("returns 3 column(s)") == true, "\(error)")
            #expect(status["generation"] == 2)
            #expect(try await Self.joins(server, "8", "team:s1"))

            // More rows than max_rows is a reload error: a bound on the memory a wrong query takes.
            try Self.write(sql: Self.query, extra: " max_rows = 1,", in: rules)
            status = try await HotReloadTests.waitForStatus(server, timeout: .seconds(60)) {
                $0["last_error"]?.arrayValue?.first?["message"]?.stringValue?.contains("returns more than 1 rows (its max_rows)") == true
            }
            #expect(status["generation"] == 2)

            // The columns are checked even when the query returns no rows.
            try Self.write(sql: "select supplier_id, user_id, 1 from app.supplier_team where false", in: rules)
            status = try await HotReloadTests.waitForStatus(server, timeout: .seconds(60)) {
                $0["last_error"]?.arrayValue?.first?["message"]?.stringValue?.contains("returns 3 column(s)") == true
            }
            #expect(status["generation"] == 2)
        }
    }

    /// The database going away: the rows read last keep serving (`/health` and the metrics say
    /// the relations are stale), a rules reload during the outage keeps them too, and once the
    /// database is back the relations are watched again and a deleted row revokes.
    @Test func anOutageKeepsTheRowsReadLastAndReportsThemStale() async throws {
        // A cluster of its own: this test stops it.
        let postgres = try await TestPostgres.start()
        let database = try await Self.teamDatabase(postgres, rows: "('s1', 7), ('s1', 9)")
        try await Self.withTeamServer(database, watch: "app.supplier_team", watchRules: true) { server, rules in
            try await Self.waitForRelations(server, "watching")
            try await SlowConsumerTests.waitForMetric(server, "switchboard_relations_watching 1", timeout: .seconds(60))
            try await postgres.stop()
            try await ClientTests.eventually("health says the relations are stale", timeout: .seconds(60)) {
                let health = try? await HTTPTests.request(server, "GET", "/health").body
                return health?.contains(#""relations":"stale""#) == true && health?.contains(#""status":"degraded""#) == true
            }
            try await SlowConsumerTests.waitForMetric(server, "switchboard_relations_watching 0", timeout: .seconds(60))
            #expect(try await Self.joins(server, "7", "team:s1"))

            // A reload while the database is away keeps the rows of an unchanged declaration.
            try "-- touched\n".write(to: rules.appendingPathComponent("more.lua"), atomically: true, encoding: .utf8)
            let status = try await HotReloadTests.waitForStatus(server, timeout: .seconds(60)) { $0["generation"] == 2 }
            #expect(status["relations"]?["supplier_team"]?["rows"] == 2, "\(status)")
            #expect(try await Self.joins(server, "9", "team:s1"))

            try await postgres.restart()
            try await Self.waitForRelations(server, "watching")
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(sub: "7"))
            try #require(try await socket.join("team:s1", ref: "1").status == "ok")
            try await postgres.execute(database, "delete from app.supplier_team where user_id = 7")
            _ = try await socket.event("phx_close", on: "realtime:team:s1", timeout: .seconds(30))
            await socket.client.close()
        }
        try? await postgres.stop()
    }

    /// `rules check --database-url` runs each declared query once and checks its shape and its
    /// watched tables, changing nothing; without the flag it never connects.
    @Test func rulesCheckRunsTheQueriesGivenADatabase() async throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("switchboard").path
        try #require(FileManager.default.isExecutableFile(atPath: binary), "no switchboard binary next to the tests at \(binary)")
        let postgres = try await TestPostgres.shared()
        let database = try await Self.teamDatabase(postgres, rows: "('s1', 7), ('s1', 9)")
        let url = "postgres://postgres@127.0.0.1:\(postgres.port)/\(database.database)?sslmode=disable"
        let rules = try Self.rules(sql: Self.query, watch: "app.supplier_team")
        defer { try? FileManager.default.removeItem(at: rules) }

        var (status, output) = try await runProcess(binary, ["rules", "check", rules.path, "--database-url", url])
        #expect(status == 0, "\(output)")
        #expect(output.contains(#"rules.lua:4: relation "supplier_team": ok — 2 rows, watching app.supplier_team"#), "\(output)")
        // Checking installs no trigger.
        let triggers = try await postgres.value(database, "select count(*)::text from pg_trigger where tgname = 'switchboard_relation_changed'")
        #expect(triggers == "0")

        try Self.write(sql: "select supplier_id, user_id, 1 from app.supplier_team where false", watch: "app.supplier_team", in: rules)
        (status, output) = try await runProcess(binary, ["rules", "check", rules.path, "--database-url", url])
        #expect(status == 1, "\(output)")
        #expect(output.contains(#"rules.lua:4: relation "supplier_team": its query failed: the query returns 3 column(s)"#), "\(output)")

        try """
            channel "team:{id}" { kind = "shared", join = function(user, ch) return member("supplier_team", ch.id, user.sub) end }
            relation "supplier_team" { sql = "select supplier_id, user_id from app.supplier_team", watch = { "app.missing" } }
            """.write(to: rules.appendingPathComponent("rules.lua"), atomically: true, encoding: .utf8)
        (status, output) = try await runProcess(binary, ["rules", "check", rules.path, "--database-url", url])
        #expect(status == 1, "\(output)")
        #expect(output.contains("cannot watch app.missing for changes: there is no such table"), "\(output)")

        try Self.write(sql: Self.query, watch: "app.supplier_team(nope)", in: rules)
        (status, output) = try await runProcess(binary, ["rules", "check", rules.path, "--database-url", url])
        #expect(status == 1, "\(output)")
        #expect(output.contains("cannot watch app.supplier_team for changes: it has no column nope"), "\(output)")
        try Self.write(sql: Self.query, watch: "app.supplier_team(supplier_id)", in: rules)
        (status, output) = try await runProcess(binary, ["rules", "check", rules.path, "--database-url", url])
        #expect(status == 0, "\(output)")
        #expect(output.contains("watching app.supplier_team(supplier_id)"), "\(output)")

        // Without --database-url the declarations are only validated.
        (status, output) = try await runProcess(binary, ["rules", "check", rules.path])
        #expect(status == 0, "\(output)")
    }

    /// End to end with Supabase's Python client on the default rules, with supplier_team read
    /// from the database: a scale-tier team member on `collaboration:s1:c1` is closed out when
    /// their row is deleted, the supplier and couple keep the channel, and the member may join
    /// again once the row is back.
    @Test func supabasePythonClientSeesATeamMembershipRevokedAndRestored() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: PythonInteropTests.python), "no Python with realtime==2.34.1: run ./scripts/test.sh")
        guard FileManager.default.isExecutableFile(atPath: PythonInteropTests.python) else { return }
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        try await postgres.execute(
            database, "create schema app",
            "create table app.supplier_team (supplier_id text, user_id text, primary key (supplier_id, user_id))",
            "insert into app.supplier_team values ('s1', 'team-zoe')")
        // The repository's rules, with the commented supplier_team declaration switched on.
        let rules = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-default-rules-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: PythonInteropTests.repositoryRoot.appendingPathComponent("Rules"), to: rules)
        defer { try? FileManager.default.removeItem(at: rules) }
        try """
            relation "supplier_team" { sql = "select supplier_id, user_id from app.supplier_team", watch = { "app.supplier_team(supplier_id)" } }
            """.write(to: rules.appendingPathComponent("relations.lua"), atomically: true, encoding: .utf8)
        try await withServer({
            $0.database = database
            $0.rulesDirectory = rules.path
        }) { server in
            let supplier = try await server.token(role: "supplier", sub: "u-s1", supplierID: "s1")
            let couple = try await server.token(role: "couple", sub: "u-c1", coupleID: "c1")
            let member = try await server.token(role: "supplier", sub: "team-zoe", tier: "scale")
            let script = PythonInteropTests.repositoryRoot.appendingPathComponent("Tests/Interop/python_relations_check.py").path
            let python = try ChildProcess(PythonInteropTests.python, [script, String(server.port), supplier, couple, member])
            try await python.waitForOutput(containing: "READY")
            try await postgres.execute(database, "delete from app.supplier_team where user_id = 'team-zoe'")
            try await python.waitForOutput(containing: "REVOKED")
            try await postgres.execute(database, "insert into app.supplier_team values ('s1', 'team-zoe')")
            let (status, output) = try await python.exit(within: .seconds(60))
            #expect(status == 0, "the Python client failed:\n\(output)")
            for check in [
                "ok the team member subscribes through its supplier_team row", "ok the member's subscription closes with Supabase's message",
                "ok the supplier and couple keep receiving", "ok the member subscribes again", "ALL PASSED",
            ] {
                #expect(output.contains(check), "missing '\(check)' in:\n\(output)")
            }
        }
    }

    /// A deleted row of a watched table closes the subscription it allowed, with Supabase's
    /// message, while the other members keep the channel; inserting it again lets them rejoin.
    @Test(arguments: ["app.supplier_team", "app.supplier_team(supplier_id)"])
    func aDeletedMembershipClosesTheSubscriptionAndAnInsertedOneLetsItBack(watch: String) async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await Self.teamDatabase(postgres, rows: "('s1', 7), ('s1', 9), ('s1', 10)")
        try await Self.withTeamServer(database, watch: watch) { server, rules in
            var sockets: [String: PhoenixSocket] = [:]
            for member in ["7", "9", "10"] {
                let socket = try await PhoenixSocket.connect(server, token: try await server.token(sub: member))
                try #require(try await socket.join("team:s1", ref: "1").status == "ok")
                sockets[member] = socket
            }
            let removed = try #require(sockets["7"])
            let sender = try #require(sockets["9"])
            let receiver = try #require(sockets["10"])

            try await postgres.execute(database, "delete from app.supplier_team where user_id = 7")
            let system = try await removed.event("system", on: "realtime:team:s1", timeout: .seconds(30))
            _ = try await removed.event("phx_close", on: "realtime:team:s1", timeout: .seconds(30))
            #expect(system.payload["status"] == "error")
            #expect(system.payload["message"] == "You no longer have permission to read from this Channel topic: team:s1 (not on team s1)")

            // The members still on the team keep the channel.
            try await sender.broadcast("team:s1", event: "still-here", payload: [:], ref: "2", joinRef: "1")
            _ = try await receiver.broadcastEvent("still-here", timeout: .seconds(30))

            try await postgres.execute(database, "insert into app.supplier_team values ('s1', 7)")
            try await ClientTests.eventually("the re-inserted member may join again", timeout: .seconds(30)) {
                (try? await Self.joins(server, "7", "team:s1")) == true
            }
            for socket in sockets.values { await socket.client.close() }
        }
    }

    /// `watch = { "app.supplier_team(supplier_id)" }`: a change re-reads only the keys it touched
    /// (a row slipped in without the triggers shows that the other keys were not read), an
    /// update moving a member from one key to another revokes the old one, and a statement
    /// touching more keys than a notification holds re-reads the whole relation.
    @Test func aKeyedWatchReReadsOnlyTheKeysAChangeTouched() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await Self.teamDatabase(postgres, rows: "('s1', 7), ('s2', 8)")
        try await Self.withTeamServer(database, watch: "app.supplier_team(supplier_id)") { server, rules in
            let triggers = try await postgres.value(
                database,
                "select string_agg(tgname, ',' order by tgname) from pg_trigger where tgrelid = 'app.supplier_team'::regclass")
            #expect(
                triggers == "switchboard_relation_changed,switchboard_relation_deleted,switchboard_relation_inserted,switchboard_relation_updated")
            try await Self.waitForRelations(server, "watching")
            let seven = try await PhoenixSocket.connect(server, token: try await server.token(sub: "7"))
            try #require(try await seven.join("team:s1", ref: "1").status == "ok")

            // A row the triggers do not see: only a read of key s2 would find it.
            try await postgres.execute(
                database, "alter table app.supplier_team disable trigger user", "insert into app.supplier_team values ('s2', 99)",
                "alter table app.supplier_team enable trigger user")
            // Moving 7 from s1 to s3 touches keys s1 and s3: 7 loses team:s1.
            try await postgres.execute(database, "update app.supplier_team set supplier_id = 's3' where user_id = 7")
            let system = try await seven.event("system", on: "realtime:team:s1", timeout: .seconds(30))
            #expect(system.payload["message"] == "You no longer have permission to read from this Channel topic: team:s1 (not on team s1)")
            #expect(try await Self.joins(server, "7", "team:s3"))
            #expect(try await !Self.joins(server, "99", "team:s2"), "key s2 was read again though no change touched it")
            #expect(try await Self.joins(server, "8", "team:s2"))

            // A change to s2 reads s2 again, and finds the row slipped in.
            try await postgres.execute(database, "insert into app.supplier_team values ('s2', 100)")
            try await ClientTests.eventually("99 may join team:s2 once s2 is read again", timeout: .seconds(30)) {
                (try? await Self.joins(server, "99", "team:s2")) == true
            }

            // 400 long keys in one statement do not fit in a notification: the whole relation is read.
            try await postgres.execute(
                database, "insert into app.supplier_team select 'bulk-' || lpad(i::text, 40, '0'), i from generate_series(1, 400) as i")
            let status = try await HotReloadTests.waitForStatus(server, timeout: .seconds(60)) {
                $0["relations"]?["supplier_team"]?["rows"] == 404
            }
            #expect(status["generation"] == 1)
            #expect(try await Self.joins(server, "400", "team:bulk-\(String(repeating: "0", count: 37))400"))
            await seven.client.close()
        }
    }

    @Test func aRelationWhoseQueryFailsStopsTheStartWithItsFileAndLine() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        let rules = try Self.rules(sql: "select a, b from app.missing")
        defer { try? FileManager.default.removeItem(at: rules) }
        do {
            try await withServer({
                $0.database = database
                $0.rulesDirectory = rules.path
            }) { _ in Issue.record("the server started") }
        } catch let error as ServerStartError {
            #expect(error.description.contains("rules.lua:4: relation \"supplier_team\": its query failed"), "\(error)")
            #expect(error.description.contains("app.missing"), "\(error)")
        }
    }
}
