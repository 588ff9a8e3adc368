import Foundation
import SwitchboardCore
import SwitchboardLua
import Synchronization

/// Runs a rules directory's `tests/*.lua` files against its rules: what `switchboard rules test` does.
///
/// The rules load exactly as the server loads them (a `RulesEngine`). Each test file then runs
/// in its own sandboxed `LuaState`, separate from the engine's lanes, with `expect_join`,
/// `expect_send`, `expect_presence`, `expect_row`, `expect_limits`, `given_relation` and `test` as globals; every `expect_*` call asks the engine
/// and becomes one case of the report, with the `file:line` of the call.
public struct RulesTestRunner: Sendable {
    /// Bounds for the test files' own Lua (the hooks they exercise keep the engine's bounds).
    public struct Options: Sendable {
        /// Instructions one test file may run, top to bottom. Default 10,000,000 (tens of
        /// thousands of `expect_*` calls).
        public var instructionBudget: Int = 10_000_000
        /// Memory one test file's state may hold. Default 32 MiB.
        public var memoryLimitBytes: Int = 32 << 20
        /// Where `print` goes, from test files and from rule files.
        public var onPrint: @Sendable (String) -> Void = { _ in }

        public init() {}
    }

    /// The claims' `exp` when a test's user has none: 2100-01-01, far beyond any test run.
    static let farFutureExpiry: Double = 4_102_444_800
    /// The `role` when a test's user has none: Supabase's role for a signed-in user.
    static let defaultRole = "authenticated"
    /// The limit names `expect_limits` accepts: the same names as `tier` uses.
    static let limitNames = ["max_channels", "messages_per_minute", "max_payload"]

    public let directory: String
    public let options: Options

    public init(directory: String, options: Options = Options()) {
        self.directory = directory
        self.options = options
    }

    /// Loads the rules (throwing every load problem, as `rules check` reports them) and runs
    /// every `tests/*.lua` in name order.
    public func run() throws(RulesLoadError) -> RulesTestReport {
        let hookErrors = HookErrors()
        var engineOptions = RulesEngine.Options()
        engineOptions.lanes = 1
        engineOptions.onHookError = { error in hookErrors.record(error) }
        engineOptions.onPrint = options.onPrint
        let engine = try RulesEngine(directory: directory, options: engineOptions)

        let root = URL(fileURLWithPath: directory)
        var report = RulesTestReport()
        for file in Self.testFiles(in: root) {
            let chunk = Self.chunkName(directory: root, file: "tests/\(file)")
            report.files.append(chunk)
            let session = Session(file: chunk, engine: engine, hookErrors: hookErrors)
            guard let text = try? String(contentsOf: root.appendingPathComponent("tests").appendingPathComponent(file), encoding: .utf8)
            else {
                session.record(.error, line: nil, passed: false, "cannot be read as UTF-8 text")
                report.cases += session.cases
                continue
            }
            run(text, in: session)
            session.restoreRelations()
            report.cases += session.cases
        }
        return report
    }

    /// The `*.lua` files directly inside `tests/`, sorted; none when there is no such folder.
    static func testFiles(in directory: URL) -> [String] {
        let folder = directory.appendingPathComponent("tests")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return [] }
        return names.filter { $0.hasSuffix(".lua") && !$0.hasPrefix(".") }.sorted()
    }

    /// `Rules/tests/x.lua`: the rules directory's last component and the path inside it, the
    /// same form the engine gives rule files.
    static func chunkName(directory: URL, file: String) -> String {
        let base = directory.lastPathComponent
        return base.isEmpty ? file : "\(base)/\(file)"
    }

    private func run(_ text: String, in session: Session) {
        var configuration = LuaConfiguration()
        configuration.instructionBudget = options.instructionBudget
        configuration.memoryLimitBytes = options.memoryLimitBytes
        let onPrint = options.onPrint
        configuration.print = { onPrint($0) }
        let state: LuaState
        do {
            state = try LuaState(configuration: configuration)
            state.register(TestPrelude.checkFunction) { arguments throws(LuaError) in session.check(arguments) }
            state.register(TestPrelude.failFunction) { arguments throws(LuaError) in session.testFailed(arguments) }
            state.register(TestPrelude.givenFunction) { arguments throws(LuaError) in session.given(arguments) }
            try state.load(source: TestPrelude.source, chunkName: TestPrelude.chunkName)
        } catch {
            session.record(.error, line: nil, passed: false, "the Lua host could not start: \(error)")
            return
        }
        do {
            try state.load(source: text, chunkName: session.file)
        } catch {
            let message = error.code == .syntax ? "syntax error: \(error.message)" : "error: \(error.message)"
            session.record(.error, file: error.file ?? session.file, line: error.line, passed: false, message)
        }
    }
}

