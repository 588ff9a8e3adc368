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

    /// A topic's subscribers on this loop, in no particular order.
    ///
    /// Past `indexedFrom` subscribers, where each connection sits in `list` is also kept by its
    /// id, so that a leave or a fence finds it at once: a scan per leave made a mass disconnect
    /// from a topic with n subscribers here cost n²/2 comparisons. Small topics (most of them:
    /// a connection's private channels) keep no index and so no dictionary of their own.
    struct Subscribers {
        private(set) var list: ContiguousArray<Subscriber> = []
        private var slots: [UInt64: Int]?
        static let indexedFrom = 32

        var count: Int { list.count }

        mutating func append(_ subscriber: Subscriber) {
            list.append(subscriber)
            if slots != nil {
                slots?[subscriber.connection.id] = list.count - 1
            } else if list.count >= Self.indexedFrom {
                var index: [UInt64: Int] = [:]
                index.reserveCapacity(list.count * 2)
                for (position, each) in list.enumerated() { index[each.connection.id] = position }
                slots = index
            }
        }

        func position(of connection: RealtimeConnection) -> Int? {
            if let slots { return slots[connection.id] }
            return list.firstIndex { $0.connection === connection }
        }

        mutating func setFence(at position: Int, tag: UInt64, seq: UInt64) {
            list[position].fenceTag = tag
            list[position].fenceSeq = seq
        }

        /// Removes the subscriber at `position`; the last one takes its place.
        mutating func remove(at position: Int) {
            let removed = list[position].connection.id
            let last = list.count - 1
            if position != last {
                list.swapAt(position, last)
                slots?[list[position].connection.id] = position
            }
            list.removeLast()
            slots?[removed] = nil
            // Dropped well below the threshold, so that a topic hovering at it does not
            // rebuild the index on every join.
            if list.count < Self.indexedFrom / 2 { slots = nil }
        }
    }

    /// A connection timer due at `deadline` (`RealtimeConnection.id`; stale entries — replaced,
    /// cancelled, or of a closed connection — are skipped when they come up).
    private struct TimerEntry {
        let deadline: UInt64
        let connection: UInt64
        let timer: ConnectionStateMachine.Timer
    }

    let index: Int
    let loop: any EventLoop
    let metrics: ServerMetrics
    private(set) var topics: [String: Subscribers] = [:]
    /// The connections on this loop, by `RealtimeConnection.id`.
    private(set) var connections: [UInt64: RealtimeConnection] = [:]
    /// Every connection timer of this loop in one min-heap by deadline, behind one clock timer
    /// for the earliest: an idle connection holds two heap entries instead of two scheduled
    /// tasks with their promises and closures (~0.6 KB).
    private var timerHeap: [TimerEntry] = []
    private var armed: (deadline: UInt64, handle: ServerTimer)?
    /// The clock the connections' timers are on (the server's configuration clock; set by
    /// `schedule`, the same for every connection of a server).
    private var clock: (any ServerClock)?
    /// Inside `timersDue`: timers scheduled meanwhile are armed once it is done.
    private var firing = false
    private var pendingFlush: [RealtimeConnection] = []
    private var spareFlush: [RealtimeConnection] = []
    private var flushScheduled = false

    init(index: Int, loop: any EventLoop, metrics: ServerMetrics) {
        self.index = index
        self.loop = loop
        self.metrics = metrics
    }

    func register(_ connection: RealtimeConnection) {
        connections[connection.id] = connection
    }

    func unregister(_ connection: RealtimeConnection) {
        connections[connection.id] = nil
    }

    // MARK: Connection timers

    /// Runs `connection.timerDue(timer, deadline:)` once `clock` reaches `deadline` (the
    /// connection ignores a deadline it has since replaced or cancelled).
    func schedule(_ connection: RealtimeConnection, _ timer: ConnectionStateMachine.Timer, at deadline: UInt64, on clock: any ServerClock) {
        self.clock = clock
        if timerHeap.count >= 64, timerHeap.count > 4 * connections.count { dropStaleTimers() }
        pushTimer(TimerEntry(deadline: deadline, connection: connection.id, timer: timer))
        if firing { return }
        if let armed, armed.deadline <= deadline { return }
        arm(at: deadline)
    }

    private func arm(at deadline: UInt64) {
        armed?.handle.cancel()
        armed = nil
        guard let clock else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        armed = (deadline, clock.schedule(at: deadline, on: loop) { bound.value.timersDue(armedAt: deadline) })
    }

    private func timersDue(armedAt deadline: UInt64) {
        guard armed?.deadline == deadline else { return }
        armed = nil
        let now = max(clock?.monotonicNanoseconds() ?? 0, deadline)
        firing = true
        while let first = timerHeap.first, first.deadline <= now {
            popTimer()
            connections[first.connection]?.timerDue(first.timer, deadline: first.deadline)
        }
        firing = false
        if let next = timerHeap.first { arm(at: next.deadline) }
    }

    /// Keeps only the entries their connections still wait for (closed connections' entries
    /// would otherwise stay until their deadlines, hours for a token's expiry).
    private func dropStaleTimers() {
        timerHeap.removeAll { entry in connections[entry.connection]?.isWaiting(entry.timer, deadline: entry.deadline) != true }
        guard timerHeap.count > 1 else { return }
        for start in stride(from: timerHeap.count / 2 - 1, through: 0, by: -1) { siftDown(from: start) }
    }

    private func pushTimer(_ entry: TimerEntry) {
        timerHeap.append(entry)
        var child = timerHeap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard timerHeap[child].deadline < timerHeap[parent].deadline else { break }
            timerHeap.swapAt(child, parent)
            child = parent
        }
    }

    private func popTimer() {
        timerHeap.swapAt(0, timerHeap.count - 1)
        timerHeap.removeLast()
        siftDown(from: 0)
    }

    private func siftDown(from start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < timerHeap.count else { return }
            var smallest = left
            if left + 1 < timerHeap.count, timerHeap[left + 1].deadline < timerHeap[left].deadline { smallest = left + 1 }
            guard timerHeap[smallest].deadline < timerHeap[parent].deadline else { return }
            timerHeap.swapAt(parent, smallest)
            parent = smallest
        }
    }

    /// Adds a subscriber; returns true when it is the topic's first on this shard.
    func subscribe(topic: String, _ subscriber: Subscriber) -> Bool {
        let first = topics[topic] == nil
        // Mutated in place through the dictionary (no copy of the list).
        topics[topic, default: Subscribers()].append(subscriber)
        return first
    }

    /// Marks that `connection`'s join already delivered record `tag` up to `seq` (a replay).
    func setFence(topic: String, _ connection: RealtimeConnection, tag: UInt64, seq: UInt64) {
        guard let position = topics[topic]?.position(of: connection) else { return }
        topics[topic]?.setFence(at: position, tag: tag, seq: seq)
    }

    /// Removes a connection's subscription; returns true when the topic has none left here.
    func unsubscribe(topic: String, _ connection: RealtimeConnection) -> Bool {
        guard let position = topics[topic]?.position(of: connection) else { return false }
        topics[topic]?.remove(at: position)
        guard topics[topic]?.count == 0 else { return false }
        topics[topic] = nil
        return true
    }

    func deliver(topic: String, message: EncodedBroadcast, sender: UInt64?) {
        guard let subscribers = topics[topic]?.list else { return }
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
        // Swapped out rather than copied, so the array's storage is reused, not reallocated.
        var connections = spareFlush
        swap(&connections, &pendingFlush)
        for connection in connections { connection.flushBroadcasts() }
        connections.removeAll(keepingCapacity: true)
        spareFlush = connections
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
