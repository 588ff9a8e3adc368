import CLua

/// Writes the arguments of one call straight onto the state's argument tape, without building
/// `LuaValue`s first: the hot-path way to hand structured data to Lua.
///
/// Values are written in order; `beginTable()` opens a table whose list elements come first
/// (values written without a key), then its fields (`key(_:)` followed by one value), and
/// `endTable()` closes it. Only valid inside the closure `LuaState.call(_:arguments:results:)`
/// passes it to. A misuse (a list element after a field, a key outside a table, an unclosed
/// table, nesting past `maxValueDepth`) makes the call fail with `.typeMismatch` before any
/// Lua code runs.
public struct LuaArguments: ~Copyable {
    var tape: TapeStorage
    private let maxDepth: Int

    init(tape: TapeStorage, maxDepth: Int) {
        self.tape = tape
        self.maxDepth = maxDepth
    }

    /// Lua `nil`.
    public mutating func writeNil() throws(LuaError) {
        try tape.beforeValue()
        tape.append(kind: SB_NIL)
    }

    /// A boolean.
    public mutating func write(_ boolean: Bool) throws(LuaError) {
        try tape.beforeValue()
        tape.append(kind: SB_BOOLEAN, integer: boolean ? 1 : 0)
    }

    /// An integer.
    public mutating func write(_ integer: Int64) throws(LuaError) {
        try tape.beforeValue()
        tape.append(kind: SB_INTEGER, integer: integer)
    }

    /// A float.
    public mutating func write(_ number: Double) throws(LuaError) {
        try tape.beforeValue()
        tape.append(kind: SB_NUMBER, number: number)
    }

    /// A string (its UTF-8 bytes).
    public mutating func write(_ string: String) throws(LuaError) {
        try tape.beforeValue()
        tape.append(string: string)
    }

    /// A string (its UTF-8 bytes).
    public mutating func write(_ string: Substring) throws(LuaError) {
        try tape.beforeValue()
        tape.append(string: string)
    }

    /// Opens a table: list elements, then `key(_:)` + value pairs, then `endTable()`.
    public mutating func beginTable() throws(LuaError) {
        try tape.beforeValue()
        guard tape.openCount < maxDepth else {
            throw LuaError(.typeMismatch, "tables nest deeper than \(maxDepth) levels")
        }
        tape.openTable()
    }

    /// Opens a table, like `beginTable()`, that Lua gets read-only, its nested tables too:
    /// assigning to it fails with "attempt to modify a read-only table" (so does `rawset`),
    /// `getmetatable` answers `"read-only"`, while indexing, `pairs`, `ipairs` and `#` work as
    /// on a plain table (`next` and `rawget` see an empty table). Reading it back (a result,
    /// a host function's argument) gives its contents.
    ///
    /// With `slot` (1...1024) the state also keeps the table there once it is complete, and
    /// `writeKept(_:)` hands the same table to later calls: since no script can change it,
    /// it needs no copy. A table kept earlier in that slot is let go.
    public mutating func beginReadOnlyTable(keepingAs slot: Int? = nil) throws(LuaError) {
        if let slot, !(1...1024).contains(slot) {
            throw LuaError(.invalidArgument, "kept table slot \(slot) is not in 1...1024")
        }
        try tape.beforeValue()
        guard tape.openCount < maxDepth else {
            throw LuaError(.typeMismatch, "tables nest deeper than \(maxDepth) levels")
        }
        tape.append(kind: SB_READONLY, integer: Int64(slot ?? 0))
        tape.openTable()
    }

    /// The read-only table kept in `slot` by an earlier call's `beginReadOnlyTable(keepingAs:)`:
    /// the very same table again, with nothing converted or copied. The call fails with
    /// `.runtime` when nothing is kept there (a call that failed while pushing the table
    /// keeps nothing).
    public mutating func writeKept(_ slot: Int) throws(LuaError) {
        guard (1...1024).contains(slot) else { throw LuaError(.invalidArgument, "kept table slot \(slot) is not in 1...1024") }
        try tape.beforeValue()
        tape.append(kind: SB_KEPT, integer: Int64(slot))
    }

    /// The key of the next field of the innermost open table; the next value written is its value.
    public mutating func key(_ name: String) throws(LuaError) {
        try tape.beforeKey()
        tape.append(string: name)
    }

    /// Closes the innermost open table.
    public mutating func endTable() throws(LuaError) {
        try tape.closeTable()
    }
}

/// The results of one call, read in place from the state's result tape. Only valid inside the
/// closure `LuaState.call(_:arguments:results:)` passes it to.
public struct LuaResults: ~Copyable {
    private let items: UnsafePointer<sb_item>?
    private let itemCount: Int
    private let state: LuaState

    init(items: UnsafePointer<sb_item>?, count: Int, state: LuaState) {
        self.items = items
        self.itemCount = count
        self.state = state
    }

    /// How many values the call returned.
    public var count: Int {
        var cursor = 0
        var values = 0
        while cursor < itemCount {
            skip(&cursor)
            values += 1
        }
        return values
    }

    /// The boolean at `index`, if that result is a boolean.
    public func boolean(at index: Int) -> Bool? {
        guard let item = item(at: index), item.kind == SB_BOOLEAN else { return nil }
        return item.integer != 0
    }

    /// The string at `index`, if that result is a string.
    public func string(at index: Int) -> String? {
        guard let item = item(at: index), item.kind == SB_STRING else { return nil }
        guard let bytes = item.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: bytes, count: item.length), as: UTF8.self)
    }

    /// The result at `index` as a `LuaValue` (`.nil` past the end).
    public func value(at index: Int) -> LuaValue {
        guard let items, var cursor = position(of: index) else { return .nil }
        return state.decode(items, itemCount, &cursor)
    }

    private func item(at index: Int) -> sb_item? {
        guard let items, let cursor = position(of: index) else { return nil }
        return items[cursor]
    }

    /// The tape position where the `index`th value starts.
    private func position(of index: Int) -> Int? {
        guard index >= 0 else { return nil }
        var cursor = 0
        for _ in 0..<index {
            guard cursor < itemCount else { return nil }
            skip(&cursor)
        }
        return cursor < itemCount ? cursor : nil
    }

    /// Moves past one value, tables included.
    private func skip(_ cursor: inout Int) {
        guard let items, cursor < itemCount else {
            cursor = itemCount
            return
        }
        let item = items[cursor]
        cursor += 1
        guard item.kind == SB_TABLE else { return }
        for _ in 0..<max(0, item.integer) { skip(&cursor) }
        for _ in 0..<max(0, Int64(item.fields) * 2) { skip(&cursor) }
    }
}
