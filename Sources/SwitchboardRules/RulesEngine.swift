import Foundation
import SwitchboardCore
import SwitchboardLua
import Synchronization

/// The `Policy` programmed by a rules directory of Lua files.
///
/// A generation is loaded into one Lua state per lane (lanes = cores), validated completely,
/// and only then made current; decisions pick a lane round-robin and hold its lock for the one
/// call (never across an await). A broken directory never replaces a working generation.
public final class RulesEngine: Policy, Sendable {
    /// Tunables with the defaults the server uses.
    public struct Options: Sendable {
        /// Lua states per generation; decisions on different lanes run in parallel.
        public var lanes: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)
        /// Instructions one hook call may run before it is stopped (and denies). With
        /// `budgetWatchdog` they are counted once a call has run for about a millisecond.
        public var instructionBudget: Int = 200_000
        /// Whether the Lua host's watchdog arms the budget only for calls that run past a
        /// millisecond (default; `LuaConfiguration.budgetWatchdog`), instead of counting every
        /// instruction of every call, which makes each decision ~15-20% slower.
        public var budgetWatchdog: Bool = true
        /// Memory one lane's Lua state may hold.
        public var memoryLimitBytes: Int = 32 << 20
        /// Told about every hook that failed while deciding (the decision was a denial).
        public var onHookError: @Sendable (RulesError) -> Void = { _ in }
        /// Where Lua's `print` goes.
        public var onPrint: @Sendable (String) -> Void = { _ in }

