import Foundation
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardWire
import Testing

/// Postgres Changes with a real PostgreSQL: committed rows of a table in the
/// `supabase_realtime` publication reach the channels whose bindings and whose rules allow
/// them, in Supabase's payload.
@Suite struct PostgresChangesTests {
    static let table = """
        create table public.form_responses (id serial primary key, form_id text, supplier_id text, status text, notes text)
        """

    /// A migrated database whose form_responses table is in the publication.
    static func database(_ postgres: TestPostgres) async throws -> DatabaseSettings {
        let database = try await postgres.makeMigratedDatabase()
        try await postgres.execute(database, table, "alter publication supabase_realtime add table public.form_responses")
        return database
    }

    static func binding(_ event: String, filter: String? = nil) -> Value {
        var binding: Value.Object = ["event": .string(event), "schema": "public", "table": "form_responses"]
        if let filter { binding["filter"] = .string(filter) }
        return .object(binding)
    }

    static func subscribe(
        _ server: TestServer, supplier: String, channel: String? = nil, bindings: [Value], version: ProtocolVersion = .v1
    ) async throws -> PhoenixSocket {
        let socket = try await PhoenixSocket.connect(
            server, token: try await server.token(sub: "u-\(supplier)", supplierID: supplier), version: version)
        var config = PhoenixSocket.defaultConfig.objectValue ?? .init()
        config["postgres_changes"] = .array(bindings)
        let reply = try await socket.join(channel ?? "supplier:dashboard:\(supplier)", ref: "1", config: .object(config))
        try #require(reply.status == "ok", "\(reply)")
        _ = try await socket.event("system")
        return socket
    }

    static func nextChange(_ socket: PhoenixSocket) async throws -> Value {
        try await socket.event("postgres_changes").payload
    }

    static let insert = "insert into public.form_responses (form_id, supplier_id, status) values"

    /// Commits a row of supplier s1 with `formID`, `status` new.
    static func insertRow(_ postgres: TestPostgres, _ database: DatabaseSettings, formID: String) async throws {
        try await postgres.execute(database, "\(insert) ('\(formID)', 's1', 'new')")
    }

    /// Supplier s1's socket with an INSERT binding, once a first row ("before") has reached it:
    /// changes are flowing.
    static func flowingSubscriber(_ server: TestServer, _ postgres: TestPostgres, _ database: DatabaseSettings) async throws
        -> PhoenixSocket
    {
        let socket = try await subscribe(server, supplier: "s1", bindings: [binding("INSERT")])
        try await insertRow(postgres, database, formID: "before")
        #expect(try await nextFormID(socket) == "before")
        return socket
    }

    /// The form id of the next change `socket` receives.
    static func nextFormID(_ socket: PhoenixSocket) async throws -> String? {
        try await nextChange(socket)["data"]?["record"]?["form_id"]?.stringValue
    }

