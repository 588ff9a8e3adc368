import NIOCore
import NIOWebSocket

/// Sits in front of a bench connection's ``BenchConnectionHandler`` and takes the typing
/// updates and comments: a subscriber counts them into its loop's ``TypingLoopStats``, a
/// typist or the commenter drops them and instead counts the server's refusals of its own
/// sends. Every other frame passes on.
///
/// Per typist a subscriber keeps the number of updates and the highest `seq` seen, so it can
/// tell when that typist's final state (seq = `finalSeq`) has arrived and whether updates came
/// out of order.
final class TypingReceiverHandler: TextFrameFilter, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame

    /// What the connection does in the run.
    enum Role: Sendable {
        /// Counts typing updates and comment latencies.
        case subscriber
        /// Sends `user:typing`; counts refusals of it.
        case typist
        /// Sends `comment:added`; counts refusals of it.
        case commenter
    }

    /// The join ref the bench's connections use for their one topic (``BenchConnections`` numbers from 1).
    static let joinRef = "1"
    /// The prefix of the server's rate-limit reason (PROTOCOL.md).
    static let rateLimitPrefix = "ChannelRateLimitReached:"

    private let role: Role
    private let stats: TypingLoopStats
    private let finalSeq: Int
    private var counts: [Int32]
    private var lastSeq: [Int64]

    /// A connection of `role` counting into `stats` (its loop's); `typists` and `finalSeq` are the run's.
    init(role: Role, stats: TypingLoopStats, typists: Int, finalSeq: Int) {
        self.role = role
        self.stats = stats
        self.finalSeq = finalSeq
        let tracked = role == .subscriber ? typists : 0
        self.counts = Array(repeating: 0, count: tracked)
        self.lastSeq = Array(repeating: -1, count: tracked)
    }

    func take(_ payload: ByteBuffer) -> Bool {
        if let typist = RealtimeFrames.scanInteger(after: TypingFrames.typistKey, in: payload),
            let seq = RealtimeFrames.scanInteger(after: TypingFrames.seqKey, in: payload)
        {
            if self.role == .subscriber {
                self.recordTyping(typist: typist, seq: seq)
            }
            return true
        }
        if let sentAt = RealtimeFrames.scanSendTime(payload) {
            if self.role == .subscriber {
                self.stats.recordComment(sentAt: sentAt, now: NIODeadline.now().uptimeNanoseconds)
            }
            return true
        }
        return self.role != .subscriber && self.recordRefusal(payload)
    }

    private func recordTyping(typist: UInt64, seq: UInt64) {
        self.stats.counters.typingDelivered += 1
        self.stats.counters.lastTypingNanos = NIODeadline.now().uptimeNanoseconds
        guard typist < UInt64(self.counts.count), seq <= UInt64(Int64.max) else {
            self.stats.counters.unknownTypist += 1
            return
        }
        let index = Int(typist)
        let sequence = Int64(seq)
        self.counts[index] &+= 1
        self.stats.counters.maxPerPair = max(self.stats.counters.maxPerPair, Int(self.counts[index]))
        if sequence <= self.lastSeq[index] {
            self.stats.counters.outOfOrder += 1
            return
        }
        self.lastSeq[index] = sequence
        if sequence == Int64(self.finalSeq) {
            self.stats.counters.finalStates += 1
        }
    }

    /// Counts `payload` when it is the server refusing one of this connection's sends: an error
    /// reply to a push (not to the join), or a rate-limit `system` message (what a join without
    /// `ack` gets instead of a reply). Returns whether it was one.
    private func recordRefusal(_ payload: ByteBuffer) -> Bool {
        guard let control = RealtimeFrames.decodeControl(payload), control.status == "error" else { return false }
        let refused: Bool
        switch control.event {
        case "phx_reply":
            refused = control.ref != Self.joinRef && control.topic != "phoenix"
        case "system":
            refused = control.reason?.hasPrefix(Self.rateLimitPrefix) ?? false
        default:
            refused = false
        }
        guard refused else { return false }
        switch self.role {
        case .typist: self.stats.counters.typingRefused += 1
        case .commenter: self.stats.counters.commentsRefused += 1
        case .subscriber: return false
        }
        self.stats.counters.lastRefusal = control.reason ?? "no reason given"
        return true
    }
}
