/// A migration file cut into statements: postgres-nio speaks only the extended query protocol,
/// which takes one statement at a time. Semicolons inside quotes, quoted identifiers,
/// dollar-quoted bodies (`$$ … $$`, `$tag$ … $tag$`) and comments do not end a statement.
enum SQLScript {
    static func statements(_ script: String) -> [String] {
        let bytes = Array(script.utf8)
        var statements: [String] = []
        var start = 0
        var index = 0
        func flush(upTo end: Int) {
            let text = String(decoding: bytes[start..<end], as: UTF8.self)
            if !isBlank(text) { statements.append(text.trimmed()) }
        }
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                index = skipQuoted(bytes, from: index, quote: byte)
            case UInt8(ascii: "-") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "-"):
                while index < bytes.count && bytes[index] != UInt8(ascii: "\n") { index += 1 }
            case UInt8(ascii: "/") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "*"):
                index = skipBlockComment(bytes, from: index)
            case UInt8(ascii: "$"):
                index = skipDollarQuoted(bytes, from: index)
            case UInt8(ascii: ";"):
                flush(upTo: index)
                index += 1
                start = index
            default:
                index += 1
            }
        }
        flush(upTo: bytes.count)
        return statements
    }

    /// Past a quoted string or identifier (a doubled quote stays inside).
    private static func skipQuoted(_ bytes: [UInt8], from open: Int, quote: UInt8) -> Int {
        var index = open + 1
        while index < bytes.count {
            if bytes[index] == quote {
                if index + 1 < bytes.count && bytes[index + 1] == quote {
                    index += 2
                    continue
                }
                return index + 1
            }
            index += 1
        }
        return index
    }

    /// Past a block comment, which nests in PostgreSQL.
    private static func skipBlockComment(_ bytes: [UInt8], from open: Int) -> Int {
        var depth = 0
        var index = open
        while index + 1 < bytes.count {
            if bytes[index] == UInt8(ascii: "/") && bytes[index + 1] == UInt8(ascii: "*") {
                depth += 1
                index += 2
            } else if bytes[index] == UInt8(ascii: "*") && bytes[index + 1] == UInt8(ascii: "/") {
                depth -= 1
                index += 2
                if depth == 0 { return index }
            } else {
                index += 1
            }
        }
        return bytes.count
    }

    /// Past a dollar-quoted body when `$` opens one (`$$` or `$tag$`); otherwise one byte on
    /// (a positional parameter such as `$1`).
    private static func skipDollarQuoted(_ bytes: [UInt8], from open: Int) -> Int {
        var end = open + 1
        while end < bytes.count, isTagByte(bytes[end]) { end += 1 }
        guard end < bytes.count, bytes[end] == UInt8(ascii: "$") else { return open + 1 }
        if end > open + 1, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[open + 1]) { return open + 1 }
        let tag = Array(bytes[open...end])
        var index = end + 1
        while index + tag.count <= bytes.count {
            if bytes[index] == UInt8(ascii: "$") && Array(bytes[index..<(index + tag.count)]) == tag {
                return index + tag.count
            }
            index += 1
        }
        return bytes.count
    }

    private static func isTagByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_") || byte >= 0x80
    }

    /// Whether a piece holds nothing but whitespace and comments.
    private static func isBlank(_ text: String) -> Bool {
        statementsStripped(text).allSatisfy(\.isWhitespace)
    }

    private static func statementsStripped(_ text: String) -> String {
        var result = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let code = line.range(of: "--").map { line[..<$0.lowerBound] } ?? line
            result += code + "\n"
        }
        return result
    }
}

extension String {
    fileprivate func trimmed() -> String {
        var view = Substring(self)
        while let first = view.first, first.isWhitespace { view.removeFirst() }
        while let last = view.last, last.isWhitespace { view.removeLast() }
        return String(view)
    }
}
