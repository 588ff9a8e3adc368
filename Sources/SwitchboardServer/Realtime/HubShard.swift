import NIOCore
import SwitchboardPostgres

/// The subscribers living on one event loop. Touched only from that loop.
final class HubShard {
    struct Subscriber {
        let connection: RealtimeConnection
        /// The subscriber asked for its own broadcasts (`config.broadcast.self`).
        let receivesOwn: Bool
        /// Its join replayed the history of record `fenceTag` up to `fenceSeq`: live messages
        /// of that record up to there were already delivered.
        var fenceTag: UInt64 = 0
        var fenceSeq: UInt64 = 0
    }

    let index: Int
    let loop: any EventLoop
    let metrics: ServerMetrics
    private(set) var topics: [String: ContiguousArray<Subscriber>] = [:]
    private(set) var connections: [ObjectIdentifier: RealtimeConnection] = [:]
    private var pendingFlush: [RealtimeConnection] = []
    private var flushScheduled = false

    init(index: Int, loop: any EventLoop, metrics: ServerMetrics) {
        self.index = index
        self.loop = loop
        self.metrics = metrics
    }

    func register(_ connection: RealtimeConnection) {
        connections[ObjectIdentifier(connection)] = connection
    }

    func unregister(_ connection: RealtimeConnection) {
        connections[ObjectIdentifier(connection)] = nil
    }

    /// Adds a subscriber; returns true when it is the topic's first on this shard.
    func subscribe(topic: String, _ subscriber: Subscriber) -> Bool {
        let first = topics[topic] == nil
        topics[topic, default: []].append(subscriber)
        return first
    }

    /// Marks that `connection`'s join already delivered record `tag` up to `seq` (a replay).
    func setFence(topic: String, _ connection: RealtimeConnection, tag: UInt64, seq: UInt64) {
        guard let position = topics[topic]?.firstIndex(where: { $0.connection === connection }) else { return }
        topics[topic]?[position].fenceTag = tag
        topics[topic]?[position].fenceSeq = seq
    }

    /// Removes a connection's subscription; returns true when the topic has none left here.
    func unsubscribe(topic: String, _ connection: RealtimeConnection) -> Bool {
        guard var subscribers = topics[topic] else { return false }
        if let position = subscribers.firstIndex(where: { $0.connection === connection }) {
            subscribers.swapAt(position, subscribers.count - 1)
            subscribers.removeLast()
        }
        topics[topic] = subscribers.isEmpty ? nil : subscribers
        return subscribers.isEmpty
    }

    func deliver(topic: String, message: EncodedBroadcast, sender: UInt64?) {
        guard let subscribers = topics[topic] else { return }
        var delivered = 0
        for subscriber in subscribers {
            if !subscriber.receivesOwn, let sender, subscriber.connection.id == sender { continue }
            if message.seq != 0, message.seq <= subscriber.fenceSeq, message.tag == subscriber.fenceTag { continue }
            guard let bytes = message.frame(for: subscriber.connection.version) else { continue }
            if subscriber.connection.writeBroadcast(bytes) {
                pendingFlush.append(subscriber.connection)
            }
            delivered += 1
        }
        metrics.messagesOut.increment(by: Int64(delivered))
        metrics.totals.delivered(delivered)
        if !flushScheduled, !pendingFlush.isEmpty {
            flushScheduled = true
            let bound = NIOLoopBound(self, eventLoop: loop)
            loop.execute { bound.value.flushPending() }
        }
    }

    private func flushPending() {
        flushScheduled = false
        let connections = pendingFlush
        pendingFlush.removeAll(keepingCapacity: true)
        for connection in connections { connection.flushBroadcasts() }
    }

    /// Subscribers per topic on this loop.
    func subscriberCounts() -> [String: Int] {
        topics.mapValues(\.count)
    }

    /// Re-checks every subscription here against the current rules; returns how many were
    /// removed.
    /// Hands committed row changes to every connection here; each distinct filter is evaluated
    /// once per change on this loop.
    func deliverChanges(_ changes: [DecodedChange]) {
        var answers = RealtimeConnection.FilterAnswers()
        for connection in connections.values { connection.deliverChanges(changes, answers: &answers) }
    }

    func reauthorize(members: Set<String>? = nil) -> Int {
        connections.values.reduce(0) { $0 + $1.reauthorize(members: members) }
    }

    func drain(reason: String) -> EventLoopFuture<Void> {
        let futures = connections.values.map { $0.shutdown(reason: reason) }
        return EventLoopFuture.andAllComplete(futures, on: loop)
    }
}
