import CLua

/// A reusable, manually allocated tape of values going from Swift into Lua.
///
/// The buffers have stable addresses between appends, so the C side may read them after a
/// Swift callback has returned (host function results).
final class ValueTape {
    private(set) var items: UnsafeMutablePointer<sb_item>
    private(set) var count = 0
    private var capacity: Int
    private(set) var bytes: UnsafeMutablePointer<CChar>
    private var byteCount = 0
    private var byteCapacity: Int
    /// The tables `LuaArguments` has opened and not yet closed, innermost last.
    private var open: [OpenTable] = []

    private struct OpenTable {
        var header: Int
        var elements: Int64 = 0
        var fields: Int32 = 0
        var expectsValue = false
    }

    init() {
        capacity = 16
        items = .allocate(capacity: capacity)
        byteCapacity = 256
        bytes = .allocate(capacity: byteCapacity)
    }

    deinit {
        items.deallocate()
        bytes.deallocate()
    }

    /// Empties the tape, giving back memory a one-off large value left behind.
    func reset() {
        count = 0
        byteCount = 0
        open.removeAll(keepingCapacity: true)
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

    func append(kind: Int32, integer: Int64 = 0, number: Double = 0, fields: Int32 = 0, length: Int = 0) {
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

    var openTables: Int { open.count }

    /// Counts the value about to be written as a list element or a field value of the open table.
    func beforeValue() throws(LuaError) {
        guard let last = open.indices.last else { return }
        if open[last].expectsValue {
            open[last].expectsValue = false
        } else if open[last].fields > 0 {
            throw LuaError(.typeMismatch, "a list element was written after a table field")
        } else {
            open[last].elements += 1
        }
    }

    func beforeKey() throws(LuaError) {
        guard let last = open.indices.last, !open[last].expectsValue else {
            throw LuaError(.typeMismatch, "a table key was written outside a table or in place of a value")
        }
        guard open[last].fields < Int32.max else { throw LuaError(.typeMismatch, "a table has too many fields") }
        open[last].fields += 1
        open[last].expectsValue = true
    }

    func openTable() {
        open.append(OpenTable(header: count))
        append(kind: SB_TABLE)
    }

    func closeTable() throws(LuaError) {
        guard let table = open.last, !table.expectsValue else {
            throw LuaError(.typeMismatch, "a table was closed that is not open, or a field has no value")
        }
        open.removeLast()
        items[table.header].integer = table.elements
        items[table.header].fields = table.fields
    }

    /// Appends a string item (its bytes go to the byte buffer).
    func append(string: Substring) {
        let placed =
            string.utf8.withContiguousStorageIfAvailable { appendBytes(UnsafeRawBufferPointer($0)) }
            ?? Array(string.utf8).withUnsafeBytes { appendBytes($0) }
        append(kind: SB_STRING, integer: Int64(placed.offset), length: placed.length)
    }

    /// Appends a string item (its bytes go to the byte buffer).
    func append(string: String) {
        let placed =
            string.utf8.withContiguousStorageIfAvailable { appendBytes(UnsafeRawBufferPointer($0)) }
            ?? Array(string.utf8).withUnsafeBytes { appendBytes($0) }
        append(kind: SB_STRING, integer: Int64(placed.offset), length: placed.length)
    }

    /// Copies bytes into the byte buffer and returns where they landed.
    func appendBytes(_ source: UnsafeRawBufferPointer) -> (offset: Int, length: Int) {
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

    /// A pointer to `length` bytes at `offset` of the byte buffer.
    func bytes(at offset: Int) -> UnsafePointer<CChar> { UnsafePointer(bytes + offset) }
}