        public init() {}
    }

    /// What the admin endpoint and `rules check` show.
    public struct Status: Sendable {
        public let generation: Int
        public let files: [String]
        /// A digest of the files' names and contents, equal wherever the same rules are loaded.
        public let digest: String
        public let loadedAt: Date
        /// The errors of the last reload that failed, if the latest attempt failed.
        public let lastErrors: [RulesError]
    }

    public let directory: URL
    private let options: Options
    /// The generation in force, its view (made once: a decision holds it without allocating),
    /// and the errors of the last failed reload.
    private let state: Mutex<(current: Generation, view: RulesView, lastErrors: [RulesError])>

    /// Loads the directory; throws every problem found when it cannot.
    public init(directory: String, options: Options = Options()) throws(RulesLoadError) {
        self.directory = URL(fileURLWithPath: directory)
        self.options = options
        switch Generation.load(from: self.directory, number: 1, options: options) {
        case .success(let generation):
            state = Mutex((generation, RulesView(generation: generation, options: options), []))
        case .failure(let failure):
            throw failure
        }
    }

    /// Builds the next generation and swaps it in when it is valid; otherwise keeps the current
    /// one and returns the errors. In-flight decisions finish on the generation they started on.
    @discardableResult
    public func reload() -> Result<Int, RulesLoadError> {
        prepare().map { activate($0) }
    }

    /// A generation loaded and checked, not yet in force: what a reload builds before it fills
    /// the relations its rules declare from the database.
    public struct Candidate: Sendable {
        let generation: Generation
        /// Its declarations.
        public var rules: RuleSet { generation.rules }
        public var number: Int { generation.number }
        /// Replaces a relation's pairs before the generation is in force.
        public func replaceRelation(_ relation: String, with pairs: [(a: String, b: String)], source: RelationInfo.Source) {
            generation.relations.replace(relation, with: pairs, source: source)
        }

        /// Gives this generation the pairs `engine`'s generation in force holds for `relation`,
        /// with their source and refresh time (a database relation whose query cannot run now);
        /// false when the generation in force has no such relation.
        public func carryOver(_ relation: String, from engine: RulesEngine) -> Bool {
            let serving = engine.current.relations
            guard let info = serving.info[relation] else { return false }
            generation.relations.replace(relation, with: serving.pairs(of: relation), source: info.source, refreshedAt: info.refreshedAt)
            return true
        }
    }

    /// Loads the next generation without putting it in force; on failure records the errors
    /// (`status.lastErrors`) and the current generation keeps serving.
    public func prepare() -> Result<Candidate, RulesLoadError> {
        let number = state.withLock { $0.current.number } + 1
        switch Generation.load(from: directory, number: number, options: options) {
        case .success(let generation):
            return .success(Candidate(generation: generation))
        case .failure(let failure):
            recordFailure(failure.errors)
            return .failure(failure)
        }
    }

    /// Puts a prepared generation in force; returns its number.
    @discardableResult
    public func activate(_ candidate: Candidate) -> Int {
        let view = RulesView(generation: candidate.generation, options: options)
        state.withLock { $0 = (candidate.generation, view, []) }
        return candidate.number
    }

    /// Records why a prepared generation was not put in force (the current one keeps serving).
    public func recordFailure(_ errors: [RulesError]) {
        state.withLock { $0.lastErrors = errors }
    }

    /// Replaces every pair of `relation` in the current generation, effective for the next
    /// decision, without a reload (a reload loads the rules directory's relations afresh).
    /// Returns the members of the pairs removed.
    @discardableResult
    public func replaceRelation(
        _ relation: String, with pairs: [(a: String, b: String)], source: RelationInfo.Source = .database
    ) -> Set<String> {
        current.relations.replace(relation, with: pairs, source: source)
    }

    /// Replaces the pairs of `keys` only in `relation` of the current generation; returns the
    /// members those keys lost.
    @discardableResult
    public func replaceRelation(
        _ relation: String, keys: Set<String>, with pairs: [(a: String, b: String)], source: RelationInfo.Source = .database
    ) -> Set<String> {
        current.relations.replace(relation, keys: keys, with: pairs, source: source)
    }

    /// The current generation's relations: source, size and last refresh of each.
    public var relationInfo: [String: RelationInfo] { current.relations.info }

    /// Every pair of `relation` in the current generation.
    public func relationPairs(_ relation: String) -> [(a: String, b: String)] { current.relations.pairs(of: relation) }

    public var status: Status {
        state.withLock { Status(generation: $0.current.number, files: $0.current.files, digest: $0.current.digest, loadedAt: $0.current.loadedAt, lastErrors: $0.lastErrors) }
    }

    /// The current generation's declarations.
    public var rules: RuleSet { current.rules }

    private var current: Generation { state.withLock { $0.current } }

    // MARK: Policy (each call answered wholly by the generation in force when it starts)

    /// The generation in force, as a `Policy` that keeps answering from it after a reload.
    public func pinned() -> any Policy { view }

    private var view: RulesView { state.withLock { $0.view } }

    public func limits(for identity: Identity) -> Limits { view.limits(for: identity) }
    public func authorizeJoin(_ identity: Identity, channel: ChannelName) -> Decision { view.authorizeJoin(identity, channel: channel) }
    public func authorizeSend(_ identity: Identity, channel: ChannelName, event: String, payload: Value?) -> Decision {
        view.authorizeSend(identity, channel: channel, event: event, payload: payload)
    }
    public func checkMessage(channel: ChannelName, event: String, payload: Value?) -> Decision {
        view.checkMessage(channel: channel, event: event, payload: payload)
    }
    public func eventPolicy(_ event: String, channel: ChannelName) -> EventPolicy { view.eventPolicy(event, channel: channel) }
    public func history(for channel: ChannelName) -> HistoryRetention? { view.history(for: channel) }
    public func transform(_ event: String, payload: Value?, on channel: ChannelName, by identity: Identity) -> Transformed {
        view.transform(event, payload: payload, on: channel, by: identity)
    }
    public func derivedEvents(of event: String, payload: Value?, on channel: ChannelName, by identity: Identity) -> [(ChannelName, DerivedEvent)] {
        view.derivedEvents(of: event, payload: payload, on: channel, by: identity)
    }
    public func hasRowRule(table: String) -> Bool { view.hasRowRule(table: table) }
    public func authorizeRow(_ identity: Identity, table: String, row: Value) -> Decision { view.authorizeRow(identity, table: table, row: row) }
    public func authorizePresence(_ identity: Identity, channel: ChannelName) -> Decision { view.authorizePresence(identity, channel: channel) }

    /// Decided wholly by the generation in force when it starts; the decision's `rules` is that
    /// generation, for the message's `transform` and `on_publish`.
    public func decidePush(
        _ identity: Identity, channel: ChannelName, event: String, payload: Value?, source: PushSource, sizeOver: (_ limit: Int) -> Int?
    ) -> PushDecision {
        view.decidePush(identity, channel: channel, event: event, payload: payload, source: source, sizeOver: sizeOver)
    }

    // MARK: Checks every generation shares

    static func checkCatalog(_ rules: RuleSet, channel: ChannelName, event: String, payload: Value?) -> Decision {
        if let declared = rules.eventTable[event] {
            guard declared.on.contains(where: { $0.matches(channel) }) else {
                return .deny("event \(event) is not allowed on \(channel)")
            }
            if let problem = checkFields(of: declared, payload: payload) { return .deny(problem) }
        } else if !rules.allowUndeclaredEvents {
            return .deny("event \(event) is not declared in the rules")
        }
        return .allow
    }

    static func problem(with emit: DerivedEvent, on target: ChannelName, in rules: RuleSet) -> String? {
        guard rules.rule(for: target) != nil else { return "no rule matches channel \(target)" }
        if let declared = rules.eventTable[emit.event] {
            guard declared.on.contains(where: { $0.matches(target) }) else { return "event \(emit.event) is not allowed on \(target)" }
            return checkFields(of: declared, payload: emit.payload)
        }
        return rules.allowUndeclaredEvents ? nil : "event \(emit.event) is not declared in the rules"
    }

    /// The first problem with `payload` against the event's declared fields, if any.
    static func checkFields(of event: RuleSet.Event, payload: Value?) -> String? {
        guard !event.fields.isEmpty else { return nil }
        guard let object = payload?.objectValue else {
            return "event \(event.name) needs an object payload with fields \(event.fields.map(\.name).joined(separator: ", "))"
        }
        for field in event.fields where !field.type.accepts(object[field.name]) {
            let found = object[field.name]?.kindDescription ?? "nothing"
            return "event \(event.name): field \(field.name) must be \(field.type), got \(found)"
        }
        return nil
    }
}

