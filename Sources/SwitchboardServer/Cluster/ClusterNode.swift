import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardWire

/// This server as one node of a cluster (every server on the same database is one): it takes
/// what the other nodes announce on `switchboard_cluster` (`ClusterLink`) into this node — stored
/// messages into the history and to its subscribers, ephemeral ones to its subscribers, the
/// others' presences into the presence registry — and keeps the view of the nodes that
/// `/admin/cluster` shows and that decides when a node is gone.
///
/// An announcement is one line of JSON (an array: kind, node, then the kind's fields), a newline,
/// and a body:
/// - `r` stored message: topic, epoch, seq, id, event, asBinary, isHex, publishedAt, budget; the
///   payload's JSON (or hex). Sent by `switchboard.publish_history`, in the transaction that
///   numbers it; every node applies it, the publishing one too.
/// - `e` ephemeral message: topic, id, event, asBinary, isHex, budget, clientChosen; the payload.
/// - `t` presence tracked: topic, owner (the connection on that node), key, ref; the meta.
/// - `u` presence untracked: topic, owner.
/// - `sb`, `se`: the start and end of a node's whole presence state (`t` lines between them).
/// - `q` asks a node (or every node, when null) to announce its whole presence state.
/// - `x` the node is leaving.
/// - `p` a node's heartbeat ping, which only its own LISTEN heeds (proof that it hears).
final class ClusterNode: Sendable {
    let link: ClusterLink
    let shared: RealtimeContext
    var name: String { link.node }

    /// Remote presence owners get ids from here up, apart from this node's connection ids.
    static let remoteOwnerBase: UInt64 = 1 << 62

    private struct RemoteOwner: Hashable {
        let node: String
        let topic: String
        let owner: UInt64
    }

    private struct State {
        var nodes: [ClusterNodeRow] = []
        /// Nodes taken as gone (their presences removed here).
        var gone: Set<String> = []
        /// Each remote presence's local owner id.
        var owners: [RemoteOwner: UInt64] = [:]
        var nextOwner = ClusterNode.remoteOwnerBase
        /// A node's whole state while it is being announced (between `sb` and `se`).
        var collecting: [String: [(topic: String, owner: UInt64, key: String, ref: String, meta: Value.Object)]] = [:]
        /// When this node last heard an announcement (a listening session catches up from
        /// there); at first, when the server started (before its history was read).
        var lastHeard: ContinuousClock.Instant
    }

    private let state: Mutex<State>

    /// This node's Postgres Changes slot (reported in its heartbeat, dropped an hour after it is gone).
    let changesSlot: String?

    /// `started`: when the server started, before it read its history from the database.
    init(link: ClusterLink, shared: RealtimeContext, changesSlot: String?, started: ContinuousClock.Instant) {
        self.link = link
        self.shared = shared
        self.changesSlot = changesSlot
        self.state = Mutex(State(lastHeard: started))
    }

    /// The nodes as last read (for `/admin/cluster`).
    var nodes: [ClusterNodeRow] { state.withLock { $0.nodes } }

    // MARK: - Listening

    /// Runs at the start of every listening session, before its notifications: reads what this
    /// node missed, announces its presences and asks the others for theirs.
    func connected(_ connection: PostgresConnection) async throws {
        let since = state.withLock { (ContinuousClock.now - $0.lastHeard) + .seconds(10) }
        try await catchUp(within: since, on: connection)
        state.withLock { $0.lastHeard = .now }
        announcePresence()
    }

    /// The writer's connection opened: what the others must hear of this node again.
    func writerConnected() {
        announcePresence()
    }

