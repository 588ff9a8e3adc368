import CLua
import Synchronization

private let stateCounter = Atomic<UInt64>(0)

/// A sandboxed Lua 5.4 state with a memory cap and a per-call instruction budget.
///
/// Only the base, string, table, math and utf8 libraries are open; `dofile`, `loadfile`,
/// `load`, `require`, `collectgarbage` and `string.dump` are removed, `print` goes to the
/// configured sink, and `setmetatable` refuses `__gc` (Lua runs finalizers with hooks off, so
/// the budget could not stop one). Chunks are loaded as source text only. Every entry into Lua
/// is one protected call, so a script's error, runaway loop or memory bomb becomes a
/// `LuaError` and the state stays usable. The budget cannot interrupt a single long C call
/// such as a pathological `string.find` pattern: bound the inputs scripts see. By default the
/// budget is armed by a watchdog for entries that run longer than about a millisecond
/// (`LuaConfiguration.budgetWatchdog`); the thread running an entry must not block SIGURG.
///
/// Not thread-safe and not `Sendable`: one caller at a time (for example behind a `Mutex`).
/// A host function must not use the state it was called from; such calls fail with
/// `.reentrantCall`. Globals are read and written raw, so no script metamethod runs on them.
public final class LuaState {
    /// A Swift function callable from Lua: arguments in, results out; a thrown error becomes a
    /// Lua error at the calling line.
    public typealias HostFunction = ([LuaValue]) throws(LuaError) -> [LuaValue]

    private let host: UnsafeMutablePointer<sb_host>
    private let configuration: LuaConfiguration
    private let identity: UInt64
    private let argumentTape = ValueTape()
    private let resultTape = ValueTape()
    private var hostFunctions: [HostFunction] = []
    private var liveFunctions = FunctionNumbers()
    private var busy = false
    private var lastHostError: LuaError?
    /// The chunk being loaded, shown as the file of compile errors that carry no position.
    private var loadingChunk: String?

    /// The release string of the linked Lua library, e.g. "Lua 5.4.4".
    public static var release: String { String(cString: sb_lua_release()) }

    /// Creates a sandboxed state; throws `.invalidArgument` for a bad configuration and
    /// `.memory` when the state cannot be created within the memory limit.
    public init(configuration: LuaConfiguration = LuaConfiguration()) throws(LuaError) {
        guard configuration.memoryLimitBytes > 0 else {
            throw LuaError(.invalidArgument, "memoryLimitBytes must be positive")
        }
        guard (1...Int(Int32.max)).contains(configuration.instructionBudget) else {
            throw LuaError(.invalidArgument, "instructionBudget must be between 1 and \(Int32.max)")
        }
        guard (1...Int(SB_DEPTH_CAP)).contains(configuration.maxValueDepth) else {
            throw LuaError(.invalidArgument, "maxValueDepth must be between 1 and \(SB_DEPTH_CAP)")
        }
        guard configuration.maxValueElements > 0 else {
            throw LuaError(.invalidArgument, "maxValueElements must be positive")
        }
        guard
            let host = sb_host_create(
                configuration.memoryLimitBytes, Int32(configuration.instructionBudget),
                Int32(configuration.maxValueDepth), configuration.maxValueElements, configuration.budgetWatchdog ? 1 : 0)
        else {
            throw LuaError(.memory, "a Lua state cannot be created within \(configuration.memoryLimitBytes) bytes")
        }
        let status = sb_run(host, SB_OP_OPEN)
        if status != LUA_OK {
            let text = host.pointee.error_text.map {
                String(decoding: UnsafeRawBufferPointer(start: $0, count: host.pointee.error_length), as: UTF8.self)
            } ?? "unknown error"
            sb_host_destroy(host)
            throw LuaError(
                status == LUA_ERRMEM ? .memory : .runtime,
                "opening the Lua libraries failed within \(configuration.memoryLimitBytes) bytes: \(text)")
        }
        sb_clear(host)
        self.host = host
        self.configuration = configuration
        self.identity = stateCounter.wrappingAdd(1, ordering: .relaxed).newValue

        host.pointee.context = Unmanaged.passUnretained(self).toOpaque()
        host.pointee.invoke = { context, function, items, count in
            guard let context else { return 1 }
            return Unmanaged<LuaState>.fromOpaque(context).takeUnretainedValue()
                .invokeHostFunction(function, items, count)
        }
        if configuration.print != nil {
            host.pointee.print = { context, text, length in
                guard let context, let text else { return }
                let line = String(decoding: UnsafeRawBufferPointer(start: text, count: length), as: UTF8.self)
                Unmanaged<LuaState>.fromOpaque(context).takeUnretainedValue().configuration.print?(line)
            }
        }
    }

