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
        /// When the last listening session ended (to catch up on what it missed).
        var sessionEnded: ContinuousClock.Instant?
        let started = ContinuousClock.now
    }

    private let state = Mutex(State())

    /// This node's Postgres Changes slot (reported in its heartbeat, dropped an hour after it is gone).
    let changesSlot: String?

    init(link: ClusterLink, shared: RealtimeContext, changesSlot: String?) {
        self.link = link
        self.shared = shared
        self.changesSlot = changesSlot
    }

    /// The nodes as last read (for `/admin/cluster`).
    var nodes: [ClusterNodeRow] { state.withLock { $0.nodes } }

    // MARK: - Listening

    /// Runs at the start of every listening session, before its notifications: reads what this
    /// node missed, announces its presences and asks the others for theirs.
    func connected(_ connection: PostgresConnection) async throws {
        let since = state.withLock { state in
            let from = state.sessionEnded ?? state.started
            return (ContinuousClock.now - from) + .seconds(10)
        }
        try await catchUp(within: since, on: connection)
        announcePresence()
        link.send([ClusterNode.line(["q", .string(name), .null])])
    }

    /// Notes that a listening session ended (its successor catches up from here).
    func disconnected() {
        state.withLock { $0.sessionEnded = $0.sessionEnded ?? .now }
    }

    func received(_ text: String, on connection: PostgresConnection) async {
        let newline = text.utf8.firstIndex(of: UInt8(ascii: "\n")) ?? text.utf8.endIndex
        guard case .array(let header)? = try? JSON.parse(text.utf8[..<newline]), header.count >= 2,
            let kind = header[0].stringValue, let node = header[1].stringValue
        else {
            shared.logger.warning("an unreadable cluster message was ignored", metadata: ["message": "\(text.prefix(200))"])
            return
        }
        let body = newline < text.utf8.endIndex ? Substring(text.utf8[text.utf8.index(after: newline)...]) : ""
        state.withLock { $0.sessionEnded = nil }
        switch kind {
        case "r": await stored(header, body: body, on: connection)
        case "e" where node != name: ephemeral(header, body: body)
        case "t" where node != name: remoteTrack(node: node, header, body: body)
        case "u" where node != name: remoteUntrack(node: node, header)
        case "sb" where node != name: state.withLock { $0.collecting[node] = [] }
        case "se" where node != name: replaceState(of: node)
        case "q" where node != name:
            if header.count < 3 || header[2].isNull || header[2].stringValue == name { announcePresence() }
        case "x" where node != name: drop(node: node, reason: "left")
        default: break
        }
    }

    // MARK: - Messages

    private func stored(_ header: [Value], body: Substring, on connection: PostgresConnection) async {
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
        await apply(message, topic: topic, epoch: epoch, on: connection)
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

    /// Applies a stored message, first reading from the database any this node missed before it.
    private func apply(_ message: StoredMessage, topic: String, epoch: String, on connection: PostgresConnection) async {
        if case .gap(let after) = applyOnce(message, topic: topic, epoch: epoch) {
            await fill(topic: topic, epoch: epoch, after: after, before: message.seq, on: connection)
            if case .gap = applyOnce(message, topic: topic, epoch: epoch) {
                shared.log.skip(topic: topic, epoch: epoch, through: message.seq - 1)
                _ = applyOnce(message, topic: topic, epoch: epoch)
            }
        }
    }

    private func applyOnce(_ message: StoredMessage, topic: String, epoch: String) -> History<ChannelLog.Stored>.Applied {
        shared.log.applyStored(
            topic: topic, epoch: epoch, seq: message.seq, id: message.id, event: message.event, payloadJSON: message.payloadJSON,
            binaryBody: message.binaryHex.map { ByteBuffer(bytes: ChannelLog.bytes(hex: $0)) }, asBinary: message.asBinary,
            publishedAt: message.publishedAt, retention: retention(of: topic))
    }

    /// Reads a channel's stored messages `after` < seq < `before` and applies them in order.
    private func fill(topic: String, epoch: String, after: UInt64, before: UInt64?, on connection: PostgresConnection) async {
        do {
            let upper = before.map { Int64($0) } ?? Int64.max
            let rows = try await connection.query(
                """
                select seq, id, event, payload, binary_hex, as_binary, published_at from switchboard.history
                where topic = \(topic) and epoch = \(epoch) and seq > \(Int64(after)) and seq < \(upper) order by seq
                """, logger: shared.logger)
            var found: [StoredMessage] = []
            for try await (seq, id, event, payload, hex, binary, at) in rows.decode((Int64, String, String, String, String, Bool, Int64).self) {
                found.append(
                    StoredMessage(
                        seq: UInt64(max(1, seq)), id: id, event: event, payloadJSON: hex.isEmpty ? Array(payload.utf8) : nil,
                        binaryHex: hex.isEmpty ? nil : hex, asBinary: binary, publishedAt: at))
            }
            for message in found {
                if case .gap = applyOnce(message, topic: topic, epoch: epoch) {
                    // Pruned from the database: what came before cannot be had.
                    shared.log.skip(topic: topic, epoch: epoch, through: message.seq - 1)
                    _ = applyOnce(message, topic: topic, epoch: epoch)
                }
            }
        } catch {
            shared.logger.warning(
                "reading missed messages from the database failed", metadata: ["topic": "\(topic)", "error": "\(DatabaseError.describe(error))"])
        }
    }

    /// Reads every channel changed in the last `window` whose messages this node lacks.
    private func catchUp(within window: Duration, on connection: PostgresConnection) async throws {
        let seconds = Double(window.components.seconds) + Double(window.components.attoseconds) / 1e18
        let rows = try await connection.query(
            "select topic, epoch, seq from switchboard.channels where updated_at > now() - make_interval(secs => \(seconds))",
            logger: shared.logger)
        var behind: [(topic: String, epoch: String, after: UInt64)] = []
        for try await (topic, epoch, seq) in rows.decode((String, String, Int64).self) {
            let local = shared.log.last(of: topic)
            if let local, local.epoch == epoch {
                if local.seq < UInt64(max(0, seq)) { behind.append((topic, epoch, local.seq)) }
            } else if seq > 0 {
                behind.append((topic, epoch, 0))
            }
        }
        for channel in behind { await fill(topic: channel.topic, epoch: channel.epoch, after: channel.after, before: nil, on: connection) }
        if !behind.isEmpty {
            shared.logger.info("caught up with the cluster's messages", metadata: ["channels": "\(behind.count)"])
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

    private static func line(_ header: [Value]) -> String {
        JSON.string(.array(header)) + "\n"
    }

    /// Announces every presence of this node's connections, whole.
    func announcePresence() {
        let entries = shared.presence.entries(ownersBelow: Self.remoteOwnerBase)
        var lines = [Self.line(["sb", .string(name)])]
        for (topic, owner, entry) in entries {
            lines.append(Self.trackLine(node: name, topic: topic, owner: owner, key: entry.key, ref: entry.ref, meta: entry.meta))
        }
        lines.append(Self.line(["se", .string(name)]))
        link.send(lines)
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
            state.gone.remove(node)
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
        let (entries, stale) = state.withLock { state -> ([(topic: String, owner: UInt64, key: String, ref: String, meta: Value.Object)], [RemoteOwner]) in
            let entries = state.collecting.removeValue(forKey: node) ?? []
            let kept = Set(entries.map { RemoteOwner(node: node, topic: $0.topic, owner: $0.owner) })
            return (entries, state.owners.keys.filter { $0.node == node && !kept.contains($0) })
        }
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
                received: { text, connection in await node.received(text, on: connection) },
                status: { await node.status() }, nodes: { node.nodesRead($0) },
                ended: { node.disconnected() })
        }
        await node.link.leave()
    }
}
