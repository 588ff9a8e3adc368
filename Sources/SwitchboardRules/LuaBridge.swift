import SwitchboardCore
import SwitchboardLua

/// Conversions between the core's `Value` (claims, payloads) and Lua values. (`lua(_:)` and the
/// `write` functions are SPI for the `tape` fuzz target, which writes with them and checks
/// what Lua reads back against `lua(_:)`.)
@_spi(Fuzzing) public enum LuaBridge {
    /// A JSON-shaped value as Lua sees it: objects and arrays become tables, integral numbers
    /// integers, other numbers floats, null nil.
    @_spi(Fuzzing) public static func lua(_ value: Value) -> LuaValue {
        switch value {
        case .null: return .nil
        case .bool(let bool): return .boolean(bool)
        case .number(let text):
            if let integer = Int64(text) { return .integer(integer) }
            return .number(Double(text) ?? 0)
        case .string(let string): return .string(string)
        case .array(let array): return .table(LuaTable(array: array.map(lua)))
        case .object(let object):
            var fields: [String: LuaValue] = [:]
            for member in object.members where fields[member.key] == nil { fields[member.key] = lua(member.value) }
            return .table(LuaTable(fields: fields))
        }
    }

    /// Writes `value` as `lua(value)` would build it, straight onto a call's argument tape.
    @_spi(Fuzzing) public static func write(_ value: Value, into arguments: inout LuaArguments) throws(LuaError) {
        switch value {
        case .null: try arguments.writeNil()
        case .bool(let bool): try arguments.write(bool)
        case .number(let text):
            if let integer = Int64(text) { try arguments.write(integer) } else { try arguments.write(Double(text) ?? 0) }
        case .string(let string): try arguments.write(string)
        case .array(let array):
            try arguments.beginTable()
            for element in array { try write(element, into: &arguments) }
            try arguments.endTable()
        case .object(let object): try write(object, into: &arguments)
        }
    }

    /// Writes an object as a table (read-only, kept in `slot` if given, when `readOnly`).
    /// The object's first member of a name wins, as in `lua(_:)`: Lua keeps the last write of
    /// a byte-identical key, so members go in reverse order, and a later member whose name
    /// Swift takes as the same (canonically equivalent, such as a precomposed and a decomposed
    /// `é`: different bytes, so two keys to Lua, but one field when read back) is left out.
    /// Found by the `tape` fuzz target (docs/FUZZING.md).
    @_spi(Fuzzing) public static func write(
        _ object: Value.Object, into arguments: inout LuaArguments, readOnly: Bool = false, keepingAs slot: Int? = nil
    ) throws(LuaError) {
        if readOnly { try arguments.beginReadOnlyTable(keepingAs: slot) } else { try arguments.beginTable() }
        let members = object.members
        let repeated = repeatedMembers(members)
        for index in members.indices.reversed() where !repeated.contains(index) {
            try arguments.key(members[index].key)
            try write(members[index].value, into: &arguments)
        }
        try arguments.endTable()
    }

    /// The positions of members whose name an earlier member already has (as Swift compares
    /// strings); empty, without allocating, for the usual object whose names are all distinct.
    private static func repeatedMembers(_ members: [(key: String, value: Value)]) -> Set<Int> {
        guard members.count > 1 else { return [] }
        if members.count <= 16 {
            var repeated: Set<Int> = []
            for later in 1..<members.count where members[..<later].contains(where: { $0.key == members[later].key }) {
                repeated.insert(later)
            }
            return repeated
        }
        var seen = Set<String>(minimumCapacity: members.count)
        var repeated: Set<Int> = []
        for (index, member) in members.enumerated() where !seen.insert(member.key).inserted { repeated.insert(index) }
        return repeated
    }

    /// A Lua value as JSON-shaped data: a table with only a list part becomes an array,
    /// otherwise an object with its string keys in sorted order; functions read as the
    /// string `<function>`.
    static func value(_ lua: LuaValue) -> Value {
        switch lua {
        case .nil: return .null
        case .boolean(let bool): return .bool(bool)
        case .integer(let integer): return .number(String(integer))
        case .number(let number): return number.isFinite ? .number(String(number)) : .null
        case .string(let string): return .string(string)
        case .function: return "<function>"
        case .table(let table):
            if table.fields.isEmpty, !table.array.isEmpty { return .array(table.array.map(value)) }
            var object = Value.Object()
            for key in table.fields.keys.sorted() { object[key] = table.fields[key].map(value) }
            return .object(object)
        }
    }

    /// An id for `member`: a string, or an integral number as its decimal text.
    static func id(_ lua: LuaValue) -> String? {
        switch lua {
        case .string(let string): return string
        case .integer(let integer): return String(integer)
        default: return nil
        }
    }
}
