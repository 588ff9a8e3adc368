import NIOCore
import SwitchboardCore
import Testing

import SwitchboardWire

/// Binary kinds 3 and 4, checked against hand-built frames that follow the realtime-js layout
/// (supabase-js `packages/core/realtime-js/src/lib/serializer.ts` and its `test/serializer.test.ts`;
/// Supabase server `lib/realtime_web/socket/v2_serializer.ex`):
///
///     kind 3 (client → server): 3, join_ref_size, ref_size, topic_size, user_event_size,
///         metadata_size, encoding, join_ref, ref, topic, user_event, metadata, payload…
///     kind 4 (server → client): 4, topic_size, user_event_size, metadata_size, encoding,
///         topic, user_event, metadata, payload…
///
/// Sizes are one byte each; encoding is 0 for a binary payload and 1 for JSON.
@Suite struct BinaryFrameTests {
    static func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

    // MARK: Kind 3

    @Test func decodesKind3WithJSONPayload() throws {
        // realtime-js test "encodes user broadcast push with JSON payload no metadata".
        let frame: [UInt8] = [3, 2, 1, 3, 10, 0, 1] + Self.ascii(#"101topuser-event{"a":"b"}"#)
        let inbound = try WireDecoder.decodeBinary(buffer(frame), version: .v2)
        #expect(inbound.joinRef == "10")
        #expect(inbound.ref == "1")
        #expect(inbound.topic == "top")
        #expect(inbound.event == "broadcast")
        #expect(inbound.payload == ["type": "broadcast", "event": "user-event", "payload": ["a": "b"]])
        let user = try #require(inbound.userBroadcast)
        #expect(user.event == "user-event")
        #expect(user.isJSON)
        #expect(user.meta == nil)
        #expect(user.body.bytes == Self.ascii(#"{"a":"b"}"#))
    }

    @Test func decodesKind3Metadata() throws {
        // realtime-js test "forwards persist as metadata by default": 16 bytes of metadata.
        let frame: [UInt8] = [3, 2, 1, 3, 10, 16, 1] + Self.ascii(#"101topuser-event{"persist":true}{"a":"b"}"#)
        let inbound = try WireDecoder.decodeBinary(buffer(frame), version: .v2)
        let user = try #require(inbound.userBroadcast)
        #expect(user.meta == ["persist": true])
        #expect(inbound.payload["payload"] == ["a": "b"])
        #expect(user.body.bytes == Self.ascii(#"{"a":"b"}"#))
    }

    @Test func decodesKind3WithBinaryPayload() throws {
        // realtime-js test "encodes user broadcast push with Binary payload".
        let frame: [UInt8] = [3, 2, 1, 3, 10, 0, 0] + Self.ascii("101topuser-event") + [0x01, 0x04]
        let inbound = try WireDecoder.decodeBinary(buffer(frame), version: .v2)
        #expect(inbound.payload == ["type": "broadcast", "event": "user-event"])
        let user = try #require(inbound.userBroadcast)
        #expect(!user.isJSON)
        #expect(user.body.bytes == [0x01, 0x04])
    }

    @Test func emptyRefsInKind3DecodeToNil() throws {
        // realtime-js test "encodes user broadcast push with JSON payload no refs".
        let frame: [UInt8] = [3, 0, 0, 3, 10, 0, 1] + Self.ascii(#"topuser-event{"a":"b"}"#)
        let inbound = try WireDecoder.decodeBinary(buffer(frame), version: .v2)
        #expect(inbound.joinRef == nil && inbound.ref == nil)
        #expect(inbound.topic == "top")
    }

    @Test func kind3KeepsUTF8EventsAndNumberText() throws {
        let event = Self.ascii("café-🎉")
        let frame: [UInt8] = [3, 1, 1, 5, UInt8(event.count), 0, 1] + Self.ascii("12room1") + event + Self.ascii(#"{"n":1.50}"#)
        let inbound = try WireDecoder.decodeBinary(buffer(frame), version: .v2)
        #expect(inbound.payload["event"] == "café-🎉")
        #expect(inbound.payload["payload"] == ["n": .number("1.50")])
    }

    /// A binary frame that must be refused, with what the error must say and recover.
    struct BadBinary: Sendable, CustomTestStringConvertible {
        let name: String
        var version: ProtocolVersion = .v2
        let bytes: [UInt8]
        let code: WireError.Code
        let message: String
        var topic: String? = nil
        var ref: String? = nil
        var joinRef: String? = nil
        var testDescription: String { name }
    }

    static let badBinaries: [BadBinary] = [
        BadBinary(
            name: "binary on v1", version: .v1, bytes: [3, 2, 1, 3, 10, 0, 1] + ascii(#"101topuser-event{}"#),
            code: .unsupportedBinary, message: "binary frames need vsn 2.0.0; vsn 1.0.0 carries only JSON text frames"),
        BadBinary(name: "empty frame", bytes: [], code: .truncated, message: "the binary frame is empty"),
        BadBinary(
            name: "kind 0 push", bytes: [0, 1, 1, 3, 1] + ascii("11tope"), code: .unsupportedBinary,
            message: "binary frame kind 0 is not accepted from clients; only kind 3 (user broadcast push) is"),
        BadBinary(
            name: "kind 4 from a client", bytes: [4, 3, 1, 0, 1] + ascii("tope{}"), code: .unsupportedBinary,
            message: "binary frame kind 4 is not accepted from clients; only kind 3 (user broadcast push) is"),
        BadBinary(
            name: "truncated header", bytes: [3, 2, 1], code: .truncated,
            message: "the kind 3 header needs 7 bytes but the frame has 3"),
        BadBinary(
            name: "topic past the end", bytes: [3, 2, 1, 9, 10, 0, 1] + ascii("101top"), code: .truncated,
            message: "the kind 3 frame declares a 9-byte topic but only 3 bytes remain", ref: "1", joinRef: "10"),
        BadBinary(
            name: "event past the end", bytes: [3, 2, 1, 3, 10, 0, 1] + ascii("101topuser"), code: .truncated,
            message: "the kind 3 frame declares a 10-byte user event but only 4 bytes remain", topic: "top", ref: "1",
            joinRef: "10"),
        BadBinary(
            name: "metadata past the end", bytes: [3, 2, 1, 3, 10, 40, 1] + ascii(#"101topuser-event{"a":1}"#),
            code: .truncated, message: "the kind 3 frame declares 40 bytes of metadata but only 7 remain", topic: "top",
            ref: "1", joinRef: "10"),
        BadBinary(
            name: "unknown encoding", bytes: [3, 2, 1, 3, 10, 0, 2] + ascii(#"101topuser-event{}"#),
            code: .unsupportedBinary, message: "the kind 3 payload encoding is 2; expected 0 (binary) or 1 (JSON)",
            topic: "top", ref: "1", joinRef: "10"),
        BadBinary(
            name: "malformed JSON payload", bytes: [3, 2, 1, 3, 10, 0, 1] + ascii(#"101topuser-event{"a":}"#),
            code: .malformedJSON,
            message: "the kind 3 payload is not valid JSON: malformed JSON at byte 5: expected a value, found '}'",
            topic: "top", ref: "1", joinRef: "10"),
        BadBinary(
            name: "empty JSON payload", bytes: [3, 2, 1, 3, 10, 0, 1] + ascii("101topuser-event"), code: .malformedJSON,
            message: "the kind 3 payload is not valid JSON: malformed JSON at byte 0: expected a value, found the end of the input",
            topic: "top", ref: "1", joinRef: "10"),
        BadBinary(
            name: "malformed metadata", bytes: [3, 2, 1, 3, 10, 3, 0] + ascii("101topuser-event{x}") + [0x01],
            code: .malformedJSON,
            message: #"the kind 3 metadata is not valid JSON: malformed JSON at byte 1: expected '"' or '}', found 'x'"#,
            topic: "top", ref: "1", joinRef: "10"),
        BadBinary(
            name: "topic not UTF-8", bytes: [3, 2, 1, 3, 10, 0, 0] + ascii("101") + [0x74, 0xFF, 0x70] + ascii("user-event"),
            code: .invalidUTF8, message: "the kind 3 topic is not valid UTF-8", ref: "1", joinRef: "10"),
    ]

    @Test(arguments: badBinaries)
    func badBinaryFramesAreRefused(_ example: BadBinary) throws {
        let error = try #require(throws: WireError.self) {
            try WireDecoder.decodeBinary(buffer(example.bytes), version: example.version)
        }
        #expect(error.code == example.code)
        #expect(error.message == example.message)
        #expect(error.topic == example.topic)
        #expect(error.ref == example.ref)
        #expect(error.joinRef == example.joinRef)
    }

    // MARK: Kind 4

    @Test func encodesKind4WithJSONPayload() throws {
        // realtime-js test "decodes user broadcast with JSON payload and no metadata".
        let frame = BroadcastFrame(topic: "top", event: "user-event", payload: ["a": "b"])
        let bytes = try #require(frame.encodeKind4(allocator: ByteBufferAllocator()))
        #expect(bytes.bytes == [4, 3, 10, 0, 1] + Self.ascii(#"topuser-event{"a":"b"}"#))
    }

    @Test func encodesKind4WithMetadata() throws {
        // realtime-js test "decodes user broadcast with JSON payload and metadata": 17 bytes of metadata.
        let frame = BroadcastFrame(topic: "top", event: "user-event", payload: ["a": "b"], meta: ["replayed": true])
        let bytes = try #require(frame.encodeKind4(allocator: ByteBufferAllocator()))
        #expect(bytes.bytes == [4, 3, 10, 17, 1] + Self.ascii(#"topuser-event{"replayed":true}{"a":"b"}"#))
    }

    @Test func encodesKind4WithBinaryPayload() throws {
        // realtime-js test "decodes user broadcast with binary payload and metadata".
        let frame = BroadcastFrame(
            topic: "top", event: "user-event", payload: nil, binaryBody: buffer([0x01, 0x04]), meta: ["replayed": true])
        let bytes = try #require(frame.encodeKind4(allocator: ByteBufferAllocator()))
        #expect(bytes.bytes == [4, 3, 10, 17, 0] + Self.ascii(#"topuser-event{"replayed":true}"#) + [0x01, 0x04])
    }

    @Test func kind4WithoutAPayloadCarriesAnEmptyObject() throws {
        let frame = BroadcastFrame(topic: "top", event: "e", payload: nil)
        let bytes = try #require(frame.encodeKind4(allocator: ByteBufferAllocator()))
        #expect(bytes.bytes == [4, 3, 1, 0, 1] + Self.ascii("tope{}"))
    }

    @Test func kind4LengthsAreUTF8Bytes() throws {
        let frame = BroadcastFrame(topic: "realtime:é", event: "🎉", payload: [:])
        let bytes = try #require(frame.encodeKind4(allocator: ByteBufferAllocator()))
        #expect(Array(bytes.bytes.prefix(5)) == [4, 11, 4, 0, 1])
    }

    @Test func kind4RefusesFieldsLongerThan255Bytes() {
        let allocator = ByteBufferAllocator()
        let long = String(repeating: "a", count: 256)
        let fits = String(repeating: "a", count: 255)
        #expect(BroadcastFrame(topic: long, event: "e", payload: [:]).encodeKind4(allocator: allocator) == nil)
        #expect(BroadcastFrame(topic: "t", event: long, payload: [:]).encodeKind4(allocator: allocator) == nil)
        #expect(BroadcastFrame(topic: fits, event: fits, payload: [:]).encodeKind4(allocator: allocator) != nil)
        let bigMeta: Value = ["id": .string(String(repeating: "x", count: 250))]
        #expect(BroadcastFrame(topic: "t", event: "e", payload: [:], meta: bigMeta).encodeKind4(allocator: allocator) == nil)
    }

    // MARK: Relay

    @Test func jsonKind3RelaysAsKind4AndV1Text() throws {
        let frame: [UInt8] = [3, 1, 1, 15, 6, 0, 1] + Self.ascii(#"17realtime:room-1cursor{"x":3}"#)
        let inbound = try WireDecoder.decodeBinary(buffer(frame), version: .v2)
        let user = try #require(inbound.userBroadcast)
        let message = BroadcastFrame(
            topic: inbound.topic, event: user.event, payload: inbound.payload["payload"],
            binaryBody: user.isJSON ? nil : user.body)
        let allocator = ByteBufferAllocator()
        let kind4 = try #require(message.encodeKind4(allocator: allocator))
        #expect(kind4.bytes == [4, 15, 6, 0, 1] + Self.ascii(#"realtime:room-1cursor{"x":3}"#))
        let v1 = try #require(message.encodeText(version: .v1, allocator: allocator))
        #expect(
            v1.text
                == #"{"topic":"realtime:room-1","event":"broadcast","payload":{"type":"broadcast","event":"cursor","payload":{"x":3}},"ref":null}"#
        )
    }

    @Test func binaryKind3CannotGoToTextPeers() throws {
        let frame: [UInt8] = [3, 1, 1, 15, 6, 0, 0] + Self.ascii("17realtime:room-1cursor") + [0xDE, 0xAD]
        let inbound = try WireDecoder.decodeBinary(buffer(frame), version: .v2)
        let user = try #require(inbound.userBroadcast)
        let message = BroadcastFrame(
            topic: inbound.topic, event: user.event, payload: inbound.payload["payload"], binaryBody: user.body)
        let allocator = ByteBufferAllocator()
        #expect(message.encodeText(version: .v1, allocator: allocator) == nil)
        #expect(message.encodeText(version: .v2, allocator: allocator) == nil)
        let kind4 = try #require(message.encodeKind4(allocator: allocator))
        #expect(kind4.bytes == [4, 15, 6, 0, 0] + Self.ascii("realtime:room-1cursor") + [0xDE, 0xAD])
    }
}