    deinit {
        sb_host_destroy(host)
    }

    /// Whether the watchdog arms this state's instruction budget (`LuaConfiguration.budgetWatchdog`),
    /// rather than every instruction being counted.
    public var isWatched: Bool { host.pointee.watched != 0 }

    /// Whether the watchdog has armed the instruction count for the call running now (read
    /// from inside that call, e.g. by a host function; tests wait for it).
    var isArmed: Bool { sb_host_armed(host) != 0 }

    /// Bytes the state holds right now (exact: every allocation goes through the host).
    public var memoryInUseBytes: Int { host.pointee.used }

    /// Compiles and runs a chunk of source text, returning what it returns.
    ///
    /// `chunkName` is the path errors should show (`Rules/x.lua` → `Rules/x.lua:3: …`); it is
    /// given to Lua as `@Rules/x.lua`. A name already starting with `@` or `=` is used as is.
    /// Lua shortens names past 60 bytes with a leading `...`.
    @discardableResult
    public func load(source: String, chunkName: String) throws(LuaError) -> [LuaValue] {
        try enter()
        defer { busy = false }
        let name = chunkName.hasPrefix("@") || chunkName.hasPrefix("=") ? chunkName : "@" + chunkName
        if source.utf8.first == 0x1B {
            throw LuaError(
                .bytecodeRefused, "precompiled (binary) chunks are refused; load Lua source text",
                file: String(name.dropFirst()))
        }
        loadingChunk = String(name.dropFirst())
        defer { loadingChunk = nil }
        var source = source
        let status = source.withUTF8 { utf8 in
            name.withCString { namePointer in
                host.pointee.source = UnsafeRawPointer(utf8.baseAddress)?.assumingMemoryBound(to: CChar.self)
                host.pointee.source_length = utf8.count
                host.pointee.chunk_name = namePointer
                defer {
                    host.pointee.source = nil
                    host.pointee.chunk_name = nil
                }
                return sb_run(host, SB_OP_LOAD)
            }
        }
        return try finish(status)
    }

    /// Calls the global function `name` with `arguments` and returns its results.
    public func call(global name: String, _ arguments: [LuaValue]) throws(LuaError) -> [LuaValue] {
        try enter()
        defer { busy = false }
        try stage(arguments)
        return try finish(withName(name) { sb_run(host, SB_OP_CALL_GLOBAL) })
    }

    /// Calls a function read earlier from this state with `arguments` and returns its results.
    public func call(_ function: LuaFunctionRef, _ arguments: [LuaValue]) throws(LuaError) -> [LuaValue] {
        try enter()
        defer { busy = false }
        try checkOwned(function)
        try stage(arguments)
        host.pointee.reference = function.number
        host.pointee.answer_check = 0
        return try finish(sb_run(host, SB_OP_CALL_REF))
    }

