import NIOCore
import SwitchboardCore

/// Decodes client frames (Phoenix vsn 1.0.0 / 2.0.0 text, and Supabase's binary kind 3).
public enum WireDecoder {
    /// Decodes a text frame: a JSON object on vsn 1.0.0, a `[join_ref, ref, topic, event, payload]`
    /// array on vsn 2.0.0.
    public static func decodeText(
        _ buffer: ByteBuffer, version: ProtocolVersion, maxDepth: Int = JSON.defaultMaxDepth
    ) throws(WireError) -> InboundFrame {
        let value = try JSON.parse(buffer, maxDepth: maxDepth)
        switch version {
        case .v1: return try decodeObject(value)
        case .v2: return try decodeArray(value)
        }
    }

    /// Decodes a binary frame; clients may only send kind 3 (user broadcast push) on vsn 2.0.0.
    ///
    /// Kind 3 layout (realtime-js `serializer.ts` `_encodeUserBroadcastPush`, Supabase
    /// `v2_serializer.ex` `decode_binary`): `kind=3, join_ref_size, ref_size, topic_size,
    /// user_event_size, metadata_size, encoding` (one byte each; encoding 0 = binary, 1 = JSON),
    /// then join_ref, ref, topic, user_event, metadata (JSON, may be empty), and the payload
    /// filling the rest of the frame. realtime-js writes an absent ref as an empty string,
    /// which decodes to nil here.
    public static func decodeBinary(
        _ buffer: ByteBuffer, version: ProtocolVersion, maxDepth: Int = JSON.defaultMaxDepth
    ) throws(WireError) -> InboundFrame {
        guard version == .v2 else {
            throw WireError(.unsupportedBinary, "binary frames need vsn 2.0.0; vsn 1.0.0 carries only JSON text frames")
        }
        var reader = buffer
        guard let kind = reader.readInteger(as: UInt8.self) else {
            throw WireError(.truncated, "the binary frame is empty")
        }
        guard kind == 3 else {
            throw WireError(
                .unsupportedBinary,
                "binary frame kind \(kind) is not accepted from clients; only kind 3 (user broadcast push) is")
        }
        guard let sizes = reader.readBytes(length: 6) else {
            throw WireError(.truncated, "the kind 3 header needs 7 bytes but the frame has \(buffer.readableBytes)")
        }
        var context = FrameContext()
        let joinRef = try readString(&reader, length: sizes[0], name: "join_ref", context: context)
        context.joinRef = joinRef.isEmpty ? nil : joinRef
        let ref = try readString(&reader, length: sizes[1], name: "ref", context: context)
        context.ref = ref.isEmpty ? nil : ref
        let topic = try readString(&reader, length: sizes[2], name: "topic", context: context)
        context.topic = topic
        let event = try readString(&reader, length: sizes[3], name: "user event", context: context)
        let metaLength = Int(sizes[4])
        guard let metaBytes = reader.readSlice(length: metaLength) else {
            throw context.error(
                .truncated, "the kind 3 frame declares \(metaLength) bytes of metadata but only \(reader.readableBytes) remain")
        }
        let isJSON: Bool
        switch sizes[5] {
        case 0: isJSON = false
        case 1: isJSON = true
        default:
            throw context.error(
                .unsupportedBinary, "the kind 3 payload encoding is \(sizes[5]); expected 0 (binary) or 1 (JSON)")
        }
        var meta: Value?
        if metaLength > 0 {
            do {
                meta = try JSON.parse(metaBytes, maxDepth: maxDepth)
            } catch {
                throw context.error(error.code, "the kind 3 metadata is not valid JSON: \(error.message)")
            }
        }
        let body = reader.slice()
        var payload = Value.Object([(key: "type", value: "broadcast"), (key: "event", value: .string(event))])
        if isJSON {
            do {
                payload["payload"] = try JSON.parse(body, maxDepth: maxDepth)
            } catch {
                throw context.error(error.code, "the kind 3 payload is not valid JSON: \(error.message)")
            }
        }
        return InboundFrame(
            joinRef: context.joinRef, ref: context.ref, topic: topic, event: "broadcast", payload: .object(payload),
            userBroadcast: UserBroadcast(event: event, meta: meta, isJSON: isJSON, body: body))
    }

