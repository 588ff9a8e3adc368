#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `match` and `imatch` filters: POSIX extended regular expressions, as PostgreSQL's `~` and
/// `~*` take them, run by the C library's matcher. Clients choose the pattern, so it must not be
/// able to stall the server: glibc's matcher simulates the automaton instead of backtracking,
/// so its time grows with the text, not exponentially with a pattern like `(a+)+$`; back
/// references (`\1`), the one feature that would need backtracking, are refused, and so are
/// patterns over 256 bytes.
enum PosixRegex {
    static let maxPatternBytes = 256

    /// Why `pattern` cannot be used; nil when it can.
    static func problem(_ pattern: String) -> String? {
        if pattern.utf8.count > maxPatternBytes { return "is longer than \(maxPatternBytes) bytes" }
        if hasBackReference(pattern) { return "uses a back reference (\\1 … \\9), which is not supported" }
        var regex = regex_t()
        let status = regcomp(&regex, pattern, REG_EXTENDED | REG_NOSUB)
        if status == 0 {
            regfree(&regex)
            return nil
        }
        return "is not a valid regular expression"
    }

    /// Whether `text` contains a match of `pattern` (case-insensitively with `ignoringCase`);
    /// nil when the pattern cannot be used.
    static func matches(_ text: String, pattern: String, ignoringCase: Bool) -> Bool? {
        guard pattern.utf8.count <= maxPatternBytes, !hasBackReference(pattern) else { return nil }
        var regex = regex_t()
        guard regcomp(&regex, pattern, REG_EXTENDED | REG_NOSUB | (ignoringCase ? REG_ICASE : 0)) == 0 else { return nil }
        defer { regfree(&regex) }
        return regexec(&regex, text, 0, nil, 0) == 0
    }

    private static func hasBackReference(_ pattern: String) -> Bool {
        var escaped = false
        for byte in pattern.utf8 {
            if escaped {
                if (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(byte) { return true }
                escaped = false
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
            }
        }
        return false
    }
}
