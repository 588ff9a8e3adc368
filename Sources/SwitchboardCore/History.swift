/// How much of a channel's history is kept for replay: the last `maxMessages`, none older
/// than `maxAgeMilliseconds`.
public struct HistoryRetention: Sendable, Hashable {
    public var maxMessages: Int
    public var maxAgeMilliseconds: Int64

    public init(maxMessages: Int = 100, maxAgeMilliseconds: Int64 = 5 * 60 * 1000) {
        self.maxMessages = maxMessages
        self.maxAgeMilliseconds = maxAgeMilliseconds
    }

    /// The spec's: the last 100 messages, none older than 5 minutes.
    public static let standard = HistoryRetention()
}

/// The replay history of every channel: the state machine behind `meta.seq`, replay on join
/// and `recovered`. Time is passed in (milliseconds since 1970: Supabase's replay asks for
/// messages `since` a wall-clock time), so tests drive it with a manual clock.
///
/// Each channel that published or was joined has a record: an `epoch` (a fresh one whenever the
/// record is created, so that a position from before a restart or an eviction is never taken
/// for a position now), the last sequence number it gave, and its retained messages — at most
/// `maxMessages`, none older than `maxAgeMilliseconds`. Sequence numbers are dense: only
/// messages that enter the history get one, so a client that saw `seq` n and then n + 2 knows it
/// missed exactly one.
///
/// Memory is bounded twice: by `maxTotalBytes` over every channel's retained messages, and by
/// `maxChannels` records. Past either, the channels published to or joined least recently are
/// forgotten first (their history and epoch with them: a client asking to resume there is told
/// the gap was not recovered).
public struct History<Item: Sendable>: Sendable {
    public typealias Retention = HistoryRetention

    /// One retained message.
    public struct Entry: Sendable {
        public let seq: UInt64
        public let id: String
        /// When it was published (ms since 1970).
        public let at: Int64
        /// What it counts against `maxTotalBytes`.
        public let bytes: Int
        public let item: Item
    }

    /// Where a channel's history stands.
    public struct Position: Sendable, Hashable {
        public let epoch: String
        /// The last sequence number given (0 before the first message).
        public let seq: UInt64
        /// A process-unique number of the record, cheaper to compare than `epoch`.
        public let tag: UInt64
    }

    /// What a joining client asks to be replayed.
    public enum Since: Sendable, Equatable {
        /// Everything after `seq` of `epoch` (Switchboard's exact form).
        case sequence(UInt64, epoch: String)
        /// Up to `limit` messages published at or after `milliseconds` (Supabase's form).
        case time(milliseconds: Int64, limit: Int)
    }

    /// The answer to a replay request.
    public struct Replay: Sendable {
        /// The messages to deliver, oldest first (none when not recovered from a sequence).
        public let entries: [Entry]
        /// Whether `entries` is everything the client missed.
        public let recovered: Bool
        /// The channel's position after `entries`.
        public let position: Position
    }

    private struct Channel {
        var epoch: String
        var tag: UInt64
        var seq: UInt64 = 0
        var entries: [Entry] = []
        /// Index of the oldest live entry in `entries` (dropped ones are compacted lazily).
        var head = 0
        var bytes = 0
        /// The newest sequence number and time of a message dropped from this record.
        var droppedSeq: UInt64 = 0
        var droppedAt: Int64 = .min
        // The least-recently-used list: `newer` towards the head, `older` towards the tail.
        var newer: String?
        var older: String?

        var live: ArraySlice<Entry> { entries[head...] }

        mutating func dropOldest() -> Int {
            let entry = entries[head]
            head += 1
            bytes -= entry.bytes
            droppedSeq = entry.seq
            droppedAt = max(droppedAt, entry.at)
            if head == entries.count {
                entries.removeAll(keepingCapacity: true)
                head = 0
            }
            return entry.bytes
        }
    }

    /// Room beyond a channel's retention in its entry array, so that dropped entries are moved
    /// out once every `slack` appends rather than on every one.
    static var slack: Int { 32 }

