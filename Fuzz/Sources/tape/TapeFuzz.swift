import FuzzSupport
import SwitchboardCore
import SwitchboardLua
@_spi(Fuzzing) import SwitchboardRules
import SwitchboardWire

/// The Lua value bridge (the tape, both ways): a JSON value parsed from the input is pushed into
/// a sandboxed Lua state and read back, and must come back as the rules engine's conversion
/// builds it (objects and arrays become tables, integral numbers integers, null nil, the first
/// of repeated keys wins), within the bridge's documented limits: trailing nils of a list do not
/// survive, a list more than half holes reads as too sparse, and tables nest at most
/// `maxValueDepth` (64) levels. Anything else that fails, or a different value, is a finding.
///
/// The first input byte picks the path: bit 0 `call(global:_:)` with a `LuaValue` (else
/// `LuaArguments` written straight onto the tape), bit 1 a read-only table, bit 2 the table
/// kept in a slot and handed to a second call with `writeKept`, bit 3 through a Lua function
/// that deep-copies it with `pairs` (so read-only proxies are iterated by Lua itself).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let mode = data[0]
    let value: Value
    do {
        value = try JSON.parse(UnsafeBufferPointer(start: data + 1, count: size - 1), maxDepth: 70)
    } catch {
        return 0
    }
    harness.check(value, mode: mode)
    return 0
}

/// One Lua state for the whole run: creating one per input would cost more than the check.
/// libFuzzer calls `LLVMFuzzerTestOneInput` from one thread at a time, so the state is never
/// used concurrently, which is all `LuaState` asks of its callers.
nonisolated(unsafe) private let harness = Harness()

private final class Harness {
    static let maxDepth = LuaConfiguration().maxValueDepth
    let state: LuaState
    let echo: LuaFunctionRef
    let copy: LuaFunctionRef

    init() {
        do {
            state = try LuaState()
            try state.load(
                source: """
                    local function deepcopy(v)
                      if type(v) ~= "table" then return v end
                      local t = {}
                      for k, x in pairs(v) do t[k] = deepcopy(x) end
                      return t
                    end
                    function echo(...) return ... end
                    function copy(v) return deepcopy(v) end
                    """, chunkName: "fuzz.lua")
            guard let echo = try state.globalValue("echo")?.function, let copy = try state.globalValue("copy")?.function else {
                fatalError("the harness functions are missing")
            }
            self.echo = echo
            self.copy = copy
        } catch {
            fatalError("cannot set up the Lua state: \(error)")
        }
    }

    func check(_ value: Value, mode: UInt8) {
        let viaLuaValue = mode & 1 != 0
        let readOnly = !viaLuaValue && mode & 2 != 0
        let kept = readOnly && mode & 4 != 0
        let function = mode & 8 != 0 ? copy : echo
        let expectedValue = expected(value)
        // Both paths drop repeated keys (the first wins), so a repeat's value never counts.
        let tooDeep = depth(of: value) > Self.maxDepth
        let tooSparse = isTooSparse(value)
        let result: Result<LuaValue, LuaError>
        if viaLuaValue {
            result = Result { () throws(LuaError) -> LuaValue in
                try state.call(function, [LuaBridge.lua(value)]).first ?? .nil
            }
        } else {
            result = Result { () throws(LuaError) -> LuaValue in
                try state.call(function) { (arguments: inout LuaArguments) throws(LuaError) in
                    if readOnly, case .object(let object) = value {
                        try LuaBridge.write(object, into: &arguments, readOnly: true, keepingAs: kept ? 1 : nil)
                    } else {
                        try LuaBridge.write(value, into: &arguments)
                    }
                } results: { results in
                    results.value(at: 0)
                }
            }
        }
        switch result {
        case .success(let got):
            fuzzCheck(!tooDeep, "a value deeper than \(Self.maxDepth) levels went through")
            fuzzCheck(!tooSparse, "a list more than half holes was read back")
            fuzzCheck(got == expectedValue, "round trip changed the value: sent \(expectedValue), got \(got)")
            if kept, case .object = value {
                let again = Result { () throws(LuaError) -> LuaValue in
                    try state.call(function) { (arguments: inout LuaArguments) throws(LuaError) in
                        try arguments.writeKept(1)
                    } results: { results in
                        results.value(at: 0)
                    }
                }
                fuzzCheck((try? again.get()) == expectedValue, "the kept table reads back differently: \(again)")
            }
        case .failure(let error):
            fuzzCheck(error.code == .typeMismatch, "unexpected failure \(error.code): \(error)")
            fuzzCheck(tooDeep || tooSparse, "a value within the limits failed: \(error) (value \(expectedValue))")
        }
    }
}

/// `LuaBridge.lua(value)` as it reads back from Lua: a list's trailing nils and nil fields (Lua has no
/// such keys) are gone, at every level.
private func expected(_ value: Value) -> LuaValue {
    trimmed(LuaBridge.lua(value))
}

private func trimmed(_ value: LuaValue) -> LuaValue {
    guard case .table(var table) = value else { return value }
    while table.array.last == .nil { table.array.removeLast() }
    table.array = table.array.map(trimmed)
    table.fields = table.fields.filter { $0.value != .nil }.mapValues(trimmed)
    return .table(table)
}

/// Whether some list that reaches Lua has more holes than elements (after its trailing nils).
private func isTooSparse(_ value: LuaValue) -> Bool {
    guard case .table(let table) = value else { return false }
    var array = table.array
    while array.last == .nil { array.removeLast() }
    let present = array.count(where: { $0 != .nil })
    if array.count > 2 * present { return true }
    return array.contains(where: isTooSparse) || table.fields.values.contains(where: isTooSparse)
}

private func isTooSparse(_ value: Value) -> Bool { isTooSparse(LuaBridge.lua(value)) }

/// Table nesting depth: 0 for a scalar, 1 for `[]` or `{}`.
private func depth(of value: Value) -> Int {
    switch value {
    case .array(let items):
        return 1 + (items.map { depth(of: $0) }.max() ?? 0)
    case .object(let object):
        var seen: Set<String> = []
        var deepest = 0
        for member in object.members where seen.insert(member.key).inserted {
            deepest = max(deepest, depth(of: member.value))
        }
        return 1 + deepest
    default:
        return 0
    }
}
