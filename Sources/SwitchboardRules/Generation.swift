import Foundation
import SwitchboardCore
import SwitchboardLua
import Synchronization

/// One loaded rules generation: the validated declarations, the relations, and the Lua lanes
/// holding the hooks. Immutable once built.
final class Generation: Sendable {
    enum HookOwner: String {
        case channel, event, table
    }

    /// Which hook of a declaration runs.
    enum Hook: String, CaseIterable {
        case join, send, presence
        case onPublish = "on_publish"
        case transform
        /// A table's: may this user see this row?
        case read

        var ordinal: Int {
            switch self {
            case .join: 0
            case .send: 1
            case .presence: 2
            case .onPublish: 3
            case .transform: 4
            case .read: 5
            }
        }
    }

    /// The hooks of one lane, bound at load (`__sb_bind`) and called by reference with
    /// (user, ch, msg): join/send/presence hooks themselves, with the function that checks an
    /// answer that is not plain (`LuaState.call(_:answerCheck:arguments:results:)`);
    /// on_publish and transform through a small function that adapts their answer.
    struct BoundHooks {
        typealias Bound = (function: LuaFunctionRef, answerCheck: LuaFunctionRef?)
        private var channels: [Bound?]
        private var events: [Bound?]
        private var tables: [Bound?]

        init(channels: Int, events: Int, tables: Int) {
            self.channels = Array(repeating: nil, count: channels * Hook.allCases.count)
            self.events = Array(repeating: nil, count: events * Hook.allCases.count)
            self.tables = Array(repeating: nil, count: tables * Hook.allCases.count)
        }

        private static func position(_ index: Int, _ hook: Hook) -> Int { (index - 1) * Hook.allCases.count + hook.ordinal }

        func function(_ owner: HookOwner, _ index: Int, _ hook: Hook) -> Bound? {
            let position = Self.position(index, hook)
            switch owner {
            case .channel: return channels.indices.contains(position) ? channels[position] : nil
            case .event: return events.indices.contains(position) ? events[position] : nil
            case .table: return tables.indices.contains(position) ? tables[position] : nil
            }
        }

        mutating func bind(_ owner: HookOwner, _ index: Int, _ hook: Hook, to function: Bound) {
            switch owner {
            case .channel: channels[Self.position(index, hook)] = function
            case .event: events[Self.position(index, hook)] = function
            case .table: tables[Self.position(index, hook)] = function
            }
        }
    }

    /// The read-only `user` and `ch` tables a lane keeps in its Lua state (in the registry, out
    /// of scripts' reach), so that claims or a channel seen again are handed to the hook as the
    /// same table instead of being converted again. Nothing a script does can change a
    /// read-only table, so sharing one between calls leaks nothing from one call to the next.
    ///
    /// Claims are recognised by their storage (an entry retains the claims, so the address
    /// cannot be reused by other claims while the entry lives), channels by name. Each kind has
    /// `capacity` entries, direct-mapped: a hash of the key picks the entry, and a different key
    /// that lands on it replaces it. A decision pays one cheap hash and one comparison, not a
    /// dictionary lookup with a full hash of the channel name.
    struct KeptTables {
        static let capacity = 64
        /// Slots 1...capacity hold `user` tables, capacity+1...2*capacity `ch` tables.
        static let firstChannelSlot = capacity + 1

        enum Use {
            /// Push the table kept in this slot.
            case kept(Int)
            /// Convert the value and keep the table in this slot (recorded once the call succeeds).
            case keep(Int)
            /// Convert the value, keep nothing (claims without storage of their own).
            case convert
        }

        private var users: [(key: UnsafeRawPointer, claims: Value.Object)?] = Array(repeating: nil, count: capacity)
        private var channels: [String?] = Array(repeating: nil, count: capacity)

