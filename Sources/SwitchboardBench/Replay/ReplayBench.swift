import Foundation
import SwitchboardCore
import SwitchboardWire

/// Fills the replay history of many channels and measures what it costs: the server's memory
/// for N channels × M messages, and how long a join that asks for the whole history takes to
/// deliver it (from sending the join to receiving the last replayed message).
///
/// One connection does everything, one channel at a time (join, publish M messages, a heartbeat
/// round trip, leave), so the server sees no concurrent load while the figures are taken.
public enum ReplayBench {
    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port = 4000
        public var token: String
        /// Channels to fill: `collaboration:replay:<n>`.
        public var channels = 1000
        /// Messages per channel (the default history keeps 100).
        public var messages = 100
        /// The text field's size in each payload, in bytes.
        public var size = 200
        /// Replays to time (channels taken in turn).
        public var samples = 200

        public init(token: String) { self.token = token }

        func validate() throws {
            try BenchLimits.validateEndpoint(host: host, port: port, path: "/socket/websocket")
            guard (1...100_000).contains(channels) else { throw BenchError(.invalidOptions, "channels must be 1...100000") }
            guard (1...1000).contains(messages) else { throw BenchError(.invalidOptions, "messages must be 1...1000") }
            guard (0...65_000).contains(size) else { throw BenchError(.invalidOptions, "size must be 0...65000") }
            guard (1...100_000).contains(samples) else { throw BenchError(.invalidOptions, "samples must be 1...100000") }
        }
    }

    public struct Result: Sendable {
        public let channels: Int
        public let messagesPerChannel: Int
        public let fillSeconds: Double
        /// Every replay's duration, sorted, in microseconds.
        public let replayMicros: [Double]
        /// Replays that did not recover every message (should be 0).
        public let notRecovered: Int

        public func percentile(_ p: Double) -> Double {
            guard !replayMicros.isEmpty else { return 0 }
            let index = min(replayMicros.count - 1, Int((Double(replayMicros.count) * p).rounded(.up)) - 1)
            return replayMicros[max(0, index)]
        }
    }

    /// Fills the channels, then times `samples` replays.
    public static func run(_ options: Options, afterFill: @Sendable () async -> Void = {}) async throws -> Result {
        try options.validate()
        let session = try await RealtimeSession.connect(
            BenchTarget(host: options.host, port: options.port, path: "/socket/websocket", token: options.token))
        do {
            let result = try await measure(options, session: session, afterFill: afterFill)
            await session.close()
            return result
        } catch {
            await session.close()
            throw error
        }
    }

    private static func measure(
        _ options: Options, session: RealtimeSession, afterFill: @Sendable () async -> Void
    ) async throws -> Result {
        let client = session.client
        let text = String(repeating: "x", count: options.size)
        let clock = ContinuousClock()
        let fillStart = clock.now
        var epochs: [String] = []
        for n in 0..<options.channels {
            let topic = "realtime:collaboration:replay:\(n)"
            let join = session.nextRef()
            try await session.push(topic, "phx_join", ["config": ["broadcast": ["ack": false]]], ref: join, joinRef: join)
            let joined = try await session.reply(to: join)
            guard joined["status"]?.stringValue == "ok", let epoch = joined["response"]?["epoch"]?.stringValue else {
                throw BenchError(.joinFailed, "joining \(topic) failed: \(JSON.string(joined))")
            }
            epochs.append(epoch)
            for m in 0..<options.messages {
                try await session.push(
                    topic, "broadcast",
                    ["type": "broadcast", "event": "bench:note", "payload": ["n": .int(m), "text": .string(text)]], ref: nil, joinRef: join)
            }
            let leave = session.nextRef()
            try await session.push(topic, "phx_leave", .object(.init()), ref: leave, joinRef: join)
            _ = try await session.reply(to: leave)
        }
        let fillSeconds = fillStart.duration(to: clock.now).seconds
        await afterFill()

        var durations: [Double] = []
        var notRecovered = 0
        for sample in 0..<options.samples {
            let n = sample % options.channels
            let topic = "realtime:collaboration:replay:\(n)"
            let join = session.nextRef()
            let started = clock.now
            try await session.push(
                topic, "phx_join", ["config": ["broadcast": ["ack": false, "replay": ["since_seq": 0, "epoch": .string(epochs[n])]]]], ref: join,
                joinRef: join)
            var received = 0
            var recovered = false
            while received < options.messages {
                let message = try await client.receive(timeout: .seconds(30))
                guard let text = message.text else { throw BenchError(.connectionClosed, "the server closed the connection: \(message)") }
                if text.contains(#""event":"broadcast""#) {
                    received += 1
                } else if text.contains(#""event":"phx_reply""#) {
                    let frame = try JSON.parse(Array(text.utf8))
                    recovered = frame["payload"]?["response"]?["recovered"]?.boolValue ?? false
                    if !recovered { break }
                }
            }
            let elapsed = started.duration(to: clock.now)
            if recovered { durations.append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6) }
            if !recovered { notRecovered += 1 }
            let leave = session.nextRef()
            try await session.push(topic, "phx_leave", .object(.init()), ref: leave, joinRef: join)
            _ = try await session.reply(to: leave)
        }
        return Result(
            channels: options.channels, messagesPerChannel: options.messages, fillSeconds: fillSeconds, replayMicros: durations.sorted(),
            notRecovered: notRecovered)
    }
}