    func received(_ text: String, on connection: PostgresConnection) async throws {
        let newline = text.utf8.firstIndex(of: UInt8(ascii: "\n")) ?? text.utf8.endIndex
        guard case .array(let header)? = try? JSON.parse(text.utf8[..<newline]), header.count >= 2,
            let kind = header[0].stringValue, let node = header[1].stringValue
        else {
            shared.logger.warning("an unreadable cluster message was ignored", metadata: ["message": "\(text.prefix(200))"])
            return
        }
        let body = newline < text.utf8.endIndex ? Substring(text.utf8[text.utf8.index(after: newline)...]) : ""
        state.withLock { $0.lastHeard = .now }
        switch kind {
        case "r": try await stored(header, body: body, on: connection)
        case "e" where node != name: ephemeral(header, body: body)
        case "t" where node != name: remoteTrack(node: node, header, body: body)
        case "u" where node != name: remoteUntrack(node: node, header)
        case "sb" where node != name: state.withLock { $0.collecting[node] = [] }
        case "se" where node != name: replaceState(of: node)
        case "p": break
        case "q" where node != name:
            if header.count < 3 || header[2].isNull || header[2].stringValue == name { announceState(asking: false) }
        case "x" where node != name: drop(node: node, reason: "left")
        default: break
        }
    }

    // MARK: - Messages

    private func stored(_ header: [Value], body: Substring, on connection: PostgresConnection) async throws {
        guard header.count >= 11, let topic = header[2].stringValue, let epoch = header[3].stringValue, let seq = header[4].int64Value,
            seq > 0, let id = header[5].stringValue, let event = header[6].stringValue
        else { return }
        let asBinary = header[7].boolValue ?? false
        let isHex = header[8].boolValue ?? false
        let publishedAt = header[9].int64Value ?? 0
        if header[1].stringValue != name {
            let now = shared.configuration.clock.monotonicSeconds()
            if let budget = header[10].stringValue { shared.rateLimiter.record(key: budget, now: now) }
            shared.activity.record(topic: topic, now: now)
        }
        let message = StoredMessage(
            seq: UInt64(seq), id: id, event: event, payloadJSON: isHex ? nil : Array(body.utf8),
            binaryHex: isHex ? String(body) : nil, asBinary: asBinary, publishedAt: publishedAt)
        try await apply(message, topic: topic, epoch: epoch, on: connection)
    }

    private struct StoredMessage {
        let seq: UInt64
        let id: String
        let event: String
        let payloadJSON: [UInt8]?
        let binaryHex: String?
        let asBinary: Bool
        let publishedAt: Int64
    }

    /// Applies a stored message; when this node lacks messages before it, first reads them from
    /// the database.
    private func apply(_ message: StoredMessage, topic: String, epoch: String, on connection: PostgresConnection) async throws {
        guard case .gap(let after) = applyOnce(message, topic: topic, epoch: epoch) else { return }
        let retention = retention(of: topic)
        if after == 0 {
            // This node holds nothing of the channel yet (never seen, evicted, or only joined):
            // no subscriber here has a position in it, so what came before is loaded for
            // replays, not delivered.
            try await load(topic: topic, epoch: epoch, through: message.seq - 1, retention: retention, on: connection)
        } else {
            try await fill(topic: topic, epoch: epoch, after: after, through: message.seq - 1, retention: retention, on: connection)
        }
        if case .gap = applyOnce(message, topic: topic, epoch: epoch) {
            shared.log.skip(topic: topic, epoch: epoch, through: message.seq - 1, before: message.publishedAt)
            _ = applyOnce(message, topic: topic, epoch: epoch)
        }
    }

    private func applyOnce(_ message: StoredMessage, topic: String, epoch: String) -> History<ChannelLog.Stored>.Applied {
        shared.log.applyStored(
            topic: topic, epoch: epoch, seq: message.seq, id: message.id, event: message.event, payloadJSON: message.payloadJSON,
            binaryBody: message.binaryHex.map { ByteBuffer(bytes: ChannelLog.bytes(hex: $0)) }, asBinary: message.asBinary,
            publishedAt: message.publishedAt, retention: retention(of: topic))
    }

    /// A channel's stored messages `after` < seq <= `through`, oldest first: at most the newest
    /// the channel retains.
    private func read(topic: String, epoch: String, after: UInt64, through: UInt64, retention: HistoryRetention, on connection: PostgresConnection)
        async throws -> [StoredMessage]
    {
        let rows = try await connection.query(
            """
            select seq, id, event, payload, binary_hex, as_binary, published_at from switchboard.history
            where topic = \(topic) and epoch = \(epoch) and seq > \(Int64(clamping: after)) and seq <= \(Int64(clamping: through))
            order by seq desc limit \(retention.maxMessages)
            """, logger: shared.logger)
        var found: [StoredMessage] = []
        for try await (seq, id, event, payload, hex, binary, at) in rows.decode((Int64, String, String, String, String, Bool, Int64).self) {
            found.append(
                StoredMessage(
                    seq: UInt64(max(1, seq)), id: id, event: event, payloadJSON: hex.isEmpty ? Array(payload.utf8) : nil,
                    binaryHex: hex.isEmpty ? nil : hex, asBinary: binary, publishedAt: at))
        }
        return found.reversed()
    }