        /// The address of the claims' storage; nil for claims without a buffer of their own.
        static func key(of claims: Value.Object) -> UnsafeRawPointer? {
            claims.members.withUnsafeBufferPointer { $0.isEmpty ? nil : $0.baseAddress.map(UnsafeRawPointer.init) }
        }

        private static func entry(of key: UnsafeRawPointer) -> Int {
            let address = UInt(bitPattern: key)
            return Int((address >> 4) ^ (address >> 10)) & (capacity - 1)
        }

        private static func entry(of name: String) -> Int { NameTable<Int>.hash(name) & (capacity - 1) }

        /// How to pass the claims at `key`. A `.keep` entry is emptied now: the state may hold a
        /// new table in its slot even if the call then fails.
        mutating func user(_ key: UnsafeRawPointer?) -> Use {
            guard let key else { return .convert }
            let entry = Self.entry(of: key)
            if let kept = users[entry], kept.key == key { return .kept(entry + 1) }
            users[entry] = nil
            return .keep(entry + 1)
        }

        mutating func channel(_ name: String) -> Use {
            let entry = Self.entry(of: name)
            if let kept = channels[entry], kept == name { return .kept(Self.firstChannelSlot + entry) }
            channels[entry] = nil
            return .keep(Self.firstChannelSlot + entry)
        }

        /// Records what a successful call kept.
        mutating func kept(user: Use, key: UnsafeRawPointer?, claims: Value.Object, channel: Use, name: String) {
            kept(user: user, key: key, claims: claims)
            if case .keep(let slot) = channel { channels[slot - Self.firstChannelSlot] = name }
        }

        /// Records the `user` table a successful call kept.
        mutating func kept(user: Use, key: UnsafeRawPointer?, claims: Value.Object) {
            if case .keep(let slot) = user, let key { users[slot - 1] = (key, claims) }
        }
    }

    /// What `emit(channel, event, payload)` calls collect during one `on_publish` call. Only
    /// touched while the lane's lock is held (the host function runs inside the locked call);
    /// the mutex makes that visible to the compiler.
    final class EmitSink: Sendable {
        struct State {
            var open = false
            var emitted: [DerivedEvent] = []
        }
        static let maxPerCall = 16
        let state = Mutex(State())
    }

    /// One Lua state, used by one caller at a time, with its bound hooks and kept tables.
    final class Lane: Sendable {
        struct State {
            let lua: LuaState
            /// Collects `emit` calls while an `on_publish` hook runs on this lane.
            let emits: EmitSink
            var hooks: BoundHooks
            var tables = KeptTables()

            init(lua: LuaState, emits: EmitSink, hooks: BoundHooks) {
                self.lua = lua
                self.emits = emits
                self.hooks = hooks
            }
        }

        let state: Mutex<State>
        init(_ state: consuming sending State) { self.state = Mutex(state) }
    }

    let number: Int
    let rules: RuleSet
    let relations: RelationStore
    let files: [String]
    /// A digest of the rule files' names and contents (FNV-1a, hex): equal on two servers
    /// loading the same rules, so a cluster can tell when its nodes disagree.
    let digest: String
    let loadedAt: Date
    private let lanes: [Lane]
    private let nextLane = Atomic<Int>(0)

    private init(number: Int, rules: RuleSet, relations: RelationStore, files: [String], digest: String, lanes: [Lane]) {
        self.number = number
        self.digest = digest
        self.rules = rules
        self.relations = relations
        self.files = files
        self.lanes = lanes
        self.loadedAt = Date()
    }

