import ArgumentParser
import Foundation
import Synchronization
import SwitchboardAuth
import SwitchboardBench

/// `switchboard bench`: load tools that measure a running server over real WebSockets.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a running server (loopback only).",
        subcommands: [Fanout.self, Idle.self, Typing.self, Replay.self, Publish.self, Soak.self, DatabaseLatency.self, Changes.self, RelationsCost.self, Revocation.self, Cluster.self]
    )

    /// Where to connect and how to authenticate; shared by the bench commands.
    struct Target: ParsableArguments {
        @Option(help: "Server address; loopback only.") var host: String = "127.0.0.1"
        @Option(help: "Server port (default 4000; 8088 with --target nchan).") var port: Int?
        @Option(help: "A token to connect with (default: mint an admin token from --secret).") var token: String?
        @Option(help: "HS256 secret to mint an admin token with (default: SWITCHBOARD_JWT_SECRET).") var secret: String?
        @Option(help: "The server's process id, to report its CPU time and memory.") var serverPid: Int32?

        func resolveToken() async throws -> String {
            if let token { return token }
            guard let secret = secret ?? Environment.string("SWITCHBOARD_JWT_SECRET") else {
                throw ValidationError("pass --token, or --secret / SWITCHBOARD_JWT_SECRET to mint one")
            }
            let claims = TokenClaims(
                role: "admin", subject: "bench", tier: "paid", expiresAt: Date().timeIntervalSince1970 + 3600)
            return try await TokenMinter(hmacSecret: secret).mint(claims)
        }
    }

    struct Fanout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One publisher, N subscribers on one channel: delivered msgs/s, loss and latency.",
            discussion: """
                Prints one summary line, then the same as JSON. With --server-pid it adds the server's CPU time per
                delivered message (measured over the whole run, connects included) and its RSS at the end.
                """
        )

        @OptionGroup var target: Target
        @Option(help: "Subscribers (N).") var subscribers: Int = 100
        @Option(help: "Messages to publish (M).") var messages: Int = 1000
        @Option(help: "User payload size in bytes (S).") var size: Int = 1024
        @Option(help: "Messages per second; omit for as fast as possible.") var rate: Double?
        @Option(help: "The channel to use.") var channel: String = "collaboration:bench:1"
        @Option(
            name: .customLong("target"),
            help: "switchboard, or nchan for the same load against nginx + nchan (Benchmarks/nchan/run.sh).")
        var server: BenchProtocol = .switchboard

        func run() async throws {
            let token = server == .nchan ? "" : try await target.resolveToken()
            let options = FanoutOptions(
                target: server, host: target.host, port: target.port, token: token, channel: channel,
                subscribers: subscribers, messages: messages, size: size, rate: rate)
            try options.validate()
            let probe = ServerProbe.start(target.serverPid)
            let result = try await FanoutBench.run(options)
            var line = result.summaryLine()
            if let probe {
                if let cpu = probe.cpuMicros(per: result.delivered) {
                    line += String(format: " server_cpu=%.2fµs/msg", cpu)
                }
                if let rss = probe.rss() {
                    line += " server_rss=\(BenchFormat.megabytes(rss))"
                }
            }
            print(line)
            print(result.jsonString())
        }
    }

    struct Typing: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A typing storm on one channel: comment latency during it, and typing frames delivered per second.",
            discussion: """
                T typists send user:typing at R Hz for D seconds on one channel while one commenter sends \
                comment:added at C per second; S subscribers count the typing frames delivered to them and record \
                each comment's latency. --no-storm keeps the typists silent for the baseline latency. Run the server \
                once with the event's batch policy and once without it to compare delivered frames \
                (Benchmarks/typing-storm.sh does).

                Each typist needs a token of its own when the rules budget typing per user (the default rules: 1200 \
                a minute): with --secret (or SWITCHBOARD_JWT_SECRET) one admin token with a distinct sub is minted \
                per typist, else every typist uses --token. Comments count on the channel's budget (100 a minute on \
                the default rules' tiers). Refused sends are counted, not hidden.

                Prints one summary line, then the same as JSON; with --server-pid it adds the server's CPU time \
                over the whole run.
                """
        )

        @OptionGroup var target: Target
        @Option(help: "Subscribers that count typing frames and comment latency (S).") var subscribers: Int = 10
        @Option(help: "Typists (T), each on a connection of its own.") var typists: Int = 20
        @Option(help: "user:typing messages per second per typist (R).") var typingRate: Double = 20
        @Option(help: "Seconds the typists type and the commenter comments (D).") var duration: Double = 5
        @Option(help: "comment:added messages per second (C).") var commentRate: Double = 5
        @Flag(help: "Keep the typists silent: the baseline comment latency without a storm.") var noStorm = false
        @Option(help: "The channel to use.") var channel: String = "collaboration:bench:1"

        func run() async throws {
            let maxSeconds = TypingOptions.maxStormDuration.components.seconds
            guard duration.isFinite, duration > 0, duration <= Double(maxSeconds) else {
                throw ValidationError("--duration must be in (0, \(maxSeconds)] seconds")
            }
            guard (1...TypingOptions.maxTypists).contains(typists) else {
                throw ValidationError("--typists must be in 1...\(TypingOptions.maxTypists)")
            }
            let token = try await target.resolveToken()
            let typistTokens = try await mintTypistTokens()
            if typistTokens.isEmpty {
                FileHandle.standardError.write(
                    Data("note: every typist uses --token; rules that budget typing per user will refuse most of the storm\n".utf8))
            }
            let options = TypingOptions(
                host: target.host, port: target.port ?? BenchProtocol.switchboard.defaultPort, token: token,
                typistTokens: typistTokens, channel: channel, typists: typists, typingRate: typingRate,
                duration: .milliseconds(Int64((duration * 1000).rounded())), subscribers: subscribers, commentRate: commentRate,
                storm: !noStorm)
            try options.validate()
            let probe = ServerProbe.start(target.serverPid)
            let result = try await TypingBench.run(options)
            var line = result.summaryLine()
            if let cpu = probe?.cpuSeconds() {
                line += String(format: " server_cpu=%.2fs", cpu)
            }
            print(line)
            print(result.jsonString())
        }

        /// One admin token per typist with a distinct `sub` (unique to this run, so that an
        /// earlier run's typing does not count against this one's per-user budget); none
        /// without a secret.
        private func mintTypistTokens() async throws -> [String] {
            guard let secret = target.secret ?? Environment.string("SWITCHBOARD_JWT_SECRET") else { return [] }
            let minter = TokenMinter(hmacSecret: secret)
            let run = String(UInt32.random(in: 0...UInt32.max), radix: 16)
            let expiresAt = Date().timeIntervalSince1970 + 3600
            var tokens: [String] = []
            tokens.reserveCapacity(typists)
            for index in 0..<typists {
                let claims = TokenClaims(role: "admin", subject: "bench-typist-\(run)-\(index)", tier: "paid", expiresAt: expiresAt)
                tokens.append(try await minter.mint(claims))
            }
            return tokens
        }
    }

    struct Idle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hold N connections each joined to K channels and report the server's memory per connection."
        )

        @OptionGroup var target: Target
        @Option(help: "Connections to open.") var connections: Int = 1000
        @Option(help: "Channels each connection joins.") var channels: Int = 3
        @Option(help: "Seconds to hold the connections after the measurement.") var hold: Int = 0

        func run() async throws {
            guard (1...100_000).contains(connections), (1...10).contains(channels), (0...3600).contains(hold) else {
                throw ValidationError("--connections must be 1...100000, --channels 1...10, --hold 0...3600")
            }
            let token = try await target.resolveToken()
            let probe = ServerProbe.start(target.serverPid)
            let idle = try await IdleBench.run(
                host: target.host, port: target.port ?? BenchProtocol.switchboard.defaultPort, token: token, connections: connections, channelsPerConnection: channels)
            // Let the server settle (allocator caches, deferred frees) before reading its RSS.
            try await Task.sleep(for: .seconds(1))
            var line = String(
                format: "idle connections=%d channels=%d connect=%.2fs open=%d", idle.count, channels, idle.connectSeconds, idle.openCount)
            if let probe, let before = probe.rssAtStart, let after = probe.rss() {
                line += String(
                    format: " server_rss_before=%.1fMB after=%.1fMB per_connection=%.1fKB", Double(before) / 1_048_576,
                    Double(after) / 1_048_576, Double(after - before) / 1024 / Double(connections))
            }
            print(line)
            if hold > 0 { try await Task.sleep(for: .seconds(hold)) }
            await idle.close()
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fill N channels' replay history, report the server's memory for it and time full replays.",
            discussion: """
                One connection joins collaboration:replay:0…N-1 in turn and publishes M messages (event bench:note,
                a text field of --size bytes) on each, then rejoins channels with replay {since_seq: 0} and times
                each from the join to the M-th replayed message. Run it against a fresh server whose rules allow
                M messages per minute per channel (the default rules allow 100). With --server-pid it reports the
                server's RSS before and after the fill.
                """
        )

        @OptionGroup var target: Target
        @Option(help: "Channels to fill (N).") var channels: Int = 1000
        @Option(help: "Messages per channel (M).") var messages: Int = 100
        @Option(help: "Bytes of text in each payload.") var size: Int = 200
        @Option(help: "Replays to time.") var samples: Int = 200

        func run() async throws {
            var options = ReplayBench.Options(token: try await target.resolveToken())
            options.host = target.host
            options.port = target.port ?? BenchProtocol.switchboard.defaultPort
            options.channels = channels
            options.messages = messages
            options.size = size
            options.samples = samples
            let probe = ServerProbe.start(target.serverPid)
            let after = RSSReading()
            let result = try await ReplayBench.run(options) {
                // Let the allocator settle before reading.
                try? await Task.sleep(for: .seconds(1))
                after.set(probe?.rss())
            }
            var line = String(
                format: "replay channels=%d messages=%d size=%d fill=%.1fs replay_p50=%.0fµs p99=%.0fµs max=%.0fµs not_recovered=%d",
                result.channels, result.messagesPerChannel, size, result.fillSeconds, result.percentile(0.5), result.percentile(0.99),
                result.replayMicros.last ?? 0, result.notRecovered)
            if let before = probe?.rssAtStart, let rss = after.value {
                line += String(
                    format: " server_rss_before=%.1fMB after_fill=%.1fMB per_1000_channels=%.1fMB", Double(before) / 1_048_576,
                    Double(rss) / 1_048_576, Double(rss - before) / 1_048_576 * 1000 / Double(channels))
            }
            print(line)
        }
    }
}

/// A value set once from a `@Sendable` callback.
private final class RSSReading: Sendable {
    private let box = Mutex<Int?>(nil)
    func set(_ value: Int?) { box.withLock { $0 = value } }
    var value: Int? { box.withLock { $0 } }
}

extension BenchProtocol: ExpressibleByArgument {}