    /// The cap on retained message bytes over every channel.
    public let maxTotalBytes: Int
    /// The cap on channel records.
    public let maxChannels: Int
    private let makeEpoch: @Sendable (String) -> String
    private var channels: [String: Channel] = [:]
    private var newest: String?
    private var oldest: String?
    private var nextTag: UInt64 = 1
    /// Retained message bytes over every channel.
    public private(set) var totalBytes = 0

    /// `makeEpoch` names each new record's epoch from its channel's name; it must not repeat
    /// (across restarts too) unless the history it names cannot have been lost meanwhile (a
    /// cluster's database keeps it: every node must name a channel's epoch alike).
    public init(maxTotalBytes: Int, maxChannels: Int, makeEpoch: @escaping @Sendable (String) -> String) {
        self.maxTotalBytes = max(0, maxTotalBytes)
        self.maxChannels = max(1, maxChannels)
        self.makeEpoch = makeEpoch
    }

    /// Channel records held.
    public var channelCount: Int { channels.count }

    /// Retained messages over every channel.
    public var messageCount: Int { channels.values.reduce(0) { $0 + $1.live.count } }

    /// The channel's position, creating its record (with a fresh epoch) when there is none.
    public mutating func position(of channel: String) -> Position {
        touch(channel)
        guard let record = channels[channel] else { return Position(epoch: "", seq: 0, tag: 0) }
        return Position(epoch: record.epoch, seq: record.seq, tag: record.tag)
    }

    /// Recreates a channel's record as a database kept it (at start): its epoch, last sequence
    /// number and retained messages (oldest first, each `(seq, id, at, bytes, item)`). Messages
    /// missing below the newest contiguous run count as dropped, so a position before them is
    /// not recovered.
    public mutating func restore(
        _ channel: String, epoch: String, seq: UInt64, entries: [(seq: UInt64, id: String, at: Int64, bytes: Int, item: Item)],
        retention: Retention, at now: Int64
    ) {
        forget(channel)
        touch(channel)
        guard var record = channels.removeValue(forKey: channel) else { return }
        record.epoch = epoch
        record.seq = seq
        var run = entries.filter { $0.seq <= seq }
        // Keep the newest contiguous run that ends at `seq`.
        var expected = seq
        var start = run.count
        while start > 0, run[start - 1].seq == expected {
            start -= 1
            expected -= 1
        }
        run = Array(run[start...])
        record.droppedSeq = expected
        if expected > 0 { record.droppedAt = run.first.map { $0.at - 1 } ?? now }
        record.entries.reserveCapacity(min(retention.maxMessages, 1024) + Self.slack)
        for entry in run {
            record.entries.append(Entry(seq: entry.seq, id: entry.id, at: entry.at, bytes: entry.bytes, item: entry.item))
            record.bytes += entry.bytes
            totalBytes += entry.bytes
        }
        totalBytes -= Self.trim(&record, retention: retention, now: now)
        channels[channel] = record
    }

    /// Appends a message and returns its sequence number and the channel's epoch. Drops what
    /// the retention and the caps no longer allow (possibly older channels' histories).
    public mutating func append(
        _ item: Item, id: String, bytes: Int, to channel: String, retention: Retention, at now: Int64
    ) -> Position {
        append(item, id: id, bytes: bytes, to: channel, retention: retention, at: now, now: now)
    }

    /// `append`, with the message's publication time (`at`) apart from the present (`now`).
    private mutating func append(
        _ item: Item, id: String, bytes: Int, to channel: String, retention: Retention, at: Int64, now: Int64
    ) -> Position {
        touch(channel)
        // Taken out of the dictionary while it changes, so that its entries are not copied.
        guard var record = channels.removeValue(forKey: channel) else { return Position(epoch: "", seq: 0, tag: 0) }
        record.seq += 1
        if record.entries.capacity == 0 {
            record.entries.reserveCapacity(min(retention.maxMessages, 1024) + Self.slack)
        } else if record.entries.count == record.entries.capacity, record.head > 0 {
            // Full: move the live entries down rather than let the array double.
            record.entries.removeFirst(record.head)
            record.head = 0
        }
        record.entries.append(Entry(seq: record.seq, id: id, at: at, bytes: bytes, item: item))
        record.bytes += bytes
        totalBytes += bytes
        totalBytes -= Self.trim(&record, retention: retention, now: now)
        channels[channel] = record
        let position = Position(epoch: record.epoch, seq: record.seq, tag: record.tag)
        // Over the cap: other channels go first, least recently used first; then this
        // channel's own oldest messages.
        while totalBytes > maxTotalBytes, let victim = oldest, victim != channel {
            forget(victim)
        }
        if totalBytes > maxTotalBytes, var record = channels.removeValue(forKey: channel) {
            while totalBytes > maxTotalBytes, record.head < record.entries.count {
                totalBytes -= record.dropOldest()
            }
            channels[channel] = record
        }
        return position
    }