    /// Calls a function read earlier from this state, writing its arguments straight onto the
    /// argument tape and reading its results in place: no `LuaValue` is built either way.
    ///
    /// The same protected call with the same instruction budget and memory cap as
    /// `call(_:_:)`; `results` runs before the results are dropped from the Lua stack.
    ///
    /// With `answerCheck` the call is a yes/no question: when the function's first two results
    /// are a plain answer -- `true`, or `false` or `nil` followed by a string or `nil` -- just
    /// those two are the results; otherwise `answerCheck` is called (in the same protected
    /// call) with them and its results are. So the common answers need no Lua wrapper around
    /// the function, and values that cannot be read (a function, say) never reach the results.
    public func call<Result>(
        _ function: LuaFunctionRef,
        answerCheck: LuaFunctionRef? = nil,
        arguments: (inout LuaArguments) throws(LuaError) -> Void,
        results: (borrowing LuaResults) -> Result
    ) throws(LuaError) -> Result {
        try enter()
        defer { busy = false }
        try checkOwned(function)
        if let answerCheck { try checkOwned(answerCheck) }
        argumentTape.reset()
        var writer = LuaArguments(tape: argumentTape.storage, maxDepth: configuration.maxValueDepth)
        defer { argumentTape.storage = writer.tape }  // the buffers may have grown
        try arguments(&writer)
        guard writer.tape.openCount == 0 else {
            throw LuaError(.typeMismatch, "the arguments leave a table open")
        }
        argumentTape.storage = writer.tape
        host.pointee.push_items = UnsafePointer(argumentTape.items)
        host.pointee.push_count = argumentTape.count
        host.pointee.push_bytes = UnsafePointer(argumentTape.bytes)
        host.pointee.reference = function.number
        host.pointee.answer_check = answerCheck?.number ?? 0
        let status = sb_run(host, SB_OP_CALL_REF)
        if let error = failure(status) {
            sb_clear(host)
            if error.code == .memory { collect() }
            throw error
        }
        defer { sb_clear(host) }
        return results(LuaResults(items: UnsafePointer(host.pointee.items), count: host.pointee.count, state: self))
    }

    /// The global `name`, or nil when it is nil. Functions inside come back as references.
    public func globalValue(_ name: String) throws(LuaError) -> LuaValue? {
        try enter()
        defer { busy = false }
        let value = try finish(withName(name) { sb_run(host, SB_OP_GET_GLOBAL) }).first ?? LuaValue.nil
        return value == .nil ? nil : value
    }

    /// Sets the global `name` (`.nil` removes it).
    public func setGlobal(_ name: String, _ value: LuaValue) throws(LuaError) {
        try enter()
        defer { busy = false }
        try stage([value])
        _ = try finish(withName(name) { sb_run(host, SB_OP_SET_GLOBAL) })
    }

    /// Makes `body` callable from Lua as the global `name`, replacing any global of that name.
    ///
    /// Registration is host setup and is not charged against the memory limit, so it cannot
    /// fail short of the process running out of memory. Must not be called from a host function.
    public func register(_ name: String, _ body: @escaping HostFunction) {
        precondition(!busy, "LuaState.register must not be called while the state is running a call")
        hostFunctions.append(body)
        host.pointee.function_id = Int64(hostFunctions.count - 1)
        host.pointee.limit_lifted = 1
        let status = withName(name) { sb_run(host, SB_OP_REGISTER) }
        host.pointee.limit_lifted = 0
        sb_clear(host)
        precondition(status == LUA_OK, "registering the Lua global \(name) failed: out of memory")
    }

    /// Unpins a function so Lua may collect it; later calls through `function` fail. Must not
    /// be called from a host function.
    public func release(_ function: LuaFunctionRef) {
        precondition(!busy, "LuaState.release must not be called while the state is running a call")
        guard function.state == identity, liveFunctions.remove(function.number) else { return }
        host.pointee.reference = function.number
        _ = sb_run(host, SB_OP_RELEASE)
        sb_clear(host)
    }

    /// Runs a full garbage collection (finalizers run under the instruction budget).
    public func collectGarbage() {
        precondition(!busy, "LuaState.collectGarbage must not be called while the state is running a call")
        collect()
    }

    // MARK: - Internals

    private func enter() throws(LuaError) {
        guard !busy else {
            throw LuaError(
                .reentrantCall, "this Lua state is already running a call; a host function cannot use its own state")
        }
        busy = true
        if lastHostError != nil { lastHostError = nil }
    }

    private func collect() {
        _ = sb_run(host, SB_OP_COLLECT)
        sb_clear(host)
    }