    // MARK: Text frames

    private static func decodeObject(_ value: Value) throws(WireError) -> InboundFrame {
        guard case .object(let object) = value else {
            let hint = value.arrayValue != nil ? "; arrays are the vsn 2.0.0 format" : ""
            throw WireError(
                .notAnObject, "vsn 1.0.0 expects one JSON object per frame, but this frame is \(value.kindDescription)\(hint)")
        }
        var fields = FieldReader(version: .v1)
        fields.context.topic = object["topic"]?.stringValue
        fields.context.ref = object["ref"].flatMap(FieldReader.lenientRef)
        fields.context.joinRef = object["join_ref"].flatMap(FieldReader.lenientRef)
        let topic = try fields.string(object["topic"], name: "topic")
        let event = try fields.string(object["event"], name: "event")
        let payload = try fields.payload(object["payload"], name: "payload")
        let ref = try fields.ref(object["ref"], name: "ref", required: true)
        let joinRef = try fields.ref(object["join_ref"], name: "join_ref", required: false)
        return InboundFrame(joinRef: joinRef, ref: ref, topic: topic, event: event, payload: payload)
    }

    private static func decodeArray(_ value: Value) throws(WireError) -> InboundFrame {
        guard case .array(let items) = value else {
            throw WireError(
                .notAnArray,
                "vsn 2.0.0 expects one JSON array [join_ref, ref, topic, event, payload] per frame, but this frame is \(value.kindDescription)"
            )
        }
        guard items.count == 5 else {
            throw WireError(
                .wrongArity,
                "vsn 2.0.0 expects [join_ref, ref, topic, event, payload], an array of 5 elements, but this one has \(items.count)")
        }
        var fields = FieldReader(version: .v2)
        fields.context.topic = items[2].stringValue
        fields.context.ref = FieldReader.lenientRef(items[1])
        fields.context.joinRef = FieldReader.lenientRef(items[0])
        let joinRef = try fields.ref(items[0], name: "join_ref (element 1)", required: true)
        let ref = try fields.ref(items[1], name: "ref (element 2)", required: true)
        let topic = try fields.string(items[2], name: "topic (element 3)")
        let event = try fields.string(items[3], name: "event (element 4)")
        let payload = try fields.payload(items[4], name: "payload (element 5)")
        return InboundFrame(joinRef: joinRef, ref: ref, topic: topic, event: event, payload: payload)
    }

    // MARK: Helpers

    /// Reads a UTF-8 string of `length` bytes from a binary header.
    private static func readString(
        _ reader: inout ByteBuffer, length: UInt8, name: String, context: FrameContext
    ) throws(WireError) -> String {
        guard let slice = reader.readSlice(length: Int(length)) else {
            throw context.error(
                .truncated, "the kind 3 frame declares a \(length)-byte \(name) but only \(reader.readableBytes) bytes remain")
        }
        guard let string = String(validating: slice.readableBytesView, as: UTF8.self) else {
            throw context.error(.invalidUTF8, "the kind 3 \(name) is not valid UTF-8")
        }
        return string
    }
}

/// What is known of a frame so far, attached to any error found later.
private struct FrameContext {
    var topic: String?
    var ref: String?
    var joinRef: String?

    func error(_ code: WireError.Code, _ message: String) -> WireError {
        WireError(code, message, topic: topic, ref: ref, joinRef: joinRef)
    }
}

/// Checks frame fields by name, attaching whatever topic and refs were readable to each error.
private struct FieldReader {
    let version: ProtocolVersion
    var context = FrameContext()

