// Decoding a client's broadcast push, once per push, and encoding and framing the broadcast,
// once per published message (never per subscriber).
import Benchmark
import NIOCore
@_spi(Benchmarks) import SwitchboardServer
import SwitchboardCore
import SwitchboardWire

func registerCodecBudgets() {
    let allocator = ByteBufferAllocator()
    let v1 = allocator.buffer(string: Sample.pushV1)
    let v2 = allocator.buffer(string: Sample.pushV2)
    let kind3 = allocator.buffer(bytes: Sample.pushKind3)
    // The samples must decode to the same broadcast, or the budgets measure an error path.
    for (name, frame) in [
        ("v1", try? WireDecoder.decodeText(v1, version: .v1)), ("v2", try? WireDecoder.decodeText(v2, version: .v2)),
        ("kind 3", try? WireDecoder.decodeBinary(kind3, version: .v2)),
    ] {
        guard let frame, frame.topic == Sample.topic, frame.payload["event"]?.stringValue == Sample.event,
            frame.payload["payload"] == Sample.payload
        else { fatalError("the \(name) sample push does not decode to the sample broadcast") }
    }

    Benchmark("Decode.Push.v1Text") { _ in
        blackHole(try? WireDecoder.decodeText(v1, version: .v1))
    }
    Benchmark("Decode.Push.v2Text") { _ in
        blackHole(try? WireDecoder.decodeText(v2, version: .v2))
    }
    Benchmark("Decode.Push.kind3Binary") { _ in
        blackHole(try? WireDecoder.decodeBinary(kind3, version: .v2))
    }

    // The pieces, as SwitchboardWire offers them.
    let outbound = Sample.outbound
    Benchmark("Encode.Payload.json") { _ in
        var buffer = allocator.buffer(capacity: 256)
        JSON.serialize(Sample.payload, into: &buffer)
        blackHole(buffer)
    }
    Benchmark("Encode.Broadcast.v1Text") { _ in
        blackHole(outbound.encodeText(version: .v1, allocator: allocator))
    }
    Benchmark("Encode.Broadcast.v2Text") { _ in
        blackHole(outbound.encodeText(version: .v2, allocator: allocator))
    }
    Benchmark("Encode.Broadcast.kind4") { _ in
        blackHole(outbound.encodeKind4(allocator: allocator))
    }

    // What the server does once per published message (`EncodedBroadcast`): the text body for
    // each version, or kind 4 for vsn 2.0.0 when the push came as kind 3, each in a complete
    // WebSocket frame.
    Benchmark("Frame.Broadcast.text") { _ in
        blackHole(DeliveryBenchmarkShard.Message(outbound, asBinary: false))
    }
    Benchmark("Frame.Broadcast.kind3Push") { _ in
        blackHole(DeliveryBenchmarkShard.Message(outbound, asBinary: true))
    }
    // And with `ChannelLog`'s part: the payload serialized once, the message's `meta`.
    let id: Value = "q3k-1"
    Benchmark("Frame.Published.text") { _ in
        var json = allocator.buffer(capacity: 256)
        JSON.serialize(Sample.payload, into: &json)
        let meta: Value.Object = ["id": id]
        let frame = BroadcastFrame(topic: Sample.topic, event: Sample.event, payload: nil, meta: .object(meta), payloadJSON: json)
        blackHole(DeliveryBenchmarkShard.Message(frame, asBinary: false))
    }
}
