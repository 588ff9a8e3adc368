import NIOConcurrencyHelpers
import NIOCore
import Synchronization
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardWire

/// The last step of every publish: gives each broadcast its identity (`meta.id`), its place in
/// the channel's replay history (`meta.seq`, `meta.epoch`) when its event and channel keep
/// one, drops repeats of a publisher's own id, and hands the framed bytes to the hub. It also
/// answers joins that ask for a replay.
///
/// Messages that enter a history are numbered and handed to the hub under one lock, so that
/// every event loop receives them in `seq` order (the hub queues every delivery on the
/// subscriber's loop, never inline). Everything else passes without the lock unless it
/// carries a client id to check.
final class ChannelLog: Sendable {
    /// What the history keeps of a message: enough to frame it again for any protocol version.
    struct Stored: Sendable {
        let event: String
        /// The JSON payload's bytes (an array: a buffer's capacity is rounded up to a power of two).
        let payloadJSON: [UInt8]?
        let binaryBody: ByteBuffer?
        let asBinary: Bool
    }

    /// One message on its way out.
    struct Outgoing: Sendable {
        let event: String
        let payload: Value?
        /// The raw body of a binary kind 3 push (never rewritten; it takes precedence).
        var binaryBody: ByteBuffer? = nil
        /// Whether it arrived as kind 3 (and so goes as kind 4 to vsn 2.0.0 peers).
        var asBinary = false
        let sender: UInt64?
        /// The publisher's own id, which makes publishing idempotent; nil: the server names it.
        let clientID: String?
        /// How long it stays replayable; nil: it does not enter the history.
        let retention: HistoryRetention?
        /// Called once it is published (with a database, a replayable message once committed:
        /// true, or false when the database could not take it and it was delivered anyway).
        var acknowledge: (@Sendable (Bool) -> Void)? = nil
    }

    /// Longest client-chosen message id (it travels in the 255-byte kind 4 meta).
    static let maxClientIDLength = 100
    /// What one retained message counts against the history cap beyond its payload, event and id.
    static let entryOverheadBytes = 160

    private struct State {
        var history: History<Stored>
        var recent: RecentIDs
        /// Topics with messages waiting for their database commit, and how many publishes.
        var pending: [String: Int] = [:]
    }

    private let hub: Hub
    /// The database's copy of the history; nil without a database.
    private let durable: HistoryStore?
    private let state: NIOLockedValueBox<State>
    private let counter: Counter
    private let prefix: String
    private let now: @Sendable () -> Int64

    /// `now` is the wall clock in milliseconds since 1970 (history ages and Supabase's `since`).
    init(
        hub: Hub, maxHistoryBytes: Int, maxHistoryChannels: Int, recentIDCapacity: Int, durable: HistoryStore? = nil,
        now: @escaping @Sendable () -> Int64
    ) {
        self.hub = hub
        self.durable = durable
        self.now = now
        let counter = Counter()
        // A random prefix per process, so that ids and epochs do not repeat across restarts
        // (32 bits: with a base-36 counter an id stays within Swift's 15-byte inline strings
        // for the first 78 billion messages, so it costs no allocation).
        var random = SystemRandomNumberGenerator()
        let prefix = String(random.next() as UInt32, radix: 36)
        self.counter = counter
        self.prefix = prefix
        self.state = NIOLockedValueBox(
            State(
                history: History(maxTotalBytes: maxHistoryBytes, maxChannels: maxHistoryChannels) { "\(prefix).\(String(counter.next(), radix: 36))" },
                recent: RecentIDs(capacity: recentIDCapacity)))
    }

    /// The publisher's own message id from a push's `meta` (`{"id": "…"}`): nil when there is
    /// none, an error when it is not a string of 1 to ``maxClientIDLength`` bytes.
    static func clientID(in meta: Value?) -> Result<String?, InputError> {
        guard let id = meta?["id"], !id.isNull else { return .success(nil) }
        guard let text = id.stringValue, (1...maxClientIDLength).contains(text.utf8.count) else {
            return .failure(InputError("meta.id must be a string of 1 to \(maxClientIDLength) bytes"))
        }
        return .success(text)
    }

    /// Whether a publisher's `id` was already published on `topic` in the last 5 minutes (a
    /// repeat is acknowledged and dropped before it costs any budget).
    func isRepeat(_ id: String, topic: String) -> Bool {
        let now = now()
        return state.withLockedValue { $0.recent.contains(id, on: topic, at: now) }
    }

    /// Publishes one message; false when it repeated an id (and was dropped).
    @discardableResult
    func publish(topic: String, _ message: Outgoing) -> Bool {
        publish(topic: topic, [message]).first ?? false
    }

