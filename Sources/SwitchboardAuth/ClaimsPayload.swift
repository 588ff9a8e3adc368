import JWTKit
import SwitchboardCore

/// A JWT payload of any claims, as a `Value.Object`. Time claims are checked by
/// ``TokenVerifier`` against the caller's clock, so `verify(using:)` checks nothing.
struct ClaimsPayload: JWTPayload, Equatable {
    var claims: Value.Object

    init(claims: Value.Object) { self.claims = claims }

    init(from decoder: any Decoder) throws {
        guard case .object(let object) = try JSONValue(from: decoder).value else {
            throw DecodingError.typeMismatch(
                Value.Object.self, .init(codingPath: decoder.codingPath, debugDescription: "claims must be an object"))
        }
        claims = object
    }

    func encode(to encoder: any Encoder) throws {
        try JSONValue(.object(claims)).encode(to: encoder)
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// `Value` through `Codable`, for the JSON coders jwt-kit uses.
///
/// Foundation's decoder hands numbers over as Swift numbers, not text: integers keep their
/// digits, other numbers come back as the shortest text of their `Double`. Object keys are
/// sorted, because the decoder does not report them in document order.
struct JSONValue: Codable, Equatable {
    var value: Value

    init(_ value: Value) { self.value = value }

    init(from decoder: any Decoder) throws {
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            var members: [(key: String, value: Value)] = []
            for key in object.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
                members.append((key.stringValue, try object.decode(JSONValue.self, forKey: key).value))
            }
            value = .object(Value.Object(members))
        } else if var array = try? decoder.unkeyedContainer() {
            var elements: [Value] = []
            while !array.isAtEnd { elements.append(try array.decode(JSONValue.self).value) }
            value = .array(elements)
        } else {
            let single = try decoder.singleValueContainer()
            if single.decodeNil() {
                value = .null
            } else if let bool = try? single.decode(Bool.self) {
                value = .bool(bool)
            } else if let int = try? single.decode(Int64.self) {
                value = .number(String(int))
            } else if let uint = try? single.decode(UInt64.self) {
                value = .number(String(uint))
            } else if let double = try? single.decode(Double.self) {
                value = .number(String(double))
            } else {
                value = .string(try single.decode(String.self))
            }
        }
    }

    func encode(to encoder: any Encoder) throws {
        switch value {
        case .null:
            var single = encoder.singleValueContainer()
            try single.encodeNil()
        case .bool(let bool):
            var single = encoder.singleValueContainer()
            try single.encode(bool)
        case .number(let text):
            var single = encoder.singleValueContainer()
            if let int = Int64(text) {
                try single.encode(int)
            } else if let uint = UInt64(text) {
                try single.encode(uint)
            } else if let double = Double(text), double.isFinite {
                try single.encode(double)
            } else {
                throw EncodingError.invalidValue(
                    text, .init(codingPath: encoder.codingPath, debugDescription: "not a JSON number: \(text)"))
            }
        case .string(let string):
            var single = encoder.singleValueContainer()
            try single.encode(string)
        case .array(let elements):
            var array = encoder.unkeyedContainer()
            for element in elements { try array.encode(JSONValue(element)) }
        case .object(let object):
            var container = encoder.container(keyedBy: AnyKey.self)
            for member in object.members { try container.encode(JSONValue(member.value), forKey: AnyKey(member.key)) }
        }
    }
}

/// A coding key for any string.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }

    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}
