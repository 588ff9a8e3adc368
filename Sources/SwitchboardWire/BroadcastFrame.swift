import NIOCore
import SwitchboardCore

/// One user broadcast on its way to subscribers, encoded once per protocol version and shared.
///
/// Routing: a broadcast that arrived as binary kind 3 goes as kind 4 to vsn 2.0.0 peers and as
/// a JSON text broadcast to vsn 1.0.0 peers (a binary body cannot go to them and is dropped);
/// a broadcast that arrived as text goes as text to everyone.
public struct BroadcastFrame: Sendable, Equatable {
    /// The full topic, e.g. `realtime:room-1`.
    public var topic: String
    /// The user event, e.g. `cursor`.
    public var event: String
    /// The user payload as JSON; nil when absent (or when the body is binary).
    public var payload: Value?
    /// The raw payload when it arrived as kind 3 with binary encoding; it takes precedence over `payload`.
    public var binaryBody: ByteBuffer?
    /// Server metadata such as `{"id":…}` or `{"replayed":true}`.
    public var meta: Value?
    /// The JSON payload already serialized (kept in the replay history); when set it is written
    /// as it is instead of `payload`.
    public var payloadJSON: ByteBuffer?

    /// Creates a broadcast.
    public init(
        topic: String, event: String, payload: Value?, binaryBody: ByteBuffer? = nil, meta: Value? = nil, payloadJSON: ByteBuffer? = nil
    ) {
        self.topic = topic
        self.event = event
        self.payload = payload
        self.binaryBody = binaryBody
        self.meta = meta
        self.payloadJSON = payloadJSON
    }

    /// The text frame body, or nil when the payload is binary and cannot go to text peers.
    ///
    /// vsn 1.0.0: `{"topic":T,"event":"broadcast","payload":{"type":"broadcast","event":E,"payload":P,"meta":M},"ref":null}`;
    /// vsn 2.0.0: `[null,null,T,"broadcast",{…}]`. `payload` and `meta` are left out when nil.
    /// `headroom` bytes are left free before the text (for a frame header written in place);
    /// the buffer is sized for the serialized payload, so it is not grown while written.
    public func encodeText(version: ProtocolVersion, allocator: ByteBufferAllocator, headroom: Int = 0) -> ByteBuffer? {
        guard binaryBody == nil else { return nil }
        var buffer = allocator.buffer(capacity: headroom + 160 + topic.utf8.count + event.utf8.count + (payloadJSON?.readableBytes ?? 64))
        buffer.moveWriterIndex(forwardBy: headroom)
        buffer.moveReaderIndex(forwardBy: headroom)
        switch version {
        case .v1:
            buffer.writeStaticString("{\"topic\":")
            JSON.writeString(topic, into: &buffer)
            buffer.writeStaticString(",\"event\":\"broadcast\",\"payload\":")
            writeEnvelope(into: &buffer)
            buffer.writeStaticString(",\"ref\":null}")
        case .v2:
            buffer.writeStaticString("[null,null,")
            JSON.writeString(topic, into: &buffer)
            buffer.writeStaticString(",\"broadcast\",")
            writeEnvelope(into: &buffer)
            buffer.writeInteger(UInt8.closeBracket)
        }
        return buffer
    }

    /// The vsn 2.0.0 binary kind 4 frame body, or nil when topic, event or meta JSON is longer
    /// than its 255-byte length field.
    ///
    /// Layout (Supabase `v2_serializer.ex` `fastlane!(%UserBroadcast{})`, realtime-js
    /// `serializer.ts` `_decodeUserBroadcast`): `kind=4, topic_size, user_event_size,
    /// metadata_size, encoding` (one byte each; encoding 0 = binary, 1 = JSON), then topic,
    /// user_event, metadata JSON, and the payload filling the rest. A missing JSON payload is
    /// sent as `{}`, as realtime-js does when it encodes kind 3.
    /// `headroom` as in `encodeText`.
    public func encodeKind4(allocator: ByteBufferAllocator, headroom: Int = 0) -> ByteBuffer? {
        let topicSize = topic.utf8.count
        let eventSize = event.utf8.count
        guard topicSize <= 255, eventSize <= 255 else { return nil }
        let body = binaryBody?.readableBytes ?? payloadJSON?.readableBytes ?? 64
        var buffer = allocator.buffer(capacity: headroom + 5 + topicSize + eventSize + 96 + body)
        buffer.moveWriterIndex(forwardBy: headroom)
        buffer.moveReaderIndex(forwardBy: headroom)
        buffer.writeInteger(UInt8(4))
        buffer.writeInteger(UInt8(topicSize))
        buffer.writeInteger(UInt8(eventSize))
        let metaSizeIndex = buffer.writerIndex
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt8(binaryBody == nil ? 1 : 0))
        buffer.writeString(topic)
        buffer.writeString(event)
        if let meta {
            let metaStart = buffer.writerIndex
            JSON.serialize(meta, into: &buffer)
            let metaSize = buffer.writerIndex - metaStart
            guard metaSize <= 255 else { return nil }
            buffer.setInteger(UInt8(metaSize), at: metaSizeIndex)
        }
        if var body = binaryBody {
            buffer.writeBuffer(&body)
        } else if var json = payloadJSON {
            buffer.writeBuffer(&json)
        } else if let payload {
            JSON.serialize(payload, into: &buffer)
        } else {
            buffer.writeStaticString("{}")
        }
        return buffer
    }

    /// `{"type":"broadcast","event":E[,"payload":P][,"meta":M]}`
    private func writeEnvelope(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("{\"type\":\"broadcast\",\"event\":")
        JSON.writeString(event, into: &buffer)
        if var json = payloadJSON {
            buffer.writeStaticString(",\"payload\":")
            buffer.writeBuffer(&json)
        } else if let payload {
            buffer.writeStaticString(",\"payload\":")
            JSON.serialize(payload, into: &buffer)
        }
        if let meta {
            buffer.writeStaticString(",\"meta\":")
            JSON.serialize(meta, into: &buffer)
        }
        buffer.writeInteger(UInt8.closeBrace)
    }
}
