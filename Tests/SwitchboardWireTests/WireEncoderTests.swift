import NIOCore
import SwitchboardCore
import Testing

import SwitchboardWire

@Suite struct WireEncoderTests {
    let allocator = ByteBufferAllocator()

    @Test func v1ReplyMatchesPhoenix() {
        let frame = OutboundFrame(
            joinRef: "1", ref: "1", topic: "realtime:room-1", event: "phx_reply",
            payload: ["status": "ok", "response": ["postgres_changes": []]])
        #expect(
            WireEncoder.encode(frame, version: .v1, allocator: allocator).text
                == #"{"topic":"realtime:room-1","event":"phx_reply","payload":{"status":"ok","response":{"postgres_changes":[]}},"ref":"1"}"#
        )
    }

    @Test func v1HeartbeatReplyHasANullRef() {
        let frame = OutboundFrame(
            joinRef: nil, ref: nil, topic: "phoenix", event: "phx_reply", payload: ["status": "ok", "response": [:]])
        #expect(
            WireEncoder.encode(frame, version: .v1, allocator: allocator).text
                == #"{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":null}"#)
    }

    @Test func v2ReplyIsAnArray() {
        let frame = OutboundFrame(
            joinRef: "3", ref: "3", topic: "realtime:room-1", event: "phx_reply",
            payload: ["status": "ok", "response": ["postgres_changes": []]])
        #expect(
            WireEncoder.encode(frame, version: .v2, allocator: allocator).text
                == #"["3","3","realtime:room-1","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]"#)
    }

    @Test func v2ChannelPushHasANullRef() {
        let frame = OutboundFrame(
            joinRef: "3", ref: nil, topic: "realtime:room-1", event: "system",
            payload: ["extension": "system", "status": "error", "message": "Too many messages per second", "channel": "room-1"])
        #expect(
            WireEncoder.encode(frame, version: .v2, allocator: allocator).text
                == #"["3",null,"realtime:room-1","system",{"extension":"system","status":"error","message":"Too many messages per second","channel":"room-1"}]"#
        )
    }

    @Test func topicsAndEventsAreEscaped() {
        let frame = OutboundFrame(joinRef: nil, ref: "a\"b", topic: "realtime:x\\y", event: "e\n", payload: [:])
        #expect(
            WireEncoder.encode(frame, version: .v2, allocator: allocator).text
                == #"[null,"a\"b","realtime:x\\y","e\n",{}]"#)
    }

    @Test func encodedFramesDecodeBack() throws {
        let frame = OutboundFrame(joinRef: "4", ref: "9", topic: "realtime:a", event: "phx_join", payload: ["n": .number("1.0")])
        for version in ProtocolVersion.allCases {
            let decoded = try WireDecoder.decodeText(WireEncoder.encode(frame, version: version), version: version)
            #expect(decoded.topic == frame.topic && decoded.event == frame.event && decoded.payload == frame.payload)
            #expect(decoded.ref == "9")
            #expect(decoded.joinRef == (version == .v2 ? "4" : nil))
        }
    }

    // MARK: Broadcasts

    @Test func v1TextBroadcast() throws {
        let frame = BroadcastFrame(topic: "realtime:room-1", event: "cursor", payload: ["x": 3])
        let text = try #require(frame.encodeText(version: .v1, allocator: allocator))
        #expect(
            text.text
                == #"{"topic":"realtime:room-1","event":"broadcast","payload":{"type":"broadcast","event":"cursor","payload":{"x":3}},"ref":null}"#
        )
    }

    @Test func v2TextBroadcastWithMeta() throws {
        let frame = BroadcastFrame(
            topic: "realtime:room-1", event: "cursor", payload: ["x": 3], meta: ["id": "m1", "replayed": true])
        let text = try #require(frame.encodeText(version: .v2, allocator: allocator))
        #expect(
            text.text
                == #"[null,null,"realtime:room-1","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":3},"meta":{"id":"m1","replayed":true}}]"#
        )
    }

    @Test func textBroadcastWithoutPayloadOmitsIt() throws {
        let frame = BroadcastFrame(topic: "realtime:a", event: "ping", payload: nil)
        let text = try #require(frame.encodeText(version: .v1, allocator: allocator))
        #expect(
            text.text == #"{"topic":"realtime:a","event":"broadcast","payload":{"type":"broadcast","event":"ping"},"ref":null}"#)
    }
}

extension WireEncoder {
    /// `encode` with a default allocator, for tests.
    fileprivate static func encode(_ frame: OutboundFrame, version: ProtocolVersion) -> ByteBuffer {
        encode(frame, version: version, allocator: ByteBufferAllocator())
    }
}
