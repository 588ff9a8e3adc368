import SwitchboardCore

/// A `--claim` argument that is not `key=value` with a non-empty key.
public struct ClaimArgumentError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong with the argument.
    public let message: String

    /// The message.
    public var description: String { message }
}

extension TokenClaims {
    /// Parses a CLI `--claim key=value` argument into a claim name and value.
    ///
    /// The text splits at the first `=`. The value becomes:
    /// - `true` / `false` → a boolean; `null` → null;
    /// - a JSON number (`42`, `-1.5`, `2e3`) → a number, keeping its text;
    /// - `[a,b,c]` → an array of the strings between the commas, each trimmed of spaces
    ///   (`[]` is the empty array);
    /// - anything else, including the empty text → a string, as written.
    ///
    /// There is no JSON parser here: nested arrays and objects stay strings.
    public static func parseClaimArgument(_ text: String) throws -> (String, Value) {
        guard let equals = text.firstIndex(of: "=") else {
            throw ClaimArgumentError(message: "--claim \(text) is not key=value")
        }
        let key = String(text[..<equals])
        guard !key.isEmpty else {
            throw ClaimArgumentError(message: "--claim \(text) has an empty key")
        }
        return (key, claimValue(String(text[text.index(after: equals)...])))
    }

    private static func claimValue(_ text: String) -> Value {
        switch text {
        case "true": return .bool(true)
        case "false": return .bool(false)
        case "null": return .null
        default: break
        }
        if isJSONNumber(text) { return .number(text) }
        if text.hasPrefix("["), text.hasSuffix("]"), text.count >= 2 {
            let inner = text.dropFirst().dropLast()
            if inner.allSatisfy({ $0 == " " }) { return .array([]) }
            return .array(inner.split(separator: ",", omittingEmptySubsequences: false).map { .string(trimmed($0)) })
        }
        return .string(text)
    }

    private static func trimmed(_ text: Substring) -> String {
        String(text.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }

    /// True for text matching JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    static func isJSONNumber(_ text: String) -> Bool {
        var bytes = text.utf8[...]
        func digits() -> Int {
            let count = bytes.prefix(while: { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }).count
            bytes = bytes.dropFirst(count)
            return count
        }
        if bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
        if bytes.first == UInt8(ascii: "0") {
            bytes = bytes.dropFirst()
        } else if digits() == 0 {
            return false
        }
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            guard digits() > 0 else { return false }
        }
        if bytes.first == UInt8(ascii: "e") || bytes.first == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if bytes.first == UInt8(ascii: "+") || bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return bytes.isEmpty
    }
}
