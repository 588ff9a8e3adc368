import NIOCore
import SwitchboardCore
import Testing

import SwitchboardWire

@Suite struct JSONSerializeTests {
    @Test func outputIsCompact() {
        let value: Value = ["a": [1, true, nil, "x"], "b": ["c": .number("2.50")], "d": [], "e": .object(.init())]
        #expect(JSON.string(value) == #"{"a":[1,true,null,"x"],"b":{"c":2.50},"d":[],"e":{}}"#)
    }

    @Test(arguments: [
        ("quote \" and backslash \\", #""quote \" and backslash \\""#),
        ("\n\r\t\u{08}\u{0C}", #""\n\r\t\b\f""#),
        ("\u{00}\u{01}\u{1F}", #""\u0000\u0001\u001f""#),
        ("\u{7F} </script> / ok", "\"\u{7F} </script> / ok\""),
        ("é 日本 🎉 \u{2028}", "\"é 日本 🎉 \u{2028}\""),
        ("", #""""#),
    ])
    func stringsAreEscaped(_ string: String, _ expected: String) throws {
        #expect(JSON.string(.string(string)) == expected)
        #expect(try JSON.parse(expected.utf8) == .string(string))
    }

    @Test func keysAreEscapedToo() {
        #expect(JSON.string(["a\"b\n": 1]) == #"{"a\"b\n":1}"#)
    }

    @Test func serializeAppendsToTheBuffer() {
        var buffer = ByteBufferAllocator().buffer(capacity: 4)
        buffer.writeString("x=")
        JSON.serialize(["k": "v"], into: &buffer)
        #expect(buffer.text == #"x={"k":"v"}"#)
    }
}