    @Test func committedRowsReachTheChannelsThatAskAndMayReadThem() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await Self.database(postgres)
        try await withServer({ $0.database = database }) { server in
            let all = try await Self.subscribe(server, supplier: "s1", bindings: [Self.binding("*")])
            let newOnly = try await Self.subscribe(
                server, supplier: "s1", channel: "collaboration:s1:c1", bindings: [Self.binding("INSERT", filter: "status=eq.new")])
            let other = try await Self.subscribe(server, supplier: "s2", bindings: [Self.binding("*")])

            try await postgres.execute(database, "insert into public.form_responses (form_id, supplier_id, status) values ('f1', 's1', 'new')")
            let inserted = try await Self.nextChange(all)
            let data = try #require(inserted["data"])
            #expect(data["type"] == "INSERT" && data["schema"] == "public" && data["table"] == "form_responses")
            #expect(data["record"] == ["id": 1, "form_id": "f1", "supplier_id": "s1", "status": "new", "notes": .null])
            #expect(data["old_record"] == nil)
            #expect(data["errors"] == .null)
            #expect(data["columns"]?.arrayValue?.first == ["name": "id", "type": "int4"])
            let stamp = data["commit_timestamp"]?.stringValue ?? ""
            #expect(stamp.count == 24 && stamp.hasSuffix("Z") && stamp.contains("T"), "\(stamp)")
            #expect(inserted["ids"]?.arrayValue?.count == 1)
            #expect(try await Self.nextChange(newOnly)["data"]?["record"]?["id"] == 1)

            try await postgres.execute(database, "update public.form_responses set status = 'open' where id = 1")
            let updated = try await Self.nextChange(all)
            #expect(updated["data"]?["type"] == "UPDATE")
            #expect(updated["data"]?["record"]?["status"] == "open")
            #expect(updated["data"]?["old_record"] == ["id": 1], "the default replica identity logs the key only")
            // A changed key without the whole old row: the old key is not sent.
            try await postgres.execute(database, "update public.form_responses set id = 100 where id = 1")
            let rekeyed = try await Self.nextChange(all)
            #expect(rekeyed["data"]?["record"]?["id"] == 100)
            #expect(rekeyed["data"]?["old_record"] == nil, "\(rekeyed)")

            // A delete shows only the key, which the default rule cannot tie to a supplier: with
            // a full replica identity the old row is whole, and the rule lets its supplier see it.
            try await postgres.execute(
                database, "delete from public.form_responses where id = 100", "alter table public.form_responses replica identity full",
                "insert into public.form_responses (form_id, supplier_id, status) values ('f1', 's1', 'draft')",
                "delete from public.form_responses where id = 2")
            let second = try await Self.nextChange(all)
            #expect(second["data"]?["type"] == "INSERT" && second["data"]?["record"]?["id"] == 2, "\(second)")
            let deleted = try await Self.nextChange(all)
            #expect(deleted["data"]?["type"] == "DELETE")
            #expect(deleted["data"]?["record"] == nil)
            #expect(deleted["data"]?["old_record"]?["supplier_id"] == "s1")

            // s2's channel saw none of s1's rows: its first change is its own.
            try await postgres.execute(database, "insert into public.form_responses (form_id, supplier_id, status) values ('f9', 's2', 'new')")
            #expect(try await Self.nextChange(other)["data"]?["record"]?["supplier_id"] == "s2")
            // Nor did the INSERT-only, status=new channel see anything but its row and s2's
            // row is not s1's: the next it gets is the next new row of s1.
            try await postgres.execute(database, "insert into public.form_responses (form_id, supplier_id, status) values ('f1', 's1', 'new')")
            #expect(try await Self.nextChange(newOnly)["data"]?["record"]?["id"] == 4)
            for socket in [all, newOnly, other] { await socket.close() }
        }
    }

    /// vsn 2.0.0: the join reply and the change travel as arrays, the change with no refs.
    @Test func protocolVersionTwoCarriesTheSamePayload() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await Self.database(postgres)
        try await withServer({ $0.database = database }) { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(sub: "u-s1", supplierID: "s1"), version: .v2)
            var config = PhoenixSocket.defaultConfig.objectValue ?? .init()
            config["postgres_changes"] = [Self.binding("INSERT", filter: "status=is.null")]
            let reply = try await socket.join("supplier:dashboard:s1", ref: "1", config: .object(config))
            #expect(reply.joinRef == "1" && reply.ref == "1" && reply.status == "ok")
            let echoed = try #require(reply.payload["response"]?["postgres_changes"]?.arrayValue?.first)
            #expect(echoed["filter"] == "status=is.null" && echoed["event"] == "INSERT")
            let id = try #require(echoed["id"]?.int64Value)
            #expect(try await socket.event("system").payload["message"] == "Subscribed to PostgreSQL")
            try await postgres.execute(database, "insert into public.form_responses (form_id, supplier_id) values ('f1', 's1')")
            let frame = try await socket.event("postgres_changes")
            #expect(frame.ref == nil && frame.joinRef == nil)
            #expect(frame.payload["ids"] == [.int(id)])
            let data = try #require(frame.payload["data"])
            #expect(data["type"] == "INSERT" && data["table"] == "form_responses" && data["schema"] == "public")
            #expect(data["record"]?["form_id"] == "f1" && data["errors"] == .null && data["columns"]?.arrayValue?.count == 5)
            #expect(data["commit_timestamp"]?.stringValue?.hasSuffix("Z") == true)
            await socket.close()
        }
    }

    /// A row too large to send keeps its small values, with Supabase's error.
    @Test func aRowTooLargeArrivesWithItsSmallValuesAndAnError() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await Self.database(postgres)
        try await withServer({
            $0.database = database
            $0.maxPayloadBytes = 4096
        }) { server in
            let socket = try await Self.subscribe(server, supplier: "s1", bindings: [Self.binding("INSERT")])
            try await postgres.execute(
                database, "insert into public.form_responses (form_id, supplier_id, notes) values ('f1', 's1', repeat('x', 10000))")
            let data = try #require(try await Self.nextChange(socket)["data"])
            #expect(data["errors"] == ["Error 413: Payload Too Large"])
            #expect(data["record"]?["notes"] == nil)
            #expect(data["record"]?["supplier_id"] == "s1")
            await socket.close()
        }
    }
}

