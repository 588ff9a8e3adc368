import ArgumentParser
import Foundation
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
            discussion: "Exits 1 when the rules would not load. Runs luacheck too when it is installed (Debian: lua-check)."
        )

        @Argument(help: "The rules directory (default: SWITCHBOARD_RULES_DIR, else Rules).") var directory: String?

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
            if try Luacheck.run(on: directory, files: engine.status.files) == false { throw ExitCode(1) }
        }
    }
}

extension Rules {
    /// `switchboard rules test [DIR]`: runs `DIR/tests/*.lua` against the rules in DIR.
    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the rules directory's tests/*.lua (expect_join, expect_send, expect_presence, expect_limits) and print N passed, N failed.",
            discussion: "Exits 1 when the rules do not load, a case fails, or no case ran."
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
    static let globals = ["tier", "default_tier", "channel", "event", "member", "related", "emit", "allow_undeclared_events"]

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
