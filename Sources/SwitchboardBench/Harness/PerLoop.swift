import NIOCore

/// One value per event loop of a group, used on its loop without locks and read from
/// anywhere by hopping onto the loop: every bench's counters and histograms live in one.
struct PerLoop<Value: AnyObject>: Sendable {
    /// The most event loops a group may have here (a bound for the enumeration).
    static var maxLoops: Int { 4096 }

    private let byLoop: [ObjectIdentifier: NIOLoopBound<Value>]

    private init(byLoop: [ObjectIdentifier: NIOLoopBound<Value>]) {
        self.byLoop = byLoop
    }

    /// Creates a value with `make` on every loop of `group` (at most ``maxLoops``).
    static func make(for group: any EventLoopGroup, _ make: @escaping @Sendable () -> Value) async throws -> PerLoop {
        var byLoop: [ObjectIdentifier: NIOLoopBound<Value>] = [:]
        for loop in group.makeIterator().prefix(Self.maxLoops) {
            byLoop[ObjectIdentifier(loop)] = try await loop.submit { NIOLoopBound(make(), eventLoop: loop) }.get()
        }
        guard !byLoop.isEmpty else {
            throw BenchError(.unsupportedEventLoopGroup, "the event loop group does not list its event loops")
        }
        return PerLoop(byLoop: byLoop)
    }

    /// The value of `loop`; call on `loop`.
    func value(on loop: any EventLoop) -> Value? {
        self.byLoop[ObjectIdentifier(loop)]?.value
    }

    /// The value of `channel`'s loop, or an error naming the loop the group did not list; call on that loop.
    func require(on loop: any EventLoop) throws -> Value {
        guard let value = self.value(on: loop) else {
            throw BenchError(.unsupportedEventLoopGroup, "a connection landed on an event loop the group did not list")
        }
        return value
    }

    /// `read` applied to every loop's value, each on its loop.
    func collect<Result: Sendable>(_ read: @escaping @Sendable (Value) -> Result) async throws -> [Result] {
        var results: [Result] = []
        results.reserveCapacity(self.byLoop.count)
        for bound in self.byLoop.values {
            results.append(try await bound.eventLoop.submit { read(bound.value) }.get())
        }
        return results
    }
}

/// Counters that add up across event loops.
protocol LoopSnapshot: Sendable {
    init()
    mutating func add(_ other: Self)
}

/// Per-loop stats that can give a copy of their counters.
protocol SnapshotProviding: AnyObject, SendableMetatype {
    associatedtype Snapshot: LoopSnapshot
    var snapshot: Snapshot { get }
}

extension PerLoop where Value: SnapshotProviding {
    /// The counters summed over all loops.
    func snapshot() async throws -> Value.Snapshot {
        var total = Value.Snapshot()
        for part in try await self.collect({ $0.snapshot }) {
            total.add(part)
        }
        return total
    }
}

extension PerLoop {
    /// The histograms `read` picks, merged over all loops.
    func mergedHistogram(_ read: @escaping @Sendable (Value) -> LatencyHistogram) async throws -> LatencyHistogram {
        var merged = LatencyHistogram()
        for part in try await self.collect(read) {
            merged.add(part)
        }
        return merged
    }
}