    /// Publishes messages of one topic in order; for each, false when it repeated an id.
    @discardableResult
    func publish(topic: String, _ messages: [Outgoing]) -> [Bool] {
        guard !messages.isEmpty else { return [] }
        let allocator = ByteBufferAllocator()
        // Serialized once, outside the lock: the live frames and the history share these bytes.
        let payloads: [ByteBuffer?] = messages.map { message in
            guard message.binaryBody == nil, let payload = message.payload else { return nil }
            var buffer = allocator.buffer(capacity: 256)
            JSON.serialize(payload, into: &buffer)
            return buffer
        }
        let needsLock = messages.contains { $0.retention != nil || $0.clientID != nil }
        guard needsLock else {
            let framed = zip(messages, payloads).map { message, json in
                (self.frame(message, topic: topic, id: self.nextID(), json: json, position: nil, allocator: allocator), message.sender)
            }
            hub.publish(topic: topic, batch: framed)
            for message in messages { message.acknowledge?(true) }
            return Array(repeating: true, count: messages.count)
        }
        let now = now()
        // Acks go out after the lock is released: (ack, whether the message is stored).
        let (published, acknowledgements) = state.withLockedValue { state -> ([Bool], [(@Sendable (Bool) -> Void, Bool)]) in
            var framed: [(message: EncodedBroadcast, sender: UInt64?)] = []
            var published: [Bool] = []
            // With a database, replayable messages are delivered once committed, unless the
            // database is failing and nothing of this topic still waits (then at once, and
            // written later).
            let waits = durable.map { $0.isAvailable || state.pending[topic] != nil } ?? false
            var held: [(message: EncodedBroadcast, sender: UInt64?)] = []
            var lastHeld: History<Stored>.Position?
            var records: [HistoryRecord] = []
            var acknowledgeNow: [@Sendable (Bool) -> Void] = []
            var acknowledgeLater: [@Sendable (Bool) -> Void] = []
            for (message, json) in zip(messages, payloads) {
                if let clientID = message.clientID, !state.recent.insert(clientID, on: topic, at: now) {
                    message.acknowledge.map { acknowledgeNow.append($0) }
                    published.append(false)
                    continue
                }
                let id = message.clientID ?? nextID()
                var position: History<Stored>.Position?
                if let retention = message.retention {
                    let body = json?.readableBytes ?? message.binaryBody?.readableBytes ?? 0
                    // An exact-size copy: the serializing buffer's capacity can be twice its content.
                    let kept = json.map { Array($0.readableBytesView) }
                    let stored = Stored(event: message.event, payloadJSON: kept, binaryBody: message.binaryBody, asBinary: message.asBinary)
                    let appended = state.history.append(
                        stored, id: id, bytes: body + message.event.utf8.count + id.utf8.count + Self.entryOverheadBytes, to: topic,
                        retention: retention, at: now, visible: !waits)
                    position = appended
                    if durable != nil {
                        records.append(Self.record(stored, topic: topic, id: id, position: appended, at: now))
                    }
                    if waits {
                        held.append((frame(message, topic: topic, id: id, json: json, position: appended, allocator: allocator), message.sender))
                        lastHeld = appended
                        message.acknowledge.map { acknowledgeLater.append($0) }
                        published.append(true)
                        continue
                    }
                }
                framed.append((frame(message, topic: topic, id: id, json: json, position: position, allocator: allocator), message.sender))
                message.acknowledge.map { acknowledgeNow.append($0) }
                published.append(true)
            }
            var acknowledgements = acknowledgeNow.map { ($0, true) }
            // Inside the lock: the next numbered message of this channel is queued after these.
            hub.publish(topic: topic, batch: framed)
            if let durable, !records.isEmpty {
                if let lastHeld {
                    let held = held
                    let acknowledgeLater = acknowledgeLater
                    let queued = durable.persist(records) { [self] committed in
                        self.state.withLockedValue { state in self.release(topic, held, through: lastHeld, in: &state) }
                        for acknowledge in acknowledgeLater { acknowledge(committed) }
                    }
                    state.pending[topic, default: 0] += 1
                    if !queued {
                        // Writes are failing: deliver now (the records wait in the store).
                        release(topic, held, through: lastHeld, in: &state)
                        acknowledgements += acknowledgeLater.map { ($0, false) }
                    }
                } else {
                    durable.persist(records, then: nil)
                }
            }
            return (published, acknowledgements)
        }
        for (acknowledge, stored) in acknowledgements { acknowledge(stored) }
        return published
    }

    /// Delivers held messages (their commit is done, or failed) and shows them to replays; runs
    /// under the lock, so that they keep their place among the topic's messages.
    private func release(
        _ topic: String, _ held: [(message: EncodedBroadcast, sender: UInt64?)], through position: History<Stored>.Position,
        in state: inout State
    ) {
        state.history.reveal(topic, through: position.seq, epoch: position.epoch)
        if let count = state.pending[topic], count > 1 { state.pending[topic] = count - 1 } else { state.pending[topic] = nil }
        hub.publish(topic: topic, batch: held)
    }

