/// A read-only map from names to values for the hot path: open addressing on an FNV-1a hash
/// of the name's UTF-8 bytes. A send looks its event up by name on every message, and Swift's
/// `String` hashing (SipHash over a normalised form) costs several times as much.
struct NameTable<Element: Sendable>: Sendable {
    private let names: [String?]
    private let elements: [Element?]
    private let mask: Int

    init(_ elements: [String: Element]) {
        var size = 8
        while size < elements.count * 2 { size *= 2 }
        var names: [String?] = Array(repeating: nil, count: size)
        var stored: [Element?] = Array(repeating: nil, count: size)
        for (name, element) in elements {
            var index = Self.hash(name) & (size - 1)
            while names[index] != nil { index = (index + 1) & (size - 1) }
            names[index] = name
            stored[index] = element
        }
        self.names = names
        self.elements = stored
        self.mask = size - 1
    }

    subscript(name: String) -> Element? {
        var index = Self.hash(name) & mask
        while let stored = names[index] {
            if stored == name { return elements[index] }
            index = (index + 1) & mask
        }
        return nil
    }

    /// FNV-1a over the UTF-8 bytes, folded to an `Int`.
    static func hash(_ name: String) -> Int {
        func fnv<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> Int {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
            return Int(truncatingIfNeeded: hash ^ (hash >> 32))
        }
        return name.utf8.withContiguousStorageIfAvailable(fnv) ?? fnv(name.utf8)
    }
}
