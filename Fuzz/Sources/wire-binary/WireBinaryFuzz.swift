import FuzzSupport
import NIOCore
import SwitchboardCore
import SwitchboardWire

/// The binary frame decoder (kind 3 user broadcast pushes). A push that decodes is checked
/// against its header, then relayed as the server would: encoded as kind 4 (read back here
/// by an independent reader of the realtime-js layout) and, for JSON bodies, as vsn 1.0.0 and
/// 2.0.0 text broadcasts, which must be JSON carrying the same fields.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    let input = byteBuffer(bytes)
    do {
        _ = try WireDecoder.decodeBinary(input, version: .v1)
        fuzzCheck(false, "vsn 1.0.0 accepted a binary frame")
    } catch {
        fuzzCheck(error.code == .unsupportedBinary, "vsn 1.0.0 refused a binary frame with \(error.code)")
    }
    let frame: InboundFrame
    do {
        frame = try WireDecoder.decodeBinary(input, version: .v2)
    } catch {
        fuzzCheck(!error.message.isEmpty, "an empty error message")
        return 0
    }
    guard let user = frame.userBroadcast else {
        fuzzCheck(false, "a kind 3 frame decoded without its user broadcast")
        return 0
    }
    checkHeader(bytes, frame, user)
    let broadcast = BroadcastFrame(
        topic: frame.topic, event: user.event, payload: user.isJSON ? frame.payload["payload"] : nil,
        binaryBody: user.isJSON ? nil : user.body, meta: user.meta)
    checkKind4(broadcast, user)
    checkText(broadcast, user)
    return 0
}

/// The decoded fields are the header's slices, and the body is the rest of the frame.
private func checkHeader(_ bytes: UnsafeBufferPointer<UInt8>, _ frame: InboundFrame, _ user: UserBroadcast) {
    fuzzCheck(bytes.count >= 7 && bytes[0] == 3, "a frame that is not kind 3 decoded")
    let sizes = (1...4).map { Int(bytes[$0]) }
    var offset = 7
    func slice(_ length: Int) -> [UInt8] {
        defer { offset += length }
        return Array(bytes[offset..<(offset + length)])
    }
    let joinRef = slice(sizes[0]), ref = slice(sizes[1]), topic = slice(sizes[2]), event = slice(sizes[3])
    offset += Int(bytes[5])
    fuzzCheck(Array((frame.joinRef ?? "").utf8) == joinRef, "join_ref is not its header slice")
    fuzzCheck(Array((frame.ref ?? "").utf8) == ref, "ref is not its header slice")
    fuzzCheck(Array(frame.topic.utf8) == topic, "topic is not its header slice")
    fuzzCheck(Array(user.event.utf8) == event, "event is not its header slice")
    fuzzCheck(Array(user.body.readableBytesView) == Array(bytes[offset...]), "the body is not the rest of the frame")
    fuzzCheck(user.isJSON == (bytes[6] == 1), "the encoding byte was misread")
    fuzzCheck(frame.event == "broadcast", "a kind 3 frame's event is not broadcast")
}

/// Reads the kind 4 frame back: `4, topic_size, event_size, meta_size, encoding`, then topic,
/// event, metadata JSON, and the payload filling the rest.
private func checkKind4(_ broadcast: BroadcastFrame, _ user: UserBroadcast) {
    guard let encoded = broadcast.encodeKind4(allocator: ByteBufferAllocator()) else {
        let metaSize = user.meta.map { jsonBytes($0).count } ?? 0
        fuzzCheck(
            broadcast.topic.utf8.count > 255 || broadcast.event.utf8.count > 255 || metaSize > 255,
            "encodeKind4 refused a frame whose fields fit")
        return
    }
    let bytes = Array(encoded.readableBytesView)
    fuzzCheck(bytes.count >= 5 && bytes[0] == 4, "kind 4 header")
    let topicSize = Int(bytes[1]), eventSize = Int(bytes[2]), metaSize = Int(bytes[3])
    fuzzCheck(bytes[4] == (user.isJSON ? 1 : 0), "kind 4 encoding byte")
    fuzzCheck(bytes.count >= 5 + topicSize + eventSize + metaSize, "kind 4 frame shorter than its header says")
    var offset = 5
    func slice(_ length: Int) -> ArraySlice<UInt8> {
        defer { offset += length }
        return bytes[offset..<(offset + length)]
    }
    fuzzCheck(Array(slice(topicSize)) == Array(broadcast.topic.utf8), "kind 4 topic")
    fuzzCheck(Array(slice(eventSize)) == Array(user.event.utf8), "kind 4 event")
    let meta = slice(metaSize)
    if let expected = user.meta {
        fuzzCheck(Array(meta) == jsonBytes(expected), "kind 4 metadata")
    } else {
        fuzzCheck(meta.isEmpty, "kind 4 metadata where the push had none")
    }
    let body = Array(bytes[offset...])
    if user.isJSON {
        do {
            let payload = try JSON.parse(body)
            let sent = try JSON.parse(user.body)
            fuzzCheck(sameBytes(payload, sent), "kind 4 JSON payload differs from the push's")
        } catch {
            fuzzCheck(false, "kind 4 JSON payload does not parse: \(error)")
        }
    } else {
        fuzzCheck(body == Array(user.body.readableBytesView), "kind 4 binary payload differs from the push's")
    }
}

/// JSON bodies also go to text peers: `{"topic":…,"event":"broadcast","payload":{…},"ref":null}`
/// on vsn 1.0.0 and `[null,null,topic,"broadcast",{…}]` on vsn 2.0.0.
private func checkText(_ broadcast: BroadcastFrame, _ user: UserBroadcast) {
    for version in ProtocolVersion.allCases {
        guard let text = broadcast.encodeText(version: version, allocator: ByteBufferAllocator()) else {
            fuzzCheck(!user.isJSON, "a JSON broadcast has no text form")
            continue
        }
        fuzzCheck(user.isJSON, "a binary broadcast has a text form")
        let value: Value
        do {
            value = try JSON.parse(text, maxDepth: JSON.defaultMaxDepth + 2)
        } catch {
            fuzzCheck(false, "the \(version) text broadcast is not JSON: \(error)")
            return
        }
        let envelope: Value?
        switch version {
        case .v1:
            fuzzCheck(value["topic"]?.stringValue.map { Array($0.utf8) } == Array(broadcast.topic.utf8), "v1 topic")
            envelope = value["payload"]
        case .v2:
            let items = value.arrayValue ?? []
            fuzzCheck(items.count == 5 && items[0].isNull && items[1].isNull, "v2 frame shape")
            fuzzCheck(items[2].stringValue.map { Array($0.utf8) } == Array(broadcast.topic.utf8), "v2 topic")
            envelope = items.count == 5 ? items[4] : nil
        }
        fuzzCheck(envelope?["event"]?.stringValue.map { Array($0.utf8) } == Array(user.event.utf8), "text event")
        if let payload = broadcast.payload {
            fuzzCheck(envelope?["payload"].map { sameBytes($0, payload) } == true, "text payload")
        }
        if let meta = broadcast.meta {
            fuzzCheck(envelope?["meta"].map { sameBytes($0, meta) } == true, "text meta")
        }
    }
}
