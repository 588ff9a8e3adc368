/// A JSON-shaped value: what payloads, join configs and JWT claims are made of.
///
/// Numbers keep their literal text so that a payload relayed through the server comes out
/// byte-for-byte equal in value (no float rounding of large integers, `1.0` stays `1.0`).
/// Objects keep their key order for the same reason.
public indirect enum Value: Sendable, Hashable {
    case null
    case bool(Bool)
    /// A JSON number as its literal text, e.g. `"42"`, `"-1.5e3"`.
    case number(String)
    case string(String)
    case array([Value])
    case object(Object)

    /// An ordered JSON object. Lookups are linear: objects on the wire are small, and a
    /// dictionary would lose the order clients sent.
    public struct Object: Sendable, Hashable {
        public var members: [(key: String, value: Value)]

        public init(_ members: [(key: String, value: Value)] = []) { self.members = members }

        public subscript(key: String) -> Value? {
            get { members.first { $0.key == key }?.value }
            set {
                if let index = members.firstIndex(where: { $0.key == key }) {
                    if let newValue { members[index].value = newValue } else { members.remove(at: index) }
                } else if let newValue {
                    members.append((key, newValue))
                }
            }
        }

        public var isEmpty: Bool { members.isEmpty }
        public var count: Int { members.count }

        public static func == (lhs: Object, rhs: Object) -> Bool {
            lhs.members.count == rhs.members.count
                && zip(lhs.members, rhs.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(members.count)
            for member in members {
                hasher.combine(member.key)
                hasher.combine(member.value)
            }
        }
    }
}

extension Value {
    /// `object[key]` for objects, nil otherwise.
    public subscript(key: String) -> Value? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let string) = self { return string }
        return nil
    }

    /// A boolean, also accepting the strings `"true"` and `"false"` as Supabase join configs do.
    public var boolValue: Bool? {
        switch self {
        case .bool(let bool): bool
        case .string("true"): true
        case .string("false"): false
        default: nil
        }
    }

    public var objectValue: Object? {
        if case .object(let object) = self { return object }
        return nil
    }

    public var arrayValue: [Value]? {
        if case .array(let array) = self { return array }
        return nil
    }

    /// The number as a Double, if this is a number.
    public var doubleValue: Double? {
        if case .number(let text) = self { return Double(text) }
        return nil
    }

    /// The number as an Int64, if this is a number with an integral value in range.
    public var int64Value: Int64? {
        guard case .number(let text) = self else { return nil }
        if let exact = Int64(text) { return exact }
        guard let double = Double(text), double.rounded() == double, abs(double) < 9.2e18 else { return nil }
        return Int64(double)
    }

    public var isNull: Bool { self == .null }

    /// "a string", "an object", … for error messages.
    public var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// Convenience for building numbers from Swift integers.
    public static func int(_ value: some BinaryInteger) -> Value { .number(String(value)) }
}

extension Value: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByNilLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(integerLiteral value: Int) { self = .number(String(value)) }
    public init(arrayLiteral elements: Value...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, Value)...) {
        self = .object(Object(elements.map { (key: $0.0, value: $0.1) }))
    }
}

extension Value.Object: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, Value)...) {
        self.init(elements.map { (key: $0.0, value: $0.1) })
    }
}