/// Hook failures the engine reports while a case is being decided.
final class HookErrors: Sendable {
    private let errors = Mutex<[RulesError]>([])

    func record(_ error: RulesError) { errors.withLock { $0.append(error) } }

    /// The errors recorded since the last call.
    func drain() -> [RulesError] {
        errors.withLock { errors in
            let drained = errors
            errors = []
            return drained
        }
    }
}

extension RulesTestRunner {
    /// One test file's run: turns `expect_*` calls into cases. Used only from the file's own
    /// Lua state's host functions, on one thread.
    final class Session {
        let file: String
        let engine: RulesEngine
        let hookErrors: HookErrors
        private(set) var cases: [RulesTestReport.Case] = []

        init(file: String, engine: RulesEngine, hookErrors: HookErrors) {
            self.file = file
            self.engine = engine
            self.hookErrors = hookErrors
        }

        func record(
            _ kind: RulesTestReport.Case.Kind, file: String? = nil, line: Int?, test: String? = nil, passed: Bool, _ message: String
        ) {
            cases.append(.init(kind: kind, file: file ?? self.file, line: line, test: test, passed: passed, message: message))
        }

        /// `__sb_check(kind, where, test, user, channel|limits, allowed, reason_contains, event, payload)`:
        /// records a case and returns nothing, or returns a usage problem for the prelude to raise.
        func check(_ arguments: [LuaValue]) -> [LuaValue] {
            func argument(_ index: Int) -> LuaValue { index < arguments.count ? arguments[index] : .nil }
            let kind = argument(0).string.flatMap(RulesTestReport.Case.Kind.init(rawValue:)) ?? .error
            let (file, line) = Self.split(location: argument(1).string ?? "", default: self.file)
            let test = argument(2).string
            do throws(UsageError) {
                let identity = try Self.identity(from: argument(3), in: kind)
                let (passed, message): (Bool, String)
                switch kind {
                case .join, .send, .presence:
                    (passed, message) = try decide(kind, identity, argument(4), allowed: argument(5), reasonContains: argument(6), event: argument(7), payload: argument(8))
                case .row:
                    (passed, message) = try decideRow(identity, table: argument(4), row: argument(8), allowed: argument(5), reasonContains: argument(6))
                case .limits:
                    (passed, message) = try compareLimits(identity, argument(4))
                case .error:
                    return [.string("unknown check")]
                }
                record(kind, file: file, line: line, test: test, passed: passed, message)
                return []
            } catch {
                return [.string(error.message)]
            }
        }

        /// The rows of the relations this file replaced with `given_relation`, as loaded.
        private var replacedRelations: [String: (pairs: [(a: String, b: String)], source: RelationInfo.Source)] = [:]

        /// `__sb_given_relation(name, rows)`: replaces a relation's pairs in the engine until
        /// the file ends; returns a usage problem for the prelude to raise.
        func given(_ arguments: [LuaValue]) -> [LuaValue] {
            let usage = "given_relation(name, rows): rows are { {key, member}, ... } or { key = { member, ... } }"
            guard arguments.count == 2, let name = arguments[0].string, !name.isEmpty else {
                return [.string("\(usage); the name must be a relation's name")]
            }
            guard arguments[1].table != nil else { return [.string("\(usage), not \(arguments[1].typeName)")] }
            let rows = LuaBridge.value(arguments[1])
            let pairs: [(a: String, b: String)]
            do throws(Relations.RowsError) {
                // An empty Lua table reads as an empty object or list: no rows.
                pairs = rows == .object(Value.Object()) ? [] : try Relations.parseRows(rows)
            } catch {
                return [.string("given_relation(\"\(name)\", rows): \(error.message)")]
            }
            if replacedRelations[name] == nil {
                replacedRelations[name] = (engine.relationPairs(name), engine.relationInfo[name]?.source ?? .file)
            }
            engine.replaceRelation(name, with: pairs, source: .fixture)
            return []
        }

        /// Puts back the relations this file replaced, for the next file.
        func restoreRelations() {
            for (name, original) in replacedRelations { engine.replaceRelation(name, with: original.pairs, source: original.source) }
            replacedRelations = [:]
        }

