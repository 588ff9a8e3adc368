import NIOConcurrencyHelpers
import NIOCore
import Synchronization
import SwitchboardPostgres

/// Channels and fan-out. Subscriptions are sharded by event loop: each loop's `HubShard` holds
/// the subscribers whose sockets live on that loop, and is touched only from that loop. A
/// publish posts one task per loop that has subscribers of the topic; that task writes the
/// shared, pre-framed bytes to each local subscriber and flushes each once per drain.
///
/// The only cross-loop state is which shards have subscribers of a topic, kept in lock stripes
/// that change on the first join and last leave of a topic on a loop — never per message.
final class Hub: Sendable {
    let loops: [any EventLoop]
    private let shardIndexByLoop: [ObjectIdentifier: Int]
    private let shards: [NIOLoopBoundBox<HubShard>]
    private let stripes: [NIOLockedValueBox<[String: UInt64]>]
    let metrics: ServerMetrics
    /// The server's clock (the taps' rate is per second of it).
    private let clock: any ServerClock
    /// The console's taps: per topic, streams that get a copy of each message's vsn 1 frame, at
    /// most `Tap.perSecond` a second each (the rest only counted, so a busy channel costs an
    /// open console a count per message, not a wake-up).
    private let taps = Mutex<[String: [Int: Tap]]>([:])

    private struct Tap {
        static let perSecond = 50
        let continuation: AsyncStream<ByteBuffer>.Continuation
        var second: UInt64 = 0
        var sent = 0
        var skipped = 0
    }
    /// How many taps are open (read on every publish: no lock while there are none).
    private let tapCount = Atomic<Int>(0)
    private let nextFeed = Atomic<Int>(0)
    /// The console feeds open, each with what ends it (at shutdown).
    private let feeds = Mutex<[Int: @Sendable () -> Void]>([:])

    init(group: any EventLoopGroup, metrics: ServerMetrics, clock: any ServerClock = SystemClock()) {
        self.clock = clock
        let loops = Array(group.makeIterator())
        precondition(loops.count <= 64, "the hub's shard masks hold at most 64 event loops")
        self.loops = loops
        self.metrics = metrics
        var index: [ObjectIdentifier: Int] = [:]
        for (i, loop) in loops.enumerated() { index[ObjectIdentifier(loop)] = i }
        self.shardIndexByLoop = index
        self.stripes = (0..<16).map { _ in NIOLockedValueBox([:]) }
        var shards: [NIOLoopBoundBox<HubShard>] = []
        for (i, loop) in loops.enumerated() {
            shards.append(.makeBoxSendingValue(HubShard(index: i, loop: loop, metrics: metrics), eventLoop: loop))
        }
        self.shards = shards
    }

    /// The shard of `loop`. Must be called on `loop`.
    func shard(on loop: any EventLoop) -> HubShard? {
        guard let index = shardIndexByLoop[ObjectIdentifier(loop)] else { return nil }
        return shards[index].value
    }

    /// Sends `message` to every subscriber of `topic` except `sender` (unless it asked for its
    /// own messages). Callable from any thread.
    func publish(topic: String, message: EncodedBroadcast, sender: UInt64?) {
        publish(topic: topic, batch: [(message, sender)])
    }

    /// Sends messages in order, with one task per loop for all of them.
    ///
    /// Deliveries are always queued on the subscribers' loops, also on the caller's own loop:
    /// so every loop sees messages in the order they were handed here, whichever thread
    /// handed them (the channel log relies on it for `seq` order).
    func publish(topic: String, batch: [(message: EncodedBroadcast, sender: UInt64?)]) {
        guard !batch.isEmpty else { return }
        if tapCount.load(ordering: .relaxed) > 0 { copyToTaps(topic: topic, batch) }
        let mask = stripe(for: topic).withLockedValue { $0[topic] ?? 0 }
        guard mask != 0 else { return }
        for index in 0..<shards.count where mask & (1 << UInt64(index)) != 0 {
            let shard = shards[index]
            loops[index].execute {
                for item in batch { shard.value.deliver(topic: topic, message: item.message, sender: item.sender) }
            }
        }
    }

    /// Whether any loop has a subscriber of `topic`.
    func hasSubscribers(_ topic: String) -> Bool {
        stripe(for: topic).withLockedValue { $0[topic] != nil }
    }

    /// A copy of every message published on `topic` from now on (its vsn 1 frame, WebSocket
    /// header included; binary-only messages have none), at most the newest `buffer` waiting.
    func tap(_ topic: String, buffer: Int = 256) -> (stream: AsyncStream<ByteBuffer>, id: Int) {
        let (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self, bufferingPolicy: .bufferingNewest(buffer))
        let id = nextFeed.add(1, ordering: .relaxed).newValue
        taps.withLock { $0[topic, default: [:]][id] = Tap(continuation: continuation) }
        tapCount.add(1, ordering: .relaxed)
        return (stream, id)
    }

    func untap(_ topic: String, id: Int) {
        let removed = taps.withLock { taps -> AsyncStream<ByteBuffer>.Continuation? in
            let tap = taps[topic]?.removeValue(forKey: id)
            if taps[topic]?.isEmpty == true { taps[topic] = nil }
            return tap?.continuation
        }
        if let removed {
            removed.finish()
            tapCount.subtract(1, ordering: .relaxed)
        }
    }

