import SwitchboardCore
import Testing

@testable import SwitchboardPostgres

@Suite struct SQLScriptTests {
    @Test func splitsOnSemicolonsOutsideQuotesCommentsAndDollarBodies() {
        let script = """
            -- a comment; with a semicolon
            create table t (a text default 'x;y', "we;ird" int);
            /* block; /* nested; */ still; */ select 1;
            create function f() returns int language plpgsql as $$ begin return 1; end; $$;
            create function g() returns int language plpgsql as $body$ begin return $1; end; $body$;
            select 'it''s; fine';
            """
        let statements = SQLScript.statements(script)
        #expect(statements.count == 5, "\(statements)")
        #expect(statements[0].hasSuffix("\"we;ird\" int)"))
        #expect(statements[1].hasSuffix("select 1"))
        #expect(statements[2].contains("begin return 1; end;"))
        #expect(statements[3].contains("$body$ begin return $1; end; $body$"))
        #expect(statements[4] == "select 'it''s; fine'")
    }

    @Test func aTrailingCommentIsNotAStatement() {
        #expect(SQLScript.statements("select 1;\n-- the end\n") == ["select 1"])
        #expect(SQLScript.statements("  \n") == [])
    }

    @Test func theShippedMigrationsSplitIntoWholeStatements() {
        for migration in Migration.all {
            let statements = SQLScript.statements(migration.sql)
            #expect(!statements.isEmpty, "\(migration.name) has no statement")
            for statement in statements {
                // Every dollar-quoted body closes inside its statement.
                #expect(statement.components(separatedBy: "$$").count % 2 == 1, "\(statement)")
            }
        }
        #expect(Migration.all.map(\.version) == Array(1...Migration.all.count))
    }
}

@Suite struct DatabaseSettingsTests {
    @Test func readsAPostgresURL() throws {
        let settings = try DatabaseSettings(url: "postgres://app:s3cret@db.example:6543/platform?sslmode=require")
        #expect(settings.endpoint == .tcp(host: "db.example", port: 6543))
        #expect(settings.username == "app")
        #expect(settings.password == "s3cret")
        #expect(settings.database == "platform")
        #expect(settings.tls == .require)
        #expect(settings.description == "postgres://app:***@db.example:6543/platform")
    }

    @Test func defaultsFollowLibpq() throws {
        let settings = try DatabaseSettings(url: "postgresql://app@localhost")
        #expect(settings.endpoint == .tcp(host: "localhost", port: 5432))
        #expect(settings.database == "app")
        #expect(settings.tls == .prefer)
        #expect(settings.password == nil)
    }

    @Test func aSocketDirectoryInTheQueryMeansAUnixSocket() throws {
        let settings = try DatabaseSettings(url: "postgres://app@/platform?host=/var/run/postgresql&port=5433")
        #expect(settings.endpoint == .unixSocket(path: "/var/run/postgresql/.s.PGSQL.5433"))
    }

    @Test func badURLsSayWhatIsWrongWithoutThePassword() {
        for (url, expected) in [
            ("mysql://a@b/c", "must look like postgres://"),
            ("postgres://host/db", "names no user"),
            ("postgres://a:pw@h/db?sslmode=sometimes", "sslmode=sometimes is not one of"),
            ("postgres://a:pw@h/db?timeout=3", "unknown parameter timeout"),
        ] {
            do {
                _ = try DatabaseSettings(url: url)
                Issue.record("\(url) was accepted")
            } catch {
                #expect(error.message.contains(expected), "\(url): \(error.message)")
                #expect(!error.message.contains("pw@"), "\(url): the password leaked: \(error.message)")
            }
        }
    }

    @Test func wal2jsonRowsBecomeMessages() {
        let row = #"""
            {"action":"I","schema":"realtime","table":"messages_2026_12_05","columns":[{"name":"topic","value":"room:1"},{"name":"extension","value":"broadcast"},{"name":"payload","value":"{\"a\": 1, \"id\": \"x\"}"},{"name":"event","value":"ev"},{"name":"private","value":true},{"name":"inserted_at","value":"2026-12-05 18:09:38.69704"},{"name":"id","value":"3d0e455f-4811-49b8-9eff-749ff37504c2"},{"name":"binary_payload","value":null}]}
            """#
        let message = Wal2JSON.message(fromChange: row)
        #expect(message?.id == "3d0e455f-4811-49b8-9eff-749ff37504c2")
        #expect(message?.topic == "room:1")
        #expect(message?.event == "ev")
        #expect(message?.payload?["a"]?.int64Value == 1)
        #expect(message?.isPrivate == true)
        #expect(message?.problem == nil)
        #expect(Wal2JSON.message(fromChange: #"{"action":"I","schema":"public","table":"messages","columns":[]}"#) == nil)
        #expect(Wal2JSON.message(fromChange: #"{"action":"D","schema":"realtime","table":"messages_2026_12_05"}"#) == nil)
        let broken = Wal2JSON.message(
            fromChange: #"{"action":"I","schema":"realtime","table":"messages","columns":[{"name":"payload","value":"{nope"}]}"#)
        #expect(broken?.problem?.contains("not JSON") == true)
    }
}
