import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import Synchronization
import SwitchboardBench
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardWire

extension Bench {
    /// `switchboard bench database`: what PostgreSQL as the system of record costs.
    struct DatabaseLatency: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "database",
            abstract: "Database → subscriber latency and throughput, or the WebSocket publish→ack time (what durability costs).",
            discussion: """
                --mode trigger: inserts rows into a table whose trigger calls realtime.broadcast_changes (the table
                switchboard_bench is created and dropped), each insert its own transaction, at --rate rows/s over
                --connections connections (omit --rate for as fast as they go). One subscriber on --channel measures
                the time from just before each insert is sent (its commit included) to the message's arrival.
                --mode send: the same with select realtime.send(...).
                --mode websocket: one client publishes --messages broadcasts with ack, one at a time, and measures
                send → ack (with a database, a replayable message is acknowledged once committed). No --database-url
                needed. Use --event form:response:new --channel form:responses:bench for a critical event.
                Prints one summary line: counts, delivered/s, p50/p99/max latency in ms, and with --database-url the
                CPU the PostgreSQL processes used (percent of one core over the run), with --server-pid the server's.
                """
        )

        enum Mode: String, ExpressibleByArgument, CaseIterable { case trigger, send, websocket }

        @OptionGroup var target: Target
        @Option(help: "The server's database (SWITCHBOARD_DATABASE_URL); loopback only.") var databaseURL: String?
        @Option(help: "trigger, send or websocket.") var mode: Mode = .trigger
        @Option(help: "Messages to publish.") var messages: Int = 1000
        @Option(help: "Messages per second; omit for as fast as possible.") var rate: Double?
        @Option(help: "Database connections publishing in parallel.") var connections: Int = 8
        @Option(help: "The channel.") var channel: String = "collaboration:bench:db"
        @Option(help: "The event name (websocket and send modes).") var event: String = "bench"

        func run() async throws {
            try BenchTarget.requireLoopback(target.host)
            guard (1...1_000_000).contains(messages) else { throw ValidationError("--messages must be 1...1000000") }
            guard (1...64).contains(connections) else { throw ValidationError("--connections must be 1...64") }
            if let rate, !(rate > 0 && rate <= 1_000_000) { throw ValidationError("--rate must be above 0") }
            let token = try await target.resolveToken()
            let port = target.port ?? 4000
            let client = try await WebSocketClient.connect(
                host: target.host, port: port, path: "/socket/websocket?apikey=\(token)&vsn=1.0.0")
            let ack = mode == .websocket
            let join: Value = [
                "topic": .string("realtime:\(channel)"), "event": "phx_join", "ref": "join",
                "payload": ["config": ["broadcast": ["self": false, "ack": .bool(ack)], "private": true]],
            ]
            try await client.send(text: JSON.string(join))
            let reply = try await client.receiveText(containing: "\"join\"", timeout: .seconds(10))
            guard reply.contains("\"ok\"") else { throw ValidationError("could not join \(channel): \(reply)") }
            let serverCPU = target.serverPid.flatMap(ProcessStats.readCPUSeconds)
            let result: (sent: Int, latencies: [Double], seconds: Double, databaseCPU: Double?)
            if mode == .websocket {
                result = try await publishOverWebSocket(client)
            } else {
                result = try await publishThroughDatabase(client)
            }
            await client.close()
            let sorted = result.latencies.sorted()
            func percentile(_ p: Double) -> Double {
                guard !sorted.isEmpty else { return 0 }
                return sorted[max(0, min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1))]
            }
            var line = String(
                format: "mode=%@ sent=%d delivered=%d lost=%d seconds=%.2f per_s=%.0f p50=%.2fms p99=%.2fms max=%.2fms",
                mode.rawValue, result.sent, sorted.count, result.sent - sorted.count, result.seconds,
                Double(sorted.count) / max(result.seconds, 1e-9), percentile(0.5), percentile(0.99), sorted.last ?? 0)
            if let rate { line += String(format: " rate=%.0f", rate) }
            if let cpu = result.databaseCPU { line += String(format: " db_cpu=%.0f%%", cpu * 100 / max(result.seconds, 1e-9)) }
            if let pid = target.serverPid, let before = serverCPU, let after = ProcessStats.readCPUSeconds(pid: pid) {
                line += String(format: " server_cpu=%.0f%%", (after - before) * 100 / max(result.seconds, 1e-9))
            }
            print(line)
        }

        /// Sequential publishes with ack: send → ack times.
        private func publishOverWebSocket(_ client: WebSocketClient) async throws -> (Int, [Double], Double, Double?) {
            var latencies: [Double] = []
            let clock = ContinuousClock()
            let start = clock.now
            for n in 1...messages {
                let ref = "p\(n)"
                let push: Value = [
                    "topic": .string("realtime:\(channel)"), "event": "broadcast", "ref": .string(ref), "join_ref": "join",
                    "payload": [
                        "type": "broadcast", "event": .string(event),
                        "payload": ["n": .int(Int64(n)), "form_id": "bench", "response_id": .string("r\(n)")],
                    ],
                ]
                let sentAt = clock.now
                try await client.send(text: JSON.string(push))
                let answer = try await client.receiveText(containing: "\"\(ref)\"", timeout: .seconds(30))
                guard answer.contains("\"ok\"") else { throw ValidationError("message \(n) was refused: \(answer)") }
                latencies.append(BenchDatabaseURL.milliseconds(sentAt.duration(to: clock.now)))
                if let rate {
                    let due = start.advanced(by: .seconds(Double(n) / rate))
                    if due > clock.now { try await Task.sleep(until: due, clock: clock) }
                }
            }
            return (messages, latencies, BenchDatabaseURL.seconds(start.duration(to: clock.now)), nil)
        }

        /// Inserts (trigger) or realtime.send calls over several connections; the subscriber
        /// matches arrivals to their send times by `n`.
        private func publishThroughDatabase(_ client: WebSocketClient) async throws -> (Int, [Double], Double, Double?) {
            guard let url = databaseURL ?? Environment.string("SWITCHBOARD_DATABASE_URL") else {
                throw ValidationError("--mode \(mode.rawValue) needs --database-url (or SWITCHBOARD_DATABASE_URL)")
            }
            let settings = try BenchDatabaseURL.settings(url)
            let logger = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
            let topic = channel
            if mode == .trigger {
                try await SwitchboardPostgres.Database.withConnection(settings, logger: logger) { connection in
                    try await connection.run("drop table if exists public.switchboard_bench", logger: logger)
                    try await connection.run("create table public.switchboard_bench (n integer primary key)", logger: logger)
                    try await connection.run(
                        PostgresQuery(
                            unsafeSQL: """
                                create or replace function public.switchboard_bench_changed() returns trigger language plpgsql as $$
                                begin
                                    perform realtime.broadcast_changes('\(topic)', TG_OP, TG_OP, TG_TABLE_NAME, TG_TABLE_SCHEMA, NEW, OLD);
                                    return null;
                                end $$
                                """), logger: logger)
                    try await connection.run(
                        """
                        create trigger switchboard_bench_changed after insert on public.switchboard_bench
                        for each row execute function public.switchboard_bench_changed()
                        """, logger: logger)
                }
            }
            let sentAt = SendTimes()
            let clock = ContinuousClock()
            let (mode, rate, event, connections) = (self.mode, self.rate, self.event, self.connections)
            let postgresBefore = Self.postgresCPUSeconds()
            let start = clock.now
            let count = messages
            let receiver = Task { () -> [Double] in
                var latencies: [Double] = []
                while latencies.count < count {
                    guard case .text(let text) = try await client.receive(timeout: .seconds(30)) else { continue }
                    guard let frame = try? JSON.parse(text.utf8), frame["event"]?.stringValue == "broadcast" else { continue }
                    let body = frame["payload"]?["payload"]
                    guard let n = (body?["record"]?["n"] ?? body?["n"])?.int64Value else { continue }
                    let arrived = clock.now
                    if let sent = sentAt.times.withLock({ $0[Int(n)] }) { latencies.append(BenchDatabaseURL.milliseconds(sent.duration(to: arrived))) }
                }
                return latencies
            }
            try await Self.runPaced(settings: settings, connections: connections, count: count, rate: rate, sentAt: sentAt, logger: logger) { n in
                mode == .trigger
                    ? "insert into public.switchboard_bench (n) values (\(n))"
                    : "select realtime.send(jsonb_build_object('n', \(n)), \(event), \(topic))"
            }
            let latencies: [Double]
            do {
                latencies = try await receiver.value
            } catch {
                receiver.cancel()
                latencies = []
            }
            let seconds = BenchDatabaseURL.seconds(start.duration(to: clock.now))
            let postgresCPU = Self.postgresCPUSeconds() - postgresBefore
            if mode == .trigger {
                try? await SwitchboardPostgres.Database.withConnection(settings, logger: logger) { connection in
                    try await connection.run("drop table if exists public.switchboard_bench", logger: logger)
                    try await connection.run("drop function if exists public.switchboard_bench_changed()", logger: logger)
                }
            }
            return (count, latencies, seconds, postgresCPU)
        }

        /// Runs statement `1...count` (`statement(n)`) over `connections` connections, each its
        /// own transaction, the n-th due `(n - 1) / rate` seconds after the start (as fast as they
        /// go without a rate), recording in `sentAt` when each was sent.
        static func runPaced(
            settings: DatabaseSettings, connections: Int, count: Int, rate: Double?, sentAt: SendTimes, logger: Logger,
            statement: @escaping @Sendable (Int) -> PostgresQuery
        ) async throws {
            let clock = ContinuousClock()
            let start = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<connections {
                    group.addTask {
                        let connection = try await SwitchboardPostgres.Database.connect(settings, logger: logger)
                        do {
                            var n = lane + 1
                            while n <= count {
                                if let rate {
                                    let due = start.advanced(by: .seconds(Double(n - 1) / rate))
                                    if due > clock.now { try await Task.sleep(until: due, clock: clock) }
                                }
                                sentAt.times.withLock { $0[n] = clock.now }
                                try await connection.run(statement(n), logger: logger)
                                n += connections
                            }
                            try? await connection.close()
                        } catch {
                            try? await connection.close()
                            throw error
                        }
                    }
                }
                try await group.waitForAll()
            }
        }

        /// CPU seconds used so far by every process named postgres on this machine.
        static func postgresCPUSeconds() -> Double {
            let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap(Int32.init) ?? []
            var total = 0.0
            for pid in pids {
                guard let name = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8),
                    name.trimmingCharacters(in: .whitespacesAndNewlines) == "postgres"
                else { continue }
                total += ProcessStats.readCPUSeconds(pid: pid) ?? 0
            }
            return total
        }
    }
}

/// When each numbered message was sent, shared by the publishing lanes and the receiver.
final class SendTimes: Sendable {
    let times = Mutex<[Int: ContinuousClock.Instant]>([:])
}