    private func withName(_ name: String, _ body: () -> Int32) -> Int32 {
        name.withCString { pointer in
            host.pointee.name = pointer
            defer { host.pointee.name = nil }
            return body()
        }
    }

    private func checkOwned(_ function: LuaFunctionRef) throws(LuaError) {
        guard function.state == identity else {
            throw LuaError(.invalidArgument, "\(function) belongs to another Lua state")
        }
        guard liveFunctions.contains(function.number) else {
            throw LuaError(.invalidArgument, "\(function) was released")
        }
    }

    /// Puts `values` on the argument tape and points the host at it.
    private func stage(_ values: [LuaValue]) throws(LuaError) {
        argumentTape.reset()
        for value in values { try encode(value, into: argumentTape, depth: 0) }
        host.pointee.push_items = UnsafePointer(argumentTape.items)
        host.pointee.push_count = argumentTape.count
        host.pointee.push_bytes = UnsafePointer(argumentTape.bytes)
    }

    private func encode(_ value: LuaValue, into tape: ValueTape, depth: Int) throws(LuaError) {
        switch value {
        case .nil:
            tape.append(kind: SB_NIL)
        case .boolean(let boolean):
            tape.append(kind: SB_BOOLEAN, integer: boolean ? 1 : 0)
        case .integer(let integer):
            tape.append(kind: SB_INTEGER, integer: integer)
        case .number(let number):
            tape.append(kind: SB_NUMBER, number: number)
        case .string(let string):
            tape.append(string: string)
        case .function(let function):
            try checkOwned(function)
            tape.append(kind: SB_FUNCTION, integer: function.number)
        case .table(let table):
            guard depth < configuration.maxValueDepth else {
                throw LuaError(.typeMismatch, "tables nest deeper than \(configuration.maxValueDepth) levels")
            }
            guard let fields = Int32(exactly: table.fields.count) else {
                throw LuaError(.typeMismatch, "a table has too many fields")
            }
            tape.append(kind: SB_TABLE, integer: Int64(table.array.count), fields: fields)
            for element in table.array { try encode(element, into: tape, depth: depth + 1) }
            for (key, element) in table.fields {
                tape.append(string: key)
                try encode(element, into: tape, depth: depth + 1)
            }
        }
    }

    /// Turns the outcome of `sb_run` into results or a `LuaError`, then clears the stack.
    private func finish(_ status: Int32) throws(LuaError) -> [LuaValue] {
        if let error = failure(status) {
            sb_clear(host)
            if error.code == .memory { collect() }
            throw error
        }
        let values = decodeAll(UnsafePointer(host.pointee.items), host.pointee.count)
        sb_clear(host)
        return values
    }

    private func failure(_ status: Int32) -> LuaError? {
        let loadStatus = host.pointee.load_status
        let readFailed = host.pointee.read_failed != 0
        guard status != LUA_OK || loadStatus != LUA_OK || readFailed else { return nil }
        let text = host.pointee.error_text.map {
            String(decoding: UnsafeRawBufferPointer(start: $0, count: host.pointee.error_length), as: UTF8.self)
        } ?? "unknown Lua error"
        if status == LUA_OK && loadStatus == LUA_OK {
            return LuaError(.typeMismatch, "the value cannot be read from Lua: \(text)")
        }
        if host.pointee.budget_exhausted != 0 {
            return LuaError(.budgetExceeded, luaMessage: text)
        }
        if status == LUA_ERRMEM || loadStatus == LUA_ERRMEM {
            let message =
                host.pointee.limit_hit != 0
                ? "memory limit of \(configuration.memoryLimitBytes) bytes exceeded" : "not enough memory"
            return LuaError(.memory, message)
        }
        if loadStatus != LUA_OK {
            var error = LuaError(text.contains("attempt to load a binary chunk") ? .bytecodeRefused : .syntax, luaMessage: text)
            if error.file == nil { error.file = loadingChunk }
            return error
        }
        if host.pointee.type_error != 0 {
            return LuaError(.typeMismatch, luaMessage: text)
        }
        if let hostError = lastHostError {
            let error = LuaError(.runtime, luaMessage: text)
            if error.message == hostError.message { return LuaError(hostError.code, error.message, file: error.file, line: error.line) }
        }
        return LuaError(.runtime, luaMessage: text)
    }