/// One rules generation as a `Policy`: every answer comes from that generation, however many
/// reloads happen meanwhile. `RulesEngine` answers each call from a view of the generation in
/// force; a push's decision keeps its view for the message's later hooks.
final class RulesView: Policy {
    let generation: Generation
    let options: RulesEngine.Options

    init(generation: Generation, options: RulesEngine.Options) {
        self.generation = generation
        self.options = options
    }

    func decidePush(
        _ identity: Identity, channel: ChannelName, event: String, payload: Value?, source: PushSource, sizeOver: (_ limit: Int) -> Int?
    ) -> PushDecision {
        composedPushDecision(
            identity, channel: channel, event: event, payload: payload, source: source, generation: generation.number, sizeOver: sizeOver)
    }

    func limits(for identity: Identity) -> Limits {
        generation.rules.limits(forTier: identity.tier)
    }

    func authorizeJoin(_ identity: Identity, channel: ChannelName) -> Decision {
        guard let rule = generation.rules.rule(for: channel) else {
            return .deny("no rule matches channel \(channel)")
        }
        if !rule.hasJoin {
            return rule.kind == .broadcast ? .allow : .deny("channel \(channel) has no join rule")
        }
        return generation.hook(.channel, rule.index, .join, identity, channel: channel, rule: rule, event: nil, options: options)
    }

    func authorizeSend(_ identity: Identity, channel: ChannelName, event: String, payload: Value?) -> Decision {
        guard let rule = generation.rules.rule(for: channel) else {
            return .deny("no rule matches channel \(channel)")
        }
        if case .deny(let why) = RulesEngine.checkCatalog(generation.rules, channel: channel, event: event, payload: payload) { return .deny(why) }
        if rule.hasSend {
            return generation.hook(
                .channel, rule.index, .send, identity, channel: channel, rule: rule, event: (event, payload), options: options)
        }
        if rule.kind == .broadcast { return .deny("\(channel) is read-only") }
        return generation.hook(.channel, rule.index, .join, identity, channel: channel, rule: rule, event: nil, options: options)
    }

    /// A message that no user sends (a database row): a rule must match the channel, and the
    /// event catalog's `on` and fields must hold (or undeclared events be allowed); no hook runs.
    func checkMessage(channel: ChannelName, event: String, payload: Value?) -> Decision {
        guard generation.rules.rule(for: channel) != nil else { return .deny("no rule matches channel \(channel)") }
        return RulesEngine.checkCatalog(generation.rules, channel: channel, event: event, payload: payload)
    }

    /// The declared event's batch policy and rate limit; undeclared events are immediate.
    func eventPolicy(_ event: String, channel: ChannelName) -> EventPolicy {
        guard let declared = generation.rules.eventTable[event] else { return .immediate }
        return EventPolicy(
            batch: declared.batch, rateLimit: declared.rate, derives: declared.hasOnPublish, transforms: declared.hasTransform,
            replay: declared.replay ?? true, critical: declared.critical)
    }

