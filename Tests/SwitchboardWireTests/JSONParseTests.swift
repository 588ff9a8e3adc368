import NIOCore
import SwitchboardCore
import Testing

import SwitchboardWire

@Suite struct JSONParseTests {
    @Test(arguments: [
        #"{"b":1,"a":[1.0,-0,1e5,1E-7,-12.50e+3,12345678901234567890123456789]}"#,
        #"{"z":null,"y":true,"x":false,"w":{},"v":[],"u":""}"#,
        #"[{"k":"v"},[[]],"s",0,-1.5]"#,
        #""just a string""#,
        "0",
        "null",
        #"{"dup":1,"dup":2}"#,
    ])
    func compactDocumentsRoundTripExactly(_ text: String) throws {
        let value = try JSON.parse(text.utf8)
        #expect(JSON.string(value) == text)
    }

    @Test func numbersKeepTheirLiteralText() throws {
        let value = try JSON.parse(#"[1.0,1e5,-0.000,9007199254740993,1E+2]"#.utf8)
        #expect(value == .array([.number("1.0"), .number("1e5"), .number("-0.000"), .number("9007199254740993"), .number("1E+2")]))
    }

    @Test func objectsKeepKeyOrder() throws {
        let value = try JSON.parse(#"{"zeta":1,"alpha":2,"mid":3}"#.utf8)
        let object = try #require(value.objectValue)
        #expect(object.members.map(\.key) == ["zeta", "alpha", "mid"])
    }

    @Test func whitespaceIsAllowedAroundTokens() throws {
        let value = try JSON.parse(" \n\t{ \"a\" : [ 1 , true ,null ] ,\"b\":\"c\" }\r\n ".utf8)
        #expect(value == ["a": [1, true, nil], "b": "c"])
    }

    @Test func escapesDecode() throws {
        let value = try JSON.parse(#""q\" b\\ s\/ \b\f\n\r\t \u0041\u00e9\u65E5""#.utf8)
        #expect(value == .string("q\" b\\ s/ \u{08}\u{0C}\n\r\t Aé日"))
    }

    @Test func surrogatePairsDecodeToOneScalar() throws {
        let value = try JSON.parse(#""\ud83c\udf89 and \uD83D\uDE00""#.utf8)
        #expect(value == .string("🎉 and 😀"))
    }

    @Test func rawUnicodeSurvivesARoundTrip() throws {
        let text = #"{"名前":"日本語 ✓ é 🎉","ä":"\u2028"}"#
        let value = try JSON.parse(text.utf8)
        #expect(value["名前"] == "日本語 ✓ é 🎉")
        #expect(JSON.string(value) == "{\"名前\":\"日本語 ✓ é 🎉\",\"ä\":\"\u{2028}\"}")
    }

    @Test func byteBufferAndNonContiguousInputsParse() throws {
        var bytes = ByteBufferAllocator().buffer(capacity: 32)
        bytes.writeString("garbage")
        bytes.moveReaderIndex(forwardBy: 7)
        bytes.writeString(#"{"a":[1,"x"]}"#)
        let fromBuffer = try JSON.parse(bytes)
        let fromLazy = try JSON.parse(Array(#"{"a":[1,"x"]}"#.utf8).lazy.map { $0 })
        #expect(fromBuffer == ["a": [1, "x"]])
        #expect(fromLazy == fromBuffer)
    }

    @Test func depthUpToTheLimitIsAccepted() throws {
        let text = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        _ = try JSON.parse(text.utf8)
        let deeper = String(repeating: "{\"a\":", count: 32) + "[]" + String(repeating: "}", count: 32)
        let error = try #require(throws: WireError.self) { try JSON.parse(deeper.utf8) }
        #expect(error.code == .tooDeep)
        #expect(error.message == "JSON at byte 160 nests arrays and objects deeper than 32 levels")
    }

    @Test func nestingIsIterativeWhenTheLimitIsRaised() throws {
        let text = String(repeating: "[", count: 1000) + "7" + String(repeating: "]", count: 1000)
        var value = try JSON.parse(text.utf8, maxDepth: 1000)
        var depth = 0
        while case .array(let items) = value, let first = items.first {
            value = first
            depth += 1
        }
        #expect(depth == 1000)
        #expect(value == 7)
    }

    @Test func aDepthBombIsRejectedCleanly() throws {
        let bomb = [UInt8](repeating: UInt8(ascii: "["), count: 10_000)
        let error = try #require(throws: WireError.self) { try JSON.parse(bomb) }
        #expect(error.code == .tooDeep)
        #expect(error.message == "JSON at byte 32 nests arrays and objects deeper than 32 levels")
    }

    /// One malformed document and the start of the message that must reject it.
    struct Malformed: Sendable, CustomTestStringConvertible {
        let name: String
        let bytes: [UInt8]
        let message: String
        var testDescription: String { name }

        init(_ name: String, _ text: String, _ message: String) {
            self.init(name, Array(text.utf8), message)
        }

        init(_ name: String, _ bytes: [UInt8], _ message: String) {
            self.name = name
            self.bytes = bytes
            self.message = message
        }
    }

    static let malformed: [Malformed] = [
        Malformed("empty input", "", "malformed JSON at byte 0: expected a value, found the end of the input"),
        Malformed("only whitespace", "  \n", "malformed JSON at byte 3: expected a value, found the end of the input"),
        Malformed("trailing comma in array", "[1,2,]", "malformed JSON at byte 5: expected a value, found ']'"),
        Malformed(
            "trailing comma in object", #"{"a":1,}"#, #"malformed JSON at byte 7: expected '"' to start the next key, found '}'"#),
        Malformed("missing comma", "[1 2]", "malformed JSON at byte 3: expected ',' or ']', found '2'"),
        Malformed("missing colon", #"{"a" 1}"#, "malformed JSON at byte 5: expected ':' after the key, found '1'"),
        Malformed("unquoted key", "{a:1}", #"malformed JSON at byte 1: expected '"' or '}', found 'a'"#),
        Malformed("unclosed object", #"{"a":1"#, "malformed JSON at byte 6: expected ',' or '}', found the end of the input"),
        Malformed("leading zero", "[01]", "malformed JSON at byte 1: numbers may not have leading zeros"),
        Malformed("negative leading zero", "-012", "malformed JSON at byte 1: numbers may not have leading zeros"),
        Malformed("bare minus", "-", "malformed JSON at byte 1: expected a digit, found the end of the input"),
        Malformed("leading plus", "+1", "malformed JSON at byte 0: expected a value, found '+'"),
        Malformed("leading point", ".5", "malformed JSON at byte 0: expected a value, found '.'"),
        Malformed("trailing point", "1.", "malformed JSON at byte 2: expected a digit after the decimal point"),
        Malformed("empty exponent", "1e+", "malformed JSON at byte 3: expected a digit in the exponent"),
        Malformed("NaN", "NaN", "malformed JSON at byte 0: expected a value, found 'N'"),
        Malformed("truncated literal", "tru", "malformed JSON at byte 3: expected 'true', found the end of the input"),
        Malformed("capitalised literal", "[True]", "malformed JSON at byte 1: expected a value, found 'T'"),
        Malformed("misspelt literal", "nul1", "malformed JSON at byte 3: expected 'null', found '1'"),
        Malformed("single quotes", "'a'", "malformed JSON at byte 0: expected a value, found '''"),
        Malformed("unterminated string", #"{"a":"abc"#, "malformed JSON at byte 9: unterminated string starting at byte 5"),
        Malformed("unterminated escape", #""abc\"#, "malformed JSON at byte 5: unterminated string starting at byte 0"),
        Malformed("raw newline in string", "\"a\nb\"", "malformed JSON at byte 2: control character 0x0A in a string"),
        Malformed("raw NUL in string", [0x22, 0x00, 0x22], "malformed JSON at byte 1: control character 0x00 in a string"),
        Malformed("bad escape", #""\x""#, #"malformed JSON at byte 1: invalid escape '\x'"#),
        Malformed("short unicode escape", #""\u12""#, "malformed JSON at byte 5: expected 4 hex digits after \\u, found '\"'"),
        Malformed("non-hex unicode escape", #""\u12G4""#, "malformed JSON at byte 5: expected 4 hex digits after \\u, found 'G'"),
        Malformed("lone high surrogate", #""\ud800""#, #"malformed JSON at byte 1: lone surrogate \uD800"#),
        Malformed("high surrogate then text", #""\uD83Dabc""#, #"malformed JSON at byte 1: lone surrogate \uD83D"#),
        Malformed(
            "high surrogate then non-surrogate", #""\uD83D\u0041""#,
            #"malformed JSON at byte 7: lone surrogate \uD83D; it is followed by \u0041"#),
        Malformed("lone low surrogate", #""\uDC00""#, #"malformed JSON at byte 1: lone surrogate \uDC00"#),
        Malformed("invalid UTF-8 byte", [0x22, 0x61, 0xFF, 0x22], "malformed JSON at byte 2: invalid UTF-8 byte 0xFF in a string"),
        Malformed("overlong UTF-8", [0x22, 0xC0, 0xAF, 0x22], "malformed JSON at byte 1: invalid UTF-8 byte 0xC0"),
        Malformed("UTF-8 surrogate", [0x22, 0xED, 0xA0, 0x80, 0x22], "malformed JSON at byte 1: invalid UTF-8 byte 0xED"),
        Malformed("truncated UTF-8", [0x22, 0xE2, 0x82, 0x22], "malformed JSON at byte 1: invalid UTF-8 byte 0xE2"),
        Malformed("UTF-8 above U+10FFFF", [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], "malformed JSON at byte 1: invalid UTF-8 byte 0xF4"),
        Malformed("stray continuation byte", [0x22, 0x80, 0x22], "malformed JSON at byte 1: invalid UTF-8 byte 0x80"),
        Malformed("non-ASCII outside a string", [0xEF, 0xBB, 0xBF, 0x31], "malformed JSON at byte 0: expected a value, found byte 0xEF"),
        Malformed("trailing garbage", "[1] x", "malformed JSON at byte 4: expected the end of the input after the value, found 'x'"),
        Malformed("two documents", "{}{}", "malformed JSON at byte 2: expected the end of the input after the value, found '{'"),
        Malformed("trailing NUL", [0x31, 0x00], "malformed JSON at byte 1: expected the end of the input after the value, found byte 0x00"),
    ]

    @Test(arguments: malformed)
    func malformedJSONIsRejected(_ example: Malformed) throws {
        let error = try #require(throws: WireError.self) { try JSON.parse(example.bytes) }
        #expect(error.code == .malformedJSON)
        #expect(error.message.hasPrefix(example.message), "\(error.message)")
        #expect(error.description == error.message)
        #expect(error.topic == nil && error.ref == nil && error.joinRef == nil)
    }
}
