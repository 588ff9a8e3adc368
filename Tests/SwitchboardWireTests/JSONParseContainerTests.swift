import NIOCore
import SwitchboardCore
import Testing

import SwitchboardWire

/// The parser keeps the elements of every open array and object in shared storage and moves
/// them out when the container closes (the storage itself for the root and for a container that
/// is all of it and fills at least half of it, a copy otherwise). These documents walk those
/// paths: siblings after a container took the storage, containers that are not at its start,
/// arrays of objects, sizes around the 16 elements reserved first, deep nesting.
@Suite struct JSONParseContainerTests {
    static let documents: [String] = [
        // A large array takes the storage; later arrays and objects need new storage.
        #"{"rows":"# + numbers(0..<33) + #","after":[1,2],"x":{"y":[3,{"z":[]}]}}"#,
        // A large array that is not at the start of the storage is copied.
        "[" + numbers(0..<20) + #",[1,2],{"a":[3,4],"b":{}}]"#,
        // Arrays of objects and objects of arrays, each at the start of its own storage.
        #"[{"a":1},{"b":2,"c":[{"d":3},{"e":[4,[5,[6]]]}]},{},[],{"f":null}]"#,
        #"{"a":{"b":{"c":{"d":{"e":"deep"}}}},"f":[[[[["deep"]]]]],"g":true}"#,
        // Exactly 16, 17 and 32 elements: the first reservation, one past it, a doubling.
        numbers(0..<16),
        numbers(0..<17),
        "{" + (0..<32).map(keyedArray).joined(separator: ",") + "}",
        "[" + (0..<40).map(smallObject).joined(separator: ",") + "]",
    ]

    private static func numbers(_ range: Range<Int>) -> String {
        "[" + range.map(String.init).joined(separator: ",") + "]"
    }

    private static func keyedArray(_ index: Int) -> String { #""k\#(index)":[\#(index)]"# }

    private static func smallObject(_ index: Int) -> String {
        let text = String(repeating: "x", count: index)
        return #"{"i":\#(index),"s":"\#(text)"}"#
    }

    @Test(arguments: documents)
    func containersRoundTripExactly(_ text: String) throws {
        let value = try JSON.parse(text.utf8)
        #expect(JSON.string(value) == text)
        #expect(try JSON.parse(ByteBuffer(string: text)) == value)
    }

    @Test func containersKeepTheirElementsWhenSiblingsFollow() throws {
        let value = try JSON.parse(#"{"first":[1,2,3],"second":{"a":[4],"b":[5,6]},"third":[[7],[8,9]]}"#.utf8)
        #expect(value["first"] == [1, 2, 3])
        #expect(value["second"] == ["a": [4], "b": [5, 6]])
        #expect(value["third"] == [[7], [8, 9]])
    }

    @Test func aSmallContainerDoesNotKeepTheSharedStoragesSpareRoom() throws {
        let value = try JSON.parse(#"[{"a":[1]},{"b":[2]}]"#.utf8)
        let items = try #require(value.arrayValue)
        for item in items {
            let object = try #require(item.objectValue)
            #expect(object.members.count == 1)
            #expect(object.members.capacity < 8)
            let inner = try #require(object.members[0].value.arrayValue)
            #expect(inner.capacity < 8)
        }
    }

    @Test func largeFlatAndNestedArraysParse() throws {
        let count = 100_000
        let flat = "[" + (0..<count).map(String.init).joined(separator: ",") + "]"
        let parsed = try #require(try JSON.parse(flat.utf8).arrayValue)
        #expect(parsed.count == count)
        #expect(parsed.first == 0 && parsed.last == .number(String(count - 1)))

        let nested = #"{"before":{"a":1},"rows":"# + flat + #","after":[true,{"b":[false]}]}"#
        let value = try JSON.parse(nested.utf8)
        #expect(value["rows"]?.arrayValue?.count == count)
        #expect(value["before"] == ["a": 1])
        #expect(value["after"] == [true, ["b": [false]]])
        #expect(JSON.string(value) == nested)
    }

    /// Random values of every shape, serialized and parsed back, must come back equal.
    @Test func randomDocumentsRoundTrip() throws {
        var generator = SplitMix64(seed: 0x5EED_1234)
        for _ in 0..<200 {
            let value = Self.randomValue(&generator, depth: 0)
            let text = JSON.string(value)
            let parsed = try JSON.parse(text.utf8, maxDepth: 5)
            #expect(parsed == value, "\(text)")
            #expect(JSON.string(parsed) == text)
        }
    }

    /// Errors found inside nested containers are the same whatever is open around them.
    @Test func errorsInsideNestedContainersAreReported() throws {
        for (text, message) in [
            (#"{"a":[1,{"b":[2,3}]}"#, "malformed JSON at byte 17: expected ',' or ']', found '}'"),
            (#"[[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17],{"a":1,}]"#, #"malformed JSON at byte 54: expected '"' to start the next key, found '}'"#),
            (#"{"a":{"b":[1,2,3"#, "malformed JSON at byte 16: expected ',' or ']', found the end of the input"),
        ] {
            let error = try #require(throws: WireError.self) { try JSON.parse(text.utf8) }
            #expect(error.code == .malformedJSON)
            #expect(error.message == message)
        }
    }

    private static let sizes = [0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 33]

    private static func randomValue(_ generator: inout SplitMix64, depth: Int) -> Value {
        let kind = depth >= 4 ? generator.next(below: 4) : generator.next(below: 7)
        switch kind {
        case 0: return .null
        case 1: return .bool(generator.next(below: 2) == 0)
        case 2: return .number(String(Int(generator.next(below: 2_000_000)) - 1_000_000))
        case 3: return .string(String(repeating: "s", count: generator.next(below: 40)))
        case 4, 5:
            let count = sizes[generator.next(below: sizes.count)]
            return .array((0..<count).map { _ in randomValue(&generator, depth: depth + 1) })
        default:
            let count = sizes[generator.next(below: sizes.count)]
            return .object(Value.Object((0..<count).map { (key: "k\($0)", value: randomValue(&generator, depth: depth + 1)) }))
        }
    }
}

/// A small deterministic generator, so a failing document can be reproduced.
private struct SplitMix64 {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
