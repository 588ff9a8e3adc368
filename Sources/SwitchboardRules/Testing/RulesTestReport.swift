/// What `rules test` found: every case of every `tests/*.lua` file, in the order they ran.
public struct RulesTestReport: Sendable, Hashable {
    /// One `expect_*` call, or one error that stopped a test block or a file.
    public struct Case: Sendable, Hashable, CustomStringConvertible {
        /// What the case was.
        public enum Kind: String, Sendable, Hashable {
            case join, send, presence, limits, row
            /// A Lua error inside a `test` block or at a file's top level.
            case error
        }

        public let kind: Kind
        /// The test file as Lua names it, e.g. `Rules/tests/channels_test.lua`.
        public let file: String
        /// The line of the `expect_*` call (or of the error), when known.
        public let line: Int?
        /// The enclosing `test("name", ...)`, if any.
        public let test: String?
        public let passed: Bool
        /// For a failure, what went wrong; for a pass, what was checked.
        public let message: String

        /// `file:line`, or just the file.
        public var location: String { line.map { "\(file):\($0)" } ?? file }

        /// `file:line: message`, with the test's name when the case is inside one.
        public var description: String {
            "\(location): " + (test.map { "[\($0)] " } ?? "") + message
        }
    }

    /// The test files run, as Lua names them, in order.
    public var files: [String] = []
    public var cases: [Case] = []

    public init() {}

    public var passed: Int { cases.count(where: \.passed) }
    public var failed: Int { cases.count(where: { !$0.passed }) }
    public var failures: [Case] { cases.filter { !$0.passed } }

    /// True when at least one case ran and none failed.
    public var succeeded: Bool { failed == 0 && passed > 0 }

    /// `N passed, N failed`: the last line `rules test` prints.
    public var summary: String { "\(passed) passed, \(failed) failed" }
}
