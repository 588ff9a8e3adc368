import Foundation
import Synchronization
import Testing

@testable import SwitchboardRules

/// The watcher sees rule and data files change, coalesces a burst of writes into one call, and
/// ignores files the rules are not built from.
@Suite struct RulesWatcherTests {
    /// Counts calls and lets a test wait for a count with a deadline.
    final class Calls: Sendable {
        private let count = Mutex(0)
        func record() { count.withLock { $0 += 1 } }
        var value: Int { count.withLock { $0 } }

        func wait(for expected: Int, within timeout: Duration = .seconds(5)) async throws -> Bool {
            let deadline = ContinuousClock.now + timeout
            while value < expected {
                guard ContinuousClock.now < deadline else { return false }
                try await Task.sleep(for: .milliseconds(10))
            }
            return true
        }
    }

    @Test(arguments: [RulesWatcher.Mechanism.inotify, .polling])
    func seesRuleAndDataFilesAndIgnoresOthers(_ mechanism: RulesWatcher.Mechanism) async throws {
        let rules = try RulesFixture(["a.lua": "-- one\n", "data/team.json": "{}"])
        let calls = Calls()
        let watcher = RulesWatcher(
            directory: rules.url, debounce: .milliseconds(60), pollInterval: .milliseconds(20), mechanism: mechanism
        ) { calls.record() }
        watcher.start()
        defer { watcher.stop() }
        #expect(watcher.mechanism == mechanism)

        // A burst of writes is one change.
        for index in 0..<5 { try rules.write("a.lua", "-- write \(index) with more text\n") }
        #expect(try await calls.wait(for: 1))
        // Absence can only be shown by waiting: well past the debounce, no second call came.
        try await Task.sleep(for: .milliseconds(200))
        #expect(calls.value == 1, "one burst of writes should reload once")

        try rules.write("data/team.json", #"{"s1": ["anna"]}"#)
        #expect(try await calls.wait(for: 2))

        try rules.write("b.lua", "-- a new rule file\n")
        #expect(try await calls.wait(for: 3))

        // An editor's swap file and notes are not rules.
        try rules.write(".a.lua.swp", "swap")
        try rules.write("NOTES.md", "notes")
        try await Task.sleep(for: .milliseconds(300))
        #expect(calls.value == 3)
    }
}
