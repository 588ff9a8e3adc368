import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import SwitchboardWire
#if canImport(Glibc)
import Glibc
#endif

/// A node as `switchboard.nodes` lists it.
public struct ClusterNodeRow: Sendable, Equatable {
    public let name: String
    /// When it (last) started, as PostgreSQL prints a timestamptz.
    public let startedAt: String
    /// Seconds since its last heartbeat, on the database's clock (so nodes' clocks need not agree).
    public let silenceSeconds: Double
    public let address: String
    public let connections: Int
    public let rulesGeneration: Int
    public let rulesDigest: String
    public let rulesError: String?

    /// Whether it has been silent for longer than ``ClusterLink/goneAfterSeconds``.
    public var isGone: Bool { silenceSeconds > ClusterLink.goneAfterSeconds }
}

/// What a node says about itself in each heartbeat.
public struct ClusterNodeStatus: Sendable {
    public var address: String
    public var connections: Int
    public var rulesGeneration: Int
    public var rulesDigest: String
    public var rulesError: String?
    public var changesSlot: String?

    public init(
        address: String, connections: Int, rulesGeneration: Int, rulesDigest: String, rulesError: String?, changesSlot: String?
    ) {
        self.address = address
        self.connections = connections
        self.rulesGeneration = rulesGeneration
        self.rulesDigest = rulesDigest
        self.rulesError = rulesError
        self.changesSlot = changesSlot
    }
}

/// A node's link to the others through their shared database: the only coordinator the cluster
/// has (no protocol of its own between nodes).
///
/// - **Listening.** One connection LISTENs on `switchboard_cluster` and hands every notification,
///   in the order PostgreSQL delivers them (commit order), to `received`; a notification too
///   large for PostgreSQL's 8,000 bytes arrives as `@id` and is read from `switchboard.relay`.
///   Each time the LISTEN starts, `connected` runs first (on a second connection, which
///   `received` gets too, for reads) so the server can catch up on what it missed; the
///   notifications arriving meanwhile wait. The listening session is what `health` reports:
///   the database is up while it serves.
/// - **Sending.** `send` queues texts; a writer hands everything queued to
///   `switchboard.cluster_notify` in one statement, on a connection that commits
///   asynchronously (these are ephemeral: typing, presence). While it has no connection, what is
///   queued is dropped (counted) — presence is announced whole again on reconnection.
/// - **Heartbeat.** Every second the writer refreshes the node's row in `switchboard.nodes` and
///   reads every node's row, which `nodes` hears. A node silent for more than
///   ``goneAfterSeconds`` on the database's clock counts as gone.
public final class ClusterLink: Sendable {
    public static let channel = "switchboard_cluster"
    public static let heartbeatInterval = Duration.seconds(1)
    /// How long a node may be silent before the others take it as gone (its presences leave).
    public static let goneAfterSeconds: Double = 5
    /// Texts waiting to be sent, at most; past it the oldest are dropped.
    static let maxQueued = 50_000
    /// Texts sent in one statement (one transaction), at most.
    static let maxPerStatement = 2_000
    /// How long the LISTEN may hear nothing (not even this node's own heartbeat ping, sent every
    /// second) before its session is taken as dead and started again.
    static let listenSilence = Duration.seconds(10)

    /// Handles one notification; an error ends the listening session (the next one catches up).
    public typealias Received = @Sendable (String, PostgresConnection) async throws -> Void

    public let node: String
    /// The cluster's identity (`switchboard.cluster`), part of every channel's epoch.
    public let clusterID: String
    private let settings: DatabaseSettings
    private let health: DatabaseHealth
    private let logger: Logger
    private let queue = Mutex<(texts: [String], connected: Bool, dropped: Int)>(([], false, 0))
    /// This process, in its node's row (random per start).
    private let instance = String(UInt64.random(in: 0...UInt64.max), radix: 36)
    private let pings = Atomic<Int>(0)
    /// Whether another node was alive at the last heartbeat (ephemeral messages are announced
    /// only then: nobody else would hear them).
    private let othersAlive = Atomic<Bool>(false)

    /// Whether another node was alive at the last heartbeat.
    public var hasOtherNodes: Bool { othersAlive.load(ordering: .relaxed) }
    /// When the LISTEN last heard anything.
    private let lastHeard = Mutex(ContinuousClock.now)
    /// Called each time the writer's connection opens.
    private let writerConnectedHandler = Mutex<@Sendable () -> Void>({})

