import NIOCore
import SwitchboardCore

/// Frames server pushes as text for a socket's protocol version.
public enum WireEncoder {
    /// The text frame body: `{"topic":…,"event":…,"payload":…,"ref":…}` on vsn 1.0.0 (no
    /// join_ref, as Phoenix's V1 serializer), `[join_ref,ref,topic,event,payload]` on vsn 2.0.0.
    /// `headroom` bytes are left free before the text (for a frame header written in place).
    public static func encode(
        _ frame: OutboundFrame, version: ProtocolVersion, allocator: ByteBufferAllocator, headroom: Int = 0
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 128 + headroom)
        buffer.moveWriterIndex(forwardBy: headroom)
        buffer.moveReaderIndex(forwardBy: headroom)
        switch version {
        case .v1:
            buffer.writeStaticString("{\"topic\":")
            JSON.writeString(frame.topic, into: &buffer)
            buffer.writeStaticString(",\"event\":")
            JSON.writeString(frame.event, into: &buffer)
            buffer.writeStaticString(",\"payload\":")
            JSON.serialize(frame.payload, into: &buffer)
            buffer.writeStaticString(",\"ref\":")
            JSON.writeOptionalString(frame.ref, into: &buffer)
            buffer.writeInteger(UInt8.closeBrace)
        case .v2:
            buffer.writeInteger(UInt8.openBracket)
            JSON.writeOptionalString(frame.joinRef, into: &buffer)
            buffer.writeInteger(UInt8.comma)
            JSON.writeOptionalString(frame.ref, into: &buffer)
            buffer.writeInteger(UInt8.comma)
            JSON.writeString(frame.topic, into: &buffer)
            buffer.writeInteger(UInt8.comma)
            JSON.writeString(frame.event, into: &buffer)
            buffer.writeInteger(UInt8.comma)
            JSON.serialize(frame.payload, into: &buffer)
            buffer.writeInteger(UInt8.closeBracket)
        }
        return buffer
    }

    /// Appends the `ok` reply to a heartbeat, the same bytes `encode` writes for it (topic
    /// `phoenix`, event `phx_reply`, payload `{"status":"ok","response":{}}`).
    public static func writeHeartbeatReply(joinRef: String?, ref: String?, version: ProtocolVersion, into buffer: inout ByteBuffer) {
        switch version {
        case .v1:
            buffer.writeStaticString(#"{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"#)
            JSON.writeOptionalString(ref, into: &buffer)
            buffer.writeInteger(UInt8.closeBrace)
        case .v2:
            buffer.writeInteger(UInt8.openBracket)
            JSON.writeOptionalString(joinRef, into: &buffer)
            buffer.writeInteger(UInt8.comma)
            JSON.writeOptionalString(ref, into: &buffer)
            buffer.writeStaticString(#","phoenix","phx_reply",{"status":"ok","response":{}}]"#)
        }
    }
}
