import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import Synchronization
import SwitchboardAuth
import SwitchboardBench
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardWire

extension Bench {
    /// `switchboard bench changes`: commit → client latency of Postgres Changes.
    struct Changes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Postgres Changes: commit → subscriber latency, CPU per change and the changes slot's lag.",
            discussion: """
                Against a running server with --database-url and the default rules (their form_responses rule): puts
                public.form_responses (created when missing) in the supabase_realtime publication, joins --subscribers
                sockets as supplier bench-s to supplier:dashboard:bench-s with an INSERT binding on it, half with the filter
                status=eq.new (which every row matches) and half with status=eq.never (which none does), then inserts
                --changes rows at --rate rows/s over --connections connections, each its own transaction. Measures from
                just before each insert is sent (its commit included) to its arrival at each matching subscriber, samples
                the changes slot's lag every 100 ms, and prints: deliveries, p50/p99/max in ms, the filtered-out sockets'
                deliveries (must be 0), the most WAL the slot was behind, the database's CPU and with --server-pid the
                server's, per change. The rows are deleted after.
                """
        )

        @OptionGroup var target: Target
        @Option(help: "The server's database (SWITCHBOARD_DATABASE_URL); loopback only.") var databaseURL: String?
        @Option(help: "Subscribing sockets (half of them filtered out).") var subscribers: Int = 100
        @Option(help: "Rows to insert.") var changes: Int = 2000
        @Option(help: "Rows per second; omit for as fast as possible.") var rate: Double?
        @Option(help: "Database connections inserting in parallel.") var connections: Int = 8

        func run() async throws {
            try BenchTarget.requireLoopback(target.host)
            guard (2...10_000).contains(subscribers), (1...1_000_000).contains(changes), (1...64).contains(connections) else {
                throw ValidationError("--subscribers must be 2...10000, --changes 1...1000000, --connections 1...64")
            }
            if let rate, !(rate > 0 && rate <= 1_000_000) { throw ValidationError("--rate must be above 0") }
            guard let secret = target.secret ?? Environment.string("SWITCHBOARD_JWT_SECRET") else {
                throw ValidationError("pass --secret (or SWITCHBOARD_JWT_SECRET): the bench mints the subscribers' tokens")
            }
            guard let url = databaseURL ?? Environment.string("SWITCHBOARD_DATABASE_URL") else {
                throw ValidationError("pass --database-url (or SWITCHBOARD_DATABASE_URL)")
            }
            let settings = try BenchDatabaseURL.settings(url)
            let logger = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
            try await SwitchboardPostgres.Database.withConnection(settings, logger: logger) { connection in
                try await connection.run(
                    """
                    create table if not exists public.form_responses
                    (id bigserial primary key, form_id text, supplier_id text, status text, notes text)
                    """, logger: logger)
                try await connection.run(
                    """
                    do $$ begin
                        if not exists (select 1 from pg_publication_tables
                                       where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'form_responses') then
                            alter publication supabase_realtime add table public.form_responses;
                        end if;
                    end $$
                    """, logger: logger)
            }
            let token = try await TokenMinter(hmacSecret: secret).mint(
                TokenClaims(role: "supplier", subject: "u-bench-s", tier: "scale", supplierID: "bench-s", expiresAt: Date().timeIntervalSince1970 + 3600))
            let port = target.port ?? 4000
            var sockets: [(client: WebSocketClient, matching: Bool)] = []
            for index in 0..<subscribers {
                let client = try await WebSocketClient.connect(host: target.host, port: port, path: "/socket/websocket?apikey=\(token)&vsn=1.0.0")
                let matching = index % 2 == 0
                let join: Value = [
                    "topic": "realtime:supplier:dashboard:bench-s", "event": "phx_join", "ref": "1", "join_ref": "1",
                    "payload": [
                        "config": [
                            "private": true,
                            "postgres_changes": [
                                [
                                    "event": "INSERT", "schema": "public", "table": "form_responses",
                                    "filter": .string(matching ? "status=eq.new" : "status=eq.never"),
                                ]
                            ],
                        ]
                    ],
                ]
                try await client.send(text: JSON.string(join))
                let reply = try await client.receiveText(containing: "\"phx_reply\"", timeout: .seconds(30))
                guard reply.contains("\"ok\"") else { throw ValidationError("subscriber \(index) could not join: \(reply)") }
                sockets.append((client, matching))
            }
            // Let the server put the table in its reads (it looks at the publication on every read).
            try await Task.sleep(for: .seconds(2))

            let sentAt = SendTimes()
            let clock = ContinuousClock()
            let count = changes
            let serverCPU = target.serverPid.flatMap(ProcessStats.readCPUSeconds)
            let postgresBefore = DatabaseLatency.postgresCPUSeconds()
            let start = clock.now
            let receivers = sockets.map { socket in
                Task { () -> [Double] in
                    var latencies: [Double] = []
                    // Matching sockets wait for every row; the others stop once the matching
                    // ones are done and nothing more came for 2 s.
                    while latencies.count < (socket.matching ? count : Int.max) {
                        guard case .text(let text) = try await socket.client.receive(timeout: socket.matching ? .seconds(60) : .seconds(2))
                        else { continue }
                        guard let frame = try? JSON.parse(text.utf8), frame["event"]?.stringValue == "postgres_changes",
                            let n = frame["payload"]?["data"]?["record"]?["form_id"]?.stringValue.flatMap({ Int($0) })
                        else { continue }
                        let arrived = clock.now
                        if let sent = sentAt.times.withLock({ $0[n] }) { latencies.append(BenchDatabaseURL.milliseconds(sent.duration(to: arrived))) }
                    }
                    return latencies
                }
            }
            let maxLag = Atomic<Int64>(0)
            let sampler = Task {
                try await SwitchboardPostgres.Database.withConnection(settings, logger: logger) { connection in
                    while !Task.isCancelled {
                        let rows = try await connection.query(
                            """
                            select coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 0)::int8
                            from pg_replication_slots where slot_name like 'switchboard_changes_%' and database = current_database()
                            """, logger: logger)
                        for try await lag in rows.decode(Int64.self) { maxLag.max(lag, ordering: .relaxed) }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
            }
            try await DatabaseLatency.runPaced(settings: settings, connections: connections, count: count, rate: rate, sentAt: sentAt, logger: logger) {
                n in "insert into public.form_responses (form_id, supplier_id, status) values (\(String(n)), 'bench-s', 'new')"
            }
            var latencies: [Double] = []
            var strays = 0
            for (socket, receiver) in zip(sockets, receivers) {
                let got = (try? await receiver.value) ?? []
                if socket.matching { latencies += got } else { strays += got.count }
            }
            let seconds = BenchDatabaseURL.seconds(start.duration(to: clock.now))
            let postgresCPU = DatabaseLatency.postgresCPUSeconds() - postgresBefore
            sampler.cancel()
            for socket in sockets { await socket.client.close() }
            try? await SwitchboardPostgres.Database.withConnection(settings, logger: logger) { connection in
                try await connection.run("delete from public.form_responses where supplier_id = 'bench-s'", logger: logger)
            }
            let sorted = latencies.sorted()
            func percentile(_ p: Double) -> Double {
                guard !sorted.isEmpty else { return 0 }
                return sorted[max(0, min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1))]
            }
            let expected = count * ((subscribers + 1) / 2)
            var line = String(
                format: "changes rows=%d subscribers=%d delivered=%d/%d filtered_out_delivered=%d seconds=%.2f p50=%.2fms p99=%.2fms max=%.2fms "
                    + "slot_lag_max=%lldB db_cpu_per_change=%.0fµs",
                count, subscribers, sorted.count, expected, strays, seconds, percentile(0.5), percentile(0.99), sorted.last ?? 0,
                maxLag.load(ordering: .relaxed), postgresCPU * 1e6 / Double(count))
            if let rate { line += String(format: " rate=%.0f", rate) }
            if let pid = target.serverPid, let before = serverCPU, let after = ProcessStats.readCPUSeconds(pid: pid) {
                line += String(format: " server_cpu_per_change=%.0fµs", (after - before) * 1e6 / Double(count))
            }
            print(line)
        }
    }
}