extension PostgresChangesTests {
    /// Rows committed while the server is down wait in the changes slot; the restarted server
    /// holds changes back for `changesHold` (on its clock), so a client that subscribes
    /// meanwhile receives them, each once, then live ones; nothing delivered before the stop
    /// comes again.
    @Test func rowsCommittedWhileTheServerWasDownArriveOnceAfterItStarts() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await Self.database(postgres)
        try await withServer({ $0.database = database }) { server in
            let socket = try await Self.flowingSubscriber(server, postgres, database)
            await socket.close()
        }
        try await Self.insertRow(postgres, database, formID: "down-1")
        try await Self.insertRow(postgres, database, formID: "down-2")
        let clock = ManualClock.startingNow()
        try await withServer({
            $0.database = database
            $0.clock = clock
            $0.changesHold = .seconds(5)
        }) { server in
            let socket = try await Self.subscribe(server, supplier: "s1", bindings: [Self.binding("INSERT")])
            clock.advance(by: .seconds(6))
            var seen: [String] = []
            while seen.count < 2 { seen.append(try await Self.nextFormID(socket) ?? "?") }
            try await Self.insertRow(postgres, database, formID: "after")
            seen.append(try await Self.nextFormID(socket) ?? "?")
            #expect(seen == ["down-1", "down-2", "after"])
            await socket.close()
        }
    }
}

extension PostgresChangesTests {
    /// Supabase's Python client, unchanged: on_postgres_changes for each event and with a
    /// filter receives exactly its rows; another supplier's rule gives it none of them; a
    /// malformed filter is a join error.
    @Test func supabasePythonClientReceivesPostgresChanges() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: PythonInteropTests.python), "no Python with realtime==2.34.1: run ./scripts/test.sh")
        guard FileManager.default.isExecutableFile(atPath: PythonInteropTests.python) else { return }
        let postgres = try await TestPostgres.shared()
        let database = try await Self.database(postgres)
        try await withServer({ $0.database = database }) { server in
            let s1 = try await server.token(sub: "u-s1", supplierID: "s1")
            let s2 = try await server.token(sub: "u-s2", supplierID: "s2")
            let script = PythonInteropTests.repositoryRoot.appendingPathComponent("Tests/Interop/python_changes_check.py").path
            let python = try ChildProcess(PythonInteropTests.python, [script, String(server.port), s1, s2])
            try await python.waitForOutput(containing: "READY")
            let insert = Self.insert
            try await postgres.execute(
                database, "\(insert) ('f1', 's1', 'new')", "\(insert) ('f1', 's1', 'draft')",
                "update public.form_responses set status = 'open' where id = 2",
                "alter table public.form_responses replica identity full", "delete from public.form_responses where id = 2",
                "\(insert) ('f9', 's2', 'new')", "\(insert) ('marker', 's1', 'done')")
            let (status, output) = try await python.exit(within: .seconds(60))
            #expect(status == 0, "the Python client failed:\n\(output)")
            for check in [
                "ok both subscribe", "ok a malformed filter is a join error", "ok INSERT, UPDATE, DELETE and * arrive",
                "ok record, old_record, columns and errors", "ok each supplier sees only the rows its rule allows", "ALL PASSED",
            ] {
                #expect(output.contains(check), "missing '\(check)' in:\n\(output)")
            }
        }
    }
}

extension PostgresChangesTests {
    /// A reload that drops a table's rule closes the channels bound to that table (default
    /// deny), with Supabase's message; channels without bindings stay. No database needed.
    @Test func aReloadThatDropsATablesRuleClosesItsBindings() async throws {
        let rules = try RulesCopy()
        defer { rules.delete() }
        try await HotReloadTests.start(rules) { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(sub: "u-s1", supplierID: "s1"))
            var config = PhoenixSocket.defaultConfig.objectValue ?? .init()
            config["postgres_changes"] = [Self.binding("*")]
            try #require(try await socket.join("supplier:dashboard:s1", ref: "1", config: .object(config)).status == "ok")
            try #require(try await socket.join("collaboration:s1:c1", ref: "2").status == "ok")
            try rules.remove("tables.lua")
            let system = try await socket.event("system", on: "realtime:supplier:dashboard:s1", timeout: .seconds(60))
            #expect(
                system.payload["message"]
                    == "You no longer have permission to read from this Channel topic: supplier:dashboard:s1 (no rule says who may read changes of table public.form_responses)")
            _ = try await socket.event("phx_close", on: "realtime:supplier:dashboard:s1", timeout: .seconds(30))
            try await socket.broadcast("collaboration:s1:c1", event: "still-here", payload: [:], ref: "3", joinRef: "2")
            await socket.close()
        }
    }

    /// `select` sends only the columns asked for.
    @Test func selectSendsOnlyTheColumnsAskedFor() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await Self.database(postgres)
        try await withServer({ $0.database = database }) { server in
            var binding = Self.binding("INSERT").objectValue ?? .init()
            binding["select"] = ["id", "status"]
            let socket = try await Self.subscribe(server, supplier: "s1", bindings: [.object(binding)])
            try await postgres.execute(database, "insert into public.form_responses (form_id, supplier_id, status) values ('f1', 's1', 'new')")
            let data = try #require(try await Self.nextChange(socket)["data"])
            #expect(data["record"] == ["id": 1, "status": "new"])
            #expect(data["columns"] == [["name": "id", "type": "int4"], ["name": "status", "type": "text"]])
            await socket.close()
        }
    }
}

