import Foundation
import Logging
import PostgresNIO
import SwitchboardAuth
import SwitchboardBench
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardServer
import Testing

/// PostgreSQL as the system of record: Supabase's SQL API, committed rows delivered through the
/// server's pipeline, outages. Every test has a database of its own on the shared test cluster.
@Suite(.timeLimit(.minutes(3))) struct DatabaseTests {
    static let channel = "collaboration:s1:c1"
    static let logger = TestPostgres.logger

    /// Joins `channel` as supplier s1 on a new socket.
    static func subscriber(_ server: TestServer, channel: String = channel, token: String? = nil) async throws -> PhoenixSocket {
        let resolved: String
        if let token { resolved = token } else { resolved = try await server.token(role: "supplier", sub: "a", supplierID: "s1") }
        let token = resolved
        let socket = try await PhoenixSocket.connect(server, token: token)
        let reply = try await socket.join(channel, ref: "1")
        try #require(reply.status == "ok", "\(reply)")
        return socket
    }

    /// The next broadcast frame (replies and other events are skipped).
    static func nextBroadcast(_ socket: PhoenixSocket, timeout: Duration = .seconds(20)) async throws -> PhoenixSocket.Frame {
        try await socket.next(timeout: timeout) { $0.event == "broadcast" }
    }

    @Test func migrationsApplyOnceAndStatusReportsThem() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        let (first, second, status) = try await Database.withConnection(database, logger: Self.logger) { connection in
            let migrator = Migrator(connection: connection, logger: Self.logger)
            let before = try await migrator.status(slotName: try await Database.slotName(on: connection, logger: Self.logger), node: "n1")
            #expect(before.pending == Migration.all)
            #expect(before.slot == nil)
            #expect(before.changesSlot == nil)
            #expect(before.publishedTables == nil)
            let first = try await migrator.migrate()
            let second = try await migrator.migrate()
            let slot = try await Database.prepareSlot(on: connection, logger: Self.logger)
            _ = try await Database.prepareChangesSlot(on: connection, node: "n1", logger: Self.logger)
            try await connection.run("create table public.t (id int primary key)", logger: Self.logger)
            try await connection.run("alter publication supabase_realtime add table public.t", logger: Self.logger)
            return (first, second, try await migrator.status(slotName: slot, node: "n1"))
        }
        #expect(first == Migration.all)
        #expect(second.isEmpty)
        #expect(status.pending.isEmpty)
        #expect(status.applied.map(\.version) == Migration.all.map(\.version))
        #expect(status.walLevel == "logical")
        #expect(status.slot?.plugin == "wal2json")
        #expect(status.changesSlot?.plugin == "wal2json")
        #expect(status.changesSlotName.hasPrefix("switchboard_changes_"))
        #expect(status.publishedTables == ["public.t"])
        let today = try await postgres.value(database, "select 'messages_' || to_char(current_date, 'YYYY_MM_DD')")
        #expect(status.partitions.contains(today ?? "?"), "\(status.partitions)")
    }

    @Test func sendNeverAbortsTheCallersTransaction() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeMigratedDatabase()
        try await Database.withConnection(database, logger: Self.logger) { connection in
            try await connection.run("begin", logger: Self.logger)
            try await connection.run("create table public.kept (n int)", logger: Self.logger)
            // A null topic breaks the insert: a WARNING, and the transaction goes on.
            try await connection.run("select realtime.send('{}'::jsonb, 'e', null)", logger: Self.logger)
            try await connection.run("insert into public.kept values (1)", logger: Self.logger)
            try await connection.run("commit", logger: Self.logger)
        }
        #expect(try await postgres.value(database, "select count(*)::text from public.kept") == "1")
        #expect(try await postgres.value(database, "select count(*)::text from realtime.messages") == "0")
        // realtime.topic() is the topic inside send; the payload gets an id unless it has one.
        try await postgres.execute(
            database, "select realtime.send('{\"id\": \"mine\"}'::jsonb, 'e', 'room:1', false)",
            "select realtime.send('{\"a\": 1}'::jsonb, 'e', 'room:2')")
        #expect(try await postgres.value(database, "select payload->>'id' from realtime.messages where topic = 'room:1'") == "mine")
        #expect(
            try await postgres.value(database, "select (payload->>'id' = id::text)::text from realtime.messages where topic = 'room:2'")
                == "true")
        #expect(try await postgres.value(database, "select private::text from realtime.messages where topic = 'room:2'") == "true")
        #expect(try await postgres.value(database, "select extension from realtime.messages where topic = 'room:2'") == "broadcast")
        #expect(
            try await postgres.value(
                database, "select string_agg(coalesce(realtime.topic(), '-'), ',') from (select set_config('realtime.topic', 'x:1', false)) s")
                == "x:1")
        // broadcast_changes refuses statement-level triggers and unknown operations, as Supabase does.
        await #expect(throws: (any Error).self) {
            try await postgres.execute(database, "select realtime.broadcast_changes('t', 'e', 'INSERT', 'x', 'public', null, null, 'STATEMENT')")
        }
        await #expect(throws: (any Error).self) {
            try await postgres.execute(database, "select realtime.broadcast_changes('t', 'e', 'TRUNCATE', 'x', 'public', null, null)")
        }
    }

    @Test func committedRowsReachSubscribersAndRolledBackOnesDoNot() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        try await withServer({ $0.database = database }) { server in
            let socket = try await Self.subscriber(server)
            try await postgres.execute(
                database, "begin", "select realtime.send('{\"text\": \"rolled back\"}', 'hello', '\(Self.channel)')", "rollback")
            try await postgres.execute(database, "select realtime.send('{\"text\": \"hi\"}', 'hello', '\(Self.channel)', false)")
            let hello = try await Self.nextBroadcast(socket)
            #expect(hello.payload["event"]?.stringValue == "hello")
            #expect(hello.payload["payload"]?["text"]?.stringValue == "hi")
            let rowID = try await postgres.value(database, "select id::text from realtime.messages where event = 'hello'")
            #expect(rowID != nil)
            #expect(hello.payload["meta"]?["id"]?.stringValue == rowID, "meta.id is the row's id")
            #expect(hello.payload["payload"]?["id"]?.stringValue == rowID, "Supabase's payload.id")
            #expect(hello.payload["meta"]?["seq"]?.int64Value == 1, "replayable: numbered like any message")

            try await postgres.execute(
                database, "create table public.form_responses (id text primary key, form_id text, status text)",
                """
                create function public.responses_changed() returns trigger language plpgsql as $$
                begin
                    perform realtime.broadcast_changes('\(Self.channel)', TG_OP, TG_OP, TG_TABLE_NAME, TG_TABLE_SCHEMA, NEW, OLD);
                    return null;
                end $$
                """,
                "create trigger responses_changed after insert or update or delete on public.form_responses for each row execute function public.responses_changed()",
                "insert into public.form_responses values ('r1', 'f1', 'new')",
                "update public.form_responses set status = 'seen' where id = 'r1'",
                "delete from public.form_responses where id = 'r1'")
            let insert = try await Self.nextBroadcast(socket)
            #expect(insert.payload["event"]?.stringValue == "INSERT")
            let inserted = insert.payload["payload"]
            #expect(inserted?["record"]?["status"]?.stringValue == "new")
            #expect(inserted?["old_record"] == .null)
            #expect(inserted?["operation"]?.stringValue == "INSERT")
            #expect(inserted?["table"]?.stringValue == "form_responses")
            #expect(inserted?["schema"]?.stringValue == "public")
            let update = try await Self.nextBroadcast(socket)
            #expect(update.payload["payload"]?["old_record"]?["status"]?.stringValue == "new")
            #expect(update.payload["payload"]?["record"]?["status"]?.stringValue == "seen")
            let delete = try await Self.nextBroadcast(socket)
            #expect(delete.payload["payload"]?["operation"]?.stringValue == "DELETE")
            #expect(delete.payload["payload"]?["record"] == .null)
            #expect(delete.payload["meta"]?["seq"]?.int64Value == 4, "the rolled-back message took no place")
            await socket.close()
        }
    }

    @Test func transactionsAreDeliveredInCommitOrderEachOnce() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        try await withServer({ $0.database = database }) { server in
            let socket = try await Self.subscriber(server)
            try await Database.withConnection(database, logger: Self.logger) { first in
                try await first.run("begin", logger: Self.logger)
                try await first.run("select realtime.send('{\"n\": 1}', 'order', 'collaboration:s1:c1')", logger: Self.logger)
                // The second transaction inserts later but commits first.
                try await Database.withConnection(database, logger: Self.logger) { second in
                    try await second.run("begin", logger: Self.logger)
                    try await second.run("select realtime.send('{\"n\": 2}', 'order', 'collaboration:s1:c1')", logger: Self.logger)
                    try await second.run("commit", logger: Self.logger)
                }
                let early = try await Self.nextBroadcast(socket)
                #expect(early.payload["payload"]?["n"]?.int64Value == 2, "\(early)")
                try await first.run("commit", logger: Self.logger)
            }
            let late = try await Self.nextBroadcast(socket)
            #expect(late.payload["payload"]?["n"]?.int64Value == 1, "\(late)")
            try await postgres.execute(database, "select realtime.send('{\"n\": 3}', 'order', 'collaboration:s1:c1')")
            let marker = try await Self.nextBroadcast(socket)
            #expect(marker.payload["payload"]?["n"]?.int64Value == 3, "nothing repeated before the marker: \(marker)")
            await socket.close()
        }
    }

    /// Rows are announced by a NOTIFY that carries them; these two kinds are not, and still
    /// arrive once each: a row too big for a notification (announced by its id, read from the
    /// slot before anything after it), and a row inserted with triggers off (no notification:
    /// the slot's background read delivers it, possibly after rows that committed later).
    @Test func rowsNoNotificationCarriesArriveOnceEach() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        try await withServer({ $0.database = database }) { server in
            let socket = try await Self.subscriber(server)
            let big = String(repeating: "x", count: 9000)
            try await postgres.execute(
                database,
                "select realtime.send('{\"n\": 1}', 'order', '\(Self.channel)')",
                "select realtime.send(jsonb_build_object('n', 2, 'text', '\(big)'), 'order', '\(Self.channel)')",
                "select realtime.send('{\"n\": 3}', 'order', '\(Self.channel)')")
            for n in 1...3 {
                let frame = try await Self.nextBroadcast(socket)
                #expect(frame.payload["payload"]?["n"]?.int64Value == Int64(n), "in commit order: \(frame)")
                if n == 2 { #expect(frame.payload["payload"]?["text"]?.stringValue == big) }
            }
            // As during a restore or a logical replication apply: no trigger runs.
            try await postgres.execute(
                database, "set session_replication_role = replica",
                "select realtime.send('{\"n\": 4}', 'order', '\(Self.channel)')", "set session_replication_role = origin",
                "select realtime.send('{\"n\": 5}', 'order', '\(Self.channel)')")
            var late: Set<Int64> = []
            for _ in 1...2 {
                let frame = try await Self.nextBroadcast(socket)
                late.insert(frame.payload["payload"]?["n"]?.int64Value ?? 0)
            }
            #expect(late == [4, 5])
            try await postgres.execute(database, "select realtime.send('{\"n\": 6}', 'order', '\(Self.channel)')")
            let marker = try await Self.nextBroadcast(socket)
            #expect(marker.payload["payload"]?["n"]?.int64Value == 6, "nothing repeated before the marker: \(marker)")
            await socket.close()
        }
    }

    static func strictRules() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-db-rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try """
            tier "free" { max_channels = 20, messages_per_minute = 2, max_payload = 65536 }
            default_tier "free"
            channel "room:{x}" { kind = "shared", join = function() return true end }
            event "note" { on = { "room:*" }, fields = { text = "string" } }
            event "alert" { on = { "room:*" }, critical = true, fields = { text = "string" } }
            """.write(to: url.appendingPathComponent("rules.lua"), atomically: true, encoding: .utf8)
        return url
    }

    @Test func refusedRowsAreLoggedAndCountedAndTheRowsAfterThemGoOn() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        let rules = try Self.strictRules()
        defer { try? FileManager.default.removeItem(at: rules) }
        try await withServer({
            $0.database = database
            $0.rulesDirectory = rules.path
        }) { server in
            let socket = try await Self.subscriber(server, channel: "room:1", token: try await server.token(sub: "a"))
            try await postgres.execute(
                database,
                "select realtime.send('{\"text\": \"x\"}', 'note', 'bad topic')",
                "select realtime.send('{\"text\": \"x\"}', 'undeclared', 'room:1')",
                "select realtime.send('{\"text\": 5}', 'note', 'room:1')",
                "select realtime.send('[1, 2]', 'note', 'room:1')",
                "select realtime.send(jsonb_build_object('text', repeat('x', 70000)), 'note', 'room:1')",
                "insert into realtime.messages (topic, extension, event, payload) values ('room:1', 'presence', 'note', '{}')")
            // More than the tier's 2 a minute: committed rows are not rate limited.
            for n in 1...3 {
                try await postgres.execute(database, "select realtime.send('{\"text\": \"ok \(n)\"}', 'note', 'room:1')")
            }
            for n in 1...3 {
                let note = try await Self.nextBroadcast(socket)
                #expect(note.payload["payload"]?["text"]?.stringValue == "ok \(n)", "\(note)")
            }
            try await SlowConsumerTests.waitForMetric(server, #"switchboard_database_messages_total{result="refused"} 5"#)
            try await SlowConsumerTests.waitForMetric(server, #"switchboard_database_messages_total{result="ignored"} 1"#)
            try await SlowConsumerTests.waitForMetric(server, #"switchboard_database_messages_total{result="published"} 3"#)
            try await SlowConsumerTests.waitForMetric(server, "switchboard_database_up 1")
            await socket.close()
        }
    }

    @Test func aRestartKeepsTheHistoryAndRowsCommittedMeanwhileAreReplayed() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        let first = try await TestServer.start { $0.database = database }
        let publisher = try await PhoenixSocket.connect(first, token: try await first.token(role: "supplier", sub: "a", supplierID: "s1"))
        let joined = try await publisher.join(Self.channel, ref: "1", config: ["broadcast": ["self": true, "ack": true], "private": true])
        let epoch = try #require(joined.payload["response"]?["epoch"]?.stringValue)
        for n in 1...3 {
            try await publisher.broadcast(Self.channel, event: "ws", payload: ["n": .int(Int64(n))], ref: "p\(n)", joinRef: "1")
            // The ack comes after the history commit.
            #expect(try await publisher.reply(to: "p\(n)", timeout: .seconds(20)).status == "ok")
        }
        await publisher.close()
        await first.stop()
        // What the stopped server left in the database: the channel's epoch and its 3 messages.
        let kept = try await postgres.value(
            database,
            "select epoch || '/' || seq || '/' || (select count(*) from switchboard.history h where h.topic = c.topic and h.epoch = c.epoch) from switchboard.channels c")
        #expect(kept == "\(epoch)/3/3", "switchboard.channels after the stop: \(kept ?? "no row")")
        // Committed while no server runs.
        try await postgres.execute(
            database, "select realtime.send('{\"n\": 4}', 'db', '\(Self.channel)')",
            "select realtime.send('{\"n\": 5}', 'db', '\(Self.channel)')")
        try await withServer({ $0.database = database }) { server in
            try await SlowConsumerTests.waitForMetric(server, #"switchboard_database_messages_total{result="published"} 2"#)
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(role: "supplier", sub: "a", supplierID: "s1"))
            let reply = try await socket.join(
                Self.channel, ref: "1", config: ReplayTests.config(replay: ["since_seq": 1, "epoch": .string(epoch)]))
            #expect(reply.status == "ok", "\(reply)")
            #expect(reply.payload["response"]?["recovered"] == true, "\(reply)")
            #expect(reply.payload["response"]?["epoch"]?.stringValue == epoch, "the epoch survives the restart")
            var received: [Int64] = []
            for index in 0..<4 {
                guard let frame = try? await Self.nextBroadcast(socket) else {
                    Issue.record("after \(received) no more messages came")
                    break
                }
                // Messages 2 and 3 are history from before the restart; 4 and 5 (the rows) are
                // replayed too unless their history commit was still on its way at the join,
                // in which case they come live right after: in order, once, either way.
                if index < 2 { #expect(frame.payload["meta"]?["replayed"] == true, "\(frame)") }
                #expect(frame.payload["meta"]?["epoch"]?.stringValue == epoch)
                received.append(frame.payload["payload"]?["n"]?.int64Value ?? 0)
            }
            #expect(received == [2, 3, 4, 5])
            await socket.close()
        }
    }

    @Test func anAcknowledgedCriticalMessageSurvivesKill9() async throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("switchboard").path
        try #require(FileManager.default.isExecutableFile(atPath: binary), "no switchboard binary next to the tests at \(binary)")
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        let rules = try Self.strictRules()
        defer { try? FileManager.default.removeItem(at: rules) }
        let port = try freeLoopbackPort()
        let url = "postgres://postgres@127.0.0.1:\(postgres.port)/\(database.database)?sslmode=disable"
        let server = try ChildProcess(
            binary,
            [
                "serve", "--host", "127.0.0.1", "--port", String(port), "--jwt-secret", TestServer.secret, "--rules-dir", rules.path,
                "--database-url", url, "--no-watch-rules",
            ])
        try await server.waitForOutput(containing: "database connected")
        try await server.waitForOutput(containing: "listening")
        let token = try await TokenMinter(hmacSecret: TestServer.secret).mint(
            TokenClaims(role: "supplier", subject: "a", expiresAt: Date().timeIntervalSince1970 + 3600))
        let socket = PhoenixSocket(
            client: try await WebSocketClient.connect(host: "127.0.0.1", port: port, path: "/socket/websocket?vsn=1.0.0&apikey=\(token)"),
            version: .v1)
        let joined = try await socket.join("room:1", ref: "1", config: ["broadcast": ["self": false, "ack": true], "private": true])
        let epoch = try #require(joined.payload["response"]?["epoch"]?.stringValue, "\(joined)")
        try await socket.broadcast("room:1", event: "alert", payload: ["text": "must not be lost"], ref: "c1", joinRef: "1")
        #expect(try await socket.reply(to: "c1").status == "ok")
        server.killHard()
        _ = try await server.exit(within: .seconds(60))
        await socket.close()
        try await withServer({
            $0.database = database
            $0.rulesDirectory = rules.path
        }) { restarted in
            let back = try await PhoenixSocket.connect(restarted, token: token)
            let reply = try await back.join("room:1", ref: "1", config: ReplayTests.config(replay: ["since_seq": 0, "epoch": .string(epoch)]))
            #expect(reply.payload["response"]?["recovered"] == true, "\(reply)")
            let alert = try await Self.nextBroadcast(back)
            #expect(alert.payload["event"]?.stringValue == "alert")
            #expect(alert.payload["payload"]?["text"]?.stringValue == "must not be lost")
            await back.close()
        }
    }

    @Test func supabasePythonClientReceivesWhatTheDatabasePublished() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: PythonInteropTests.python), "no Python with realtime==2.34.1: run ./scripts/test.sh")
        guard FileManager.default.isExecutableFile(atPath: PythonInteropTests.python) else { return }
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        try await withServer({ $0.database = database }) { server in
            let token = try await server.token(role: "supplier", sub: "a", supplierID: "s1")
            let script = PythonInteropTests.repositoryRoot.appendingPathComponent("Tests/Interop/python_database_check.py").path
            let python = try ChildProcess(PythonInteropTests.python, [script, String(server.port), token])
            try await python.waitForOutput(containing: "READY")
            try await postgres.execute(
                database,
                "create table public.form_responses (id text primary key, form_id text, status text)",
                """
                create function public.responses_changed() returns trigger language plpgsql security definer as $$
                begin
                    perform realtime.broadcast_changes('\(Self.channel)', 'response-created', TG_OP, TG_TABLE_NAME, TG_TABLE_SCHEMA, NEW, OLD);
                    return null;
                end $$
                """,
                "create trigger responses_changed after insert on public.form_responses for each row execute function public.responses_changed()",
                "select realtime.send('{\"text\": \"sent from SQL\"}', 'from-sql', '\(Self.channel)')",
                "insert into public.form_responses values ('r1', 'f1', 'new')",
                "begin", "select realtime.send('{\"text\": \"rolled back\"}', 'from-sql', '\(Self.channel)')", "rollback",
                "select realtime.send('{}', 'marker', '\(Self.channel)')")
            let (status, output) = try await python.exit(within: .seconds(60))
            #expect(status == 0, "the Python client failed:\n\(output)")
            for check in [
                "ok realtime.send arrives with its row id", "ok broadcast_changes arrives with record", "ok a rolled-back send delivers nothing",
                "ALL PASSED",
            ] {
                #expect(output.contains(check), "missing '\(check)' in:\n\(output)")
            }
        }
    }

    /// postgres-nio 1.33 never answers a statement sent on a connection that is already closed
    /// (it writes it to the closed channel without a promise): unguarded, this test waits for
    /// ever (its time limit fails it). Guarded, the statement is abandoned and fails.
    @Test(.timeLimit(.minutes(1))) func aStatementOnAClosedConnectionEndsWithAnError() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        let connection = try await Database.connect(database, logger: Self.logger)
        try await connection.close()
        await #expect(throws: (any Error).self) {
            try await connection.guarded { connection in try await connection.run("select 1", logger: Self.logger) }
        }
    }

    @Test func anUnreachableDatabaseStopsTheStartWithAClearMessage() async throws {
        let port = try freeLoopbackPort()
        let settings = try DatabaseSettings(url: "postgres://nobody@127.0.0.1:\(port)/none?sslmode=disable")
        do {
            _ = try await TestServer.start {
                $0.database = settings
                $0.databaseStartTimeout = .zero
            }
            Issue.record("the server started without its database")
        } catch let error as ServerStartError {
            #expect(error.description.contains("cannot reach the database at postgres://nobody@127.0.0.1:\(port)/none"), "\(error)")
        }
    }

    @Test func anOutageKeepsLocalDeliveryAndLosesNoCommittedRow() async throws {
        // A cluster of its own: this test stops it.
        let postgres = try await TestPostgres.start()
        let database = try await postgres.makeDatabase()
        var epoch = ""
        try await withServer({ $0.database = database }) { server in
            let socket = try await Self.subscriber(server)
            try await postgres.execute(database, "select realtime.send('{\"n\": 1}', 'db', '\(Self.channel)')")
            let first = try await Self.nextBroadcast(socket)
            #expect(first.payload["payload"]?["n"]?.int64Value == 1)
            epoch = first.payload["meta"]?["epoch"]?.stringValue ?? ""

            try await postgres.execute(database, "select realtime.send('{\"n\": 2}', 'db', '\(Self.channel)')")
            try await postgres.stop()
            try await ClientTests.eventually("health says the database is down") {
                let health = try? await HTTPTests.request(server, "GET", "/health").body
                return health?.contains(#""database":"down""#) == true
            }
            // WebSocket delivery goes on without the database.
            let sender = try await Self.subscriber(server, token: try await server.token(role: "couple", sub: "b", coupleID: "c1"))
            try await sender.broadcast(Self.channel, event: "local", payload: ["during": true], joinRef: "1")
            var seen: [String] = []
            func label(_ frame: PhoenixSocket.Frame) -> String {
                let n = frame.payload["payload"]?["n"]?.int64Value
                return frame.payload["event"]?.stringValue == "db" ? "db#\(n ?? 0)" : frame.payload["event"]?.stringValue ?? "?"
            }
            while !seen.contains("local") {
                seen.append(label(try await Self.nextBroadcast(socket)))
            }
            try await SlowConsumerTests.waitForMetric(server, "switchboard_database_up 0")

            try await postgres.restart()
            try await postgres.execute(database, "select realtime.send('{\"n\": 3}', 'db', '\(Self.channel)')")
            while !seen.contains("db#3") {
                seen.append(label(try await Self.nextBroadcast(socket)))
            }
            #expect(seen.filter { $0 == "db#2" }.count == 1, "the row committed before the outage arrives once: \(seen)")
            #expect(seen.filter { $0 == "db#3" }.count == 1, "\(seen)")
            try await ClientTests.eventually("health says the database is up") {
                let health = try? await HTTPTests.request(server, "GET", "/health").body
                return health?.contains(#""database":"up""#) == true
            }
            await socket.close()
            await sender.close()
        }
        // The message published during the outage was written once the database was back:
        // a restarted server replays all four, in order, under the same epoch.
        try await withServer({ $0.database = database }) { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(role: "supplier", sub: "a", supplierID: "s1"))
            let reply = try await socket.join(Self.channel, ref: "1", config: ReplayTests.config(replay: ["since_seq": 0, "epoch": .string(epoch)]))
            #expect(reply.payload["response"]?["recovered"] == true, "\(reply)")
            var names: [String] = []
            var seqs: [Int64] = []
            for _ in 0..<4 {
                let frame = try await Self.nextBroadcast(socket)
                let n = frame.payload["payload"]?["n"]?.int64Value
                names.append(n.map { "db:\($0)" } ?? frame.payload["event"]?.stringValue ?? "?")
                seqs.append(frame.payload["meta"]?["seq"]?.int64Value ?? 0)
            }
            // Row 2 may be read before the outage or after it: either way once, in commit order.
            #expect(seqs == [1, 2, 3, 4], "\(names) \(seqs)")
            #expect(names.sorted() == ["db:1", "db:2", "db:3", "local"], "\(names)")
            #expect(names.filter { $0.hasPrefix("db:") } == ["db:1", "db:2", "db:3"], "\(names)")
            await socket.close()
        }
        try? await postgres.stop()
    }
}
