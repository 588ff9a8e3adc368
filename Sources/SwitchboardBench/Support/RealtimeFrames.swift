import Foundation
import NIOCore

/// The few Supabase Realtime (vsn 1.0.0) frames the bench needs, built by hand so the bench
/// depends on nothing but the wire format.
enum RealtimeFrames {
    /// The heartbeat every connection sends on the `phoenix` topic.
    static let heartbeat = #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":null}"#

    /// How often every bench connection sends a heartbeat (the server drops a connection after 60 s of silence).
    static let heartbeatInterval = TimeAmount.seconds(25)

    /// What a join asks for: acks of its broadcasts, and the presence key.
    struct JoinConfig: Sendable, Equatable {
        /// Whether every broadcast push gets a reply once published.
        var ack = false
        /// The presence key ("" for the server to pick one).
        var presenceKey = ""

        /// No acks, no self-broadcast, a server-picked presence key.
        static let plain = JoinConfig()
    }

    /// A join for a public channel without self-broadcast; `ref` doubles as `join_ref`.
    static func join(topic: String, ref: String, config: JoinConfig = .plain) -> String {
        #"{"topic":"\#(topic)","event":"phx_join","payload":{"config":{"broadcast":{"self":false,"ack":\#(config.ack)},"presence":{"key":"\#(config.presenceKey)"},"private":false}},"ref":"\#(ref)","join_ref":"\#(ref)"}"#
    }

    /// Whether `name` can be spliced into a JSON string literal as is.
    static func isSafeChannelName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 200
            && name.utf8.allSatisfy { $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") && $0 < 0x7F }
    }

    /// A server control frame, decoded only while a connection is joining (never on the hot path).
    struct ControlFrame {
        let topic: String
        let event: String
        let ref: String?
        let status: String?
        let reason: String?
    }

