import NIOCore

/// One value per event loop of a group, used on its loop without locks and read from
/// anywhere by hopping onto the loop.
struct PerLoop<Value: AnyObject>: Sendable {
    private let byLoop: [ObjectIdentifier: NIOLoopBound<Value>]

    private init(byLoop: [ObjectIdentifier: NIOLoopBound<Value>]) {
        self.byLoop = byLoop
    }

    /// Creates a value with `make` on every loop of `group` (at most ``LoopStatsRegistry/maxLoops``).
    static func make(for group: any EventLoopGroup, _ make: @escaping @Sendable () -> Value) async throws -> PerLoop {
        var byLoop: [ObjectIdentifier: NIOLoopBound<Value>] = [:]
        for loop in group.makeIterator().prefix(LoopStatsRegistry.maxLoops) {
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
