import NIOCore
import NIOWebSocket

/// In front of a publisher's ``BenchConnectionHandler``: takes the replies to its pushes (refs
/// from ``PublishFrames/firstPushRef``), frees their slot in the ``PacedSender``'s window and
/// records the publish → ack latency; drops the other publishers' broadcasts unread.
final class AckReader: TextFrameFilter, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame

    private let stats: PublishLoopStats
    /// Set on the loop once the sender is installed (after the join).
    var sender: PacedSender?
    /// Pushes acknowledged with `ok`.
    private(set) var accepted = 0

    init(stats: PublishLoopStats) {
        self.stats = stats
    }

    func take(_ payload: ByteBuffer) -> Bool {
        switch RealtimeFrames.frameEvent(payload) {
        case .broadcast:
            return true
        case .reply:
            guard let sender = self.sender, let ref = RealtimeFrames.scanInteger(after: RealtimeFrames.refKey, in: payload),
                ref >= PublishFrames.firstPushRef, ref - PublishFrames.firstPushRef < UInt64(Int.max)
            else { return false }
            let now = NIODeadline.now().uptimeNanoseconds
            if RealtimeFrames.contains(RealtimeFrames.okStatus, in: payload) {
                self.stats.counters.acked += 1
                self.stats.counters.lastAckNanos = now
                self.accepted += 1
            } else {
                self.stats.counters.refused += 1
                self.stats.counters.lastRefusal = RealtimeFrames.decodeControl(payload)?.reason ?? "no reason given"
            }
            if let sentAt = sender.acknowledged(index: Int(ref - PublishFrames.firstPushRef)) {
                self.stats.ackLatency.record(sentAt: sentAt, now: now)
            }
            return true
        case .other:
            return false
        }
    }
}

/// In front of a subscriber's ``BenchConnectionHandler``: reads the join reply's `seq`, then
/// checks every broadcast's `meta.seq` with a ``SeqTracker`` and records its latency.
final class SeqCheckHandler: TextFrameFilter, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame

    /// The channel's index in the run.
    let channelIndex: Int
    private let stats: PublishLoopStats
    private(set) var tracker = SeqTracker()
    /// Broadcasts without a `meta.seq` (not replayable).
    private(set) var withoutSeq = 0

    init(channelIndex: Int, stats: PublishLoopStats) {
        self.channelIndex = channelIndex
        self.stats = stats
    }

    func take(_ payload: ByteBuffer) -> Bool {
        switch RealtimeFrames.frameEvent(payload) {
        case .broadcast:
            let now = NIODeadline.now().uptimeNanoseconds
            self.stats.counters.delivered += 1
            self.stats.counters.lastDeliveryNanos = now
            if let sentAt = RealtimeFrames.scanSendTime(payload) {
                self.stats.deliveryLatency.record(sentAt: sentAt, now: now)
            }
            if let seq = RealtimeFrames.scanInteger(after: RealtimeFrames.metaSeqKey, in: payload), seq <= UInt64(Int64.max) {
                self.tracker.receive(seq: Int64(seq))
            } else {
                self.withoutSeq += 1
            }
            return true
        case .reply:
            if self.tracker.joinSeq == nil, RealtimeFrames.scanInteger(after: RealtimeFrames.refKey, in: payload) == 1,
                let seq = RealtimeFrames.scanInteger(after: RealtimeFrames.metaSeqKey, in: payload), seq <= UInt64(Int64.max)
            {
                self.tracker.joined(seq: Int64(seq))
            }
            return false
        case .other:
            return false
        }
    }

    /// What this subscriber saw.
    struct Report: Sendable {
        let channelIndex: Int
        let tracker: SeqTracker
        let withoutSeq: Int
    }

    var report: Report { Report(channelIndex: self.channelIndex, tracker: self.tracker, withoutSeq: self.withoutSeq) }
}

/// The publish bench's push: a replayable broadcast with a ref, so the server acknowledges it.
enum PublishFrames {
    /// The ref of a publisher's first push (the join is ref 1).
    static let firstPushRef: UInt64 = 2

    /// Render with `[index, send time, ref]`: payload
    /// `{"document_id":"bench-<channel>-<publisher>","version":<index>,"t":<ns>,"pad":"x…"}`.
    static func push(topic: String, event: String, channel: Int, publisher: Int, size: Int) -> FrameTemplate {
        FrameTemplate([
            #"{"topic":"\#(topic)","event":"broadcast","payload":{"type":"broadcast","event":"\#(event)","payload":{"document_id":"bench-\#(channel)-\#(publisher)","version":"#,
            #","t":"#,
            #","pad":""# + String(repeating: "x", count: size) + #""}},"ref":""#,
            #"","join_ref":"1"}"#,
        ])
    }
}
