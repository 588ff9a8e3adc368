import NIOCore

/// The frames of the typing bench, built from fixed bytes around a few numbers, and the byte
/// scans that recognise them at the receivers.
///
/// A typing update's user payload is `{"user_id":"typist-<i>","typist":<i>,"seq":<n>,"state":"typing"}`
/// (the rules batch by `user_id`; `typist` and `seq` are what the receivers count); a comment's
/// is `{"comment_id":"bench-<k>","text":"…","t":<send time, uptime ns>}`.
enum TypingFrames {
    /// `user:typing` from typist `typist`; render with `[seq]`.
    static func typing(topic: String, typist: Int) -> FrameTemplate {
        let (prefix, suffix) = FrameTemplate.broadcastEnvelope(topic: topic, event: "user:typing")
        return FrameTemplate([
            prefix + #"{"user_id":"typist-\#(typist)","typist":\#(typist),"seq":"#,
            #","state":"typing"}"# + suffix,
        ])
    }

    /// `comment:added`; render with `[comment number, send time in uptime ns]`.
    static func comment(topic: String) -> FrameTemplate {
        let (prefix, suffix) = FrameTemplate.broadcastEnvelope(topic: topic, event: "comment:added")
        return FrameTemplate([
            prefix + #"{"comment_id":"bench-"#,
            #"","text":"a comment during the typing storm","t":"#,
            "}" + suffix,
        ])
    }

    static let typistKey = Array(#""typist""#.utf8)
    static let seqKey = Array(#""seq""#.utf8)
}
