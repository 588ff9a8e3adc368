// The delivery of one published message on one loop: `Hub.publish` queues it, the shard
// writes the shared frame to each subscriber and flushes each once. Subscribers are
// `RealtimeConnection`s on NIO `EmbeddedChannel`s (no sockets), through the server's
// benchmark SPI.
import Benchmark
import Dispatch
import NIOCore
import NIOEmbedded
@_spi(Benchmarks) import SwitchboardServer
import SwitchboardWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The hub's loop here: runs what was queued when asked, on the thread that made it, and
/// allocates nothing of its own per task, like a real loop's queue once warm. (An
/// `EmbeddedEventLoop` allocates a promise, a scheduled task and three closures per
/// `execute`: ten of the thirteen allocations a publish counted on it.) Timers are not
/// supported; the hub's delivery sets none.
///
/// `@unchecked Sendable`: it is only ever used on the thread that made it (`inEventLoop`
/// checks, and the hub and shard check `inEventLoop` before touching it), as `EmbeddedEventLoop`.
private final class BareEventLoop: EventLoop, @unchecked Sendable {
    /// A task in a struct: an array of bare closures would store each one reabstracted, behind
    /// a thunk allocated per `execute`.
    private struct Task {
        let body: @Sendable () -> Void
    }

    private var queued: [Task] = []
    private var running: [Task] = []
    private let thread = pthread_self()

    var inEventLoop: Bool { pthread_equal(thread, pthread_self()) != 0 }

    func execute(_ task: @escaping @Sendable () -> Void) {
        precondition(inEventLoop, "BareEventLoop is used on the thread that made it only")
        queued.append(Task(body: task))
    }

    /// Runs everything queued, and what that queues, in order.
    func run() {
        while !queued.isEmpty {
            swap(&queued, &running)
            for task in running { task.body() }
            running.removeAll(keepingCapacity: true)
        }
    }

    func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        fatalError("BareEventLoop runs no timers")
    }

    func scheduleTask<T>(in: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        fatalError("BareEventLoop runs no timers")
    }

    func preconditionInEventLoop(file: StaticString, line: UInt) {
        precondition(inEventLoop, file: file, line: line)
    }

    func preconditionNotInEventLoop(file: StaticString, line: UInt) {
        precondition(!inEventLoop, file: file, line: line)
    }

    func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        queue.async { callback(nil) }
    }
}

/// A shard and its subscribers' channels, made on the thread that runs the iterations: both
/// loops may only be used on the thread that made them, and the benchmark's setup runs on
/// another.
private final class DeliveryHarness {
    /// The hub's loop.
    let loop = BareEventLoop()
    /// The subscribers' channels' loop (an `EmbeddedChannel` needs one of these).
    let channelLoop = EmbeddedEventLoop()
    let shard: DeliveryBenchmarkShard
    let channels: [EmbeddedChannel]
    /// The bytes one delivery writes to all subscribers together.
    let bytesPerDelivery: Int

    init(setup: DeliveryBenchmarkShard.Setup, v1: Int, v2: Int, message: DeliveryBenchmarkShard.Message) throws {
        shard = DeliveryBenchmarkShard(loop: loop, setup: setup, topic: Sample.topic)
        var channels: [EmbeddedChannel] = []
        for index in 0..<(v1 + v2) {
            let channel = EmbeddedChannel(loop: channelLoop)
            channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 4000), promise: nil)
            try shard.subscribe(channel, version: index < v1 ? .v1 : .v2)
            channels.append(channel)
        }
        self.channels = channels
        let v1Bytes = message.frame(for: .v1)?.readableBytes ?? 0
        let v2Bytes = message.frame(for: .v2)?.readableBytes ?? 0
        bytesPerDelivery = v1 * v1Bytes + v2 * v2Bytes
        channelLoop.run()
        _ = drain()
    }

    /// Takes what the subscribers were written; returns how many bytes.
    func drain() -> Int {
        var bytes = 0
        for channel in channels {
            while let buffer = try? channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytes }
        }
        return bytes
    }
}

/// Made on the first iteration (a warm-up one), on the thread that runs them all.
private final class LazyHarness {
    private var harness: DeliveryHarness?
    let v1: Int
    let v2: Int
    let message: DeliveryBenchmarkShard.Message

    init(v1: Int, v2: Int, message: DeliveryBenchmarkShard.Message) {
        self.v1 = v1
        self.v2 = v2
        self.message = message
    }

    func get(_ setup: DeliveryBenchmarkShard.Setup) -> DeliveryHarness {
        if let harness { return harness }
        do {
            let made = try DeliveryHarness(setup: setup, v1: v1, v2: v2, message: message)
            harness = made
            return made
        } catch {
            fatalError("the delivery harness could not be set up: \(error)")
        }
    }
}

func registerDeliveryBudgets() {
    let message = DeliveryBenchmarkShard.Message(Sample.outbound, asBinary: false)
    // (name, vsn 1.0.0 subscribers, vsn 2.0.0 subscribers, through Hub.publish or straight to the shard)
    let cases: [(String, Int, Int, Bool)] = [
        ("Delivery.Publish.1Subscriber", 0, 1, true),
        ("Delivery.Publish.100Subscribers", 50, 50, true),
        ("Delivery.ShardDeliver.100Subscribers", 50, 50, false),
    ]
    for (name, v1, v2, throughHub) in cases {
        let lazy = LazyHarness(v1: v1, v2: v2, message: message)
        Benchmark(
            name,
            closure: { benchmark, setup in
                let harness = lazy.get(setup)
                benchmark.startMeasurement()
                if throughHub {
                    harness.shard.publish(message)
                } else {
                    harness.shard.deliver(message)
                }
                harness.loop.run()
                benchmark.stopMeasurement()
                let written = harness.drain()
                if written != harness.bytesPerDelivery {
                    fatalError("\(name): \(written) bytes written, \(harness.bytesPerDelivery) expected")
                }
            },
            setup: { try await DeliveryBenchmarkShard.Setup(policy: try defaultRulesEngine()) }
        )
    }
}