        /// `__sb_test_failed(name, where, message)`: an error stopped a `test` block.
        func testFailed(_ arguments: [LuaValue]) -> [LuaValue] {
            let name = arguments.first?.string
            let (file, line) = Self.split(location: arguments.count > 1 ? arguments[1].string ?? "" : "", default: self.file)
            let error = LuaError(.runtime, luaMessage: arguments.count > 2 ? arguments[2].string ?? "" : "")
            if let errorFile = error.file, errorFile == self.file {
                record(.error, file: errorFile, line: error.line, test: name, passed: false, "error: \(error.message)")
            } else {
                record(.error, file: file, line: line, test: name, passed: false, "error: \(error.description)")
            }
            return []
        }

        /// `expect_row(user, table, row, allowed [, reason_contains])`: the table's `read` hook.
        private func decideRow(
            _ identity: Identity, table tableArgument: LuaValue, row rowArgument: LuaValue, allowed allowedArgument: LuaValue,
            reasonContains reasonArgument: LuaValue
        ) throws(UsageError) -> (Bool, String) {
            guard let table = tableArgument.string else {
                throw UsageError("expect_row: the table must be a string such as \"public.form_responses\", got \(tableArgument.typeName)")
            }
            guard rowArgument.table != nil else {
                throw UsageError("expect_row: the row must be a table of column values, e.g. { id = 1, supplier_id = \"s1\" }, got \(rowArgument.typeName)")
            }
            let row = LuaBridge.value(rowArgument)
            return try judge(
                "read of a \(table) row by \(Self.summary(identity))", function: "expect_row", allowed: allowedArgument,
                reasonContains: reasonArgument
            ) { engine.authorizeRow(identity, table: table, row: row) }
        }

        private func decide(
            _ kind: RulesTestReport.Case.Kind, _ identity: Identity, _ channelArgument: LuaValue, allowed allowedArgument: LuaValue,
            reasonContains reasonArgument: LuaValue, event eventArgument: LuaValue, payload payloadArgument: LuaValue
        ) throws(UsageError) -> (Bool, String) {
            let function = "expect_\(kind.rawValue)"
            guard let name = channelArgument.string else {
                throw UsageError("\(function): the channel must be a string, got \(channelArgument.typeName)")
            }
            let who = Self.summary(identity)
            if kind == .send {
                guard let event = eventArgument.string else {
                    throw UsageError("expect_send: the event must be a string, got \(eventArgument.typeName)")
                }
                let payload = payloadArgument.isNil ? nil : LuaBridge.value(payloadArgument)
                return try judge("send of \(event) on \(name) by \(who)", function: function, allowed: allowedArgument, reasonContains: reasonArgument) {
                    do {
                        return engine.authorizeSend(identity, channel: try ChannelName(validating: name), event: event, payload: payload)
                    } catch {
                        return .deny("\(name) is not a valid channel name: \(error)")
                    }
                }
            }
            let what = kind == .presence ? "presence on \(name) by \(who)" : "join of \(name) by \(who)"
            return try judge(what, function: function, allowed: allowedArgument, reasonContains: reasonArgument) {
                do {
                    let channel = try ChannelName(validating: name)
                    return kind == .presence
                        ? engine.authorizePresence(identity, channel: channel) : engine.authorizeJoin(identity, channel: channel)
                } catch {
                    return .deny("\(name) is not a valid channel name: \(error)")
                }
            }
        }

        /// One case: asks `decision` and compares its answer with `allowed` (and a denial's
        /// reason with `reason_contains`); a hook that failed while deciding fails the case.
        private func judge(
            _ what: String, function: String, allowed allowedArgument: LuaValue, reasonContains reasonArgument: LuaValue,
            _ decision: () -> Decision
        ) throws(UsageError) -> (Bool, String) {
            guard let allowed = allowedArgument.boolean else {
                throw UsageError("\(function): allowed must be true or false, got \(allowedArgument.typeName)")
            }
            var reasonContains: String?
            if !reasonArgument.isNil {
                guard let text = reasonArgument.string else {
                    throw UsageError("\(function): reason_contains must be a string, got \(reasonArgument.typeName)")
                }
                guard !allowed else { throw UsageError("\(function): reason_contains only applies when expecting a denial (false)") }
                reasonContains = text
            }
            _ = hookErrors.drain()
            let decided = decision()
            let failures = hookErrors.drain()
            if !failures.isEmpty {
                return (false, "\(what): the rules could not decide because a hook failed: " + failures.map(\.description).joined(separator: "; "))
            }
            switch (decided, allowed) {
            case (.allow, true):
                return (true, "\(what) is allowed")
            case (.allow, false):
                return (false, "expected \(what) to be denied, but it was allowed")
            case (.deny(let reason), true):
                return (false, "expected \(what) to be allowed, but it was denied: \(reason)")
            case (.deny(let reason), false):
                if let reasonContains, !reason.contains(reasonContains) {
                    return (false, "expected \(what) to be denied with a reason containing \"\(reasonContains)\", but the reason was: \(reason)")
                }
                return (true, "\(what) is denied: \(reason)")
            }
        }