    private func decodeAll(_ items: UnsafePointer<sb_item>?, _ count: Int) -> [LuaValue] {
        guard let items, count > 0 else { return [] }
        var values: [LuaValue] = []
        values.reserveCapacity(min(count, 8))
        var cursor = 0
        while cursor < count { values.append(decode(items, count, &cursor)) }
        return values
    }

    /// Reads one value from a tape the C side wrote (well-formed, depth-bounded).
    func decode(_ items: UnsafePointer<sb_item>, _ count: Int, _ cursor: inout Int) -> LuaValue {
        guard cursor < count else { return .nil }
        let item = items[cursor]
        cursor += 1
        switch item.kind {
        case SB_BOOLEAN:
            return .boolean(item.integer != 0)
        case SB_INTEGER:
            return .integer(item.integer)
        case SB_NUMBER:
            return .number(item.number)
        case SB_STRING:
            guard let bytes = item.bytes else { return .string("") }
            return .string(String(decoding: UnsafeRawBufferPointer(start: bytes, count: item.length), as: UTF8.self))
        case SB_FUNCTION:
            liveFunctions.insert(item.integer)
            return .function(LuaFunctionRef(state: identity, number: item.integer))
        case SB_TABLE:
            var table = LuaTable(array: [], fields: [:])
            table.array.reserveCapacity(min(Int(clamping: item.integer), count - cursor))
            for _ in 0..<max(0, item.integer) { table.array.append(decode(items, count, &cursor)) }
            for _ in 0..<max(0, item.fields) {
                let key = decode(items, count, &cursor)
                let element = decode(items, count, &cursor)
                if case .string(let name) = key { table.fields[name] = element }
            }
            return .table(table)
        default:
            return .nil
        }
    }

    /// Runs a host function for the C trampoline: 0 with results staged, or 1 with a message.
    fileprivate func invokeHostFunction(_ number: Int64, _ items: UnsafePointer<sb_item>?, _ count: Int) -> Int32 {
        let arguments = decodeAll(items, count)
        resultTape.reset()
        do throws(LuaError) {
            guard let index = Int(exactly: number), hostFunctions.indices.contains(index) else {
                throw LuaError(.invalidArgument, "unknown host function \(number)")
            }
            let results = try hostFunctions[index](arguments)
            for result in results { try encode(result, into: resultTape, depth: 0) }
            host.pointee.result_items = UnsafePointer(resultTape.items)
            host.pointee.result_count = resultTape.count
            host.pointee.result_bytes = UnsafePointer(resultTape.bytes)
            return 0
        } catch {
            lastHostError = error
            resultTape.reset()
            var message = error.message
            let (offset, length) = message.withUTF8 { resultTape.appendBytes(UnsafeRawBufferPointer($0)) }
            host.pointee.callback_error = resultTape.bytes(at: offset)
            host.pointee.callback_error_length = length
            return 1
        }
    }
}

@available(*, unavailable, message: "a LuaState is used by one caller at a time; guard it with a Mutex or an actor")
extension LuaState: Sendable {}

/// The numbers of the function references a state has handed out and not released. Numbers
/// count up from 1 and are never reused, so a flag per number answers without hashing (a
/// decision checks its hook's reference on every call).
struct FunctionNumbers {
    private var live: [Bool] = []

    func contains(_ number: Int64) -> Bool {
        guard let index = Int(exactly: number), live.indices.contains(index) else { return false }
        return live[index]
    }

    mutating func insert(_ number: Int64) {
        guard let index = Int(exactly: number), index >= 0 else { return }
        if index >= live.count { live.append(contentsOf: repeatElement(false, count: index - live.count + 1)) }
        live[index] = true
    }

    /// Whether `number` was live.
    mutating func remove(_ number: Int64) -> Bool {
        guard contains(number), let index = Int(exactly: number) else { return false }
        live[index] = false
        return true
    }
}
