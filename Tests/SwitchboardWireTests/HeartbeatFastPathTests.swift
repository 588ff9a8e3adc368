import NIOCore
import SwitchboardCore
import SwitchboardWire
import Testing

/// `WireDecoder.heartbeat` reads the heartbeats Supabase's clients send without building a JSON
/// value; for every frame it accepts it must give the refs `decodeText` gives, and it must
/// leave everything else (other shapes, other events, odd refs) to `decodeText`.
@Suite struct HeartbeatFastPathTests {
    static let accepted: [(ProtocolVersion, String)] = [
        (.v1, #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7"}"#),
        (.v1, #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":null}"#),
        (.v1, #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"a-b_c.d:9"}"#),
        (.v2, #"[null,"12","phoenix","heartbeat",{}]"#),
        (.v2, #"["3","12","phoenix","heartbeat",{}]"#),
        (.v2, #"[null,null,"phoenix","heartbeat",{}]"#),
    ]

    static let declined: [(ProtocolVersion, String)] = [
        // Same meaning, other bytes: left to the full decoder.
        (.v1, #"{"event":"heartbeat","topic":"phoenix","payload":{},"ref":"7"}"#),
        (.v1, #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7"} "#),
        (.v1, #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":7}"#),
        (.v1, #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"a\"b"}"#),
        (.v1, #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"é"}"#),
        (.v1, "{\"topic\":\"phoenix\",\"event\":\"heartbeat\",\"payload\":{},\"ref\":\"" + String(repeating: "x", count: 65) + "\"}"),
        // Not heartbeats, or not whole.
        (.v1, #"{"topic":"phoenix","event":"heartbeats","payload":{},"ref":"7"}"#),
        (.v1, #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7""#),
        (.v1, #"[null,"12","phoenix","heartbeat",{}]"#),
        (.v2, #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7"}"#),
        (.v2, #"[null,"12","phoenix","heartbeat",{"a":1}]"#),
        (.v2, #"[null,"12","realtime:x","heartbeat",{}]"#),
        (.v2, ""),
    ]

    @Test(arguments: accepted)
    func acceptedHeartbeatsGiveTheFullDecodersRefs(_ version: ProtocolVersion, _ text: String) throws {
        let fast = try #require(WireDecoder.heartbeat(buffer(text), version: version))
        let full = try WireDecoder.decodeText(buffer(text), version: version)
        #expect(full.topic == "phoenix" && full.event == "heartbeat")
        #expect(fast.ref == full.ref)
        #expect(fast.joinRef == full.joinRef)
    }

    @Test(arguments: declined)
    func everythingElseIsLeftToTheFullDecoder(_ version: ProtocolVersion, _ text: String) {
        #expect(WireDecoder.heartbeat(buffer(text), version: version) == nil)
    }

    @Test func theReplyIsTheBytesTheEncoderWritesForIt() {
        for version in [ProtocolVersion.v1, .v2] {
            for (joinRef, ref) in [(nil, "7"), ("3", "12"), (nil, nil)] as [(String?, String?)] {
                var fast = ByteBufferAllocator().buffer(capacity: 0)
                WireEncoder.writeHeartbeatReply(joinRef: joinRef, ref: ref, version: version, into: &fast)
                let frame = OutboundFrame(joinRef: joinRef, ref: ref, topic: "phoenix", event: "phx_reply", payload: ["status": "ok", "response": .object(.init())])
                let full = WireEncoder.encode(frame, version: version, allocator: ByteBufferAllocator())
                #expect(String(buffer: fast) == String(buffer: full), "\(version) \(String(describing: joinRef)) \(String(describing: ref))")
            }
        }
    }
}
