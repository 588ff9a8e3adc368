import ArgumentParser
import Foundation
import SwitchboardAuth
import SwitchboardBench

extension Bench {
    /// `switchboard bench soak`: a long mixed load and whether the server stayed healthy under it.
    struct Soak: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A long mixed load: RSS over time, errors by kind, lost or repeated replayable messages, PASS/FAIL.",
            discussion: """
                Drives a running server for --duration: long-lived subscribers on --channels collaboration \
                channels check every replayable message (document:saved) by meta.seq; publishers broadcast it at \
                --rate with ack on; churners connect, join, stay 2-6 s, leave, probe a join the rules refuse \
                (an expected error) and disconnect, over and over; presence members track and untrack; every \
                long-lived connection refreshes its 2-minute channel tokens with access_token every 30 s; and, \
                with --rules-dir (the directory the server was started with), the rules switch every 10 s between \
                the directory as found and the same plus one event (a file soak_variant.lua, removed at the end), \
                each reload confirmed through GET /admin/rules. With --server-pid it samples the server's RSS \
                every 5 s.

                Prints a progress line every minute, then the RSS table, errors by kind, messages sent, received, \
                lost and repeated, and a PASS/FAIL line against the criteria: RSS of the last 10 minutes within \
                ±10% of their mean (runs under 20 minutes: the second half), nothing lost or repeated, no \
                unexpected error. Exit status 0 on PASS, 1 on FAIL. Needs --secret (tokens are minted per \
                connection and refresh); the default rules' limits hold (each channel well under 100 messages a \
                minute).
                """
        )

        @OptionGroup var target: Bench.Target
        @Option(help: "How long the load runs: 90s, 35m, 1h, or seconds.") var duration: String = "60s"
        @Option(help: "The server's --rules-dir, to switch rule sets every 10 s (omit: no reloads).") var rulesDir: String?
        @Option(help: "Replay channels.") var channels: Int = 8
        @Option(help: "Long-lived subscriber connections.") var subscribers: Int = 16
        @Option(help: "Channels each long-lived subscriber joins.") var channelsPerSubscriber: Int = 4
        @Option(help: "Publisher connections.") var publishers: Int = 4
        @Option(help: "Replayable messages per second over all channels.") var rate: Double = 8
        @Option(help: "Tasks that connect, join, leave and disconnect in a loop.") var churners: Int = 4
        @Option(help: "Connections updating their presence every 2 s.") var presence: Int = 4
        @Option(help: "Seconds between rule switches.") var reloadInterval: Int = 10
        @Option(help: "Seconds between a long-lived connection's access_token refreshes.") var tokenRefresh: Int = 30
        @Option(help: "Seconds a channel token is valid (more than the refresh interval + 10).") var channelTokenLifetime: Int = 120

        func run() async throws {
            guard let seconds = Self.parseDuration(duration) else {
                throw ValidationError("--duration takes a number of seconds or a number with s, m or h (35m)")
            }
            guard let secret = target.secret ?? Environment.string("SWITCHBOARD_JWT_SECRET") else {
                throw ValidationError("the soak mints its tokens: pass --secret or set SWITCHBOARD_JWT_SECRET")
            }
            if let rulesDir, !FileManager.default.fileExists(atPath: rulesDir) {
                throw ValidationError("--rules-dir \(rulesDir) does not exist")
            }
            let minter = TokenMinter(hmacSecret: secret)
            let options = SoakOptions(
                host: target.host, port: target.port ?? BenchProtocol.switchboard.defaultPort, duration: .seconds(seconds),
                mint: { request in
                    let lifetime = Double(request.lifetime.components.seconds)
                    let claims = TokenClaims(
                        role: request.role, subject: request.subject, tier: "paid", supplierID: request.supplierID,
                        expiresAt: Date().timeIntervalSince1970 + lifetime)
                    return try await minter.mint(claims)
                },
                serverPid: target.serverPid, rulesDirectory: rulesDir, channels: channels, subscribers: subscribers,
                channelsPerSubscriber: channelsPerSubscriber, publishers: publishers, rate: rate, churners: churners,
                presenceMembers: presence, tokenRefreshInterval: .seconds(tokenRefresh),
                channelTokenLifetime: .seconds(channelTokenLifetime), reloadInterval: .seconds(reloadInterval),
                progress: { line in
                    // Unbuffered, so that a run's progress shows (and survives) while it goes.
                    FileHandle.standardOutput.write(Data((line + "\n").utf8))
                })
            do {
                try options.validate()
            } catch let error as BenchError {
                throw ValidationError(error.description)
            }
            let result = try await SoakBench.run(options)
            print(result.report(rowSeconds: 60))
            print(result.jsonString())
            if !result.passed { throw ExitCode(1) }
        }

        /// `90`, `90s`, `35m`, `1h` → seconds.
        static func parseDuration(_ text: String) -> Int64? {
            let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600]
            var digits = Substring(text)
            var unit: Int64 = 1
            if let last = text.last, let factor = units[last] {
                digits = text.dropLast()
                unit = factor
            }
            guard let value = Int64(digits), value > 0, value <= 24 * 3600 / unit else { return nil }
            return value * unit
        }
    }
}
