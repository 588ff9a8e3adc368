import ArgumentParser
import Foundation
import Logging
import SwitchboardPostgres
import SwitchboardRules

/// `switchboard rules`: offline tools for the rules directory.
struct Rules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check and test rules offline.",
        subcommands: [Check.self, Test.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load a rules directory as the server would and report every problem as file:line: message.",
            discussion: """
                Exits 1 when the rules would not load. Runs luacheck too when it is installed (Debian: lua-check).
                With --database-url, also runs the query of every relation the rules declare from the database once,
                checks that it returns two columns and that its watched tables exist, and prints its row count; it changes
                nothing in the database. Without it, the check never connects to a database.
                """
        )

        @Argument(help: "The rules directory (default: SWITCHBOARD_RULES_DIR, else Rules).") var directory: String?
        @Option(help: "postgres://… of the database the rules' relation queries run against (not read from the environment).")
        var databaseURL: String?

        func run() async throws {
            let directory = directory ?? Environment.string("SWITCHBOARD_RULES_DIR") ?? "Rules"
            var options = RulesEngine.Options()
            options.lanes = 1
            let engine: RulesEngine
            do {
                engine = try RulesEngine(directory: directory, options: options)
            } catch {
                for problem in error.errors { FileHandle.standardError.write(Data("\(problem)\n".utf8)) }
                throw ExitCode(1)
            }
            let rules = engine.rules
            print(
                "\(directory): ok — \(engine.status.files.count) files, \(rules.channels.count) channels, "
                    + "\(rules.events.count) events, \(rules.tiers.count) tiers (default \(rules.defaultTier))")
            var failed = try Luacheck.run(on: directory, files: engine.status.files) == false
            if let databaseURL { failed = try await !checkRelations(rules, databaseURL: databaseURL) || failed }
            if failed { throw ExitCode(1) }
        }

        /// Runs each declared relation's query once; prints its rows or its problem at its
        /// `file:line`. Returns whether every one is sound.
        private func checkRelations(_ rules: RuleSet, databaseURL: String) async throws -> Bool {
            let settings: DatabaseSettings
            do { settings = try DatabaseSettings(url: databaseURL) } catch { throw ValidationError(error.message) }
            let declared = rules.relations.values.sorted { $0.name < $1.name }
            guard !declared.isEmpty else {
                print("no relation is declared from the database (relation \"name\" { sql = ... }); nothing to run")
                return true
            }
            var logger = Logger(label: "switchboard.rules-check")
            logger.logLevel = .critical
            let results: [String: Result<[(a: String, b: String)], DatabaseError>]
            do {
                results = try await RelationQuery.fetch(
                    declared.map {
                        RelationQuery.Spec(name: $0.name, sql: $0.sql, watch: $0.watch, keyColumns: $0.keyColumns, maxRows: $0.maxRows)
                    }, settings: settings, purpose: .check, logger: logger)
            } catch {
                FileHandle.standardError.write(Data("the database could not be reached: \(DatabaseError.describe(error))\n".utf8))
                return false
            }
            var sound = true
            for relation in declared {
                switch results[relation.name] {
                case .success(let pairs):
                    let tables = relation.watch.map { table in relation.keyColumns[table].map { "\(table)(\($0))" } ?? table }
                    let watching = tables.isEmpty ? "not watched (read at start and on reload only)" : "watching \(tables.joined(separator: ", "))"
                    print("\(relation.location): relation \"\(relation.name)\": ok — \(pairs.count) rows, \(watching)")
                case .failure(let error):
                    sound = false
                    FileHandle.standardError.write(Data("\(relation.location): relation \"\(relation.name)\": its query failed: \(error.message)\n".utf8))
                case nil:
                    sound = false
                    FileHandle.standardError.write(Data("\(relation.location): relation \"\(relation.name)\": its query did not run\n".utf8))
                }
            }
            return sound
        }
    }
}

extension Rules {
    /// `switchboard rules test [DIR]`: runs `DIR/tests/*.lua` against the rules in DIR.
    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the rules directory's tests/*.lua (expect_join, expect_send, expect_presence, expect_limits) and print N passed, N failed.",
            discussion: """
                Exits 1 when the rules do not load, a case fails, or no case ran. Never connects to a database: a relation
                the rules declare from the database holds data/<name>.json's rows if there is one, or the rows a test file
                gives it with given_relation(name, rows) until that file ends.
                """
        )

        @Argument(help: "The rules directory (default: SWITCHBOARD_RULES_DIR, else Rules).") var directory: String?
        @Flag(name: .shortAndLong, help: "Also list the cases that passed.") var verbose = false

        func run() async throws {
            let directory = directory ?? Environment.string("SWITCHBOARD_RULES_DIR") ?? "Rules"
            var options = RulesTestRunner.Options()
            options.onPrint = { print($0) }
            let report: RulesTestReport
            do {
                report = try RulesTestRunner(directory: directory, options: options).run()
            } catch {
                for problem in error.errors { FileHandle.standardError.write(Data("\(problem)\n".utf8)) }
                throw ExitCode(1)
            }
            for testCase in report.cases where verbose || !testCase.passed {
                print(testCase.passed ? "ok \(testCase)" : "\(testCase)")
            }
            if report.cases.isEmpty {
                FileHandle.standardError.write(Data("no test cases ran: add \(directory)/tests/*.lua files that call expect_join, expect_send, expect_presence or expect_limits\n".utf8))
            }
            print(report.summary)
            if !report.succeeded { throw ExitCode(1) }
        }
    }
}

/// Runs Debian's luacheck, when installed, with the rules globals declared.
enum Luacheck {
    static let globals = ["tier", "default_tier", "channel", "event", "relation", "member", "related", "emit", "allow_undeclared_events"]

    /// nil when luacheck is not installed; otherwise whether it passed.
    static func run(on directory: String, files: [String]) throws -> Bool? {
        guard let luacheck = ["/usr/bin/luacheck", "/usr/local/bin/luacheck"].first(where: FileManager.default.isExecutableFile) else {
            return nil
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: luacheck)
        // Files first: --read-globals takes every argument after it.
        process.arguments = files.map { "\(directory)/\($0)" } + ["--no-color", "--codes", "--std", "lua54", "--read-globals"] + globals
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