        private func compareLimits(_ identity: Identity, _ expected: LuaValue) throws(UsageError) -> (Bool, String) {
            let known = RulesTestRunner.limitNames.joined(separator: ", ")
            guard expected.table != nil, let object = LuaBridge.value(expected).objectValue, !object.isEmpty else {
                throw UsageError("expect_limits(user, limits): limits must be a table with any of \(known), e.g. { max_channels = 3 }")
            }
            let limits = engine.limits(for: identity)
            var mismatches: [String] = []
            var checked: [String] = []
            for member in object.members {
                let actual: Int
                switch member.key {
                case "max_channels": actual = limits.maxChannels
                case "messages_per_minute": actual = limits.messagesPerMinute
                case "max_payload": actual = limits.maxPayloadBytes
                default: throw UsageError("expect_limits: unknown limit \(member.key); use \(known)")
                }
                guard let value = member.value.int64Value else {
                    throw UsageError("expect_limits: \(member.key) must be a whole number, got \(member.value.kindDescription)")
                }
                checked.append("\(member.key) = \(value)")
                if value != Int64(actual) { mismatches.append("\(member.key) = \(value), but it is \(actual)") }
            }
            let who = Self.summary(identity)
            if mismatches.isEmpty { return (true, "limits of \(who): \(checked.joined(separator: ", "))") }
            return (false, "expected \(who) to have " + mismatches.joined(separator: "; "))
        }

        /// The identity a verified token with these claims would give, expiring far in the future.
        static func identity(from user: LuaValue, in kind: RulesTestReport.Case.Kind) throws(UsageError) -> Identity {
            guard user.table != nil, case .object(var claims) = LuaBridge.value(user) else {
                throw UsageError(
                    "expect_\(kind.rawValue): the user must be a table of JWT claims, e.g. { sub = \"u1\", role = \"supplier\", supplier_id = \"s1\" }, got \(user.typeName)")
            }
            if claims["role"] == nil { claims["role"] = .string(RulesTestRunner.defaultRole) }
            guard let role = claims["role"]?.stringValue else {
                throw UsageError("expect_\(kind.rawValue): the user's role must be a string")
            }
            if claims["exp"] == nil { claims["exp"] = .int(Int64(RulesTestRunner.farFutureExpiry)) }
            return Identity(
                subject: claims["sub"]?.stringValue, role: role, tier: claims["tier"]?.stringValue,
                supplierID: claims["supplier_id"]?.stringValue, coupleID: claims["couple_id"]?.stringValue,
                expiresAt: claims["exp"]?.doubleValue ?? RulesTestRunner.farFutureExpiry, claims: claims)
        }

        /// `supplier u1 (supplier_id=s1, tier=paid)`: the role, the `sub`, then the other claims.
        static func summary(_ identity: Identity) -> String {
            var text = identity.role + (identity.subject.map { " \($0)" } ?? "")
            let others = identity.claims.members.filter { !["role", "sub", "exp"].contains($0.key) }
            if !others.isEmpty {
                text += " (" + others.map { "\($0.key)=\(render($0.value))" }.joined(separator: ", ") + ")"
            }
            return text
        }

        private static func render(_ value: Value) -> String {
            switch value {
            case .null: "null"
            case .bool(let bool): String(bool)
            case .number(let text): text
            case .string(let string): string
            case .array(let array): "[" + array.map(render).joined(separator: ",") + "]"
            case .object(let object): "{" + object.members.map { "\($0.key)=\(render($0.value))" }.joined(separator: ",") + "}"
            }
        }

        /// `dir/tests/x.lua:12` into its file and line; just the file (or `fallback`) when there is no line.
        static func split(location: String, default fallback: String) -> (file: String, line: Int?) {
            guard !location.isEmpty else { return (fallback, nil) }
            if let colon = location.lastIndex(of: ":"), let line = Int(location[location.index(after: colon)...]) {
                return (String(location[..<colon]), line)
            }
            return (location, nil)
        }
    }

    /// A test file used `expect_*` wrongly; raised as a Lua error at the test's line.
    struct UsageError: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }
}