    /// Reads and delivers what this node missed of a channel it holds (`after` is its last seq).
    private func fill(
        topic: String, epoch: String, after: UInt64, through: UInt64, retention: HistoryRetention, on connection: PostgresConnection
    ) async throws {
        for message in try await read(topic: topic, epoch: epoch, after: after, through: through, retention: retention, on: connection) {
            if case .gap = applyOnce(message, topic: topic, epoch: epoch) {
                // Pruned, or past the retention: what came before cannot be had.
                shared.log.skip(topic: topic, epoch: epoch, through: message.seq - 1, before: message.publishedAt)
                _ = applyOnce(message, topic: topic, epoch: epoch)
            }
        }
    }

    /// Loads a channel this node holds nothing of, up to `through`, into the history without
    /// delivering it (as at start).
    private func load(topic: String, epoch: String, through: UInt64, retention: HistoryRetention, on connection: PostgresConnection) async throws {
        let messages = try await read(topic: topic, epoch: epoch, after: 0, through: through, retention: retention, on: connection)
        let records = messages.map { message in
            HistoryRecord(
                topic: topic, epoch: epoch, seq: Int64(clamping: message.seq), id: message.id, event: message.event,
                payloadJSON: message.payloadJSON.map { String(decoding: $0, as: UTF8.self) } ?? "", binaryHex: message.binaryHex ?? "",
                asBinary: message.asBinary, publishedAt: message.publishedAt)
        }
        shared.log.restore([SavedChannel(topic: topic, epoch: epoch, seq: Int64(clamping: through), records: records)]) { _ in retention }
    }

    /// Reads every channel changed in the last `window` whose messages this node lacks.
    private func catchUp(within window: Duration, on connection: PostgresConnection) async throws {
        let seconds = Double(window.components.seconds) + Double(window.components.attoseconds) / 1e18
        let rows = try await connection.query(
            "select topic, epoch, seq from switchboard.channels where updated_at > now() - make_interval(secs => \(seconds))",
            logger: shared.logger)
        var changed: [(topic: String, epoch: String, seq: UInt64)] = []
        for try await (topic, epoch, seq) in rows.decode((String, String, Int64).self) where seq > 0 {
            changed.append((topic, epoch, UInt64(seq)))
        }
        var caughtUp = 0
        for channel in changed {
            let retention = retention(of: channel.topic)
            switch shared.log.last(of: channel.topic) {
            case let local? where local.epoch == channel.epoch && local.seq > 0:
                guard local.seq < channel.seq else { continue }
                try await fill(topic: channel.topic, epoch: channel.epoch, after: local.seq, through: channel.seq, retention: retention, on: connection)
            default:
                try await load(topic: channel.topic, epoch: channel.epoch, through: channel.seq, retention: retention, on: connection)
            }
            caughtUp += 1
        }
        if caughtUp > 0 {
            shared.logger.info("caught up with the cluster's messages", metadata: ["channels": "\(caughtUp)"])
        }
    }

    private func ephemeral(_ header: [Value], body: Substring) {
        guard header.count >= 9, let topic = header[2].stringValue, let id = header[3].stringValue, let event = header[4].stringValue
        else { return }
        let now = shared.configuration.clock.monotonicSeconds()
        if let budget = header[7].stringValue { shared.rateLimiter.record(key: budget, now: now) }
        shared.activity.record(topic: topic, now: now)
        // A publisher's own id is remembered (a repeat here is dropped) before anything else.
        if header[8].boolValue == true, !shared.log.remember(id, topic: topic) { return }
        // A node with no subscriber of the channel does no more.
        guard shared.hub.hasSubscribers(topic) else { return }
        let isHex = header[6].boolValue ?? false
        shared.log.applyEphemeral(
            topic: topic, id: id, event: event,
            payloadJSON: isHex ? nil : Array(body.utf8), binaryBody: isHex ? ByteBuffer(bytes: ChannelLog.bytes(hex: String(body))) : nil,
            asBinary: header[5].boolValue ?? false)
    }