    /// Decodes `buffer` as a vsn 1.0.0 JSON object; nil if it is not one.
    static func decodeControl(_ buffer: ByteBuffer) -> ControlFrame? {
        guard
            let bytes = buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes),
            let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
            let topic = object["topic"] as? String,
            let event = object["event"] as? String
        else { return nil }
        let payload = object["payload"] as? [String: Any]
        let response = payload?["response"]
        var reason: String?
        if let response = response as? [String: Any] {
            reason = response["reason"] as? String
        } else if let response = response as? String {
            reason = response
        }
        if reason == nil, let message = payload?["message"] as? String {
            reason = message
        }
        if reason == nil, let reasonField = payload?["reason"] as? String {
            reason = reasonField
        }
        return ControlFrame(
            topic: topic,
            event: event,
            ref: object["ref"] as? String,
            status: payload?["status"] as? String,
            reason: reason
        )
    }

    /// The bytes of a bench broadcast around its send time, so each message costs one
    /// buffer, two copies and a few digits.
    struct BroadcastTemplate: Sendable {
        /// Everything up to and including `"t":`.
        let prefix: [UInt8]
        /// The pad and the closing of the frame.
        let suffix: [UInt8]

        /// A Realtime broadcast on `topic` whose user payload `{"t":<ns>,"pad":"x…"}` is about `size` bytes.
        init(topic: String, joinRef: String, size: Int) {
            self.init(
                envelopePrefix: #"{"topic":"\#(topic)","event":"broadcast","payload":{"type":"broadcast","event":"bench","payload":"#,
                envelopeSuffix: #"},"ref":null,"join_ref":"\#(joinRef)"}"#,
                size: size
            )
        }

        /// The user payload `{"t":<ns>,"pad":"x…"}` of about `size` bytes alone, for servers that
        /// relay frames verbatim (nchan).
        init(bareSize size: Int) {
            self.init(envelopePrefix: "", envelopeSuffix: "", size: size)
        }

        private init(envelopePrefix: String, envelopeSuffix: String, size: Int) {
            // {"t": + digits + ,"pad":" + pad + "} is 15 bytes plus the digits.
            let digits = RealtimeFrames.decimalDigits(NIODeadline.now().uptimeNanoseconds)
            let pad = max(0, size - 15 - digits)
            self.prefix = Array((envelopePrefix + #"{"t":"#).utf8)
            self.suffix = Array((#","pad":""# + String(repeating: "x", count: pad) + #""}"# + envelopeSuffix).utf8)
        }

        /// One broadcast frame body carrying `sentAt`.
        func render(sentAt: UInt64, allocator: ByteBufferAllocator) -> ByteBuffer {
            var buffer = allocator.buffer(capacity: self.prefix.count + self.suffix.count + 20)
            buffer.writeBytes(self.prefix)
            RealtimeFrames.writeDecimal(sentAt, into: &buffer)
            buffer.writeBytes(self.suffix)
            return buffer
        }
    }

    /// The number of decimal digits of `value`.
    static func decimalDigits(_ value: UInt64) -> Int {
        var count = 1
        var rest = value / 10
        while rest > 0 {
            count += 1
            rest /= 10
        }
        return count
    }

    /// Appends `value` in decimal without building a String.
    static func writeDecimal(_ value: UInt64, into buffer: inout ByteBuffer) {
        let count = self.decimalDigits(value)
        buffer.writeRepeatingByte(UInt8(ascii: "0"), count: count)
        var rest = value
        var index = buffer.writerIndex - 1
        for _ in 0..<count {
            buffer.setInteger(UInt8(ascii: "0") + UInt8(rest % 10), at: index)
            rest /= 10
            index -= 1
        }
    }

    static let sendTimeKey = Array(#""t""#.utf8)

    /// Finds the user payload's `"t":<digits>` by a byte scan (tolerating whitespace around
    /// the colon and any key order) and returns the number; nil if the frame has none.
    @inline(__always)
    static func scanSendTime(_ buffer: ByteBuffer) -> UInt64? {
        scanInteger(after: sendTimeKey, in: buffer)
    }

    /// The non-negative integer after `"key":` in `buffer` (whitespace around the colon allowed,
    /// also inside a string, first occurrence); nil when there is none.
    @inline(__always)
    static func scanInteger(after key: [UInt8], in buffer: ByteBuffer) -> UInt64? {
        buffer.withUnsafeReadableBytes { bytes -> UInt64? in
            let count = bytes.count
            let keyCount = key.count
            guard keyCount > 0, count > keyCount else { return nil }
            var index = 0
            while index + keyCount < count {
                if Self.matches(key, in: bytes, at: index) {
                    var cursor = index + keyCount
                    while cursor < count, bytes[cursor] == UInt8(ascii: " ") { cursor += 1 }
                    if cursor < count, bytes[cursor] == UInt8(ascii: ":") {
                        cursor += 1
                        while cursor < count, bytes[cursor] == UInt8(ascii: " ") { cursor += 1 }
                        // A number in a string (a ref) reads the same.
                        if cursor < count, bytes[cursor] == UInt8(ascii: "\"") { cursor += 1 }
                        var value: UInt64 = 0
                        var digits = 0
                        while cursor < count, digits < 20 {
                            let digit = bytes[cursor] &- UInt8(ascii: "0")
                            guard digit < 10 else { break }
                            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                            let (sum, o2) = times10.addingReportingOverflow(UInt64(digit))
                            guard !o1, !o2 else { return nil }
                            value = sum
                            digits += 1
                            cursor += 1
                        }
                        return digits > 0 ? value : nil
                    }
                }
                index += 1
            }
            return nil
        }
    }

    /// What a server frame is, told by its first `"event":"…"` (the frame's own: the server
    /// writes `topic` first and `event` second), without decoding it.
    enum FrameEvent: Equatable {
        case broadcast
        case reply
        case other
    }

    private static let eventKey = Array(#""event":""#.utf8)
    private static let broadcastName = Array(#"broadcast""#.utf8)
    private static let replyName = Array(#"phx_reply""#.utf8)

    /// The frame's event kind by a byte scan.
    static func frameEvent(_ buffer: ByteBuffer) -> FrameEvent {
        buffer.withUnsafeReadableBytes { bytes -> FrameEvent in
            let count = bytes.count
            let key = Self.eventKey
            var index = 0
            while index + key.count < count {
                if Self.matches(key, in: bytes, at: index) {
                    let start = index + key.count
                    if Self.matches(Self.broadcastName, in: bytes, at: start) { return .broadcast }
                    if Self.matches(Self.replyName, in: bytes, at: start) { return .reply }
                    return .other
                }
                index += 1
            }
            return .other
        }
    }

    static let refKey = Array(#""ref""#.utf8)
    static let metaSeqKey = Array(#""seq""#.utf8)
    static let okStatus = Array(#""status":"ok""#.utf8)

    /// Whether `needle` occurs in `buffer`.
    static func contains(_ needle: [UInt8], in buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { bytes in
            guard !needle.isEmpty, bytes.count >= needle.count else { return false }
            var index = 0
            while index + needle.count <= bytes.count {
                if Self.matches(needle, in: bytes, at: index) { return true }
                index += 1
            }
            return false
        }
    }

    /// Whether `needle` stands in `bytes` at `index` (false when it would run past the end).
    @inline(__always)
    private static func matches(_ needle: [UInt8], in bytes: UnsafeRawBufferPointer, at index: Int) -> Bool {
        guard index >= 0, index + needle.count <= bytes.count else { return false }
        for offset in 0..<needle.count where bytes[index + offset] != needle[offset] {
            return false
        }
        return true
    }
}
