import Logging
import PostgresNIO
import Synchronization

/// One replayable message as the database keeps it (`switchboard.history`).
public struct HistoryRecord: Sendable, Equatable {
    public let topic: String
    public let epoch: String
    public let seq: Int64
    public let id: String
    public let event: String
    /// The JSON payload's text as the server serialized it; "" for a binary message.
    public let payloadJSON: String
    /// A binary (kind 3) message's body as hex; "" for JSON.
    public let binaryHex: String
    public let asBinary: Bool
    /// Milliseconds since 1970 on the server's clock.
    public let publishedAt: Int64
    /// The rate-limit budget it was counted on (the other nodes count it there too); nil: none.
    public let budget: String?

    public init(
        topic: String, epoch: String, seq: Int64, id: String, event: String, payloadJSON: String, binaryHex: String, asBinary: Bool,
        publishedAt: Int64, budget: String? = nil
    ) {
        self.budget = budget
        self.topic = topic
        self.epoch = epoch
        self.seq = seq
        self.id = id
        self.event = event
        self.payloadJSON = payloadJSON
        self.binaryHex = binaryHex
        self.asBinary = asBinary
        self.publishedAt = publishedAt
    }
}

/// A channel's history as the database kept it, read at start.
public struct SavedChannel: Sendable {
    public let topic: String
    public let epoch: String
    public let seq: Int64
    /// Oldest first.
    public let records: [HistoryRecord]

    public init(topic: String, epoch: String, seq: Int64, records: [HistoryRecord]) {
        self.topic = topic
        self.epoch = epoch
        self.seq = seq
        self.records = records
    }
}

/// Writes replayable messages to `switchboard.history`, where they are numbered (`seq`, the same
/// on every node of the cluster) and announced to every node, this one included, which deliver
/// them from the announcement. Writes are grouped: everything queued while one transaction runs
/// goes into the next, in queue order, so a publisher waits for about one commit whatever the
/// rate.
///
/// When a write fails (the database is down), the callers are told at once (their messages are
/// delivered anyway: local delivery goes on), the records are kept (at most `maxRetained`, the
/// oldest dropped first) and written once the database is back; until a write succeeds again
/// `isAvailable` is false, so publishers do not wait.
///
/// The writer has a connection of its own (one write is in flight at a time, so a pool would
/// add nothing), reopened after a failure with a backoff from 100 ms to at most 2 s: what waited
/// through an outage is written within about 2 s of the database's return. (postgres-nio's pool
/// backs off up to a minute after a long outage, and it stops at the first sign of a graceful
/// shutdown, before the history waiting for it is written.)
public final class HistoryStore: Sendable {
    public typealias Done = @Sendable (Bool) -> Void

    /// Records kept for a later write while the database is down.
    public static let maxRetained = 100_000
    /// Records waiting behind the write in flight, at most, while the database is up but slow;
    /// past it publishers stop waiting for their commit, as while writes fail.
    public static let maxWaiting = 50_000

    private struct Queue {
        var waiting: [(records: [HistoryRecord], done: Done?)] = []
        /// Records in `waiting`.
        var waitingCount = 0
        var retained: [HistoryRecord] = []
        var failing = false
        /// The writer has stopped (shutdown): nothing queued would ever be written.
        var stopped = false
        /// A write is in flight.
        var writing = false

        /// Drops the oldest retained records past `maxRetained`.
        mutating func trimRetained(logger: Logger) {
            let over = retained.count - HistoryStore.maxRetained
            guard over > 0 else { return }
            retained.removeFirst(over)
            logger.error(
                "the database is down and the replay history waiting for it is full; the oldest records were dropped",
                metadata: ["dropped": "\(over)"])
        }
    }

