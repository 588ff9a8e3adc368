/// A Lua value on the Swift side of the boundary.
///
/// Integers and floats stay distinct, as in Lua 5.4 (`1` is `.integer(1)`, `1.0` is
/// `.number(1.0)`; they are different Swift values even though Lua calls them equal).
/// Strings are Lua byte strings read as UTF-8; invalid sequences become U+FFFD.
/// Functions read from Lua become `LuaFunctionRef`s, valid for the state they came from.
/// Userdata and coroutines cannot be read (the sandbox creates none).
/// Not `indirect`: tables recurse through `LuaTable`'s array and dictionary, so scalars stay unboxed.
public enum LuaValue: Sendable, Hashable {
    /// Lua's `nil`: an absent value.
    case `nil`
    /// `true` or `false`.
    case boolean(Bool)
    /// A Lua integer (the integer subtype of number).
    case integer(Int64)
    /// A Lua float (the float subtype of number).
    case number(Double)
    /// A Lua string, read as UTF-8.
    case string(String)
    /// A table, as a list part and a string-keyed part.
    case table(LuaTable)
    /// A function held by the state it was read from.
    case function(LuaFunctionRef)
}

/// A Lua table as an ordered list part (keys `1...n`) plus a string-keyed part.
///
/// Reading from Lua: positive integer keys form `array`, with `.nil` for holes, as long as the
/// largest index is at most twice the number of integer keys (else the read fails as too
/// sparse); string keys form `fields`; any other key (`0`, `-1`, `1.5`, `true`, a table) fails
/// the read. Pushing to Lua: `array[i]` goes to key `i + 1`, fields to their keys; `.nil`
/// means absent, so trailing `.nil`s of `array` do not survive a round trip.
///
/// `fields` is keyed by Swift `String`, which compares by Unicode canonical equivalence, while
/// Lua compares keys byte by byte: a Lua table with both `"é"` (U+00E9) and `"é"` (`e` U+0301)
/// reads as one field holding either value (whichever Lua's traversal gives last).
public struct LuaTable: Sendable, Hashable {
    /// Values at keys `1...array.count`, in order; `.nil` marks a hole.
    public var array: [LuaValue]
    /// Values at string keys. The subscript never stores `.nil`.
    public var fields: [String: LuaValue]

    /// An empty table.
    public init() {
        self.init(array: [], fields: [:])
    }

    /// A table from its two parts.
    public init(array: [LuaValue] = [], fields: [String: LuaValue] = [:]) {
        self.array = array
        self.fields = fields
    }

    /// The value at a string key; setting nil or `.nil` removes the key.
    public subscript(key: String) -> LuaValue? {
        get { fields[key] }
        set {
            if let newValue, newValue != .nil { fields[key] = newValue } else { fields[key] = nil }
        }
    }

    /// True when both parts are empty.
    public var isEmpty: Bool { array.isEmpty && fields.isEmpty }
}

extension LuaValue {
    /// The string, if this is a string.
    public var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The boolean, if this is a boolean.
    public var boolean: Bool? {
        if case .boolean(let value) = self { return value }
        return nil
    }

    /// The integer, if this is an integer or a float with an exact integer value.
    public var integer: Int64? {
        switch self {
        case .integer(let value): value
        case .number(let value): Int64(exactly: value)
        default: nil
        }
    }

    /// The number as a Double, if this is an integer or a float.
    public var number: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .number(let value): value
        default: nil
        }
    }

    /// The table, if this is a table.
    public var table: LuaTable? {
        if case .table(let value) = self { return value }
        return nil
    }

    /// The function reference, if this is a function.
    public var function: LuaFunctionRef? {
        if case .function(let value) = self { return value }
        return nil
    }

    /// True for `.nil`.
    public var isNil: Bool { self == .nil }

    /// Lua's truth: everything except `nil` and `false` is true.
    public var isTruthy: Bool {
        switch self {
        case .nil, .boolean(false): false
        default: true
        }
    }

    /// `table[key]` for tables, nil otherwise.
    public subscript(key: String) -> LuaValue? {
        table?.fields[key]
    }

    /// The Lua type name: `nil`, `boolean`, `number`, `string`, `table` or `function`.
    public var typeName: String {
        switch self {
        case .nil: "nil"
        case .boolean: "boolean"
        case .integer, .number: "number"
        case .string: "string"
        case .table: "table"
        case .function: "function"
        }
    }
}

extension LuaValue: CustomStringConvertible {
    /// A Lua-like rendering with fields sorted by key, e.g. `{1, 2.5, name = "x"}`.
    public var description: String {
        switch self {
        case .nil: return "nil"
        case .boolean(let value): return String(value)
        case .integer(let value): return String(value)
        case .number(let value): return String(value)
        case .string(let value): return "\"\(value)\""
        case .function(let reference): return reference.description
        case .table(let table):
            let items = table.array.map(\.description)
                + table.fields.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }
            return items.isEmpty ? "{}" : "{" + items.joined(separator: ", ") + "}"
        }
    }
}

extension LuaValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    /// `"text"` is `.string("text")`.
    public init(stringLiteral value: String) { self = .string(value) }
    /// `true` is `.boolean(true)`.
    public init(booleanLiteral value: Bool) { self = .boolean(value) }
    /// `3` is `.integer(3)`.
    public init(integerLiteral value: Int64) { self = .integer(value) }
    /// `2.5` is `.number(2.5)`.
    public init(floatLiteral value: Double) { self = .number(value) }
    /// `[1, "a"]` is a table with that list part.
    public init(arrayLiteral elements: LuaValue...) { self = .table(LuaTable(array: elements)) }
    /// `["k": 1]` is a table with those fields.
    public init(dictionaryLiteral elements: (String, LuaValue)...) {
        self = .table(LuaTable(pairs: elements))
    }
}

extension LuaTable: ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    /// `[1, "a"]` is a table with that list part.
    public init(arrayLiteral elements: LuaValue...) { self.init(array: elements) }
    /// `["k": 1]` is a table with those fields.
    public init(dictionaryLiteral elements: (String, LuaValue)...) { self.init(pairs: elements) }

    init(pairs elements: [(String, LuaValue)]) {
        self.init(array: [], fields: [:])
        for (key, value) in elements { self[key] = value }
    }
}
