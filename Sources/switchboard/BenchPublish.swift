import ArgumentParser
import SwitchboardBench

extension Bench {
    /// `switchboard bench publish`: many publishers on many channels.
    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Many publishers on many channels: acknowledged publishes/s, deliveries/s, publish → ack latency.",
            discussion: """
                Opens S subscribers and then P publishers on each of N channels (<channel-prefix>0 … N-1). Every \
                publisher sends its share of --messages as a replayable event (--event, default document:saved, \
                which the default rules keep for replay on collaboration channels) with ack on, keeping at most \
                --window unacknowledged. The subscribers check each channel's meta.seq: nothing lost, repeated or \
                out of order. Prints one summary line (acknowledged publishes/s, deliveries/s, publish → ack \
                p50/p99, with --server-pid the server's CPU per message over the publishing), then the same as JSON.

                The default rules allow 100 messages a minute per channel: measure against a server whose rules \
                raise messages_per_minute (docs/BENCHMARKS.md, "Many publishers"); refused messages are counted \
                and the last reason shown.
                """
        )

        @OptionGroup var target: Bench.Target
        @Option(help: "Channels (N), each published on concurrently.") var channels: Int = 10
        @Option(help: "Publisher connections per channel (P).") var publishers: Int = 2
        @Option(help: "Subscriber connections per channel (S), each checking meta.seq.") var subscribers: Int = 2
        @Option(help: "Messages in all, spread evenly over the publishers.") var messages: Int = 20_000
        @Option(help: "Unacknowledged messages each publisher may have.") var window: Int = 8
        @Option(help: "Bytes of padding in each payload.") var size: Int = 100
        @Option(help: "A replayable event the token may send on the channels.") var event: String = "document:saved"
        @Option(help: "The channels' name before their number.") var channelPrefix: String = "collaboration:bench:pub"
        @Option(help: "Seconds the whole run may take.") var maxDuration: Int = 300

        func run() async throws {
            guard (1...3600).contains(maxDuration) else { throw ValidationError("--max-duration must be 1...3600 seconds") }
            let options = PublishOptions(
                host: target.host, port: target.port ?? BenchProtocol.switchboard.defaultPort, token: try await target.resolveToken(),
                channels: channels, channelPrefix: channelPrefix, publishersPerChannel: publishers,
                subscribersPerChannel: subscribers, messages: messages, window: window, event: event, size: size,
                serverPid: target.serverPid, limits: BenchLimits(maxDuration: .seconds(maxDuration)))
            try options.validate()
            let result = try await PublishBench.run(options)
            print(result.summaryLine())
            print(result.jsonString())
            if !result.isClean { throw ExitCode(1) }
        }
    }
}
