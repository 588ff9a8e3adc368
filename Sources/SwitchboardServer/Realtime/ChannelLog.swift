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
/// The state is striped by topic: each stripe (a lock, its share of the history, the recent ids
/// and the messages waiting for their announcement) serves its own channels, so publishers on
/// different channels never wait for each other. Within a stripe a message that enters the
/// history is numbered under the lock, framed outside it, and handed to the hub in the order it
/// was numbered (`Turns`), so that every event loop receives a channel's messages in `seq` order
/// (the hub queues every delivery on the subscriber's loop, never inline). Everything else
/// passes without the lock unless it carries a client id to check or a numbered message of its
/// stripe is still being framed (then it takes its turn behind it).
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
        /// The rate-limit budget it was counted on, which the other nodes count it on too.
        var budget: String? = nil
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
        /// This node's replayable messages between publish and their announcement: waiting
        /// (with the connection that sent them, which `self: false` skips) or already delivered
        /// unnumbered because the database could not take them.
        var own: [OwnKey: Own] = [:]
        /// Per topic, the batches numbered here and being framed outside the lock.
        var turns: [String: Turns] = [:]
    }

    /// A topic's batches in the order they were numbered: each publish that leaves the lock
    /// with something to frame takes a ticket, and batches reach the hub in ticket order,
    /// whichever publisher finishes framing first.
    private struct Turns {
        var issued: UInt64 = 0
        var delivered: UInt64 = 0
        var ready: [UInt64: [(message: EncodedBroadcast, sender: UInt64?)]] = [:]
    }

    /// One share of the state, with the count of its tickets not yet delivered (while any is
    /// out, a message of this stripe without a client id cannot skip the lock: it could
    /// overtake its own publisher's numbered message).
    private final class Stripe: Sendable {
        let state: NIOLockedValueBox<State>
        let outstanding = Atomic<Int>(0)

        init(_ state: State) { self.state = NIOLockedValueBox(state) }
    }

    /// A message numbered (or checked) under the lock, to be framed outside it.
    private struct Unframed {
        let message: Outgoing
        let id: String
        let json: ByteBuffer?
        let position: History<Stored>.Position?
    }

    private struct OwnKey: Hashable {
        let topic: String
        let id: String
    }

    private enum Own {
        case waiting(sender: UInt64?)
        case delivered
    }

    /// Bound on `own` (messages published here and not announced back yet), over every stripe.
    static let maxOwn = 200_000
    /// Stripes of the state (fewer when the configured caps are small, so that each stripe's
    /// share of them stays meaningful: the caps are split evenly between the stripes).
    static let maxStripes = 16

    private let hub: Hub
    /// The database's copy of the history; nil without a database.
    private let durable: HistoryStore?
    /// The other nodes on the same database, which ephemeral messages are announced to; nil
    /// without a database.
    private let cluster: ClusterLink?
    private let stripes: [Stripe]
    private let counter: Counter
    private let prefix: String
    private let now: @Sendable () -> Int64

    /// `now` is the wall clock in milliseconds since 1970 (history ages and Supabase's `since`).
    init(
        hub: Hub, maxHistoryBytes: Int, maxHistoryChannels: Int, recentIDCapacity: Int, durable: HistoryStore? = nil,
        cluster: ClusterLink? = nil, now: @escaping @Sendable () -> Int64
    ) {
        self.hub = hub
        self.durable = durable
        self.cluster = cluster
        self.now = now
        let counter = Counter()
        // A random prefix per process, so that ids and epochs do not repeat across restarts
        // (32 bits: with a base-36 counter an id stays within Swift's 15-byte inline strings
        // for the first 78 billion messages, so it costs no allocation).
        var random = SystemRandomNumberGenerator()
        let prefix = String(random.next() as UInt32, radix: 36)
        self.counter = counter
        self.prefix = prefix
        let count = max(1, min(Self.maxStripes, maxHistoryChannels / 1024, recentIDCapacity / 1024))
        self.stripes = (0..<count).map { _ in
            Stripe(
                State(
                    history: History(maxTotalBytes: maxHistoryBytes / count, maxChannels: max(1, maxHistoryChannels / count)) { topic in
                        cluster.map { Self.clusterEpoch(of: topic, cluster: $0.clusterID) } ?? "\(prefix).\(String(counter.next(), radix: 36))"
                    },
                    recent: RecentIDs(capacity: max(1, recentIDCapacity / count))))
        }
    }

    /// The stripe that holds `topic`'s state.
    private func stripe(_ topic: String) -> Stripe {
        stripes.count == 1 ? stripes[0] : stripes[Int(UInt(bitPattern: topic.hashValue) % UInt(stripes.count))]
    }

    /// A channel's epoch in a cluster: the same on every node without asking (FNV-1a of the
    /// cluster's id and the topic), so a client told an epoch by one node resumes on another.
    /// The database keeps a channel's row (its seq goes on) for 30 days of silence, and a new
    /// database has a new cluster id, so a history that was lost is never taken for this one
    /// (a client silent for longer than that may be told `recovered` wrongly only if the
    /// recreated channel has meanwhile passed its old seq).
    static func clusterEpoch(of topic: String, cluster: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in cluster.utf8 + [0] + topic.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return String(hash, radix: 36)
    }

    /// The publisher's own message id from a push's `meta` (`{"id": "…"}`): nil when there is
    /// none, an error when it is not a string of 1 to ``maxClientIDLength`` bytes.
    static func clientID(in meta: Value?) -> Result<String?, InputError> {
        guard let id = meta?["id"], !id.isNull else { return .success(nil) }
        guard let text = id.stringValue, (1...maxClientIDLength).contains(text.utf8.count), !text.utf8.contains(0) else {
            return .failure(InputError("meta.id must be a string of 1 to \(maxClientIDLength) bytes without NUL"))
        }
        return .success(text)
    }

    /// Whether a publisher's `id` was already published on `topic` in the last 5 minutes (a
    /// repeat is acknowledged and dropped before it costs any budget).
    func isRepeat(_ id: String, topic: String) -> Bool {
        let now = now()
        return stripe(topic).state.withLockedValue { $0.recent.contains(id, on: topic, at: now) }
    }

    /// Publishes one message; false when it repeated an id (and was dropped).
    @discardableResult
    func publish(topic: String, _ message: Outgoing) -> Bool {
        publish(topic: topic, [message]).first ?? false
    }

    /// Publishes messages of one topic in order; for each, false when it repeated an id.
    ///
    /// With a database (a cluster of one or more nodes) a replayable message is not numbered
    /// here: it goes to the history store, whose transaction numbers it after the channel's last
    /// message on any node and announces it to every node; this node delivers it from that
    /// announcement (`applyStored`), like the others. When the database cannot take it, it is
    /// delivered at once without `seq` and numbered once the database is back.
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
        let stripe = stripe(topic)
        let needsLock =
            messages.contains { $0.retention != nil || $0.clientID != nil } || stripe.outstanding.load(ordering: .acquiring) > 0
        guard needsLock else {
            var relayed: [String] = []
            let relaying = cluster?.hasOtherNodes ?? false
            let framed = zip(messages, payloads).map { message, json in
                let id = self.nextID()
                if relaying, let cluster { relayed.append(Self.ephemeralText(message, topic: topic, id: id, json: json, node: cluster.node)) }
                return (self.frame(message, topic: topic, id: id, json: json, position: nil, allocator: allocator), message.sender)
            }
            hub.publish(topic: topic, batch: framed)
            for message in messages { message.acknowledge?(true) }
            cluster?.send(relayed)
            return Array(repeating: true, count: messages.count)
        }
        let now = now()
        let available = durable?.isAvailable ?? false
        let relaying = cluster?.hasOtherNodes ?? false
        var relayed: [String] = []
        // Numbered and checked under the lock; framed after it; acks once delivered.
        let (published, unframed, ticket, acknowledgements) = stripe.state.withLockedValue {
            state -> ([Bool], [Unframed], UInt64?, [(@Sendable (Bool) -> Void, Bool)]) in
            var unframed: [Unframed] = []
            var published: [Bool] = []
            var acknowledgements: [(@Sendable (Bool) -> Void, Bool)] = []
            var stored: [Waiting] = []
            var later: [HistoryRecord] = []
            for (message, json) in zip(messages, payloads) {
                if let clientID = message.clientID, !state.recent.insert(clientID, on: topic, at: now) {
                    message.acknowledge.map { acknowledgements.append(($0, true)) }
                    published.append(false)
                    continue
                }
                published.append(true)
                let id = message.clientID ?? nextID()
                if let retention = message.retention {
                    if durable != nil {
                        // The epoch for the channel's row if it is new (the same on every node).
                        let epoch = cluster.map { Self.clusterEpoch(of: topic, cluster: $0.clusterID) } ?? ""
                        let record = Self.record(message, json: json, topic: topic, id: id, epoch: epoch, at: now)
                        if available {
                            state.own[OwnKey(topic: topic, id: id)] = .waiting(sender: message.sender)
                            stored.append(Waiting(record: record, message: message, json: json, id: id))
                        } else {
                            // The database is down: delivered now, numbered when it is back.
                            state.own[OwnKey(topic: topic, id: id)] = .delivered
                            unframed.append(Unframed(message: message, id: id, json: json, position: nil))
                            later.append(record)
                            message.acknowledge.map { acknowledgements.append(($0, false)) }
                        }
                        continue
                    }
                    let body = json?.readableBytes ?? message.binaryBody?.readableBytes ?? 0
                    // An exact-size copy: the serializing buffer's capacity can be twice its content.
                    let kept = Stored(event: message.event, payloadJSON: json.map { Array($0.readableBytesView) }, binaryBody: message.binaryBody, asBinary: message.asBinary)
                    let position = state.history.append(
                        kept, id: id, bytes: body + message.event.utf8.count + id.utf8.count + Self.entryOverheadBytes, to: topic,
                        retention: retention, at: now)
                    unframed.append(Unframed(message: message, id: id, json: json, position: position))
                } else {
                    unframed.append(Unframed(message: message, id: id, json: json, position: nil))
                    if relaying, let cluster { relayed.append(Self.ephemeralText(message, topic: topic, id: id, json: json, node: cluster.node)) }
                }
                message.acknowledge.map { acknowledgements.append(($0, true)) }
            }
            // The next numbered message of this channel is delivered after these.
            var ticket: UInt64?
            if !unframed.isEmpty {
                var turns = state.turns[topic] ?? Turns()
                ticket = turns.issued
                turns.issued += 1
                state.turns[topic] = turns
                stripe.outstanding.add(1, ordering: .releasing)
            }
            if let durable {
                if !later.isEmpty { durable.persist(later, then: nil) }
                if !stored.isEmpty {
                    let stored = stored
                    let queued = durable.persist(stored.map(\.record)) { [self] committed in
                        // Committed: every node (this one too) delivers them from the announcement.
                        if !committed {
                            let stripe = self.stripe(topic)
                            stripe.state.withLockedValue { self.deliverUnnumbered(stored, topic: topic, in: &$0, stripe: stripe) }
                        }
                        for waiting in stored { waiting.message.acknowledge?(committed) }
                    }
                    if !queued {
                        // Writes are failing: deliver now (the records wait in the store).
                        deliverUnnumbered(stored, topic: topic, in: &state, stripe: stripe)
                        acknowledgements += stored.compactMap { $0.message.acknowledge.map { ($0, false) } }
                    }
                }
            }
            if state.own.count > Self.maxOwn / stripes.count { state.own.removeAll() }
            return (published, unframed, ticket, acknowledgements)
        }
        if let ticket {
            let framed = unframed.map { item in
                (message: frame(item.message, topic: topic, id: item.id, json: item.json, position: item.position, allocator: allocator), sender: item.message.sender)
            }
            deliver(framed, topic: topic, ticket: ticket, in: stripe)
        }
        for (acknowledge, stored) in acknowledgements { acknowledge(stored) }
        cluster?.send(relayed)
        return published
    }

    /// Hands a framed batch to the hub in its turn, with every batch after it that is ready.
    private func deliver(_ framed: [(message: EncodedBroadcast, sender: UInt64?)], topic: String, ticket: UInt64, in stripe: Stripe) {
        stripe.state.withLockedValue { state in
            // Taken out while it changes (no copy of its parked batches).
            guard var turns = state.turns.removeValue(forKey: topic) else { return }
            if ticket == turns.delivered {
                // Its turn already (the usual case): straight to the hub, nothing parked.
                hub.publish(topic: topic, batch: framed)
                turns.delivered += 1
                stripe.outstanding.subtract(1, ordering: .releasing)
            } else {
                turns.ready[ticket] = framed
            }
            flush(&turns, topic: topic, stripe: stripe)
            if turns.delivered != turns.issued { state.turns[topic] = turns }
        }
    }

    /// Under the lock: a batch framed there, in its turn after what is being framed outside.
    private func enqueue(_ framed: [(message: EncodedBroadcast, sender: UInt64?)], topic: String, in state: inout State, stripe: Stripe) {
        guard !framed.isEmpty else { return }
        var turns = state.turns.removeValue(forKey: topic) ?? Turns()
        turns.ready[turns.issued] = framed
        turns.issued += 1
        stripe.outstanding.add(1, ordering: .releasing)
        flush(&turns, topic: topic, stripe: stripe)
        if turns.delivered != turns.issued { state.turns[topic] = turns }
    }

    /// Under the lock: sends every batch of `topic` whose turn has come.
    private func flush(_ turns: inout Turns, topic: String, stripe: Stripe) {
        var delivered = 0
        while let batch = turns.ready.removeValue(forKey: turns.delivered) {
            hub.publish(topic: topic, batch: batch)
            turns.delivered += 1
            delivered += 1
        }
        if delivered > 0 { stripe.outstanding.subtract(delivered, ordering: .releasing) }
    }

    /// A replayable message waiting for its database write.
    private struct Waiting: Sendable {
        let record: HistoryRecord
        let message: Outgoing
        let json: ByteBuffer?
        let id: String
    }

    /// Delivers messages whose write failed, without `seq` (they are numbered later); under the
    /// lock (a rare path: framed there, in turn after what is being framed outside).
    private func deliverUnnumbered(_ waiting: [Waiting], topic: String, in state: inout State, stripe: Stripe) {
        let allocator = ByteBufferAllocator()
        var framed: [(message: EncodedBroadcast, sender: UInt64?)] = []
        for item in waiting {
            let key = OwnKey(topic: topic, id: item.id)
            // Announced meanwhile (the write committed, its answer was lost): already delivered.
            guard state.own[key] != nil else { continue }
            state.own[key] = .delivered
            framed.append((frame(item.message, topic: topic, id: item.id, json: item.json, position: nil, allocator: allocator), item.message.sender))
        }
        enqueue(framed, topic: topic, in: &state, stripe: stripe)
    }

    /// Takes a replayable message numbered by the database (announced to every node, this one
    /// included) into the history and delivers it to this node's subscribers, unless this node
    /// delivered it already (published here while the database was down). A gap (announcements
    /// missed) is returned for the caller to fill from the database first.
    func applyStored(
        topic: String, epoch: String, seq: UInt64, id: String, event: String, payloadJSON: [UInt8]?, binaryBody: ByteBuffer?, asBinary: Bool,
        publishedAt: Int64, retention: HistoryRetention
    ) -> History<Stored>.Applied {
        let now = now()
        let stored = Stored(event: event, payloadJSON: payloadJSON, binaryBody: binaryBody, asBinary: asBinary)
        let bytes = (payloadJSON?.count ?? binaryBody?.readableBytes ?? 0) + event.utf8.count + id.utf8.count + Self.entryOverheadBytes
        return stripe(topic).state.withLockedValue { state in
            let applied = state.history.apply(
                stored, id: id, bytes: bytes, to: topic, epoch: epoch, seq: seq, retention: retention, at: publishedAt, now: now)
            guard case .appended(let position) = applied else { return applied }
            _ = state.recent.insert(id, on: topic, at: now)
            var sender: UInt64?
            switch state.own.removeValue(forKey: OwnKey(topic: topic, id: id)) {
            case .delivered: return applied
            case .waiting(let own): sender = own
            case nil: break
            }
            let frame = BroadcastFrame(
                topic: topic, event: event, payload: nil, binaryBody: binaryBody,
                meta: ["id": .string(id), "seq": .int(position.seq), "epoch": .string(position.epoch)],
                payloadJSON: payloadJSON.map { ByteBuffer(bytes: $0) })
            hub.publish(
                topic: topic,
                message: EncodedBroadcast(frame, asBinary: asBinary, allocator: ByteBufferAllocator(), seq: position.seq, tag: position.tag),
                sender: sender)
            return applied
        }
    }

    /// Marks messages of `topic` up to `seq` as lost to this node (the database no longer has
    /// them): a replay from before them is not recovered.
    func skip(topic: String, epoch: String, through seq: UInt64, before at: Int64) {
        stripe(topic).state.withLockedValue { $0.history.skip(topic, epoch: epoch, through: seq, before: at) }
    }

    /// The channel's epoch and last seq on this node, if it has a record.
    func last(of topic: String) -> (epoch: String, seq: UInt64)? {
        stripe(topic).state.withLockedValue { $0.history.last(of: topic) }
    }

    /// Records a publisher's own `id` on `topic`; false when it was already there (a repeat).
    func remember(_ id: String, topic: String) -> Bool {
        let now = now()
        return stripe(topic).state.withLockedValue { $0.recent.insert(id, on: topic, at: now) }
    }

    /// Delivers an ephemeral message another node published to this node's subscribers.
    func applyEphemeral(topic: String, id: String, event: String, payloadJSON: [UInt8]?, binaryBody: ByteBuffer?, asBinary: Bool) {
        let frame = BroadcastFrame(
            topic: topic, event: event, payload: nil, binaryBody: binaryBody, meta: ["id": .string(id)],
            payloadJSON: payloadJSON.map { ByteBuffer(bytes: $0) })
        hub.publish(topic: topic, message: EncodedBroadcast(frame, asBinary: asBinary, allocator: ByteBufferAllocator()), sender: nil)
    }

    /// The cluster announcement of an ephemeral message:
    /// `["e", node, topic, id, event, asBinary, isHex, budget, clientChosen]`, a newline, then the
    /// payload's JSON (or a binary body as hex).
    private static func ephemeralText(_ message: Outgoing, topic: String, id: String, json: ByteBuffer?, node: String) -> String {
        let body = message.binaryBody.map { hex($0.readableBytesView) } ?? json.map { String(buffer: $0) } ?? "null"
        let header: Value = [
            "e", .string(node), .string(topic), .string(id), .string(message.event), .bool(message.asBinary), .bool(message.binaryBody != nil),
            message.budget.map { .string($0) } ?? .null, .bool(message.clientID != nil),
        ]
        return JSON.string(header) + "\n" + body
    }

    private static func record(_ message: Outgoing, json: ByteBuffer?, topic: String, id: String, epoch: String, at now: Int64) -> HistoryRecord {
        HistoryRecord(
            topic: topic, epoch: epoch, seq: 0, id: id, event: message.event, payloadJSON: json.map { String(buffer: $0) } ?? "",
            binaryHex: message.binaryBody.map { Self.hex($0.readableBytesView) } ?? "", asBinary: message.asBinary, publishedAt: now,
            budget: message.budget)
    }

    /// Puts back what the database kept (at start, before any client).
    func restore(_ channels: [SavedChannel], retention: (String) -> HistoryRetention) {
        let now = now()
        for channel in channels {
            stripe(channel.topic).state.withLockedValue { state in
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

    static func bytes(hex: String) -> [UInt8] {
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
            stripe(topic).state.withLockedValue { state in
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
        stripes.reduce((channels: 0, messages: 0, bytes: 0)) { sum, stripe in
            stripe.state.withLockedValue { (sum.channels + $0.history.channelCount, sum.messages + $0.history.messageCount, sum.bytes + $0.history.totalBytes) }
        }
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