    /// What `apply` did with a message numbered elsewhere.
    public enum Applied: Sendable, Equatable {
        /// Appended at its place.
        case appended(Position)
        /// Already held (its seq is not past the channel's last).
        case duplicate
        /// Messages between the channel's last seq (`after`) and this one are missing: fetch them
        /// (or `skip` past them) first.
        case gap(after: UInt64)
    }

    /// Appends a message numbered elsewhere (by the database of a cluster) at its own `seq` of
    /// `epoch`. A record of another epoch (or none) takes this epoch, with everything before
    /// `seq` counted as dropped; a message already held is a duplicate; one past a gap is not
    /// appended. `at` is when it was published.
    public mutating func apply(
        _ item: Item, id: String, bytes: Int, to channel: String, epoch: String, seq: UInt64, retention: Retention, at: Int64, now: Int64
    ) -> Applied {
        guard seq > 0 else { return .duplicate }
        touch(channel)
        guard var record = channels.removeValue(forKey: channel) else { return .duplicate }
        if record.epoch != epoch {
            totalBytes -= record.bytes
            record.entries.removeAll()
            record.head = 0
            record.bytes = 0
            record.epoch = epoch
            record.tag = nextTag
            nextTag += 1
            record.seq = seq - 1
            record.droppedSeq = seq - 1
            record.droppedAt = at == .min ? at : at - 1
        }
        guard seq > record.seq else {
            channels[channel] = record
            return .duplicate
        }
        guard seq == record.seq + 1 else {
            channels[channel] = record
            return .gap(after: record.seq)
        }
        channels[channel] = record
        return .appended(append(item, id: id, bytes: bytes, to: channel, retention: retention, at: at, now: now))
    }

    /// Moves `channel` of `epoch` past messages that cannot be had any more, to `seq` (the last
    /// of them published before `at`): a position, or a time, before them is not recovered.
    public mutating func skip(_ channel: String, epoch: String, through seq: UInt64, before at: Int64) {
        guard var record = channels[channel], record.epoch == epoch, seq > record.seq else { return }
        record.seq = seq
        record.droppedSeq = seq
        record.droppedAt = max(record.droppedAt, at == .min ? at : at - 1)
        channels[channel] = record
    }

    /// The channel's epoch and last seq, if it has a record (without creating one).
    public func last(of channel: String) -> (epoch: String, seq: UInt64)? {
        channels[channel].map { ($0.epoch, $0.seq) }
    }

    /// What a client joining `channel` gets for `since`. Creates the record when there is none
    /// (a client resuming from a sequence is then told it was not recovered).
    public mutating func replay(_ channel: String, since: Since, retention: Retention, at now: Int64) -> Replay {
        touch(channel)
        guard var record = channels.removeValue(forKey: channel) else {
            return Replay(entries: [], recovered: false, position: Position(epoch: "", seq: 0, tag: 0))
        }
        totalBytes -= Self.trim(&record, retention: retention, now: now)
        channels[channel] = record
        let position = Position(epoch: record.epoch, seq: record.seq, tag: record.tag)
        let shown = record.live
        switch since {
        case .sequence(let seq, let epoch):
            guard epoch == record.epoch, seq <= record.seq else {
                return Replay(entries: [], recovered: false, position: position)
            }
            // Recovered when every message after `seq` is still held.
            guard record.droppedSeq <= seq else {
                return Replay(entries: [], recovered: false, position: position)
            }
            let missed = shown.filter { $0.seq > seq }
            return Replay(entries: missed, recovered: true, position: position)
        case .time(let milliseconds, let limit):
            let matching = shown.filter { $0.at >= milliseconds }
            let entries = Array(matching.suffix(max(0, limit)))
            let recovered = record.droppedAt < milliseconds && entries.count == matching.count
            return Replay(entries: entries, recovered: recovered, position: position)
        }
    }