    /// The retention of `topic`'s channel under the rules in force.
    private func retention(of topic: String) -> HistoryRetention {
        let name = topic.hasPrefix("realtime:") ? String(topic.dropFirst("realtime:".count)) : topic
        guard let channel = try? ChannelName(validating: name) else { return .standard }
        return shared.policy.history(for: channel) ?? .standard
    }

    // MARK: - Presence

    /// Tells the other nodes that a connection of this node tracked `meta` (with `ref`).
    static func tracked(topic: String, owner: UInt64, key: String, ref: String, meta: Value.Object, link: ClusterLink) {
        link.send([trackLine(node: link.node, topic: topic, owner: owner, key: key, ref: ref, meta: meta)])
    }

    /// Tells the other nodes that a connection of this node untracked.
    static func untracked(topic: String, owner: UInt64, link: ClusterLink) {
        link.send([line(["u", .string(link.node), .string(topic), .int(owner)])])
    }

    private static func trackLine(node: String, topic: String, owner: UInt64, key: String, ref: String, meta: Value.Object) -> String {
        line(["t", .string(node), .string(topic), .int(owner), .string(key), .string(ref)]) + JSON.string(.object(meta))
    }

    /// Numbers every line this process sends: PostgreSQL delivers identical notifications of one
    /// transaction once, and an untrack repeated in one batch (untrack, track, untrack) must
    /// arrive twice.
    private static let lineCount = Atomic<Int>(0)

    static func line(_ header: [Value]) -> String {
        JSON.string(.array(header + [.int(lineCount.add(1, ordering: .relaxed).newValue)])) + "\n"
    }

    /// Announces every presence of this node's connections, whole, and asks the others for
    /// theirs (at the start of each listening session, and when the writer's connection opens).
    func announcePresence() {
        announceState(asking: true)
    }

    /// Every presence of this node's connections, whole (`sb` … `se`), then, when `asking`, a
    /// request for the others'. The snapshot is taken under the link's queue lock, so a change
    /// made after it is queued after it; it is kept while the writer is away.
    private func announceState(asking: Bool) {
        let name = name
        let presence = shared.presence
        link.send(whileDown: true) {
            var lines = [Self.line(["sb", .string(name)])]
            for (topic, owner, entry) in presence.entries(ownersBelow: Self.remoteOwnerBase) {
                lines.append(Self.trackLine(node: name, topic: topic, owner: owner, key: entry.key, ref: entry.ref, meta: entry.meta))
            }
            lines.append(Self.line(["se", .string(name)]))
            if asking { lines.append(Self.line(["q", .string(name), .null])) }
            return lines
        }
    }

    private func remoteTrack(node: String, _ header: [Value], body: Substring) {
        guard header.count >= 6, let topic = header[2].stringValue, let owner = header[3].int64Value, let key = header[4].stringValue,
            let ref = header[5].stringValue, case .object(let meta)? = try? JSON.parse(body.utf8)
        else { return }
        let collecting = state.withLock { state -> Bool in
            guard state.collecting[node] != nil else { return false }
            state.collecting[node]?.append((topic, UInt64(bitPattern: owner), key, ref, meta))
            return true
        }
        if !collecting { track(node: node, topic: topic, owner: UInt64(bitPattern: owner), key: key, ref: ref, meta: meta) }
    }

    private func track(node: String, topic: String, owner: UInt64, key: String, ref: String, meta: Value.Object) {
        let local = state.withLock { state -> UInt64 in
            let remote = RemoteOwner(node: node, topic: topic, owner: owner)
            if let known = state.owners[remote] { return known }
            state.nextOwner += 1
            state.owners[remote] = state.nextOwner
            return state.nextOwner
        }
        let diff = shared.presence.track(topic: topic, owner: local, key: key, meta: meta, ref: ref)
        shared.publishPresence(diff, topic: topic, allocator: ByteBufferAllocator())
    }

