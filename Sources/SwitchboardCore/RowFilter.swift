/// A `postgres_changes` binding's `filter`, in Supabase's (PostgREST's) syntax:
/// `column=op.value`, several joined by commas (all must hold), each optionally negated with
/// `not.`: `supplier_id=eq.s1`, `status=in.(new,open)`, `deleted_at=is.null`,
/// `score=not.lt.3`, `title=ilike.*wedding*`.
///
/// Evaluated against a row as its JSON (`Value.Object`: numbers, strings, booleans, nulls) with
/// SQL's three-valued logic: a comparison with a null (or a missing column) is unknown, `not.`
/// of unknown stays unknown, and only a row for which every condition is true matches.
public struct RowFilter: Sendable, Hashable {
    public enum Operator: String, Sendable, CaseIterable {
        case eq, neq, lt, lte, gt, gte, `in`, like, ilike, `is`, match, imatch, isdistinct
    }

    public struct Condition: Sendable, Hashable {
        public let column: String
        public let op: Operator
        public let negated: Bool
        /// The operand: one value, or `in`'s list.
        public let values: [String]
    }

    public let conditions: [Condition]

    /// Why a filter cannot be read.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public init(conditions: [Condition]) { self.conditions = conditions }

    /// Reads `text`; the error says which condition is wrong and how.
    public static func parse(_ text: String) throws(ParseError) -> RowFilter {
        let parts = split(text, on: ",")
        guard !text.isEmpty, !parts.contains(where: { $0.isEmpty }) else {
            throw ParseError(message: "filter \"\(text)\" has an empty condition; write column=op.value, several joined by commas")
        }
        var conditions: [Condition] = []
        for part in parts { conditions.append(try condition(part, in: text)) }
        return RowFilter(conditions: conditions)
    }