    /// A ref as the server will echo it: strings as is, numbers as their literal text.
    static func lenientRef(_ value: Value) -> String? {
        switch value {
        case .string(let string): string
        case .number(let text): text
        default: nil
        }
    }

    func string(_ value: Value?, name: String) throws(WireError) -> String {
        guard let value else { throw missing(name) }
        guard case .string(let string) = value else { throw wrongType(name, "a string", value) }
        return string
    }

    func payload(_ value: Value?, name: String) throws(WireError) -> Value {
        guard let value else { throw missing(name) }
        guard case .object = value else { throw wrongType(name, "an object", value) }
        return value
    }

    func ref(_ value: Value?, name: String, required: Bool) throws(WireError) -> String? {
        guard let value else {
            if required { throw missing(name) }
            return nil
        }
        if value.isNull { return nil }
        guard let ref = Self.lenientRef(value) else { throw wrongType(name, "a string, a number or null", value) }
        return ref
    }

    private func missing(_ name: String) -> WireError {
        context.error(
            .missingField, "the frame has no \"\(name)\" field; vsn 1.0.0 frames are objects with topic, event, payload and ref")
    }

    private func wrongType(_ name: String, _ expected: String, _ value: Value) -> WireError {
        let label = version == .v1 ? "\"\(name)\"" : name
        return context.error(.wrongType, "\(label) must be \(expected), but it is \(value.kindDescription)")
    }
}

// MARK: Heartbeats

extension WireDecoder {
    /// The refs of a text frame that is a heartbeat exactly as Supabase's clients write it —
    /// `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":R}` on vsn 1.0.0,
    /// `[J,R,"phoenix","heartbeat",{}]` on vsn 2.0.0, each ref `null` or a quoted string of at
    /// most 64 letters, digits, `-`, `_`, `.` or `:` — read without building a JSON value.
    /// Nil for any other frame (which `decodeText` then decodes; for these frames it returns
    /// the same refs).
    public static func heartbeat(_ buffer: ByteBuffer, version: ProtocolVersion) -> (joinRef: String?, ref: String?)? {
        buffer.withUnsafeReadableBytes { bytes -> (joinRef: String?, ref: String?)? in
            var scanner = HeartbeatScanner(bytes: bytes)
            switch version {
            case .v1:
                guard scanner.skip(#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"#),
                    case .some(let ref) = scanner.ref(), scanner.skip("}"), scanner.atEnd
                else { return nil }
                return (nil, ref)
            case .v2:
                guard scanner.skip("["), case .some(let joinRef) = scanner.ref(), scanner.skip(","),
                    case .some(let ref) = scanner.ref(), scanner.skip(#","phoenix","heartbeat",{}]"#), scanner.atEnd
                else { return nil }
                return (joinRef, ref)
            }
        }
    }
}

/// Matches the fixed shape of a heartbeat byte by byte (`WireDecoder.heartbeat`).
private struct HeartbeatScanner {
    static let maxRefLength = 64
    let bytes: UnsafeRawBufferPointer
    var position = 0

    var atEnd: Bool { position == bytes.count }

    /// Consumes `literal` when the bytes continue with it.
    mutating func skip(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - position >= count else { return false }
        let start = literal.utf8Start
        for offset in 0..<count where bytes[position + offset] != start[offset] { return false }
        position += count
        return true
    }

    /// `null` (`.some(nil)`) or a quoted ref of safe characters (`.some(text)`); nil otherwise.
    mutating func ref() -> String?? {
        if skip("null") { return .some(nil) }
        guard position < bytes.count, bytes[position] == UInt8.quote else { return nil }
        let start = position + 1
        var end = start
        while end < bytes.count, end - start <= Self.maxRefLength, Self.isSafe(bytes[end]) { end += 1 }
        guard end < bytes.count, bytes[end] == UInt8.quote, end - start <= Self.maxRefLength else { return nil }
        position = end + 1
        return .some(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self))
    }

    private static func isSafe(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"):
            true
        default:
            false
        }
    }
}