    private func copyToTaps(topic: String, _ batch: [(message: EncodedBroadcast, sender: UInt64?)]) {
        let second = clock.monotonicNanoseconds() / 1_000_000_000
        taps.withLock { taps in
            guard var listeners = taps[topic] else { return }
            for (id, var tap) in listeners {
                if tap.second != second {
                    tap.second = second
                    tap.sent = 0
                }
                for item in batch {
                    guard let frame = item.message.v1 else { continue }
                    if tap.sent < Tap.perSecond {
                        tap.sent += 1
                        tap.continuation.yield(frame)
                    } else {
                        tap.skipped += 1
                    }
                }
                listeners[id] = tap
            }
            taps[topic] = listeners
        }
    }

    /// Messages a tap skipped (past its rate) since it opened.
    func tapSkipped(_ topic: String, id: Int) -> Int {
        taps.withLock { $0[topic]?[id]?.skipped ?? 0 }
    }

    /// Registers an open console feed and what ends it; `drain` ends every one.
    func openFeed(close: @escaping @Sendable () -> Void) -> Int {
        let id = nextFeed.add(1, ordering: .relaxed).newValue
        feeds.withLock { $0[id] = close }
        return id
    }

    func closeFeed(_ id: Int) {
        _ = feeds.withLock { $0.removeValue(forKey: id) }
    }

    /// Records that shard `index` now has (or no longer has) subscribers of `topic`.
    func setShard(_ index: Int, topic: String, hasSubscribers: Bool) {
        stripe(for: topic).withLockedValue { masks in
            let bit: UInt64 = 1 << UInt64(index)
            let old = masks[topic] ?? 0
            let new = hasSubscribers ? old | bit : old & ~bit
            masks[topic] = new == 0 ? nil : new
        }
    }

    /// Asks every connection on every loop to close gracefully and waits until they have.
    func drain(reason: String) async {
        let open = feeds.withLock { feeds -> [@Sendable () -> Void] in
            defer { feeds = [:] }
            return Array(feeds.values)
        }
        for close in open { close() }
        var futures: [EventLoopFuture<Void>] = []
        for (index, loop) in loops.enumerated() {
            let shard = shards[index]
            futures.append(loop.flatSubmit { shard.value.drain(reason: reason) })
        }
        for future in futures { try? await future.get() }
    }

    /// Hands committed row changes to every loop's connections and waits until each loop has
    /// queued them (so that the changes slot moves past them only then).
    func deliverChanges(_ changes: [DecodedChange]) async {
        var futures: [EventLoopFuture<Void>] = []
        for (index, loop) in loops.enumerated() {
            let shard = shards[index]
            futures.append(loop.submit { shard.value.deliverChanges(changes) })
        }
        for future in futures { try? await future.get() }
    }

    /// Re-authorizes every subscription on every loop (after a rules reload) and returns how
    /// many lost access. Each loop checks its own connections, so loops work in parallel.
    func reauthorizeAll() async -> Int {
        await reauthorize(members: nil)
    }

    /// Re-runs the join rule for the subscriptions of users whose `sub`, `supplier_id` or
    /// `couple_id` is in `members` (nil: every subscription); returns how many were removed.
    func reauthorize(members: Set<String>?) async -> Int {
        var futures: [EventLoopFuture<Int>] = []
        for (index, loop) in loops.enumerated() {
            let shard = shards[index]
            futures.append(loop.submit { shard.value.reauthorize(members: members) })
        }
        var removed = 0
        for future in futures { removed += (try? await future.get()) ?? 0 }
        return removed
    }

    /// Closes every connection whose token subject is `subject`; returns how many.
    func disconnect(subject: String, reason: String) async -> Int {
        var futures: [EventLoopFuture<Int>] = []
        for (index, loop) in loops.enumerated() {
            let shard = shards[index]
            futures.append(loop.submit { shard.value.connections.values.filter { $0.disconnect(subject: subject, reason: reason) }.count })
        }
        var closed = 0
        for future in futures { closed += (try? await future.get()) ?? 0 }
        return closed
    }

    /// Subscribers per topic, summed over every loop.
    func subscriberCounts() async -> [String: Int] {
        var total: [String: Int] = [:]
        for (index, loop) in loops.enumerated() {
            let shard = shards[index]
            let counts = (try? await loop.submit { shard.value.subscriberCounts() }.get()) ?? [:]
            total.merge(counts, uniquingKeysWith: +)
        }
        return total
    }

    /// Current connection count across all shards.
    func connectionCount() async -> Int {
        var total = 0
        for (index, loop) in loops.enumerated() {
            let shard = shards[index]
            total += (try? await loop.submit { shard.value.connections.count }.get()) ?? 0
        }
        return total
    }

    private func stripe(for topic: String) -> NIOLockedValueBox<[String: UInt64]> {
        stripes[Int(UInt(bitPattern: topic.hashValue) % UInt(stripes.count))]
    }
}
