import SwitchboardCore

/// A broadcast received on a channel.
public struct ChannelMessage: Sendable, Equatable {
    /// The user event, e.g. `comment:added`.
    public let event: String
    /// The user payload (`null` when the message had none).
    public let payload: Value
    /// The server's (or the publisher's own) message id.
    public let id: String?
    /// The message's place in the channel's history; nil for events that are not kept (typing).
    public let seq: UInt64?
    /// The history the `seq` counts in.
    public let epoch: String?
    /// Delivered by a replay after a (re)join rather than live.
    public let replayed: Bool

    public init(event: String, payload: Value, id: String?, seq: UInt64?, epoch: String?, replayed: Bool) {
        self.event = event
        self.payload = payload
        self.id = id
        self.seq = seq
        self.epoch = epoch
        self.replayed = replayed
    }
}

/// What happens on a channel, in order.
public enum ChannelEvent: Sendable, Equatable {
    /// A broadcast, each id at most once.
    case message(ChannelMessage)
    /// The channel is joined (again): `recovered` says whether every message missed while
    /// away was replayed (nil on the first join, which asks for no replay). When false, what
    /// was missed is lost: reload the state from your database.
    case joined(recovered: Bool?)
    /// A `presence_state` or `presence_diff` payload, as the server sent it.
    case presence(event: String, payload: Value)
    /// A `system` message from the server (for example why the channel is being closed).
    case system(status: String, message: String)
    /// The server closed the channel (revoked access, expired token) or refused to join it;
    /// the client does not rejoin it.
    case closed(reason: String)
}

/// Why a client call failed.
public struct ClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The client allows at most `maxChannels` channels.
        case tooManyChannels
        /// The outbound buffer is full (too many messages waiting for a connection).
        case bufferFull
        /// The message waited longer than its lifetime for a connection and was dropped.
        case expired
        /// The server refused it; the message says why.
        case refused
        /// The channel was left or closed, or the client was closed.
        case closed
        /// Bad input (a channel name, a payload).
        case invalid
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// Tracks one channel's position and the ids it has delivered: what makes delivery exactly
/// once across replays and retries. A pure value; the client keeps one per channel.
struct ChannelTracker: Sendable {
    /// The epoch and last `seq` seen (from messages and join replies).
    private(set) var epoch: String?
    private(set) var seq: UInt64 = 0
    private var seen: RecentIDs
    private let clock: @Sendable () -> Int64

    init(idLifetimeMilliseconds: Int64, idCapacity: Int, clock: @escaping @Sendable () -> Int64) {
        seen = RecentIDs(lifetimeMilliseconds: idLifetimeMilliseconds, capacity: idCapacity)
        self.clock = clock
    }

    /// The replay to ask for on a rejoin: everything after the last message seen.
    var resumeFrom: (seq: UInt64, epoch: String)? {
        epoch.map { (seq, $0) }
    }

    /// Takes the channel's position from a join reply: kept when the client already has a
    /// position in the same epoch and the join recovered the gap, otherwise replaced.
    mutating func joined(epoch: String?, seq: UInt64?, recovered: Bool?) {
        guard let epoch, let seq else { return }
        if recovered == true, self.epoch == epoch { return }
        self.epoch = epoch
        self.seq = seq
    }

    /// Whether to deliver `message`: false for an id already delivered. Advances the position.
    mutating func accept(_ message: ChannelMessage) -> Bool {
        if let id = message.id, !seen.insert(id, on: "", at: clock()) { return false }
        if let seq = message.seq, let epoch = message.epoch {
            if epoch != self.epoch {
                self.epoch = epoch
                self.seq = seq
            } else {
                self.seq = max(self.seq, seq)
            }
        }
        return true
    }
}
