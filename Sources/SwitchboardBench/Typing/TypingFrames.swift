import NIOCore

/// The frames of the typing bench, built from fixed bytes around a few numbers, and the byte
/// scans that recognise them at the receivers.
///
/// A typing update's user payload is `{"user_id":"typist-<i>","typist":<i>,"seq":<n>,"state":"typing"}`
/// (the rules batch by `user_id`; `typist` and `seq` are what the receivers count); a comment's
/// is `{"comment_id":"bench-<k>","text":"…","t":<send time, uptime ns>}`.
enum TypingFrames {
    /// Bytes with numbers between them: `parts[0] n0 parts[1] n1 … parts[last]`.
    struct NumberTemplate: Sendable {
        let parts: [[UInt8]]

        init(_ parts: [String]) {
            self.parts = parts.map { Array($0.utf8) }
        }

        /// The frame body with `numbers` in place; `numbers.count` is `parts.count - 1`.
        func render(_ numbers: [UInt64], allocator: ByteBufferAllocator) -> ByteBuffer {
            var buffer = allocator.buffer(capacity: self.parts.reduce(0) { $0 + $1.count } + 20 * numbers.count)
            for (index, part) in self.parts.enumerated() {
                buffer.writeBytes(part)
                if index < numbers.count {
                    RealtimeFrames.writeDecimal(numbers[index], into: &buffer)
                }
            }
            return buffer
        }
    }

    /// The Realtime broadcast envelope around `event` and a user payload.
    private static func envelope(topic: String, event: String) -> (prefix: String, suffix: String) {
        (
            #"{"topic":"\#(topic)","event":"broadcast","payload":{"type":"broadcast","event":"\#(event)","payload":"#,
            #"},"ref":null,"join_ref":"1"}"#
        )
    }

    /// `user:typing` from typist `typist`; render with `[seq]`.
    static func typing(topic: String, typist: Int) -> NumberTemplate {
        let (prefix, suffix) = self.envelope(topic: topic, event: "user:typing")
        return NumberTemplate([
            prefix + #"{"user_id":"typist-\#(typist)","typist":\#(typist),"seq":"#,
            #","state":"typing"}"# + suffix,
        ])
    }

    /// `comment:added`; render with `[comment number, send time in uptime ns]`.
    static func comment(topic: String) -> NumberTemplate {
        let (prefix, suffix) = self.envelope(topic: topic, event: "comment:added")
        return NumberTemplate([
            prefix + #"{"comment_id":"bench-"#,
            #"","text":"a comment during the typing storm","t":"#,
            "}" + suffix,
        ])
    }

    static let typistKey = Array(#""typist""#.utf8)
    static let seqKey = Array(#""seq""#.utf8)
}