    private static func condition(_ part: String, in text: String) throws(ParseError) -> Condition {
        func fail(_ why: String) -> ParseError { ParseError(message: "filter \"\(text)\": \(part): \(why)") }
        guard let equals = part.firstIndex(of: "=") else { throw fail("expected column=op.value") }
        let column = String(part[..<equals])
        guard !column.isEmpty, column.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw fail("the column name must be letters, digits and _")
        }
        var rest = part[part.index(after: equals)...]
        var negated = false
        if rest.hasPrefix("not.") {
            negated = true
            rest = rest.dropFirst(4)
        }
        guard let dot = rest.firstIndex(of: ".") else {
            throw fail("expected op.value after \(column)= (e.g. \(column)=eq.42)")
        }
        let name = String(rest[..<dot])
        guard let op = Operator(rawValue: name) else {
            throw fail("unknown operator \"\(name)\"; use \(Operator.allCases.map(\.rawValue).joined(separator: ", ")), optionally after not.")
        }
        let operand = String(rest[rest.index(after: dot)...])
        var values = [operand]
        switch op {
        case .in:
            guard operand.hasPrefix("("), operand.hasSuffix(")"), operand.count > 2 else {
                throw fail("in needs a list of at least one value in parentheses: \(column)=in.(a,b,c)")
            }
            let items = split(String(operand.dropFirst().dropLast()), on: ",")
            guard !items.contains(where: \.isEmpty) else { throw fail("in's list has an empty value: \(column)=in.(a,b,c)") }
            values = items.map(unquoted)
        case .is:
            let lowered = operand.lowercased()
            guard ["null", "true", "false", "unknown"].contains(lowered) else {
                throw fail("is takes null, true, false or unknown, not \"\(operand)\"")
            }
            values = [lowered]
        case .match, .imatch:
            if let problem = PosixRegex.problem(operand) { throw fail("\"\(operand)\" \(problem)") }
        default:
            values = [unquoted(operand)]
        }
        return Condition(column: column, op: op, negated: negated, values: values)
    }

    /// `text` cut at every `separator` outside parentheses and double quotes.
    static func split(_ text: String, on separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var depth = 0
        var quoted = false
        for character in text {
            if character == "\"" { quoted.toggle() }
            if !quoted {
                if character == "(" { depth += 1 }
                if character == ")" { depth = max(0, depth - 1) }
                if character == separator && depth == 0 {
                    parts.append(current)
                    current = ""
                    continue
                }
            }
            current.append(character)
        }
        parts.append(current)
        return parts
    }

    /// `"a,b"` → `a,b` (PostgREST quotes values holding reserved characters).
    private static func unquoted(_ value: String) -> String {
        if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { return String(value.dropFirst().dropLast()) }
        return value
    }

    // MARK: Evaluation

    /// Whether every condition holds for `row`.
    public func matches(_ row: Value.Object) -> Bool {
        conditions.allSatisfy { Self.evaluate($0, row[$0.column] ?? .null) == true }
    }

    /// true, false, or nil for SQL's unknown.
    static func evaluate(_ condition: Condition, _ value: Value) -> Bool? {
        let result = evaluatePositive(condition, value)
        guard condition.negated else { return result }
        return result.map { !$0 }
    }

    private static func evaluatePositive(_ condition: Condition, _ value: Value) -> Bool? {
        let operand = condition.values.first ?? ""
        switch condition.op {
        case .eq: return compare(value, operand).map { $0 == 0 }
        case .neq: return compare(value, operand).map { $0 != 0 }
        case .lt: return compare(value, operand).map { $0 < 0 }
        case .lte: return compare(value, operand).map { $0 <= 0 }
        case .gt: return compare(value, operand).map { $0 > 0 }
        case .gte: return compare(value, operand).map { $0 >= 0 }
        case .in:
            if value == .null { return nil }
            var unknown = false
            for item in condition.values {
                switch compare(value, item) {
                case 0?: return true
                case nil: unknown = true
                default: break
                }
            }
            return unknown ? nil : false
        case .is:
            switch operand {
            case "null", "unknown": return value == .null
            case "true": return value == .bool(true)
            default: return value == .bool(false)
            }
        case .isdistinct:
            if operand == "null" { return value != .null }
            if value == .null { return true }
            return compare(value, operand).map { $0 != 0 } ?? true
        case .like, .ilike:
            guard let text = text(of: value) else { return nil }
            return like(text, pattern: operand, ignoringCase: condition.op == .ilike)
        case .match, .imatch:
            guard let text = text(of: value) else { return nil }
            return PosixRegex.matches(text, pattern: operand, ignoringCase: condition.op == .imatch)
        }
    }

    /// The row's value against a filter's text: -1, 0 or 1, or nil when unknown (a null, or
    /// values that cannot be compared, like a number against text that is not one).
    static func compare(_ value: Value, _ operand: String) -> Int? {
        switch value {
        case .null, .array, .object:
            return nil
        case .number(let text):
            guard let number = Double(text), let other = Double(operand) else { return nil }
            return number < other ? -1 : number > other ? 1 : 0
        case .string(let text):
            return text < operand ? -1 : text > operand ? 1 : 0
        case .bool(let flag):
            let other: Bool
            switch operand.lowercased() {
            case "true", "t", "yes", "y", "on", "1": other = true
            case "false", "f", "no", "n", "off", "0": other = false
            default: return nil
            }
            return flag == other ? 0 : (flag ? 1 : -1)
        }
    }

    /// A scalar as the text SQL's `like` and `~` would see.
    private static func text(of value: Value) -> String? {
        switch value {
        case .string(let text), .number(let text): text
        case .bool(let flag): flag ? "true" : "false"
        default: nil
        }
    }

    /// SQL `like`: `%` any run, `_` one character, `\` escapes; PostgREST also takes `*` for `%`.
    static func like(_ text: String, pattern: String, ignoringCase: Bool) -> Bool {
        enum Token: Equatable {
            case character(Character)
            case one
            case any
        }
        var tokens: [Token] = []
        var escaped = false
        for character in ignoringCase ? pattern.lowercased() : pattern {
            if escaped {
                tokens.append(.character(character))
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "%" || character == "*" {
                tokens.append(.any)
            } else if character == "_" {
                tokens.append(.one)
            } else {
                tokens.append(.character(character))
            }
        }
        let characters = Array(ignoringCase ? text.lowercased() : text)
        // Iterative wildcard matching with backtracking to the last `any`.
        var t = 0
        var p = 0
        var star: Int?
        var mark = 0
        while t < characters.count {
            if p < tokens.count, tokens[p] == .one || tokens[p] == .character(characters[t]) {
                t += 1
                p += 1
            } else if p < tokens.count, tokens[p] == .any {
                star = p
                mark = t
                p += 1
            } else if let star {
                p = star + 1
                mark += 1
                t = mark
            } else {
                return false
            }
        }
        while p < tokens.count, tokens[p] == .any { p += 1 }
        return p == tokens.count
    }
}
