import Foundation
import Synchronization
import Testing

@testable import SwitchboardRules

/// The watcher sees rule and data files change, coalesces a burst of writes into one call, and
/// ignores files the rules are not built from.
@Suite struct RulesWatcherTests {
    /// Records the names each call reported and lets a test wait for a name with a deadline.
    final class Calls: Sendable {
        private let calls = Mutex<[Set<String>]>([])
        func record(_ names: Set<String>) { calls.withLock { $0.append(names) } }
        /// Every name reported so far.
        var names: Set<String> { calls.withLock { $0.reduce(into: []) { $0.formUnion($1) } } }

        func wait(for name: String, within timeout: Duration = .seconds(30)) async throws -> Bool {
            let deadline = ContinuousClock.now + timeout
            while !names.contains(name) {
                guard ContinuousClock.now < deadline else { return false }
                try await Task.sleep(for: .milliseconds(10))
            }
            return true
        }
    }

    /// Rule and data files are reported by name; files the rules are not built from never are.
    /// (Absence is shown without waiting: the ignored files are written before a rule file, so
    /// they would be reported with it or before it.)
    @Test(arguments: [RulesWatcher.Mechanism.inotify, .polling])
    func seesRuleAndDataFilesAndIgnoresOthers(_ mechanism: RulesWatcher.Mechanism) async throws {
        let rules = try RulesFixture(["a.lua": "-- one\n", "data/team.json": "{}"])
        let calls = Calls()
        let watcher = RulesWatcher(
            directory: rules.url, debounce: .milliseconds(60), pollInterval: .milliseconds(20), mechanism: mechanism
        ) { calls.record($0) }
        watcher.start()
        defer { watcher.stop() }
        #expect(watcher.mechanism == mechanism)

        // An editor's swap file and notes are not rules.
        try rules.write(".a.lua.swp", "swap")
        try rules.write("NOTES.md", "notes")
        for index in 0..<5 { try rules.write("a.lua", "-- write \(index) with more text\n") }
        #expect(try await calls.wait(for: "a.lua"))
        #expect(calls.names == ["a.lua"])

        try rules.write("data/team.json", #"{"s1": ["anna"]}"#)
        #expect(try await calls.wait(for: "data/team.json"))

        try rules.write("b.lua", "-- a new rule file\n")
        #expect(try await calls.wait(for: "b.lua"))
        #expect(calls.names == ["a.lua", "data/team.json", "b.lua"])
    }
}

/// The watcher's timing, with the time passed in.
@Suite struct DebouncerTests {
    static let start = ContinuousClock.now

    static func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    @Test func aBurstOfWritesIsOneChange() {
        var debouncer = Debouncer(interval: .milliseconds(200))
        #expect(debouncer.due(at: Self.at(0)) == nil, "nothing changed")
        for (index, time) in [0, 50, 120, 300].enumerated() {
            debouncer.changed(["a.lua"], at: Self.at(time))
            if index == 1 { debouncer.changed(["data/team.json"], at: Self.at(time)) }
        }
        #expect(debouncer.due(at: Self.at(499)) == nil, "each write starts the quiet period again")
        #expect(debouncer.due(at: Self.at(500)) == ["a.lua", "data/team.json"])
        #expect(debouncer.due(at: Self.at(10_000)) == nil, "due once")
        #expect(!debouncer.isPending)
    }

    @Test func aChangeAfterTheQuietPeriodIsANewOne() {
        var debouncer = Debouncer(interval: .milliseconds(200))
        debouncer.changed(["a.lua"], at: Self.at(0))
        #expect(debouncer.isPending)
        #expect(debouncer.due(at: Self.at(200)) == ["a.lua"])
        debouncer.changed(["b.lua"], at: Self.at(900))
        #expect(debouncer.due(at: Self.at(1_099)) == nil)
        #expect(debouncer.due(at: Self.at(1_100)) == ["b.lua"], "only what changed since the last call")
    }
}