extension PostgresChangesTests {
    /// With a database, a binding is checked against the publication: a table outside it, or a
    /// column the table does not have, is a join error that says how to fix it.
    @Test func bindingsAreCheckedAgainstThePublishedTables() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await Self.database(postgres)
        try await postgres.execute(database, "create table public.journey_steps (id serial primary key, journey_id text)")
        try await withServer({ $0.database = database }) { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(sub: "u-s1", supplierID: "s1"))
            var config = PhoenixSocket.defaultConfig.objectValue ?? .init()
            config["postgres_changes"] = [["event": "*", "schema": "public", "table": "journey_steps"]]
            var reply = try await socket.join("supplier:dashboard:s1", ref: "1", config: .object(config))
            #expect(reply.status == "error")
            #expect(reply.reason?.contains("table public.journey_steps is not in the supabase_realtime publication") == true, "\(reply)")
            #expect(reply.reason?.contains("alter publication supabase_realtime add table public.journey_steps") == true, "\(reply)")

            config["postgres_changes"] = [Self.binding("INSERT", filter: "colour=eq.red")]
            reply = try await socket.join("supplier:dashboard:s1", ref: "2", config: .object(config))
            #expect(reply.status == "error")
            #expect(reply.reason?.contains("public.form_responses has no column colour (its columns: id, form_id, supplier_id, status, notes)") == true, "\(reply)")

            var binding = Self.binding("INSERT").objectValue ?? .init()
            binding["select"] = ["id", "colour"]
            config["postgres_changes"] = [.object(binding)]
            reply = try await socket.join("supplier:dashboard:s1", ref: "3", config: .object(config))
            #expect(reply.reason?.contains("has no column colour") == true, "\(reply)")

            // Added to the publication, the table is taken within the reader's next read.
            try await postgres.execute(database, "alter publication supabase_realtime add table public.journey_steps")
            config["postgres_changes"] = [["event": "*", "schema": "public", "table": "journey_steps"]]
            try await ClientTests.eventually("journey_steps is taken once published", timeout: .seconds(60)) {
                (try? await socket.join("supplier:dashboard:s1", ref: "4", config: .object(config)).status) == "ok"
            }
            await socket.close()
        }
    }
}

extension PostgresChangesTests {
    /// The database restarting under the server: the reader reconnects and the changes
    /// committed afterwards arrive.
    @Test func changesFlowAgainAfterTheDatabaseRestarts() async throws {
        // A cluster of its own: this test stops it.
        let postgres = try await TestPostgres.start()
        let database = try await Self.database(postgres)
        try await withServer({ $0.database = database }) { server in
            let socket = try await Self.flowingSubscriber(server, postgres, database)
            try await postgres.stop()
            try await postgres.restart()
            try await Self.insertRow(postgres, database, formID: "after")
            #expect(try await Self.nextFormID(socket) == "after")
            await socket.close()
        }
        try? await postgres.stop()
    }
}

extension PostgresChangesTests {
    /// A changes slot dropped under the running server is made anew (the changes it held are
    /// lost, and the log says so), and the changes committed afterwards arrive.
    @Test func aDroppedSlotIsMadeAnewAndChangesFlowAgain() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await Self.database(postgres)
        try await withServer({ $0.database = database }) { server in
            let socket = try await Self.flowingSubscriber(server, postgres, database)
            let slot = try #require(
                try await postgres.value(
                    database,
                    "select slot_name::text from pg_replication_slots where slot_name like 'switchboard_changes_%' and database = current_database()"))
            // The reader holds the slot only while it reads: retry the drop until it is free.
            try await ClientTests.eventually("the slot is dropped", timeout: .seconds(30)) {
                (try? await postgres.execute(database, "select pg_drop_replication_slot('\(slot)')")) != nil
            }
            // A new slot decodes only what commits after it is consistent (which waits for the
            // cluster's running transactions), and rows committed before are lost, as the log
            // says: commit a row at a time until one arrives.
            var attempt = 0
            try await ClientTests.eventually("a change arrives through the new slot", timeout: .seconds(120)) {
                attempt += 1
                guard (try? await Self.insertRow(postgres, database, formID: "after-\(attempt)")) != nil else { return false }
                let received = try? await socket.event("postgres_changes", timeout: .seconds(5))
                return received?.payload["data"]?["record"]?["form_id"]?.stringValue?.hasPrefix("after-") == true
            }
            #expect(try await postgres.value(database, "select count(*)::text from pg_replication_slots where slot_name = '\(slot)'") == "1")
            await socket.close()
        }
    }
}