    private func writerConnected() {
        writerConnectedHandler.withLock { $0 }()
    }
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    public init(node: String, clusterID: String, settings: DatabaseSettings, health: DatabaseHealth, logger: Logger) {
        self.node = node
        self.clusterID = clusterID
        self.settings = settings
        self.health = health
        self.logger = logger
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues texts for every node (this one hears them too), in order. `build` runs under the
    /// queue's lock, so what it reads is queued before anything sent after it (a presence
    /// snapshot cannot be overtaken by a change made after it was taken).
    public func send(whileDown keep: Bool = false, _ build: () -> [String]) {
        let sent = queue.withLock { queue -> Bool in
            let texts = build()
            guard !texts.isEmpty else { return false }
            guard queue.connected || keep else {
                queue.dropped += texts.count
                return false
            }
            queue.texts.append(contentsOf: texts)
            let over = queue.texts.count - Self.maxQueued
            if over > 0 {
                queue.texts.removeFirst(over)
                queue.dropped += over
            }
            return true
        }
        if sent { wake.yield() }
    }

    /// Queues texts for every node (this one hears them too), in order.
    public func send(_ texts: [String]) {
        send { texts }
    }

    /// Cluster messages dropped because the database could not take them.
    public var dropped: Int { queue.withLock { $0.dropped } }

    /// Listens, sends and beats until cancelled.
    public func run(
        connected: @escaping @Sendable (PostgresConnection) async throws -> Void, received: @escaping Received,
        status: @escaping @Sendable () async -> ClusterNodeStatus, nodes: @escaping @Sendable ([ClusterNodeRow]) async -> Void,
        writerUp: @escaping @Sendable () -> Void = {}
    ) async {
        writerConnectedHandler.withLock { $0 = writerUp }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.listen(connected: connected, received: received) }
            group.addTask { await self.write(status: status, nodes: nodes) }
        }
    }

    /// Tells the others that this node is leaving (its presences go at once) and removes its row.
    public func leave() async {
        let node = node
        do {
            try await Database.withConnection(settings, logger: logger) { [logger] connection in
                try await connection.run("delete from switchboard.nodes where name = \(node)", logger: logger)
                try await connection.run(
                    "select switchboard.cluster_notify(array[\(Self.leaving(node))]::text[])", logger: logger)
            }
        } catch {
            logger.warning("could not tell the cluster this node is leaving", metadata: ["error": "\(DatabaseError.describe(error))"])
        }
    }

    /// The notification that says `node` left.
    static func leaving(_ node: String) -> String {
        JSON.string(["x", .string(node)]) + "\n"
    }

    // MARK: - Listening

    private func listen(
        connected: @escaping @Sendable (PostgresConnection) async throws -> Void, received: @escaping Received
    ) async {
        await keepReconnecting { up in
            let listener = try await Database.connect(settings, logger: logger)
            let reader: PostgresConnection
            do {
                reader = try await Database.connect(settings, logger: logger)
            } catch {
                try? await listener.close()
                throw error
            }
            do {
                try await self.serve(listener: listener, reader: reader, connected: connected, received: received, up: up)
            } catch {
                // Closed before they are released (postgres-nio asserts that).
                try? await listener.close()
                try? await reader.close()
                throw error
            }
        } failed: { error, first in
            health.set(.down(reason: DatabaseError.describe(error)))
            if first {
                logger.error("cluster link lost; local delivery goes on", metadata: ["error": "\(DatabaseError.describe(error))"])
            }
        }
    }

    private func serve(
        listener: PostgresConnection, reader: PostgresConnection, connected: @escaping @Sendable (PostgresConnection) async throws -> Void,
        received: @escaping Received, up: @escaping @Sendable () -> Void
    ) async throws {
        lastHeard.withLock { $0 = .now }
        try await listener.guarded { listener in
            try await reader.guarded { reader in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    // A LISTEN that hears nothing, not even this node's own pings, is dead
                    // (a connection dropped without a word): start again.
                    group.addTask {
                        while true {
                            try await Task.sleep(for: .seconds(1))
                            let quiet = ContinuousClock.now - self.lastHeard.withLock { $0 }
                            if quiet > Self.listenSilence {
                                throw DatabaseError("the cluster's LISTEN heard nothing for \(quiet); starting it again")
                            }
                        }
                    }
                    group.addTask {
                        try await listener.listen(on: Self.channel) { notifications in
                            try await connected(reader)
                            self.lastHeard.withLock { $0 = .now }
                            up()
                            self.health.set(.up)
                            self.logger.info("cluster link up", metadata: ["node": "\(self.node)"])
                            for try await notification in notifications {
                                self.lastHeard.withLock { $0 = .now }
                                var text = notification.payload
                                if text.hasPrefix("@"), let id = Int64(text.dropFirst()) {
                                    guard let stored = try await self.relayed(id, on: reader) else { continue }
                                    text = stored
                                }
                                try await received(text, reader)
                                self.lastHeard.withLock { $0 = .now }
                            }
                        }
                        throw DatabaseError("the database closed the connection")
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        }
        throw DatabaseError("the database closed the connection")
    }

    private func relayed(_ id: Int64, on connection: PostgresConnection) async throws -> String? {
        let rows = try await connection.query("select body from switchboard.relay where id = \(id)", logger: logger)
        for try await body in rows.decode(String.self) { return body }
        logger.warning("a relayed cluster message was gone before it was read", metadata: ["relay": "\(id)"])
        return nil
    }

    // MARK: - Sending and the heartbeat

    private func write(status: @escaping @Sendable () async -> ClusterNodeStatus, nodes: @escaping @Sendable ([ClusterNodeRow]) async -> Void) async {
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.heartbeatInterval)
                wake.yield()
            }
        }
        defer { ticker.cancel() }
        var registered = false
        // One iterator for the writer's life (an AsyncStream ends when its iterator goes).
        var wakes = wakeups.makeAsyncIterator()
        await keepReconnecting { up in
            let connection = try await Database.connect(settings, logger: logger)
            do {
                try await send(on: connection, up: up, wakes: &wakes, registered: &registered, status: status, nodes: nodes)
            } catch {
                queue.withLock { $0.connected = false }
                try? await connection.close()
                throw error
            }
            queue.withLock { $0.connected = false }
            try? await connection.close()
        } failed: { error, first in
            queue.withLock { queue in
                queue.dropped += queue.texts.count
                queue.texts = []
            }
            if first {
                logger.warning("the cluster writer lost its connection", metadata: ["error": "\(DatabaseError.describe(error))"])
            }
        }
    }

    private func send(
        on connection: PostgresConnection, up: @Sendable () -> Void, wakes: inout AsyncStream<Void>.Iterator, registered: inout Bool,
        status: @Sendable () async -> ClusterNodeStatus, nodes: @Sendable ([ClusterNodeRow]) async -> Void
    ) async throws {
        // Each statement guarded: it ends when the connection closes.
        try await connection.guarded { [logger] in try await $0.run("set synchronous_commit = off", logger: logger) }
        queue.withLock { $0.connected = true }
        up()
        // What the others must hear again from a writer that was away (presence, requests).
        writerConnected()
        var lastBeat = ContinuousClock.now - Self.heartbeatInterval
        while await wakes.next() != nil {
            while true {
                // The heartbeat first, also in the middle of a long burst of sends: a node that
                // sends without pause must not fall silent.
                if ContinuousClock.now - lastBeat >= Self.heartbeatInterval {
                    lastBeat = ContinuousClock.now
                    let status = await status()
                    let restarted = !registered
                    let ping = Self.pingLine(node: node, count: pings.add(1, ordering: .relaxed).newValue)
                    let rows = try await connection.guarded { connection in
                        try await self.beat(status, restarted: restarted, on: connection)
                        // Heard back by this node's own LISTEN, which proves it alive.
                        try await connection.run("select switchboard.cluster_notify(array[\(ping)]::text[])", logger: self.logger)
                        return try await self.nodes(on: connection)
                    }
                    registered = true
                    othersAlive.store(rows.contains { $0.name != node && !$0.isGone }, ordering: .relaxed)
                    await nodes(rows)
                }
                let texts = queue.withLock { queue -> [String] in
                    let taken = queue.texts.prefix(Self.maxPerStatement)
                    queue.texts.removeFirst(taken.count)
                    return Array(taken)
                }
                if texts.isEmpty { break }
                try await connection.guarded { [logger] in
                    try await $0.run("select switchboard.cluster_notify(\(texts)::text[])", logger: logger)
                }
            }
        }
    }

    /// The line a node sends itself with each heartbeat.
    static func pingLine(node: String, count: Int) -> String {
        JSON.string(["p", .string(node), .int(count)]) + "\n"
    }

    private func beat(_ status: ClusterNodeStatus, restarted: Bool, on connection: PostgresConnection) async throws {
        let rows = try await connection.query(
            """
            with previous as (
                select instance, extract(epoch from now() - heartbeat_at)::float8 as age from switchboard.nodes where name = \(node))
            insert into switchboard.nodes as n (name, address, connections, rules_generation, rules_digest, rules_error, changes_slot, instance)
            values (\(node), \(status.address), \(status.connections), \(Int64(status.rulesGeneration)), \(status.rulesDigest),
                \(status.rulesError), \(status.changesSlot), \(instance))
            on conflict (name) do update set heartbeat_at = now(), address = excluded.address, connections = excluded.connections,
                rules_generation = excluded.rules_generation, rules_digest = excluded.rules_digest, rules_error = excluded.rules_error,
                changes_slot = excluded.changes_slot, instance = excluded.instance,
                started_at = case when \(restarted) then now() else n.started_at end
            returning (select instance from previous), (select age from previous)
            """, logger: logger)
        for try await (previous, age) in rows.decode((String?, Double?).self) {
            guard let previous, previous != instance, !previous.isEmpty, let age else { continue }
            if !restarted {
                // Someone else wrote this node's row since our last beat: another live server.
                logger.error(
                    "another server is running with the same node name; give each server of a cluster its own --node-name",
                    metadata: ["node": "\(node)"])
            } else if age < Self.goneAfterSeconds {
                logger.warning(
                    "this node's row was refreshed \(String(format: "%.1f", age)) s ago by another process: if that server is still running, give each server its own --node-name",
                    metadata: ["node": "\(node)"])
            }
        }
    }

    /// Every node's row.
    public func nodes(on connection: PostgresConnection) async throws -> [ClusterNodeRow] {
        try await Self.nodes(on: connection, logger: logger)
    }

    /// Every node's row (none before migration 7).
    public static func nodes(on connection: PostgresConnection, logger: Logger) async throws -> [ClusterNodeRow] {
        let rows = try await connection.query(
            """
            select name, started_at::text, extract(epoch from now() - heartbeat_at)::float8, address, connections,
                rules_generation, rules_digest, rules_error
            from switchboard.nodes order by name
            """, logger: logger)
        var found: [ClusterNodeRow] = []
        for try await (name, started, silence, address, connections, generation, digest, error) in rows.decode(
            (String, String, Double, String, Int32, Int64, String, String?).self)
        {
            found.append(
                ClusterNodeRow(
                    name: name, startedAt: started, silenceSeconds: silence, address: address, connections: Int(connections),
                    rulesGeneration: Int(generation), rulesDigest: digest, rulesError: error))
        }
        return found
    }

    /// Drops the Postgres Changes slots of nodes gone for an hour, forgets nodes gone for a day,
    /// and deletes relayed messages older than a minute.
    public static func upkeep(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.run(
            """
            select pg_drop_replication_slot(s.slot_name) from pg_replication_slots s
            join switchboard.nodes n on n.changes_slot = s.slot_name
            where n.heartbeat_at < now() - interval '1 hour' and not s.active
            """, logger: logger)
        try await connection.run("delete from switchboard.nodes where heartbeat_at < now() - interval '1 day'", logger: logger)
        try await connection.run("delete from switchboard.relay where created_at < now() - interval '1 minute'", logger: logger)
        // The one changes slot of the database from before clusters (one per node since).
        try await connection.run(
            """
            select pg_drop_replication_slot(slot_name) from pg_replication_slots
            where slot_name = 'switchboard_changes_' || left(md5(current_database()), 16) and not active
            """, logger: logger)
    }
}

extension ClusterLink {
    /// The node name a server takes when none is given: this machine's host name.
    public static func defaultNodeName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "switchboard" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (try? validNodeName(name)) ?? "switchboard"
    }

    /// `name` when it is usable as a node's name (1 to 63 characters of letters, digits, `.`,
    /// `-`, `_` and `:`), else an error that says so.
    public static func validNodeName(_ name: String) throws(DatabaseError) -> String {
        let allowed = name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || ".-_:".utf8.contains(byte)
        }
        guard (1...63).contains(name.utf8.count), allowed else {
            throw DatabaseError("a node name is 1 to 63 letters, digits, '.', '-', '_' or ':' (got \"\(name)\")")
        }
        return name
    }
}