    /// Drops expired and surplus messages from the front; returns the bytes freed.
    private static func trim(_ record: inout Channel, retention: Retention, now: Int64) -> Int {
        var freed = 0
        let oldestAllowed = now - retention.maxAgeMilliseconds
        while record.head < record.entries.count,
            record.entries.count - record.head > retention.maxMessages || record.entries[record.head].at < oldestAllowed
        {
            freed += record.dropOldest()
        }
        return freed
    }

    /// Makes sure `channel` has a record, at the head of the LRU list.
    private mutating func touch(_ channel: String) {
        if let existing = channels[channel] {
            guard newest != channel else { return }
            var record = existing
            unlink(channel, &record)
            channels[channel] = record
            link(channel, &record)
            channels[channel] = record
            return
        }
        while channels.count >= maxChannels, let victim = oldest {
            forget(victim)
        }
        var record = Channel(epoch: makeEpoch(channel), tag: nextTag)
        nextTag += 1
        link(channel, &record)
        channels[channel] = record
    }

    private mutating func forget(_ channel: String) {
        guard var record = channels[channel] else { return }
        unlink(channel, &record)
        totalBytes -= record.bytes
        channels[channel] = nil
    }

    /// Inserts `channel` (not linked) at the head.
    private mutating func link(_ channel: String, _ record: inout Channel) {
        record.newer = nil
        record.older = newest
        if let previous = newest { channels[previous]?.newer = channel }
        newest = channel
        if oldest == nil { oldest = channel }
    }

    /// Removes `channel` from the list.
    private mutating func unlink(_ channel: String, _ record: inout Channel) {
        if let newer = record.newer { channels[newer]?.older = record.older } else { newest = record.older }
        if let older = record.older { channels[older]?.newer = record.newer } else { oldest = record.newer }
        record.newer = nil
        record.older = nil
    }
}

/// Message ids seen recently, per channel: what makes publishing with a client-chosen id
/// idempotent. An id is remembered for `lifetimeMilliseconds` (5 minutes), at most `capacity`
/// ids in all (the oldest are forgotten first). Time is passed in.
public struct RecentIDs: Sendable {
    public let lifetimeMilliseconds: Int64
    public let capacity: Int
    private var expiries: [Key: Int64] = [:]
    /// Insertion order, which is expiry order (one lifetime for all).
    private var queue: [(key: Key, expires: Int64)] = []
    private var head = 0

    private struct Key: Hashable {
        let channel: String
        let id: String
    }

    public init(lifetimeMilliseconds: Int64 = 5 * 60 * 1000, capacity: Int = 100_000) {
        self.lifetimeMilliseconds = lifetimeMilliseconds
        self.capacity = max(1, capacity)
    }

    /// Ids remembered.
    public var count: Int { expiries.count }

    /// Whether `id` was recorded on `channel` within its lifetime.
    public mutating func contains(_ id: String, on channel: String, at now: Int64) -> Bool {
        expire(now)
        return expiries[Key(channel: channel, id: id)] != nil
    }

    /// Records `id`; returns false when it was already there (a repeat).
    public mutating func insert(_ id: String, on channel: String, at now: Int64) -> Bool {
        expire(now)
        let key = Key(channel: channel, id: id)
        guard expiries[key] == nil else { return false }
        while expiries.count >= capacity, head < queue.count {
            dropFront()
        }
        let expires = now + lifetimeMilliseconds
        expiries[key] = expires
        queue.append((key, expires))
        return true
    }

    private mutating func expire(_ now: Int64) {
        while head < queue.count, queue[head].expires <= now {
            dropFront()
        }
    }

    private mutating func dropFront() {
        let front = queue[head]
        if expiries[front.key] == front.expires { expiries[front.key] = nil }
        head += 1
        if head >= 1024, head * 2 >= queue.count {
            queue.removeFirst(head)
            head = 0
        }
    }
}
