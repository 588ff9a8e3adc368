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
