import Foundation
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardServer
import Testing

/// Relations the rules declare from the database (`relation "name" { sql = … }`), with a real
/// PostgreSQL: read at start and on every reload, before the new rules are in force.
@Suite struct DatabaseRelationsTests {
    static func rules(sql: String, watch: Bool = false) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-relation-rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try write(sql: sql, watch: watch, in: url)
        return url
    }

    static func write(sql: String, watch: Bool = false, in url: URL) throws {
        try """
            channel "team:{id}" { kind = "shared",
              join = function(user, ch) return member("supplier_team", ch.id, user.sub), "not on team " .. ch.id end }

            relation "supplier_team" {
              sql = [[\(sql)]],\(watch ? " watch = { \"app.supplier_team\" }," : "")
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

    @Test func aDeclaredRelationIsReadAtStartAndOnEveryReload() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        try await postgres.execute(database, Self.schema, Self.table, "insert into app.supplier_team values ('s1', 7), (null, 9)")
        let rules = try Self.rules(sql: Self.query)
        defer { try? FileManager.default.removeItem(at: rules) }
        try await withServer({
            $0.database = database
            $0.rulesDirectory = rules.path
            $0.watchRules = true
        }) { server in
            // An integer column is read as its decimal text, like member()'s ids.
            #expect(try await Self.joins(server, "7", "team:s1"))
            #expect(try await !Self.joins(server, "8", "team:s1"))
            var status = try await HotReloadTests.adminStatus(server)
            #expect(status["relations"]?["supplier_team"]?["rows"] == 1, "a row with a null is skipped: \(status)")

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
        }
    }

    /// A deleted row of a watched table closes the subscription it allowed, with Supabase's
    /// message, while the other members keep the channel; inserting it again lets them rejoin.
    @Test func aDeletedMembershipClosesTheSubscriptionAndAnInsertedOneLetsItBack() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        try await postgres.execute(database, Self.schema, Self.table, "insert into app.supplier_team values ('s1', 7), ('s1', 9), ('s1', 10)")
        let rules = try Self.rules(sql: Self.query, watch: true)
        defer { try? FileManager.default.removeItem(at: rules) }
        try await withServer({
            $0.database = database
            $0.rulesDirectory = rules.path
        }) { server in
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