    private func remoteUntrack(node: String, _ header: [Value]) {
        guard header.count >= 4, let topic = header[2].stringValue, let owner = header[3].int64Value else { return }
        untrack(RemoteOwner(node: node, topic: topic, owner: UInt64(bitPattern: owner)))
    }

    private func untrack(_ remote: RemoteOwner) {
        guard let local = state.withLock({ $0.owners.removeValue(forKey: remote) }) else { return }
        let diff = shared.presence.untrack(topic: remote.topic, owner: local)
        shared.publishPresence(diff, topic: remote.topic, allocator: ByteBufferAllocator())
    }

    /// A node's whole state has been announced: what it no longer has leaves, what is new joins.
    private func replaceState(of node: String) {
        let replaced = state.withLock { state -> ([(topic: String, owner: UInt64, key: String, ref: String, meta: Value.Object)], [RemoteOwner])? in
            // An end without its start (the start was lost) replaces nothing.
            guard let entries = state.collecting.removeValue(forKey: node) else { return nil }
            state.gone.remove(node)
            let kept = Set(entries.map { RemoteOwner(node: node, topic: $0.topic, owner: $0.owner) })
            return (entries, state.owners.keys.filter { $0.node == node && !kept.contains($0) })
        }
        guard let (entries, stale) = replaced else { return }
        for remote in stale { untrack(remote) }
        for entry in entries { track(node: node, topic: entry.topic, owner: entry.owner, key: entry.key, ref: entry.ref, meta: entry.meta) }
    }

    /// Removes every presence of `node` (gone or leaving).
    private func drop(node: String, reason: String) {
        let owners = state.withLock { state -> [RemoteOwner] in
            state.gone.insert(node)
            state.collecting[node] = nil
            return state.owners.keys.filter { $0.node == node }
        }
        if !owners.isEmpty {
            shared.logger.info("a cluster node's presences leave", metadata: ["node": "\(node)", "reason": "\(reason)", "presences": "\(owners.count)"])
        }
        for remote in owners { untrack(remote) }
    }

    // MARK: - Nodes

    /// Every heartbeat's view of the nodes: a node silent too long (or whose row is gone) loses
    /// its presences here; one heard again after that is asked to announce them again.
    func nodesRead(_ rows: [ClusterNodeRow]) {
        shared.metrics.clusterNodes.set(rows.filter { !$0.isGone }.count)
        let (lost, back) = state.withLock { state -> ([String], [String]) in
            state.nodes = rows
            let alive = Set(rows.filter { !$0.isGone }.map(\.name))
            let present = Set(state.owners.keys.map(\.node)).union(state.collecting.keys)
            let lost = present.filter { $0 != name && !alive.contains($0) }
            let back = rows.filter { !$0.isGone && $0.name != name && state.gone.contains($0.name) }.map(\.name)
            for node in back { state.gone.remove(node) }
            return (Array(lost), back)
        }
        for node in lost { drop(node: node, reason: "silent for more than \(Int(ClusterLink.goneAfterSeconds)) s") }
        for node in back { link.send([Self.line(["q", .string(name), .string(node)])]) }
    }

    /// What this node says of itself in its heartbeat.
    func status() async -> ClusterNodeStatus {
        let rules = shared.rules?.status
        return ClusterNodeStatus(
            address: "\(shared.configuration.host):\(shared.configuration.port)", connections: await shared.hub.connectionCount(),
            rulesGeneration: rules?.generation ?? 0, rulesDigest: rules?.digest ?? "",
            rulesError: rules.flatMap { $0.lastErrors.isEmpty ? nil : $0.lastErrors.map(\.description).joined(separator: "; ") },
            changesSlot: changesSlot)
    }
}

/// Runs the node's cluster link until a graceful shutdown, then tells the others it is leaving.
struct ClusterService: Service {
    let node: ClusterNode

    func run() async {
        await cancelWhenGracefulShutdown {
            await node.link.run(
                connected: { connection in try await node.connected(connection) },
                received: { text, connection in try await node.received(text, on: connection) },
                status: { await node.status() }, nodes: { node.nodesRead($0) },
                writerUp: { node.writerConnected() })
        }
        await node.link.leave()
    }
}
