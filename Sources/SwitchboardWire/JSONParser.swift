import SwitchboardCore

/// A strict RFC 8259 scanner over one contiguous buffer.
///
/// Containers are kept on an explicit stack rather than the call stack, so a hostile
/// `[[[[…` can only ever reach the depth limit, never overflow the thread's stack.
struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private let maxDepth: Int
    private var index = 0
    /// Reused for strings that contain escapes.
    private var scratch: [UInt8] = []
    /// The elements parsed so far of every open array, outermost array's first. They leave it
    /// when their array closes (`takeElements`), so a finished array costs at most one
    /// allocation instead of one per doubling; this storage grows only with the elements open
    /// at the same time and is reused for the whole document.
    private var openItems: [Value] = []
    /// The members parsed so far of every open object, as `openItems` for arrays.
    private var openMembers: [(key: String, value: Value)] = []

    /// An array or object that is still open.
    private struct Container {
        var isObject: Bool
        /// Where this container's elements start in `openItems` (arrays) or `openMembers` (objects).
        var start: Int
        /// The key whose value is being parsed, for objects.
        var key = ""
    }

    /// Room reserved in the container stack and in each of `openItems` and `openMembers` when
    /// first used: a realtime message fits without regrowing, and it is small enough to reserve
    /// blindly (a few hundred bytes). Past it they grow by doubling as arrays do.
    private static let initialCapacity = 16

    init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    /// Parses a value surrounded by optional whitespace, then requires the end of the input.
    mutating func parseDocument() throws(WireError) -> Value {
        let value = try parseValue()
        skipWhitespace()
        if index < bytes.count { throw unexpected("the end of the input after the value") }
        return value
    }

    private mutating func parseValue() throws(WireError) -> Value {
        var stack: [Container] = []
        parsing: while true {
            skipWhitespace()
            guard index < bytes.count else { throw unexpected("a value") }
            var value: Value
            switch bytes[index] {
            case .openBrace:
                try checkDepth(stack.count + 1)
                index += 1
                skipWhitespace()
                if index < bytes.count, bytes[index] == .closeBrace {
                    index += 1
                    value = .object(Value.Object())
                } else {
                    let key = try parseKey(expected: "'\"' or '}'")
                    Self.reserveOnFirstUse(&stack, capacity: min(maxDepth, Self.initialCapacity))
                    Self.reserveOnFirstUse(&openMembers, capacity: Self.initialCapacity)
                    stack.append(Container(isObject: true, start: openMembers.count, key: key))
                    continue parsing
                }
            case .openBracket:
                try checkDepth(stack.count + 1)
                index += 1
                skipWhitespace()
                if index < bytes.count, bytes[index] == .closeBracket {
                    index += 1
                    value = .array([])
                } else {
                    Self.reserveOnFirstUse(&stack, capacity: min(maxDepth, Self.initialCapacity))
                    Self.reserveOnFirstUse(&openItems, capacity: Self.initialCapacity)
                    stack.append(Container(isObject: false, start: openItems.count))
                    continue parsing
                }
            case .quote:
                value = .string(try parseString())
            case .minus, .digitZero ... .digitNine:
                value = try parseNumber()
            case UInt8(ascii: "t"):
                try expectLiteral("true")
                value = .bool(true)
            case UInt8(ascii: "f"):
                try expectLiteral("false")
                value = .bool(false)
            case UInt8(ascii: "n"):
                try expectLiteral("null")
                value = .null
            default:
                throw unexpected("a value")
            }

            // Hand the finished value to its container, closing containers as they end.
            while !stack.isEmpty {
                let top = stack.count - 1
                skipWhitespace()
                if stack[top].isObject {
                    openMembers.append((key: stack[top].key, value: value))
                    guard index < bytes.count else { throw unexpected("',' or '}'") }
                    if bytes[index] == .comma {
                        index += 1
                        skipWhitespace()
                        stack[top].key = try parseKey(expected: "'\"' to start the next key")
                        continue parsing
                    }
                    guard bytes[index] == .closeBrace else { throw unexpected("',' or '}'") }
                    index += 1
                    let start = stack.removeLast().start
                    value = .object(Value.Object(Self.takeElements(from: &openMembers, start: start, isRoot: stack.isEmpty)))
                } else {
                    openItems.append(value)
                    guard index < bytes.count else { throw unexpected("',' or ']'") }
                    if bytes[index] == .comma {
                        index += 1
                        continue parsing
                    }
                    guard bytes[index] == .closeBracket else { throw unexpected("',' or ']'") }
                    index += 1
                    let start = stack.removeLast().start
                    value = .array(Self.takeElements(from: &openItems, start: start, isRoot: stack.isEmpty))
                }
            }
            return value
        }
    }

    /// Takes a closed container's elements out of the shared storage.
    ///
    /// When they are all of it and the container is the document's root or fills at least half
    /// of it (no more spare room than appending would have left), the storage itself is taken:
    /// the root and a large array are neither copied nor allocated again, and the peak memory
    /// for a huge array is what growing its own array would take. Otherwise they move into an
    /// array of exactly their count (one allocation), so a small container does not keep the
    /// storage's spare room. (Not `Array(storage[start...])`: it shares the buffer whenever the
    /// slice is all of it.)
    private static func takeElements<Element>(
        from storage: inout [Element], start: Int, isRoot: Bool
    ) -> [Element] {
        var elements: [Element] = []
        if start == 0, isRoot || storage.count >= storage.capacity / 2 {
            swap(&elements, &storage)
        } else {
            // Popped (moved, not copied and released) from the end, then put back in order.
            let count = storage.count - start
            elements.reserveCapacity(count)
            for _ in 0..<count { elements.append(storage.removeLast()) }
            elements.reverse()
        }
        return elements
    }

    /// Reserves `capacity` in an array that has never held anything; a no-op after that.
    private static func reserveOnFirstUse<Element>(_ array: inout [Element], capacity: Int) {
        if array.capacity == 0 { array.reserveCapacity(capacity) }
    }

    private func checkDepth(_ depth: Int) throws(WireError) {
        if depth > maxDepth {
            throw WireError(.tooDeep, "JSON at byte \(index) nests arrays and objects deeper than \(maxDepth) levels")
        }
    }

    /// Parses `"key"` and the `:` after it; `index` is at the opening quote (whitespace skipped).
    private mutating func parseKey(expected: String) throws(WireError) -> String {
        guard index < bytes.count, bytes[index] == .quote else { throw unexpected(expected) }
        let key = try parseString()
        skipWhitespace()
        guard index < bytes.count, bytes[index] == .colon else { throw unexpected("':' after the key") }
        index += 1
        return key
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(WireError) {
        let start = index
        for offset in 0..<literal.utf8CodeUnitCount {
            let position = start + offset
            guard position < bytes.count, bytes[position] == literal.utf8Start[offset] else {
                index = position
                throw unexpected("'\(literal)'")
            }
        }
        index = start + literal.utf8CodeUnitCount
    }

    // MARK: Numbers

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, kept as its literal text.
    private mutating func parseNumber() throws(WireError) -> Value {
        let start = index
        if bytes[index] == .minus { index += 1 }
        guard index < bytes.count, isDigit(bytes[index]) else { throw unexpected("a digit") }
        if bytes[index] == .digitZero {
            index += 1
            if index < bytes.count, isDigit(bytes[index]) {
                throw malformed(at: index - 1, "numbers may not have leading zeros")
            }
        } else {
            skipDigits()
        }
        if index < bytes.count, bytes[index] == .period {
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else { throw unexpected("a digit after the decimal point") }
            skipDigits()
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            if index < bytes.count, bytes[index] == .plus || bytes[index] == .minus { index += 1 }
            guard index < bytes.count, isDigit(bytes[index]) else { throw unexpected("a digit in the exponent") }
            skipDigits()
        }
        return .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self))
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte &- .digitZero < 10 }

    private mutating func skipDigits() {
        while index < bytes.count, isDigit(bytes[index]) { index += 1 }
    }

    // MARK: Strings

    /// Parses a string; `index` is at the opening quote.
    private mutating func parseString() throws(WireError) -> String {
        let opening = index
        index += 1
        var runStart = index
        var escaped = false
        while index < bytes.count {
            let byte = bytes[index]
            if byte == .quote {
                let run = UnsafeBufferPointer(rebasing: bytes[runStart..<index])
                index += 1
                if !escaped { return String(decoding: run, as: UTF8.self) }
                scratch.append(contentsOf: run)
                return String(decoding: scratch, as: UTF8.self)
            } else if byte == .backslash {
                if !escaped {
                    escaped = true
                    scratch.removeAll(keepingCapacity: true)
                }
                scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                try parseEscape(stringStart: opening)
                runStart = index
            } else if byte < 0x20 {
                throw malformed(
                    at: index, "control character \(hex(byte)) in a string; escape it, e.g. as \\u00\(hexDigits(byte, width: 2))")
            } else if byte < 0x80 {
                index += 1
            } else if let length = utf8SequenceLength(at: index) {
                index += length
            } else {
                throw malformed(at: index, "invalid UTF-8 byte \(hex(byte)) in a string")
            }
        }
        throw malformed(at: index, "unterminated string starting at byte \(opening)")
    }

    /// Decodes one escape into `scratch`; `index` is at the backslash and ends after the escape.
    private mutating func parseEscape(stringStart: Int) throws(WireError) {
        let backslash = index
        index += 1
        guard index < bytes.count else { throw malformed(at: index, "unterminated string starting at byte \(stringStart)") }
        let simple: UInt8
        switch bytes[index] {
        case .quote: simple = .quote
        case .backslash: simple = .backslash
        case .slash: simple = .slash
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"):
            index += 1
            var scalar = try parseHex4()
            if (0xD800...0xDBFF).contains(scalar) {
                guard index + 1 < bytes.count, bytes[index] == .backslash, bytes[index + 1] == UInt8(ascii: "u") else {
                    throw malformed(
                        at: backslash,
                        "lone surrogate \\u\(hexDigits(scalar, width: 4)); a high surrogate must be followed by a \\uDC00-\\uDFFF escape")
                }
                let lowStart = index
                index += 2
                let low = try parseHex4()
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw malformed(
                        at: lowStart,
                        "lone surrogate \\u\(hexDigits(scalar, width: 4)); it is followed by \\u\(hexDigits(low, width: 4)), not a low surrogate")
                }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw malformed(
                    at: backslash, "lone surrogate \\u\(hexDigits(scalar, width: 4)); a low surrogate must follow a high surrogate")
            }
            appendUTF8(scalar)
            return
        default:
            throw malformed(
                at: backslash,
                "invalid escape '\\\(describe(bytes[index], quoted: false))'; expected \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX")
        }
        scratch.append(simple)
        index += 1
    }

    private mutating func parseHex4() throws(WireError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard index < bytes.count else { throw unexpected("4 hex digits after \\u") }
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case .digitZero ... .digitNine: digit = byte - .digitZero
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw unexpected("4 hex digits after \\u")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func appendUTF8(_ scalar: UInt32) {
        switch scalar {
        case 0..<0x80:
            scratch.append(UInt8(scalar))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | scalar >> 6))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | scalar >> 12))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        default:
            scratch.append(UInt8(0xF0 | scalar >> 18))
            scratch.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        }
    }

    /// The length of the well-formed UTF-8 sequence (Unicode table 3-7) that starts with the
    /// non-ASCII byte at `start`, or nil if it is ill-formed: overlong, a surrogate, above
    /// U+10FFFF, or cut short.
    private func utf8SequenceLength(at start: Int) -> Int? {
        func continuation(_ offset: Int, _ range: ClosedRange<UInt8> = 0x80...0xBF) -> Bool {
            start + offset < bytes.count && range.contains(bytes[start + offset])
        }
        switch bytes[start] {
        case 0xC2...0xDF:
            return continuation(1) ? 2 : nil
        case 0xE0:
            return continuation(1, 0xA0...0xBF) && continuation(2) ? 3 : nil
        case 0xE1...0xEC, 0xEE...0xEF:
            return continuation(1) && continuation(2) ? 3 : nil
        case 0xED:
            return continuation(1, 0x80...0x9F) && continuation(2) ? 3 : nil
        case 0xF0:
            return continuation(1, 0x90...0xBF) && continuation(2) && continuation(3) ? 4 : nil
        case 0xF1...0xF3:
            return continuation(1) && continuation(2) && continuation(3) ? 4 : nil
        case 0xF4:
            return continuation(1, 0x80...0x8F) && continuation(2) && continuation(3) ? 4 : nil
        default:
            return nil
        }
    }

    // MARK: Whitespace and errors

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case .space, .tab, .newline, .carriageReturn: index += 1
            default: return
            }
        }
    }

    private func unexpected(_ expected: String) -> WireError {
        let found = index < bytes.count ? describe(bytes[index], quoted: true) : "the end of the input"
        return malformed(at: index, "expected \(expected), found \(found)")
    }

    private func malformed(at offset: Int, _ problem: String) -> WireError {
        WireError(.malformedJSON, "malformed JSON at byte \(offset): \(problem)")
    }

    private func describe(_ byte: UInt8, quoted: Bool) -> String {
        guard byte > 0x20, byte < 0x7F else { return "byte \(hex(byte))" }
        let character = String(UnicodeScalar(byte))
        return quoted ? "'\(character)'" : character
    }

    private func hex(_ byte: UInt8) -> String { "0x" + hexDigits(byte, width: 2) }

    private func hexDigits(_ value: some BinaryInteger, width: Int) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