    /// The matching channel rule's `history` (nil: it keeps none, or no rule matches).
    func history(for channel: ChannelName) -> HistoryRetention? {
        generation.rules.rule(for: channel)?.history
    }

    /// Runs the event's `transform(msg, user, ch)`: the table it returns becomes the payload
    /// (checked against the event's fields again), nil keeps the original. A hook that fails
    /// or returns a payload that breaks the fields refuses the message, and the operator sees
    /// why through `onHookError`.
    func transform(_ event: String, payload: Value?, on channel: ChannelName, by identity: Identity) -> Transformed {
        guard let declared = generation.rules.eventTable[event], declared.hasTransform, let rule = generation.rules.rule(for: channel) else {
            return .unchanged
        }
        let (returned, failed) = generation.transform(
            declared.index, identity, channel: channel, rule: rule, event: (event, payload), options: options)
        if failed { return .refused("the rules could not transform \(event) (the operator can see why in the server log)") }
        guard let returned, returned != .null else { return .unchanged }
        if let problem = RulesEngine.checkFields(of: declared, payload: returned) {
            options.onHookError(RulesError(.hookFailed, "transform of \(event) on \(channel) returned a bad payload: \(problem)", at: declared.location))
            return .refused("the rules could not transform \(event) (the operator can see why in the server log)")
        }
        return .replaced(returned)
    }

    /// Runs the event's `on_publish` hook and checks every emit like a publish by the rules
    /// themselves: the target must be a valid channel name that a channel rule matches, and the
    /// event must be in the catalog for it (or undeclared events allowed) with its fields right.
    /// The target's join and send hooks do not run — the emit is the rules' own act, not the
    /// user's. An emit that fails a check is dropped and reported through `onHookError`.
    func derivedEvents(of event: String, payload: Value?, on channel: ChannelName, by identity: Identity) -> [(ChannelName, DerivedEvent)] {
        guard let declared = generation.rules.eventTable[event], declared.hasOnPublish,
            let rule = generation.rules.rule(for: channel)
        else { return [] }
        var accepted: [(ChannelName, DerivedEvent)] = []
        for emit in generation.onPublish(declared.index, identity, channel: channel, rule: rule, event: (event, payload), options: options) {
            let problem: String?
            if let target = try? ChannelName(validating: emit.channel) {
                problem = RulesEngine.problem(with: emit, on: target, in: generation.rules)
                if problem == nil { accepted.append((target, emit)) }
            } else {
                problem = "\(emit.channel) is not a valid channel name"
            }
            if let problem {
                options.onHookError(
                    RulesError(.hookFailed, "on_publish of \(event) on \(channel): emit(\(emit.channel), \(emit.event)) dropped: \(problem)", at: declared.location))
            }
        }
        return accepted
    }

    func hasRowRule(table: String) -> Bool {
        generation.rules.tables[RuleSet.Relation.qualified(table)] != nil
    }

    /// Runs the table's `read` hook; a table the rules do not declare is denied, naming the
    /// missing declaration.
    func authorizeRow(_ identity: Identity, table: String, row: Value) -> Decision {
        let name = RuleSet.Relation.qualified(table)
        guard let rule = generation.rules.tables[name] else {
            return .deny("no rule for table \(name): declare table \"\(name)\" { read = function(user, row) ... end }")
        }
        return generation.read(rule, identity, row: row, options: options)
    }

    /// Presence needs the channel's `presence = true`, or its `presence` hook's consent. The
    /// tracker has joined already, so the join rule has said yes.
    func authorizePresence(_ identity: Identity, channel: ChannelName) -> Decision {
        guard let rule = generation.rules.rule(for: channel) else {
            return .deny("no rule matches channel \(channel)")
        }
        guard rule.presence else { return .deny("presence is not enabled on \(channel)") }
        guard rule.hasPresenceHook else { return .allow }
        return generation.hook(.channel, rule.index, .presence, identity, channel: channel, rule: rule, event: nil, options: options)
    }
}

/// Every problem that kept a rules directory from loading.
public struct RulesLoadError: Error, Sendable, CustomStringConvertible {
    public let errors: [RulesError]

    public init(errors: [RulesError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