    /// The node writing (it is named in the announcements).
    private let node: String
    private let settings: DatabaseSettings
    /// The writer's connection while it has one.
    private let connection = Mutex<PostgresConnection?>(nil)
    private let health: DatabaseHealth
    private let logger: Logger
    private let queue = Mutex(Queue())
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(node: String, settings: DatabaseSettings, health: DatabaseHealth, logger: Logger) {
        self.node = node
        self.settings = settings
        self.health = health
        self.logger = logger
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Whether a publisher should wait for its commit: the database is up (the start-up check
    /// or the reader's connection says so), writes succeed and the writer runs.
    public var isAvailable: Bool { health.isUp && queue.withLock { !$0.failing && !$0.stopped } }

    /// Queues records (in order). Returns true when `done` will be called, from the writer, once
    /// they are committed (true) or their write failed (false); false when writes are failing
    /// now: the records are kept for a later write and `done` is never called (the caller
    /// delivers at once). `done` is never called from inside this method, so a caller may hold
    /// its own lock around it.
    @discardableResult
    public func persist(_ records: [HistoryRecord], then done: Done?) -> Bool {
        guard !records.isEmpty else { return false }
        let queued = queue.withLock { queue -> Bool in
            // Failing, stopped, or so far behind that waiting would hold publishers for long:
            // they are told at once (and deliver now), the records wait for a later write.
            if queue.failing || queue.stopped || queue.waitingCount >= Self.maxWaiting {
                queue.retained.append(contentsOf: records)
                queue.trimRetained(logger: logger)
                return false
            }
            queue.waiting.append((records, done))
            queue.waitingCount += records.count
            return true
        }
        wake.yield()
        return queued
    }

    /// Waits (at most `timeout`) until nothing waits to be written: at shutdown, after the
    /// sockets closed, so that what was published reaches the database if it can.
    func flush(within timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, !Task.isCancelled {
            let idle = queue.withLock { $0.waiting.isEmpty && $0.retained.isEmpty && !$0.writing }
            if idle { return }
            wake.yield()
            try? await Task.sleep(for: .milliseconds(10))
        }
        let left = queue.withLock { $0.waiting.reduce(0) { $0 + $1.records.count } + $0.retained.count }
        if left > 0 {
            logger.error("shutting down with replay history not written to the database", metadata: ["records": "\(left)"])
        }
    }

    /// Writes until cancelled; then tells whoever still waits that their write failed.
    func run() async {
        defer {
            let abandoned = queue.withLock { queue -> [(records: [HistoryRecord], done: Done?)] in
                queue.stopped = true
                queue.retained += queue.waiting.flatMap(\.records)
                defer {
                    queue.waiting = []
                    queue.waitingCount = 0
                }
                return queue.waiting
            }
            for item in abandoned { item.done?(false) }
        }
        await writeUntilCancelled()
        await dropConnection()
    }

    /// Closes the writer's connection, if it has one; the next write opens another.
    private func dropConnection() async {
        let open = connection.withLock { connection -> PostgresConnection? in
            defer { connection = nil }
            return connection
        }
        try? await open?.close()
    }

    private func writeUntilCancelled() async {
        var backoff = Duration.milliseconds(100)
        for await _ in wakeups {
            while !Task.isCancelled {
                let (retained, batch) = queue.withLock { queue -> ([HistoryRecord], [(records: [HistoryRecord], done: Done?)]) in
                    let taken = (queue.retained, queue.waiting)
                    queue.retained = []
                    queue.waiting = []
                    queue.waitingCount = 0
                    queue.writing = !(taken.0.isEmpty && taken.1.isEmpty)
                    return taken
                }
                let records = retained + batch.flatMap(\.records)
                if records.isEmpty { break }
                defer { queue.withLock { $0.writing = false } }
                do {
                    // Guarded: cancelling, or the connection closing, ends a write in flight.
                    try await openConnection().guarded { connection in try await self.write(records, on: connection) }
                    queue.withLock { $0.failing = false }
                    backoff = .milliseconds(100)
                    for item in batch { item.done?(true) }
                } catch where ["SQLSTATE 22", "SQLSTATE 23"].contains(where: DatabaseError.describe(error).contains) {
                    // Data the database refuses (a data exception, a broken constraint): writing it
                    // again cannot help, and it must not hold back every message after it.
                    logger.error(
                        "the database refused to store these messages' history; they were delivered and are not kept for replay",
                        metadata: ["error": "\(DatabaseError.describe(error))", "records": "\(records.count)"])
                    for item in batch { item.done?(false) }
                } catch {
                    await dropConnection()
                    // What was queued behind this write goes back in order too (and is told of
                    // the failure): from now on `persist` appends to `retained`, after it.
                    let (wasFailing, behind) = queue.withLock { queue -> (Bool, [(records: [HistoryRecord], done: Done?)]) in
                        let was = queue.failing
                        queue.failing = true
                        let behind = queue.waiting
                        queue.waiting = []
                        queue.waitingCount = 0
                        queue.retained = records + queue.retained + behind.flatMap(\.records)
                        queue.trimRetained(logger: logger)
                        return (was, behind)
                    }
                    if !wasFailing {
                        logger.error(
                            "writing the replay history failed; messages are delivered and kept for a later write",
                            metadata: ["error": "\(DatabaseError.describe(error))", "records": "\(records.count)"])
                    }
                    for item in batch + behind { item.done?(false) }
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(2))
                }
            }
        }
    }

    /// The writer's connection, opened when there is none.
    private func openConnection() async throws -> PostgresConnection {
        if let open = connection.withLock({ $0 }), !open.isClosed { return open }
        let opened = try await Database.connect(settings, logger: logger)
        let cancelled = connection.withLock { connection -> Bool in
            if Task.isCancelled { return true }
            connection = opened
            return false
        }
        if cancelled {
            try? await opened.close()
            throw CancellationError()
        }
        return opened
    }

    /// Stores the records through `switchboard.publish_history`, which numbers each after the last
    /// of its channel (whichever node wrote that), skips the ids a channel already holds, and
    /// announces each stored message to every node.
    private func write(_ records: [HistoryRecord], on connection: PostgresConnection) async throws {
        // A few thousand per statement: one statement holds its channels' row locks, and the
        // notifying commit lock, until it commits.
        var start = records.startIndex
        while start < records.endIndex {
            let end = min(start + Self.maxPerStatement, records.endIndex)
            try await write(chunk: Array(records[start..<end]), on: connection)
            start = end
        }
    }

    /// Records stored by one statement, at most.
    static let maxPerStatement = 2_000

    private func write(chunk records: [HistoryRecord], on connection: PostgresConnection) async throws {
        try await connection.run(
            """
            select count(*) from switchboard.publish_history(\(records.map(\.topic))::text[], \(records.map(\.epoch))::text[], \(records.map(\.id))::text[],
                \(records.map(\.event))::text[], \(records.map(\.payloadJSON))::text[], \(records.map(\.binaryHex))::text[],
                \(records.map(\.asBinary))::bool[], \(records.map(\.publishedAt))::int8[], \(records.map { $0.budget ?? "" })::text[], \(node))
            """, logger: logger)
    }

    /// Every channel touched in the last day, with its messages published at or after
    /// `sinceMilliseconds`.
    /// (At start, before the pool runs: on a connection of its own.)
    public func load(sinceMilliseconds: Int64, on connection: PostgresConnection) async throws -> [SavedChannel] {
        var channels: [SavedChannel] = []
        var current: (topic: String, epoch: String, seq: Int64, records: [HistoryRecord])?
        let rows = try await connection.query(
            """
            select c.topic, c.epoch, c.seq, h.seq, h.id, h.event, h.payload, h.binary_hex, h.as_binary, h.published_at
            from switchboard.channels c
            left join switchboard.history h on h.topic = c.topic and h.epoch = c.epoch and h.published_at >= \(sinceMilliseconds)
            where c.updated_at > now() - interval '1 day'
            order by c.topic, h.seq
            """, logger: logger)
        for try await (topic, epoch, seq, entrySeq, id, event, payload, hex, binary, at) in rows.decode(
            (String, String, Int64, Int64?, String?, String?, String?, String?, Bool?, Int64?).self)
        {
            if current?.topic != topic {
                if let done = current { channels.append(SavedChannel(topic: done.topic, epoch: done.epoch, seq: done.seq, records: done.records)) }
                current = (topic, epoch, seq, [])
            }
            if let entrySeq, let id, let event {
                current?.records.append(
                    HistoryRecord(
                        topic: topic, epoch: epoch, seq: entrySeq, id: id, event: event, payloadJSON: payload ?? "", binaryHex: hex ?? "",
                        asBinary: binary ?? false, publishedAt: at ?? 0))
            }
        }
        if let done = current { channels.append(SavedChannel(topic: done.topic, epoch: done.epoch, seq: done.seq, records: done.records)) }
        return channels
    }

    /// Deletes messages published before `cutoffMilliseconds`. A channel's row (its epoch and
    /// seq) is kept, so that its seq goes on: a position in it is never taken for a position in
    /// a newer run under the same epoch (every node names a channel's epoch alike).
    func prune(before cutoffMilliseconds: Int64) async {
        do {
            try await Database.withConnection(settings, logger: logger) { [logger] connection in
                try await connection.run("delete from switchboard.history where published_at < \(cutoffMilliseconds)", logger: logger)
            }
        } catch {
            logger.warning("pruning the replay history failed", metadata: ["error": "\(DatabaseError.describe(error))"])
        }
    }
}