    private static func record(_ stored: Stored, topic: String, id: String, position: History<Stored>.Position, at now: Int64) -> HistoryRecord {
        HistoryRecord(
            topic: topic, epoch: position.epoch, seq: Int64(position.seq), id: id, event: stored.event,
            payloadJSON: stored.payloadJSON.map { String(decoding: $0, as: UTF8.self) } ?? "",
            binaryHex: stored.binaryBody.map { Self.hex($0.readableBytesView) } ?? "", asBinary: stored.asBinary, publishedAt: now)
    }

    /// Puts back what the database kept (at start, before any client).
    func restore(_ channels: [SavedChannel], retention: (String) -> HistoryRetention) {
        let now = now()
        state.withLockedValue { state in
            for channel in channels {
                let entries = channel.records.map { record in
                    let stored = Stored(
                        event: record.event, payloadJSON: record.binaryHex.isEmpty ? Array(record.payloadJSON.utf8) : nil,
                        binaryBody: record.binaryHex.isEmpty ? nil : ByteBuffer(bytes: Self.bytes(hex: record.binaryHex)),
                        asBinary: record.asBinary)
                    let body = stored.payloadJSON?.count ?? stored.binaryBody?.readableBytes ?? 0
                    return (
                        seq: UInt64(max(0, record.seq)), id: record.id, at: record.publishedAt,
                        bytes: body + record.event.utf8.count + record.id.utf8.count + Self.entryOverheadBytes, item: stored
                    )
                }
                state.history.restore(
                    channel.topic, epoch: channel.epoch, seq: UInt64(max(0, channel.seq)), entries: entries,
                    retention: retention(channel.topic), at: now)
                // A message read again (a database row after a crash, a client's retry) is a repeat.
                for record in channel.records { _ = state.recent.insert(record.id, on: channel.topic, at: record.publishedAt) }
            }
        }
    }

    private static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    private static func bytes(hex: String) -> [UInt8] {
        func nibble(_ c: UInt8) -> UInt8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: 0
            }
        }
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).map { nibble(digits[$0]) << 4 | nibble(digits[$0 + 1]) }
    }

    /// What a joining client is owed.
    struct Replay {
        /// Framed for the client's protocol version, oldest first, marked `replayed`.
        let frames: [ByteBuffer]
        /// nil when the client asked for no replay.
        let recovered: Bool?
        let position: History<Stored>.Position
    }

    /// The channel's position and, when `since` is given, the messages after it framed for
    /// `version` (each with `meta.replayed: true`).
    func replay(topic: String, since: History<Stored>.Since?, retention: HistoryRetention, version: ProtocolVersion) -> Replay {
        let now = now()
        let answer: (entries: [History<Stored>.Entry], recovered: Bool?, position: History<Stored>.Position) =
            state.withLockedValue { state in
                guard let since else { return ([], nil, state.history.position(of: topic)) }
                let replay = state.history.replay(topic, since: since, retention: retention, at: now)
                return (replay.entries, replay.recovered, replay.position)
            }
        let allocator = ByteBufferAllocator()
        let frames = answer.entries.compactMap { entry -> ByteBuffer? in
            let meta: Value = [
                "id": .string(entry.id), "seq": .int(entry.seq), "epoch": .string(answer.position.epoch), "replayed": true,
            ]
            let frame = BroadcastFrame(
                topic: topic, event: entry.item.event, payload: nil, binaryBody: entry.item.binaryBody, meta: meta,
                payloadJSON: entry.item.payloadJSON.map { ByteBuffer(bytes: $0) })
            return EncodedBroadcast(frame, asBinary: entry.item.asBinary, allocator: allocator).frame(for: version)
        }
        return Replay(frames: frames, recovered: answer.recovered, position: answer.position)
    }

    /// Retained messages, channels and bytes (for metrics and the admin endpoint).
    func usage() -> (channels: Int, messages: Int, bytes: Int) {
        state.withLockedValue { ($0.history.channelCount, $0.history.messageCount, $0.history.totalBytes) }
    }

    private func frame(
        _ message: Outgoing, topic: String, id: String, json: ByteBuffer?, position: History<Stored>.Position?, allocator: ByteBufferAllocator
    ) -> EncodedBroadcast {
        var meta: Value.Object = ["id": .string(id)]
        if let position {
            meta["seq"] = .int(position.seq)
            meta["epoch"] = .string(position.epoch)
        }
        let frame = BroadcastFrame(
            topic: topic, event: message.event, payload: nil, binaryBody: message.binaryBody, meta: .object(meta), payloadJSON: json)
        return EncodedBroadcast(frame, asBinary: message.asBinary, allocator: allocator, seq: position?.seq ?? 0, tag: position?.tag ?? 0)
    }

    /// A server-chosen message id: unique in this process, and across restarts by its prefix.
    private func nextID() -> String {
        "\(prefix)-\(String(counter.next(), radix: 36))"
    }
}

/// A counter shared by threads.
private final class Counter: Sendable {
    private let value = Atomic<UInt64>(0)

    func next() -> UInt64 {
        value.add(1, ordering: .relaxed).newValue
    }
}