    /// The rule files of a directory: every `*.lua` below it in path order, except `tests/`.
    static func ruleFiles(in directory: URL) throws(RulesError) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) else {
            throw RulesError(.unreadable, "the rules directory \(directory.path) does not exist")
        }
        guard isDirectory.boolValue else {
            throw RulesError(.unreadable, "\(directory.path) is a file; the rules need a directory of *.lua files")
        }
        guard let walker = FileManager.default.enumerator(atPath: directory.path) else {
            throw RulesError(.unreadable, "the rules directory \(directory.path) cannot be read")
        }
        var files: [String] = []
        while let path = walker.nextObject() as? String {
            if path == "tests" || path.hasPrefix("tests/") { continue }
            if path.hasSuffix(".lua") { files.append(path) }
        }
        if files.isEmpty {
            throw RulesError(.unreadable, "the rules directory \(directory.path) has no *.lua files, so every join would be denied")
        }
        return files.sorted()
    }

    /// Loads, runs and validates everything; nothing is returned unless all of it is sound.
    static func load(from directory: URL, number: Int, options: RulesEngine.Options) -> Result<Generation, RulesLoadError> {
        let files: [String]
        var sources: [(name: String, text: String)] = []
        do throws(RulesError) {
            files = try ruleFiles(in: directory)
            for file in files {
                guard let text = try? String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8) else {
                    throw RulesError(.unreadable, "cannot be read as UTF-8 text", at: file)
                }
                sources.append((chunkName(directory: directory, file: file), text))
            }
        } catch {
            return .failure(RulesLoadError(errors: [error]))
        }
        let relations: RelationStore
        switch Relations.load(from: directory) {
        case .success(let loaded): relations = RelationStore(loaded)
        case .failure(let errors): return .failure(errors)
        }

        var lanes: [Lane] = []
        var ruleSet: RuleSet?
        for _ in 0..<max(1, options.lanes) {
            let state: LuaState
            let emits = EmitSink()
            let bind: LuaFunctionRef
            do {
                state = try makeState(options: options, relations: relations, emits: emits)
                try state.load(source: Prelude.source, chunkName: Prelude.chunkName)
                // Read before any rule file runs, so that no rule can stand in for it.
                guard let function = try state.globalValue("__sb_bind")?.function else {
                    throw LuaError(.runtime, "the prelude defines no __sb_bind")
                }
                bind = function
                try state.setGlobal("__sb_bind", .nil)
            } catch {
                return .failure(RulesLoadError(errors: [RulesError(.loadFailed, "the Lua host could not start: \(error)")]))
            }
            var errors: [RulesError] = []
            for source in sources {
                do {
                    try state.load(source: source.text, chunkName: source.name)
                } catch {
                    let message = error.code == .syntax ? "syntax error: \(error.message)" : error.message
                    errors.append(RulesError(.loadFailed, message, at: error.location ?? source.name))
                }
            }
            if !errors.isEmpty { return .failure(RulesLoadError(errors: errors)) }
            let rules: RuleSet
            if let ruleSet {
                rules = ruleSet
            } else {
                // The declarations are read from the first lane; the other lanes load the same files.
                let declarations: Value?
                do {
                    declarations = try state.call(global: "__sb_declarations", []).first.map(LuaBridge.value)
                } catch {
                    return .failure(RulesLoadError(errors: [RulesError(.loadFailed, "reading the declarations failed: \(error)")]))
                }
                switch RuleSet.build(from: declarations ?? .null) {
                case .failure(let errors): return .failure(errors)
                case .success(let built): rules = built
                }
                ruleSet = rules
            }
            do throws(RulesError) {
                let hooks = try bindHooks(of: rules, in: state, with: bind)
                lanes.append(Lane(Lane.State(lua: state, emits: emits, hooks: hooks)))
            } catch {
                return .failure(RulesLoadError(errors: [error]))
            }
        }
        guard let ruleSet else { return .failure(RulesLoadError(errors: [RulesError(.loadFailed, "no lane was loaded")])) }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for source in sources {
            for byte in source.name.utf8 + [0] + source.text.utf8 + [0] {
                hash ^= UInt64(byte)
                hash &*= 0x100_0000_01b3
            }
        }
        let digest = String(hash, radix: 16)
        return .success(Generation(number: number, rules: ruleSet, relations: relations, files: files, digest: digest, lanes: lanes))
    }

    /// Binds every declared hook of `rules` in one lane's state.
    private static func bindHooks(of rules: RuleSet, in lua: LuaState, with bind: LuaFunctionRef) throws(RulesError) -> BoundHooks {
        var hooks = BoundHooks(channels: rules.channels.count, events: rules.events.count, tables: rules.tables.count)
        var wanted: [(HookOwner, Int, Hook, String)] = []
        for channel in rules.channels {
            if channel.hasJoin { wanted.append((.channel, channel.index, .join, channel.location)) }
            if channel.hasSend { wanted.append((.channel, channel.index, .send, channel.location)) }
            if channel.hasPresenceHook { wanted.append((.channel, channel.index, .presence, channel.location)) }
        }
        for event in rules.events.values {
            if event.hasOnPublish { wanted.append((.event, event.index, .onPublish, event.location)) }
            if event.hasTransform { wanted.append((.event, event.index, .transform, event.location)) }
        }
        for table in rules.tables.values { wanted.append((.table, table.index, .read, table.location)) }
        for (owner, index, hook, location) in wanted {
            do throws(LuaError) {
                let bound = try lua.call(bind, [.string(owner.rawValue), .integer(Int64(index)), .string(hook.rawValue)])
                guard let function = bound.first?.function else {
                    throw LuaError(.runtime, "the \(hook.rawValue) hook is not a function any more")
                }
                hooks.bind(owner, index, hook, to: (function, bound.count > 1 ? bound[1].function : nil))
            } catch {
                throw RulesError(.loadFailed, "binding the \(hook.rawValue) hook failed: \(error.message)", at: location)
            }
        }
        return hooks
    }

    /// `Rules/channels.lua` style names, so errors read like the operator's paths.
    private static func chunkName(directory: URL, file: String) -> String {
        let base = directory.lastPathComponent
        return base.isEmpty ? file : "\(base)/\(file)"
    }

    private static func makeState(options: RulesEngine.Options, relations: RelationStore, emits: EmitSink) throws -> LuaState {
        var configuration = LuaConfiguration()
        configuration.memoryLimitBytes = options.memoryLimitBytes
        configuration.instructionBudget = options.instructionBudget
        configuration.budgetWatchdog = options.budgetWatchdog
        let onPrint = options.onPrint
        configuration.print = { onPrint($0) }
        let state = try LuaState(configuration: configuration)
        state.register("member") { arguments throws(LuaError) in
            guard arguments.count == 3, let relation = arguments[0].string else {
                throw LuaError(.runtime, "member(relation, a, b) needs a relation name and two ids")
            }
            guard let a = LuaBridge.id(arguments[1]), let b = LuaBridge.id(arguments[2]) else { return [.boolean(false)] }
            return [.boolean(relations.contains(relation, a, b))]
        }
        state.register("related") { arguments throws(LuaError) in
            guard arguments.count == 2, let relation = arguments[0].string else {
                throw LuaError(.runtime, "related(relation, a) needs a relation name and an id")
            }
            guard let a = LuaBridge.id(arguments[1]) else { return [.table(LuaTable(array: []))] }
            return [.table(LuaTable(array: relations.related(relation, a).map(LuaValue.string)))]
        }
        state.register("emit") { arguments throws(LuaError) in
            guard arguments.count >= 2, let channel = arguments[0].string, let event = arguments[1].string else {
                throw LuaError(.runtime, "emit(channel, event, payload) needs a channel name and an event name")
            }
            let payload = arguments.count > 2 ? LuaBridge.value(arguments[2]) : .object(.init())
            let problem: String? = emits.state.withLock { sink in
                guard sink.open else { return "emit is only available inside an event's on_publish hook" }
                guard sink.emitted.count < EmitSink.maxPerCall else {
                    return "on_publish may emit at most \(EmitSink.maxPerCall) events per message"
                }
                sink.emitted.append(DerivedEvent(channel: channel, event: event, payload: payload))
                return nil
            }
            if let problem { throw LuaError(.runtime, problem) }
            return []
        }
        return state
    }

    /// Runs one hook on a free lane and turns its answer into a decision. A hook that fails
    /// denies, and the failure goes to `onHookError` with the rule file and line.
    ///
    /// `user` and `ch` are read-only tables (nested tables too): a hook can read them, iterate
    /// them and keep them, but not change them, so the lane hands the same table to every call
    /// with the same claims (or channel) instead of converting them again (`KeptTables`).
    /// `msg` (for `send`, `on_publish`, `transform`) is a fresh, writable table per call.
    func hook(
        _ owner: HookOwner, _ index: Int, _ hook: Hook, _ identity: Identity, channel: ChannelName,
        rule: RuleSet.Channel, event: (name: String, payload: Value?)?, options: RulesEngine.Options
    ) -> Decision {
        run(owner, index, hook, identity, channel: channel, rule: rule, event: event, options: options).decision
    }

    /// Runs an event's `on_publish` hook and returns what it emitted (nothing when it failed;
    /// the failure goes to `onHookError`).
    func onPublish(
        _ eventIndex: Int, _ identity: Identity, channel: ChannelName, rule: RuleSet.Channel, event: (name: String, payload: Value?),
        options: RulesEngine.Options
    ) -> [DerivedEvent] {
        let outcome = run(.event, eventIndex, .onPublish, identity, channel: channel, rule: rule, event: event, options: options)
        return outcome.decision == .allow ? outcome.emitted : []
    }

    /// Runs an event's `transform` hook: the payload it returned (nil to keep the original),
    /// or nil with `failed` when the hook failed (reported through `onHookError`).
    func transform(
        _ eventIndex: Int, _ identity: Identity, channel: ChannelName, rule: RuleSet.Channel, event: (name: String, payload: Value?),
        options: RulesEngine.Options
    ) -> (payload: Value?, failed: Bool) {
        let outcome = run(.event, eventIndex, .transform, identity, channel: channel, rule: rule, event: event, options: options)
        return (outcome.returned, outcome.decision != .allow)
    }

    /// Runs a table's `read` hook with (user, row): may `identity` see `row`? A hook that fails
    /// denies, and the failure goes to `onHookError`. `row` is a fresh read-only table per call.
    func read(_ table: RuleSet.Table, _ identity: Identity, row: Value, options: RulesEngine.Options) -> Decision {
        let lane = lanes[nextLane.wrappingAdd(1, ordering: .relaxed).oldValue % lanes.count]
        let answer: (allowed: Bool, reason: String?)
        do throws(LuaError) {
            answer = try lane.state.withLock { lane throws(LuaError) in
                guard let bound = lane.hooks.function(.table, table.index, .read) else { return (false, "no read hook") }
                let userKey = KeptTables.key(of: identity.claims)
                let user = lane.tables.user(userKey)
                let result: (allowed: Bool, reason: String?) = try lane.lua.call(bound.function, answerCheck: bound.answerCheck) {
                    arguments throws(LuaError) in
                    try Self.writeUser(identity, user, into: &arguments)
                    try LuaBridge.write(row.objectValue ?? Value.Object(), into: &arguments, readOnly: true)
                } results: { results in
                    if results.boolean(at: 0) == true { return (true, nil) }
                    return (false, results.string(at: 1))
                }
                lane.tables.kept(user: user, key: userKey, claims: identity.claims)
                return result
            }
        } catch {
            options.onHookError(RulesError(.hookFailed, "read for \(table.name): \(error.message)", at: error.location ?? table.location))
            return .deny("the rules could not decide (the operator can see why in the server log)")
        }
        if answer.allowed { return .allow }
        if let reason = answer.reason, !reason.isEmpty { return .deny(reason) }
        return .deny("read refused by the rules for \(table.name)")
    }

    /// The `user` argument: the lane's kept table for these claims, or the claims converted
    /// (and kept, when `use` says so).
    private static func writeUser(_ identity: Identity, _ use: KeptTables.Use, into arguments: inout LuaArguments) throws(LuaError) {
        switch use {
        case .kept(let slot):
            try arguments.writeKept(slot)
        case .keep(let slot):
            try LuaBridge.write(identity.claims, into: &arguments, readOnly: true, keepingAs: slot)
        case .convert:
            try LuaBridge.write(identity.claims, into: &arguments, readOnly: true)
        }
    }

    private func run(
        _ owner: HookOwner, _ index: Int, _ hook: Hook, _ identity: Identity, channel: ChannelName,
        rule: RuleSet.Channel, event: (name: String, payload: Value?)?, options: RulesEngine.Options
    ) -> (decision: Decision, emitted: [DerivedEvent], returned: Value?) {
        let lane = lanes[nextLane.wrappingAdd(1, ordering: .relaxed).oldValue % lanes.count]
        let answer: (allowed: Bool, reason: String?)
        var emitted: [DerivedEvent] = []
        var returned: Value?
        do throws(LuaError) {
            answer = try lane.state.withLock { lane throws(LuaError) in
                let collecting = hook == .onPublish
                if collecting { lane.emits.state.withLock { $0 = .init(open: true, emitted: []) } }
                defer {
                    if collecting {
                        emitted = lane.emits.state.withLock { sink in
                            defer { sink = .init() }
                            return sink.emitted
                        }
                    }
                }
                guard let bound = lane.hooks.function(owner, index, hook) else {
                    return (false, "no \(hook.rawValue) hook")
                }
                // user and ch are read-only tables, kept per lane for claims and channels seen again.
                let userKey = KeptTables.key(of: identity.claims)
                let user = lane.tables.user(userKey)
                let ch = lane.tables.channel(channel.rawValue)
                let result: (allowed: Bool, reason: String?) = try lane.lua.call(bound.function, answerCheck: bound.answerCheck) { arguments throws(LuaError) in
                    try Self.writeUser(identity, user, into: &arguments)
                    if case .kept(let slot) = ch {
                        try arguments.writeKept(slot)
                    } else {
                        // ch: the captures, then name and kind (which win over captures of those names).
                        if case .keep(let slot) = ch { try arguments.beginReadOnlyTable(keepingAs: slot) } else { try arguments.beginReadOnlyTable() }
                        try rule.pattern.forEachCapture(in: channel) { name, value throws(LuaError) in
                            try arguments.key(name)
                            try arguments.write(value)
                        }
                        try arguments.key("name")
                        try arguments.write(channel.rawValue)
                        try arguments.key("kind")
                        try arguments.write(rule.kind.rawValue)
                        try arguments.endTable()
                    }
                    if let event {
                        try arguments.beginTable()
                        try arguments.key("event")
                        try arguments.write(event.name)
                        try arguments.key("payload")
                        try LuaBridge.write(event.payload ?? .null, into: &arguments)
                        try arguments.endTable()
                    }
                } results: { results in
                    if hook == .transform {
                        let value = results.value(at: 1)
                        returned = value.isNil ? nil : LuaBridge.value(value)
                    }
                    if results.boolean(at: 0) == true { return (true, nil) }
                    return (false, results.string(at: 1))
                }
                lane.tables.kept(user: user, key: userKey, claims: identity.claims, channel: ch, name: channel.rawValue)
                return result
            }
        } catch {
            options.onHookError(
                RulesError(.hookFailed, "\(hook.rawValue) for \(channel): \(error.message)", at: error.location ?? rule.location))
            return (.deny("the rules could not decide (the operator can see why in the server log)"), [], nil)
        }
        if answer.allowed { return (.allow, emitted, returned) }
        if let reason = answer.reason, !reason.isEmpty { return (.deny(reason), emitted, nil) }
        return (.deny("\(hook.rawValue) refused by the rules for \(channel)"), emitted, nil)
    }
}
