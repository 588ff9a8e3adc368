import NIOCore
import SwitchboardCore
import SwitchboardWire

/// The message every budget follows: a comment on a collaboration channel, as realtime-js
/// pushes it (about 200 bytes of frame).
enum Sample {
    static let topic = "realtime:collaboration:s1:c1"
    static let channel = "collaboration:s1:c1"
    static let event = "comment:added"
    static let payloadJSON = #"{"comment_id":"k1","text":"Looks good, see you on Saturday","author":{"id":"u-s1","name":"Anna"}}"#
    static let payload: Value = [
        "comment_id": "k1", "text": "Looks good, see you on Saturday", "author": ["id": "u-s1", "name": "Anna"],
    ]

    /// vsn 1.0.0: a JSON object.
    static let pushV1 =
        #"{"join_ref":"3","ref":"7","topic":"\#(topic)","event":"broadcast","payload":{"type":"broadcast","event":"\#(event)","payload":\#(payloadJSON)}}"#
    /// vsn 2.0.0: a JSON array.
    static let pushV2 = #"["3","7","\#(topic)","broadcast",{"type":"broadcast","event":"\#(event)","payload":\#(payloadJSON)}]"#

    /// vsn 2.0.0 binary kind 3 with a JSON body and no metadata (realtime-js' layout: kind,
    /// the sizes of join_ref, ref, topic, event and metadata, the encoding, then the fields).
    static var pushKind3: [UInt8] {
        let fields = ["3", "7", topic, event].map { Array($0.utf8) }
        var bytes: [UInt8] = [3] + fields.map { UInt8($0.count) } + [0, 1]
        for field in fields { bytes += field }
        return bytes + Array(payloadJSON.utf8)
    }

    /// The broadcast the server sends for the sample push: the payload as serialized once on
    /// publish, and the server's `meta.id`.
    static let outbound = BroadcastFrame(
        topic: topic, event: event, payload: nil, meta: ["id": "q3k-1"], payloadJSON: ByteBuffer(string: payloadJSON))
}
