import Foundation
import SwitchboardCore
import SwitchboardLua
import Synchronization

/// One loaded rules generation: the validated declarations, the relations, and the Lua lanes
/// holding the hooks. Immutable once built.
final class Generation: Sendable {
    enum HookOwner: String {
        case channel, event
    }

    /// Which hook of a declaration runs.
    enum Hook: String {
        case join, send, presence
        case onPublish = "on_publish"
        case transform
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

    /// One Lua state, used by one caller at a time, with its `__sb_hook` dispatcher.
    final class Lane: Sendable {
        struct State {
            let lua: LuaState
            /// `__sb_hook`, read once at load so that a call needs no global lookup.
            let dispatch: LuaFunctionRef
            /// Collects `emit` calls while an `on_publish` hook runs on this lane.
            let emits: EmitSink
            /// The claims whose `user` table the state keeps in `userSlot`, if any.
            var keptClaims: Value.Object?
            /// The rule index and channel whose `ch` table the state keeps in `channelSlot`, if any.
            var keptChannel: (rule: Int, name: String)?
            /// The previous call's claims and channel: a template is only kept for claims or a
            /// channel seen twice in a row, so calls that never repeat pay nothing for it.
            var lastClaims: Value.Object?
            var lastChannel: (rule: Int, name: String)?

            init(lua: LuaState, dispatch: LuaFunctionRef, emits: EmitSink) {
                self.lua = lua
                self.dispatch = dispatch
                self.emits = emits
            }
        }

        /// Kept-table slots (`LuaArguments.beginTable(keepingAs:)`).
        static let userSlot = 1
        static let channelSlot = 2

        let state: Mutex<State>
        init(_ state: consuming sending State) { self.state = Mutex(state) }
    }

    let number: Int
    let rules: RuleSet
    let relations: Relations
    let files: [String]
    let loadedAt: Date
    private let lanes: [Lane]
    private let nextLane = Atomic<Int>(0)

    private init(number: Int, rules: RuleSet, relations: Relations, files: [String], lanes: [Lane]) {
        self.number = number
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
        let relations: Relations
        switch Relations.load(from: directory) {
        case .success(let loaded): relations = loaded
        case .failure(let errors): return .failure(errors)
        }

        var lanes: [Lane] = []
        var declarations: Value?
        for laneIndex in 0..<max(1, options.lanes) {
            let state: LuaState
            let emits = EmitSink()
            do {
                state = try makeState(options: options, relations: relations, emits: emits)
                try state.load(source: Prelude.source, chunkName: Prelude.chunkName)
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
            if laneIndex == 0 {
                do {
                    declarations = try state.call(global: "__sb_declarations", []).first.map(LuaBridge.value)
                } catch {
                    return .failure(RulesLoadError(errors: [RulesError(.loadFailed, "reading the declarations failed: \(error)")]))
                }
            }
            let dispatch: LuaFunctionRef
            do {
                guard let function = try state.globalValue("__sb_hook")?.function else {
                    return .failure(RulesLoadError(errors: [RulesError(.loadFailed, "the rules replaced the global __sb_hook")]))
                }
                dispatch = function
            } catch {
                return .failure(RulesLoadError(errors: [RulesError(.loadFailed, "reading __sb_hook failed: \(error)")]))
            }
            lanes.append(Lane(Lane.State(lua: state, dispatch: dispatch, emits: emits)))
        }
        switch RuleSet.build(from: declarations ?? .null) {
        case .failure(let errors):
            return .failure(errors)
        case .success(let rules):
            return .success(Generation(number: number, rules: rules, relations: relations, files: files, lanes: lanes))
        }
    }

    /// `Rules/channels.lua` style names, so errors read like the operator's paths.
    private static func chunkName(directory: URL, file: String) -> String {
        let base = directory.lastPathComponent
        return base.isEmpty ? file : "\(base)/\(file)"
    }

    private static func makeState(options: RulesEngine.Options, relations: Relations, emits: EmitSink) throws -> LuaState {
        var configuration = LuaConfiguration()
        configuration.memoryLimitBytes = options.memoryLimitBytes
        configuration.instructionBudget = options.instructionBudget
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
    /// Every call gives the hook fresh `user`, `ch` (and for `send`, `msg`) tables; no table
    /// is shared between calls, so nothing a hook stores in or on them (fields, metatables,
    /// references kept in globals) can reach another call's decision. To make repeats cheap,
    /// a lane keeps a template of a `user` or `ch` table (in the Lua registry, out of scripts'
    /// reach) once the same claims or channel came twice in a row; while they match, the C side
    /// copies the template instead of converting and interning every claim again. Calls that
    /// never repeat only pay a comparison. A failed call forgets the templates.
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
                let claimsKept = lane.keptClaims.map { Self.same($0, identity.claims) } ?? false
                let keepClaims = !claimsKept && (lane.lastClaims.map { Self.same($0, identity.claims) } ?? false)
                let channelKept = lane.keptChannel.map { $0.rule == rule.index && $0.name == channel.rawValue } ?? false
                let keepChannel = !channelKept && (lane.lastChannel.map { $0.rule == rule.index && $0.name == channel.rawValue } ?? false)
                let lua = lane.lua
                let result: (allowed: Bool, reason: String?)
                do throws(LuaError) {
                    result = try lua.call(lane.dispatch) { arguments throws(LuaError) in
                        try arguments.write(owner.rawValue)
                        try arguments.write(Int64(index))
                        try arguments.write(hook.rawValue)
                        if claimsKept {
                            try arguments.writeKept(Lane.userSlot)
                        } else {
                            try LuaBridge.write(identity.claims, into: &arguments, keepingAs: keepClaims ? Lane.userSlot : nil)
                        }
                        if channelKept {
                            try arguments.writeKept(Lane.channelSlot)
                        } else {
                            // ch: the captures, then name and kind (which win over captures of those names).
                            if keepChannel { try arguments.beginTable(keepingAs: Lane.channelSlot) } else { try arguments.beginTable() }
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
                } catch {
                    lane.keptClaims = nil
                    lane.keptChannel = nil
                    lane.lastClaims = nil
                    lane.lastChannel = nil
                    throw error
                }
                if keepClaims { lane.keptClaims = identity.claims }
                if keepChannel { lane.keptChannel = (rule.index, channel.rawValue) }
                if !claimsKept && !keepClaims { lane.lastClaims = identity.claims }
                if !channelKept && !keepChannel { lane.lastChannel = (rule.index, channel.rawValue) }
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

    /// Equal claims, answering at once when both share one buffer (the same token's identity).
    private static func same(_ a: Value.Object, _ b: Value.Object) -> Bool {
        let shared = a.members.withUnsafeBufferPointer { a in
            b.members.withUnsafeBufferPointer { b in a.baseAddress == b.baseAddress && a.count == b.count }
        }
        return shared || a == b
    }
}
