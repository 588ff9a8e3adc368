import CLua

/// A reusable, manually allocated tape of values going from Swift into Lua.
///
/// The buffers have stable addresses between appends, so the C side may read them after a
/// Swift callback has returned (host function results). The state lives in a `TapeStorage`
/// value so that `LuaArguments` can take it out, write many items through `inout` (no dynamic
/// exclusivity check per write, as a class property would need) and put it back.
final class ValueTape {
    var storage = TapeStorage()

    deinit { storage.deallocate() }

    var items: UnsafeMutablePointer<sb_item> { storage.items }
    var count: Int { storage.count }
    var bytes: UnsafeMutablePointer<CChar> { storage.bytes }

    func reset() { storage.reset() }

    func append(kind: Int32, integer: Int64 = 0, number: Double = 0, fields: Int32 = 0, length: Int = 0) {
        storage.append(kind: kind, integer: integer, number: number, fields: fields, length: length)
    }

    func append(string: String) { storage.append(string: string) }

    func appendBytes(_ source: UnsafeRawBufferPointer) -> (offset: Int, length: Int) { storage.appendBytes(source) }

    func bytes(at offset: Int) -> UnsafePointer<CChar> { UnsafePointer(storage.bytes + offset) }
}

/// The buffers and counters of a `ValueTape`, plus the tables `LuaArguments` has open.
struct TapeStorage {
    private(set) var items: UnsafeMutablePointer<sb_item>
    private(set) var count = 0
    private var capacity: Int
    private(set) var bytes: UnsafeMutablePointer<CChar>
    private var byteCount = 0
    private var byteCapacity: Int
    /// The tables `LuaArguments` has opened and not yet closed, innermost at `openCount - 1`.
    private let open: UnsafeMutablePointer<OpenTable>
    private(set) var openCount = 0

    struct OpenTable {
        var header: Int
        var elements: Int64
        var fields: Int32
        var expectsValue: Bool
    }

    init() {
        capacity = 16
        items = .allocate(capacity: capacity)
        byteCapacity = 256
        bytes = .allocate(capacity: byteCapacity)
        open = .allocate(capacity: Int(SB_DEPTH_CAP) + 1)
    }

    func deallocate() {
        items.deallocate()
        bytes.deallocate()
        open.deallocate()
    }

    /// Empties the tape, giving back memory a one-off large value left behind.
    mutating func reset() {
        count = 0
        byteCount = 0
        openCount = 0
        if capacity > 4096 {
            items.deallocate()
            capacity = 16
            items = .allocate(capacity: capacity)
        }
        if byteCapacity > 1 << 20 {
            bytes.deallocate()
            byteCapacity = 256
            bytes = .allocate(capacity: byteCapacity)
        }
    }

    mutating func append(kind: Int32, integer: Int64 = 0, number: Double = 0, fields: Int32 = 0, length: Int = 0) {
        if count == capacity {
            let grown = UnsafeMutablePointer<sb_item>.allocate(capacity: capacity * 2)
            grown.moveInitialize(from: items, count: count)
            items.deallocate()
            items = grown
            capacity *= 2
        }
        (items + count).initialize(
            to: sb_item(kind: kind, fields: fields, integer: integer, number: number, bytes: nil, length: length))
        count += 1
    }

    // MARK: Structure checks for `LuaArguments`

    /// Counts the value about to be written as a list element or a field value of the open table.
    mutating func beforeValue() throws(LuaError) {
        guard openCount > 0 else { return }
        let last = open + (openCount - 1)
        if last.pointee.expectsValue {
            last.pointee.expectsValue = false
        } else if last.pointee.fields > 0 {
            throw LuaError(.typeMismatch, "a list element was written after a table field")
        } else {
            last.pointee.elements += 1
        }
    }

    mutating func beforeKey() throws(LuaError) {
        guard openCount > 0, !open[openCount - 1].expectsValue else {
            throw LuaError(.typeMismatch, "a table key was written outside a table or in place of a value")
        }
        let last = open + (openCount - 1)
        guard last.pointee.fields < Int32.max else { throw LuaError(.typeMismatch, "a table has too many fields") }
        last.pointee.fields += 1
        last.pointee.expectsValue = true
    }

    /// Opens a table; the caller has checked the depth (at most `SB_DEPTH_CAP`).
    mutating func openTable() {
        (open + openCount).initialize(to: OpenTable(header: count, elements: 0, fields: 0, expectsValue: false))
        openCount += 1
        append(kind: SB_TABLE)
    }

    mutating func closeTable() throws(LuaError) {
        guard openCount > 0, !open[openCount - 1].expectsValue else {
            throw LuaError(.typeMismatch, "a table was closed that is not open, or a field has no value")
        }
        openCount -= 1
        let table = open[openCount]
        items[table.header].integer = table.elements
        items[table.header].fields = table.fields
    }

    /// Appends a string item (its bytes go to the byte buffer).
    mutating func append(string: Substring) {
        var string = string
        let placed = string.withUTF8 { appendBytes(UnsafeRawBufferPointer($0)) }
        append(kind: SB_STRING, integer: Int64(placed.offset), length: placed.length)
    }

    /// Appends a string item (its bytes go to the byte buffer).
    mutating func append(string: String) {
        var string = string
        let placed = string.withUTF8 { appendBytes(UnsafeRawBufferPointer($0)) }
        append(kind: SB_STRING, integer: Int64(placed.offset), length: placed.length)
    }

    /// Copies bytes into the byte buffer and returns where they landed.
    mutating func appendBytes(_ source: UnsafeRawBufferPointer) -> (offset: Int, length: Int) {
        let offset = byteCount
        if byteCount + source.count > byteCapacity {
            var newCapacity = byteCapacity * 2
            while newCapacity < byteCount + source.count { newCapacity *= 2 }
            let grown = UnsafeMutablePointer<CChar>.allocate(capacity: newCapacity)
            grown.initialize(from: bytes, count: byteCount)
            bytes.deallocate()
            bytes = grown
            byteCapacity = newCapacity
        }
        if let base = source.baseAddress, source.count > 0 {
            UnsafeMutableRawPointer(bytes + byteCount).copyMemory(from: base, byteCount: source.count)
        }
        byteCount += source.count
        return (offset, source.count)
    }
}
