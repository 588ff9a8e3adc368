import NIOCore
import SwitchboardCore
import Testing

import SwitchboardWire

@Suite struct WireDecoderTests {
    /// The join Python's realtime 2.x sends (PROTOCOL.md §3), byte for byte.
    static let pythonJoin = """
        {"topic":"realtime:room-1","event":"phx_join","ref":"1","join_ref":"1","payload":{
         "access_token":"<jwt>","config":{"broadcast":{"ack":false,"self":false},
         "presence":{"key":"","enabled":false},"private":false,
         "postgres_changes":[{"event":"INSERT","schema":"public","table":"todos","filter":"id=eq.7"}]}}}
        """

    @Test func decodesThePythonJoinOnV1() throws {
        let frame = try WireDecoder.decodeText(buffer(Self.pythonJoin), version: .v1)
        #expect(frame.topic == "realtime:room-1")
        #expect(frame.event == "phx_join")
        #expect(frame.ref == "1")
        #expect(frame.joinRef == "1")
        #expect(frame.userBroadcast == nil)
        #expect(frame.payload["access_token"] == "<jwt>")
        let config = try #require(frame.payload["config"]?.objectValue)
        #expect(config.members.map(\.key) == ["broadcast", "presence", "private", "postgres_changes"])
        #expect(config["broadcast"] == ["ack": false, "self": false])
        #expect(config["presence"] == ["key": "", "enabled": false])
        #expect(config["private"] == false)
        #expect(
            config["postgres_changes"] == [["event": "INSERT", "schema": "public", "table": "todos", "filter": "id=eq.7"]])
    }

    @Test func decodesAV2Join() throws {
        let text = #"["3","3","realtime:room-1","phx_join",{"config":{"private":false}}]"#
        let frame = try WireDecoder.decodeText(buffer(text), version: .v2)
        #expect(frame.joinRef == "3")
        #expect(frame.ref == "3")
        #expect(frame.topic == "realtime:room-1")
        #expect(frame.event == "phx_join")
        #expect(frame.payload == ["config": ["private": false]])
    }

    @Test func decodesAHeartbeatWithNullRefs() throws {
        let text = #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":null,"join_ref":null}"#
        let frame = try WireDecoder.decodeText(buffer(text), version: .v1)
        #expect(frame.topic == "phoenix" && frame.event == "heartbeat")
        #expect(frame.ref == nil && frame.joinRef == nil)
        #expect(frame.payload == .object(.init()))
    }

    @Test func v2NullRefsDecodeToNil() throws {
        let frame = try WireDecoder.decodeText(buffer(#"[null,null,"phoenix","heartbeat",{}]"#), version: .v2)
        #expect(frame.ref == nil && frame.joinRef == nil)
    }

    @Test func numericRefsKeepTheirText() throws {
        let v1 = try WireDecoder.decodeText(buffer(#"{"topic":"t","event":"e","payload":{},"ref":7,"join_ref":12}"#), version: .v1)
        #expect(v1.ref == "7" && v1.joinRef == "12")
        let v2 = try WireDecoder.decodeText(buffer(#"[3,4,"t","e",{}]"#), version: .v2)
        #expect(v2.joinRef == "3" && v2.ref == "4")
    }

    @Test func joinRefIsOptionalOnV1() throws {
        let frame = try WireDecoder.decodeText(buffer(#"{"topic":"t","event":"e","payload":{},"ref":"2"}"#), version: .v1)
        #expect(frame.joinRef == nil)
        #expect(frame.ref == "2")
    }

    @Test func depthLimitAppliesToFrames() throws {
        let payload = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        let text = #"{"topic":"t","event":"e","payload":{"a":\#(payload)},"ref":"1"}"#
        let error = try #require(throws: WireError.self) { try WireDecoder.decodeText(buffer(text), version: .v1) }
        #expect(error.code == .tooDeep)
        _ = try WireDecoder.decodeText(buffer(text), version: .v1, maxDepth: 64)
    }

    /// A text frame that must be refused, with what the error must say and recover.
    struct BadFrame: Sendable, CustomTestStringConvertible {
        let name: String
        let version: ProtocolVersion
        let text: String
        let code: WireError.Code
        let message: String
        var topic: String? = nil
        var ref: String? = nil
        var joinRef: String? = nil
        var testDescription: String { "\(name) (vsn \(version.rawValue))" }
    }

    static let badFrames: [BadFrame] = [
        BadFrame(
            name: "array on v1", version: .v1, text: #"["1","1","realtime:a","phx_join",{}]"#, code: .notAnObject,
            message: "vsn 1.0.0 expects one JSON object per frame, but this frame is an array; arrays are the vsn 2.0.0 format"),
        BadFrame(
            name: "string on v1", version: .v1, text: #""hello""#, code: .notAnObject,
            message: "vsn 1.0.0 expects one JSON object per frame, but this frame is a string"),
        BadFrame(
            name: "missing topic", version: .v1, text: #"{"event":"e","payload":{},"ref":"5","join_ref":"4"}"#,
            code: .missingField,
            message: #"the frame has no "topic" field; vsn 1.0.0 frames are objects with topic, event, payload and ref"#,
            ref: "5", joinRef: "4"),
        BadFrame(
            name: "missing event", version: .v1, text: #"{"topic":"realtime:a","payload":{},"ref":"5"}"#, code: .missingField,
            message: #"the frame has no "event" field"#, topic: "realtime:a", ref: "5"),
        BadFrame(
            name: "missing payload", version: .v1, text: #"{"topic":"realtime:a","event":"e","ref":6}"#, code: .missingField,
            message: #"the frame has no "payload" field"#, topic: "realtime:a", ref: "6"),
        BadFrame(
            name: "missing ref", version: .v1, text: #"{"topic":"realtime:a","event":"e","payload":{}}"#, code: .missingField,
            message: #"the frame has no "ref" field"#, topic: "realtime:a"),
        BadFrame(
            name: "numeric topic", version: .v1, text: #"{"topic":1,"event":"e","payload":{},"ref":"1"}"#, code: .wrongType,
            message: #""topic" must be a string, but it is a number"#, ref: "1"),
        BadFrame(
            name: "null event", version: .v1, text: #"{"topic":"realtime:a","event":null,"payload":{},"ref":"1"}"#,
            code: .wrongType, message: #""event" must be a string, but it is null"#, topic: "realtime:a", ref: "1"),
        BadFrame(
            name: "payload not an object", version: .v1,
            text: #"{"topic":"realtime:a","event":"e","payload":[1],"ref":"9","join_ref":"8"}"#, code: .wrongType,
            message: #""payload" must be an object, but it is an array"#, topic: "realtime:a", ref: "9", joinRef: "8"),
        BadFrame(
            name: "string payload", version: .v1, text: #"{"topic":"realtime:a","event":"e","payload":"x","ref":"9"}"#,
            code: .wrongType, message: #""payload" must be an object, but it is a string"#, topic: "realtime:a", ref: "9"),
        BadFrame(
            name: "boolean ref", version: .v1, text: #"{"topic":"realtime:a","event":"e","payload":{},"ref":true}"#,
            code: .wrongType, message: #""ref" must be a string, a number or null, but it is a boolean"#, topic: "realtime:a"),
        BadFrame(
            name: "object join_ref", version: .v1,
            text: #"{"topic":"realtime:a","event":"e","payload":{},"ref":"3","join_ref":{}}"#, code: .wrongType,
            message: #""join_ref" must be a string, a number or null, but it is an object"#, topic: "realtime:a", ref: "3"),
        BadFrame(
            name: "malformed JSON", version: .v1, text: #"{"topic":"realtime:a","#, code: .malformedJSON,
            message: #"malformed JSON at byte 22: expected '"' to start the next key, found the end of the input"#),
        BadFrame(
            name: "object on v2", version: .v2, text: #"{"topic":"realtime:a","event":"e","payload":{},"ref":"1"}"#,
            code: .notAnArray,
            message: "vsn 2.0.0 expects one JSON array [join_ref, ref, topic, event, payload] per frame, but this frame is an object"),
        BadFrame(
            name: "number on v2", version: .v2, text: "42", code: .notAnArray,
            message: "vsn 2.0.0 expects one JSON array [join_ref, ref, topic, event, payload] per frame, but this frame is a number"),
        BadFrame(
            name: "four elements", version: .v2, text: #"["1","realtime:a","e",{}]"#, code: .wrongArity,
            message: "vsn 2.0.0 expects [join_ref, ref, topic, event, payload], an array of 5 elements, but this one has 4"),
        BadFrame(
            name: "six elements", version: .v2, text: #"["1","1","realtime:a","e",{},{}]"#, code: .wrongArity,
            message: "vsn 2.0.0 expects [join_ref, ref, topic, event, payload], an array of 5 elements, but this one has 6"),
        BadFrame(
            name: "empty array", version: .v2, text: "[]", code: .wrongArity,
            message: "vsn 2.0.0 expects [join_ref, ref, topic, event, payload], an array of 5 elements, but this one has 0"),
        BadFrame(
            name: "null topic", version: .v2, text: #"["1","2",null,"e",{}]"#, code: .wrongType,
            message: "topic (element 3) must be a string, but it is null", ref: "2", joinRef: "1"),
        BadFrame(
            name: "numeric event", version: .v2, text: #"["1","2","realtime:a",5,{}]"#, code: .wrongType,
            message: "event (element 4) must be a string, but it is a number", topic: "realtime:a", ref: "2", joinRef: "1"),
        BadFrame(
            name: "payload not an object", version: .v2, text: #"["1","2","realtime:a","e","x"]"#, code: .wrongType,
            message: "payload (element 5) must be an object, but it is a string", topic: "realtime:a", ref: "2", joinRef: "1"),
        BadFrame(
            name: "array ref", version: .v2, text: #"["1",[],"realtime:a","e",{}]"#, code: .wrongType,
            message: "ref (element 2) must be a string, a number or null, but it is an array", topic: "realtime:a", joinRef: "1"),
        BadFrame(
            name: "boolean join_ref", version: .v2, text: #"[false,"2","realtime:a","e",{}]"#, code: .wrongType,
            message: "join_ref (element 1) must be a string, a number or null, but it is a boolean", topic: "realtime:a",
            ref: "2"),
    ]

    @Test(arguments: badFrames)
    func badTextFramesAreRefused(_ example: BadFrame) throws {
        let error = try #require(throws: WireError.self) {
            try WireDecoder.decodeText(buffer(example.text), version: example.version)
        }
        #expect(error.code == example.code)
        #expect(error.message.hasPrefix(example.message), "\(error.message)")
        #expect(error.topic == example.topic)
        #expect(error.ref == example.ref)
        #expect(error.joinRef == example.joinRef)
    }
}
