import FuzzSupport
import NIOCore
import SwitchboardCore
import SwitchboardWire

/// The text frame decoder, vsn 1.0.0 and 2.0.0, on the same bytes. A frame that decodes is
/// encoded back (as a server push of the same fields) and decoded again: the fields must come
/// back unchanged, and a second encoding must be byte-identical to the first. The heartbeat
/// fast path (`WireDecoder.heartbeat`) must only recognise frames that `decodeText` decodes
/// as a heartbeat with the same refs, and `writeHeartbeatReply` must write what `encode` does.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = byteBuffer(fuzzBytes(data, size))
    for version in ProtocolVersion.allCases {
        let heartbeat = WireDecoder.heartbeat(input, version: version)
        let frame: InboundFrame
        do {
            frame = try WireDecoder.decodeText(input, version: version)
        } catch {
            fuzzCheck(!error.message.isEmpty, "an empty error message")
            fuzzCheck(heartbeat == nil, "heartbeat() accepted a frame decodeText refuses: \(error)")
            continue
        }
        if let heartbeat {
            fuzzCheck(
                frame.topic == "phoenix" && frame.event == "heartbeat" && frame.payload == .object(Value.Object()),
                "heartbeat() accepted a frame that is not a heartbeat")
            fuzzCheck(heartbeat.joinRef == frame.joinRef && heartbeat.ref == frame.ref, "heartbeat() read other refs")
        }
        check(frame, version: version, headroom: size % 17)
    }
    return 0
}

private func check(_ frame: InboundFrame, version: ProtocolVersion, headroom: Int) {
    fuzzCheck(frame.payload.objectValue != nil, "a decoded payload that is not an object")
    fuzzCheck(frame.userBroadcast == nil, "a text frame with a binary user broadcast")
    let outbound = OutboundFrame(
        joinRef: frame.joinRef, ref: frame.ref, topic: frame.topic, event: frame.event, payload: frame.payload)
    let allocator = ByteBufferAllocator()
    let encoded = WireEncoder.encode(outbound, version: version, allocator: allocator)
    let again: InboundFrame
    do {
        again = try WireDecoder.decodeText(encoded, version: version)
    } catch {
        fuzzCheck(false, "the encoding of a decoded \(version) frame does not decode: \(error)")
        return
    }
    // vsn 1.0.0 server pushes carry no join_ref (as Phoenix's V1 serializer).
    let expectedJoinRef = version == .v1 ? nil : frame.joinRef
    fuzzCheck(again.joinRef == expectedJoinRef, "join_ref changed: \(String(describing: frame.joinRef))")
    fuzzCheck(Array((again.ref ?? "").utf8) == Array((frame.ref ?? "").utf8) && (again.ref == nil) == (frame.ref == nil), "ref changed")
    fuzzCheck(Array(again.topic.utf8) == Array(frame.topic.utf8), "topic changed")
    fuzzCheck(Array(again.event.utf8) == Array(frame.event.utf8), "event changed")
    fuzzCheck(sameBytes(again.payload, frame.payload), "payload changed")
    let reencoded = WireEncoder.encode(
        OutboundFrame(joinRef: again.joinRef, ref: again.ref, topic: again.topic, event: again.event, payload: again.payload),
        version: version, allocator: allocator)
    fuzzCheck(reencoded == encoded, "a second encoding differs from the first")
    let withHeadroom = WireEncoder.encode(outbound, version: version, allocator: allocator, headroom: headroom)
    fuzzCheck(withHeadroom == encoded && withHeadroom.readerIndex == headroom, "encode with headroom \(headroom) differs")
    var reply = allocator.buffer(capacity: 64)
    WireEncoder.writeHeartbeatReply(joinRef: frame.joinRef, ref: frame.ref, version: version, into: &reply)
    let expectedReply = WireEncoder.encode(
        OutboundFrame(
            joinRef: frame.joinRef, ref: frame.ref, topic: "phoenix", event: "phx_reply",
            payload: ["status": "ok", "response": .object(Value.Object())]),
        version: version, allocator: allocator)
    fuzzCheck(reply == expectedReply, "writeHeartbeatReply differs from encode")
}
