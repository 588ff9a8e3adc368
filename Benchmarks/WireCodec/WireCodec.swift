// The wire codec on a typical broadcast: decoding one client frame and encoding one outbound
// broadcast (once per protocol version, as the hub does). Each iteration runs 1,000 codec
// operations (`scalingFactor: .kilo`), so the reported wall-clock time is per operation.
import Benchmark
import NIOCore
import SwitchboardCore
import SwitchboardWire

/// A realtime-js broadcast push on vsn 2.0.0 (about 200 bytes).
private let inboundV2 = #"["3","7","realtime:collaboration:s1:c1","broadcast",{"type":"broadcast","event":"comment:added","payload":{"comment_id":"k1","text":"Looks good, see you on Saturday","author":{"id":"u-s1","name":"Anna"}}}]"#

/// The same push on vsn 1.0.0.
private let inboundV1 = #"{"join_ref":"3","ref":"7","topic":"realtime:collaboration:s1:c1","event":"broadcast","payload":{"type":"broadcast","event":"comment:added","payload":{"comment_id":"k1","text":"Looks good, see you on Saturday","author":{"id":"u-s1","name":"Anna"}}}}"#

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 5_000
    )

    let allocator = ByteBufferAllocator()
    let v2Frame = allocator.buffer(string: inboundV2)
    let v1Frame = allocator.buffer(string: inboundV1)
    let outbound: BroadcastFrame
    do {
        let decoded = try WireDecoder.decodeText(v2Frame, version: .v2)
        guard let event = decoded.payload["event"]?.stringValue else { fatalError("the sample frame is not a broadcast") }
        outbound = BroadcastFrame(topic: decoded.topic, event: event, payload: decoded.payload["payload"], meta: ["id": "m-1"])
        _ = try WireDecoder.decodeText(v1Frame, version: .v1)
    } catch {
        fatalError("the sample frames do not decode: \(error)")
    }

    Benchmark("decode broadcast push (vsn 2.0.0 text, \(inboundV2.utf8.count) B)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? WireDecoder.decodeText(v2Frame, version: .v2))
        }
    }

    Benchmark("decode broadcast push (vsn 1.0.0 text, \(inboundV1.utf8.count) B)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? WireDecoder.decodeText(v1Frame, version: .v1))
        }
    }

    Benchmark("encode outbound broadcast (vsn 2.0.0 text)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(outbound.encodeText(version: .v2, allocator: allocator))
        }
    }

    Benchmark("encode outbound broadcast (vsn 1.0.0 text)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(outbound.encodeText(version: .v1, allocator: allocator))
        }
    }
}
