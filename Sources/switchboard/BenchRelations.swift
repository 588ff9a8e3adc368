import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import SwitchboardAuth
import SwitchboardBench
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardRules
import SwitchboardWire

extension Bench {
    /// `switchboard bench relations`: what a large relation costs the rules, in this process.
    struct RelationsCost: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "relations",
            abstract: "Memory, reload time and member() join cost with a large supplier_team relation (in this process).",
            discussion: """
                Loads the rules directory as the server does, gives its supplier_team relation --rows pairs (--keys
                suppliers s0…, the members user-0…; with --uuid-ids both as 36-character UUID-shaped text, like Supabase
                user ids) and reports: the time to read them (with --database-url: the query the
                server runs, from a table switchboard_bench_relation it fills and drops; without: built in memory), the
                time to index them, the process's RSS with the relation serving, the time of a second reload while the
                first generation serves and the peak RSS during it, and the median cost of a join decision on
                supplier:dashboard:{id} that calls member() on the relation (a scale-tier team member), over 5 rounds
                of --decisions, next to the same decision on the rules' own small relation in the same run.
                """
        )

        @Option(help: "Pairs in the relation.") var rows: Int = 1_000_000
        @Option(help: "Distinct keys (suppliers) they spread over.") var keys: Int = 10_000
        @Option(help: "Join decisions per round (5 rounds).") var decisions: Int = 200_000
        @Option(help: "The rules directory (its channels must call member(\"supplier_team\", …) for scale-tier users).")
        var rulesDir: String = "Rules"
        @Option(help: "Read the pairs from this database (loopback only) with the server's query path.") var databaseURL: String?
        @Flag(help: "Ids as 36-character UUID-shaped text (held out of line) instead of short ones.") var uuidIds = false

        /// Key number `n` (a supplier).
        func key(_ n: Int) -> String { uuidIds ? "10000000-0000-4000-8000-" + Self.padded(n) : "s\(n)" }
        /// Member number `n` (a user).
        func member(_ n: Int) -> String { uuidIds ? "00000000-0000-4000-8000-" + Self.padded(n) : "user-\(n)" }

        static func padded(_ n: Int) -> String {
            let digits = String(n)
            return String(repeating: "0", count: max(0, 12 - digits.count)) + digits
        }

        func run() async throws {
            guard (1...20_000_000).contains(rows), (1...rows).contains(keys), (1...10_000_000).contains(decisions) else {
                throw ValidationError("--rows must be 1...20000000, --keys 1...rows, --decisions 1...10000000")
            }
            let engine: RulesEngine
            do { engine = try RulesEngine(directory: rulesDir) } catch { throw ValidationError("the rules do not load: \(error)") }
            let own = try decisionNanoseconds(engine, key: "s1", identity: Self.supplier("s1"))
            let small = try decisionNanoseconds(engine, key: "s1", identity: Self.teamMember("team-anna"))
            let rssRules = Self.settledRSS()

            let clock = ContinuousClock()
            var readSeconds = 0.0
            var indexSeconds = 0.0
            var reloadSeconds = 0.0
            var rssOne = 0
            for round in 0..<2 {
                let reloadStart = clock.now
                let candidate = try engine.prepare().get()
                do {
                    // The pairs read are freed at the end of this block, before the memory is read.
                    let readStart = clock.now
                    let pairs = try await read()
                    if round == 0 { readSeconds = BenchDatabaseURL.seconds(readStart.duration(to: clock.now)) }
                    let indexStart = clock.now
                    candidate.replaceRelation("supplier_team", with: pairs, source: .database)
                    engine.activate(candidate)
                    if round == 0 { indexSeconds = BenchDatabaseURL.seconds(indexStart.duration(to: clock.now)) }
                }
                if round == 0 {
                    rssOne = Self.settledRSS()
                } else {
                    reloadSeconds = BenchDatabaseURL.seconds(reloadStart.duration(to: clock.now))
                }
            }
            let peak = Self.peakRSSBytes() ?? 0
            let rssServing = Self.settledRSS()
            let large = try decisionNanoseconds(engine, key: key((rows - 1) % keys), identity: Self.teamMember(member(rows - 1)))
            print(
                String(
                    format: "relations rows=%d keys=%d read=%.2fs index=%.2fs reload=%.2fs rss_rules=%.1fMB rss_serving=%.1fMB "
                        + "per_row=%.0fB peak_rss=%.1fMB rss_after_reload=%.1fMB join_member_p50=%.0fns join_member_small_p50=%.0fns "
                        + "join_own_p50=%.0fns source=%@",
                    rows, keys, readSeconds, indexSeconds, reloadSeconds, Double(rssRules) / 1_048_576, Double(rssOne) / 1_048_576,
                    Double(rssOne - rssRules) / Double(rows), Double(peak) / 1_048_576, Double(rssServing) / 1_048_576, large, small,
                    own, databaseURL == nil ? "memory" : "database"))
        }

        /// The resident set once glibc has handed freed memory back (`malloc_trim`, looked up at
        /// run time), so that it counts what is held rather than what the allocator keeps.
        static func settledRSS() -> Int {
            typealias Trim = @convention(c) (Int) -> Int32
            if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
                _ = unsafeBitCast(symbol, to: Trim.self)(0)
            }
            return ProcessStats.readRSSBytes(pid: getpid()) ?? 0
        }

        /// The relation's pairs: from the database when given one, else built here.
        private func read() async throws -> [(a: String, b: String)] {
            guard let databaseURL else {
                var pairs: [(a: String, b: String)] = []
                pairs.reserveCapacity(rows)
                // One copy of each key, as the server's read keeps.
                let keyIDs = (0..<keys).map(key)
                for i in 0..<rows { pairs.append((keyIDs[i % keys], member(i))) }
                return pairs
            }
            let settings = try BenchDatabaseURL.settings(databaseURL)
            let logger = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
            let (keySQL, memberSQL) =
                uuidIds
                ? ("'10000000-0000-4000-8000-' || lpad((i % \(keys))::text, 12, '0')", "'00000000-0000-4000-8000-' || lpad(i::text, 12, '0')")
                : ("'s' || (i % \(keys))", "'user-' || i")
            try await SwitchboardPostgres.Database.withConnection(settings, logger: logger) { [rows] connection in
                try await connection.run("drop table if exists public.switchboard_bench_relation", logger: logger)
                try await connection.run("create table public.switchboard_bench_relation (supplier_id text, user_id text)", logger: logger)
                try await connection.run(
                    PostgresQuery(
                        unsafeSQL: """
                            insert into public.switchboard_bench_relation
                            select \(keySQL), \(memberSQL) from generate_series(0, \(rows - 1)) as i
                            """), logger: logger)
            }
            let relation = RelationQuery.Spec(
                name: "supplier_team", sql: "select supplier_id, user_id from public.switchboard_bench_relation", maxRows: rows)
            let results = try await RelationQuery.fetch([relation], settings: settings, purpose: .refresh, logger: logger)
            try await SwitchboardPostgres.Database.withConnection(settings, logger: logger) { connection in
                try await connection.run("drop table if exists public.switchboard_bench_relation", logger: logger)
            }
            switch results["supplier_team"] {
            case .success(let pairs): return pairs
            case .failure(let error): throw ValidationError("the query failed: \(error.message)")
            case nil: throw ValidationError("the query did not run")
            }
        }

        /// A scale-tier team member: the default rules call member("supplier_team", …) for them.
        static func teamMember(_ sub: String) -> Identity {
            Identity(
                subject: sub, role: "supplier", tier: "scale", supplierID: nil, coupleID: nil, expiresAt: 4_102_444_800,
                claims: ["sub": .string(sub), "role": "supplier", "tier": "scale"])
        }

        /// The supplier itself: allowed before any member() call.
        static func supplier(_ id: String) -> Identity {
            Identity(
                subject: "u-\(id)", role: "supplier", tier: "scale", supplierID: id, coupleID: nil, expiresAt: 4_102_444_800,
                claims: ["sub": .string("u-\(id)"), "role": "supplier", "tier": "scale", "supplier_id": .string(id)])
        }

        /// The median over 5 rounds of one join decision's cost, for `identity` joining
        /// supplier:dashboard:`key`; throws unless allowed.
        private func decisionNanoseconds(_ engine: RulesEngine, key: String, identity: Identity) throws -> Double {
            let channel = try ChannelName(validating: "supplier:dashboard:\(key)")
            guard engine.authorizeJoin(identity, channel: channel) == .allow else {
                throw ValidationError("\(identity.subject ?? "?") may not join \(channel) under \(rulesDir): the bench needs the default channels")
            }
            let clock = ContinuousClock()
            var rounds: [Double] = []
            for _ in 0..<5 {
                let start = clock.now
                for _ in 0..<decisions { _ = engine.authorizeJoin(identity, channel: channel) }
                rounds.append(BenchDatabaseURL.seconds(start.duration(to: clock.now)) * 1e9 / Double(decisions))
            }
            return rounds.sorted()[2]
        }

        /// The process's peak resident set (`VmHWM`).
        static func peakRSSBytes() -> Int? {
            guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
            for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
                return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
            }
            return nil
        }
    }

    /// `switchboard bench revocation`: commit → closed subscription, against a running server.
    struct Revocation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time from deleting a supplier_team row (its commit) to the member's subscription being closed.",
            discussion: """
                Against a running server whose rules read supplier_team from --table with watch (README, "Relations from
                the database") and let a scale-tier team member join collaboration:{supplier}:{couple} (the default
                rules do). For each of --samples members in turn: inserts (bench-s, bench-member-N), joins as that
                member (retrying until the insert has been read), then deletes the row and times from just before the
                DELETE is sent to the phx_close that ends the subscription. --padding adds rows to the table first (and
                removes them after), to measure with a large relation: every change re-reads the whole relation.
                Prints samples, p50, p99 and max in ms.
                """
        )

        @OptionGroup var target: Target
        @Option(help: "The server's database (SWITCHBOARD_DATABASE_URL); loopback only.") var databaseURL: String?
        @Option(help: "The table the server's supplier_team relation reads (supplier_id, user_id).") var table: String = "app.supplier_team"
        @Option(help: "Revocations to time.") var samples: Int = 100
        @Option(help: "Extra rows to put in the table first.") var padding: Int = 0

        func run() async throws {
            try BenchTarget.requireLoopback(target.host)
            guard (1...10_000).contains(samples), (0...20_000_000).contains(padding) else {
                throw ValidationError("--samples must be 1...10000, --padding 0...20000000")
            }
            guard table.split(separator: ".").allSatisfy({ $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } && !$0.isEmpty }) else {
                throw ValidationError("--table must be schema.table or table (letters, digits, _)")
            }
            guard let secret = target.secret ?? Environment.string("SWITCHBOARD_JWT_SECRET") else {
                throw ValidationError("pass --secret (or SWITCHBOARD_JWT_SECRET): the bench mints a token per team member")
            }
            guard let url = databaseURL ?? Environment.string("SWITCHBOARD_DATABASE_URL") else {
                throw ValidationError("pass --database-url (or SWITCHBOARD_DATABASE_URL)")
            }
            let settings = try BenchDatabaseURL.settings(url)
            let logger = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
            let connection = try await SwitchboardPostgres.Database.connect(settings, logger: logger)
            do {
                try await measure(on: connection, secret: secret, logger: logger)
                try await connection.close()
            } catch {
                // Closed before it is released (postgres-nio asserts that).
                try? await connection.close()
                throw error
            }
        }

        private func measure(on connection: PostgresConnection, secret: String, logger: Logger) async throws {
            try await connection.run(PostgresQuery(unsafeSQL: "delete from \(table) where supplier_id like 'bench-%'"), logger: logger)
            if padding > 0 {
                try await connection.run(
                    PostgresQuery(
                        unsafeSQL: "insert into \(table) (supplier_id, user_id) select 'bench-pad-' || (i % 10000), 'pad-' || i from generate_series(1, \(padding)) as i"),
                    logger: logger)
            }
            let minter = TokenMinter(hmacSecret: secret)
            let port = target.port ?? 4000
            let channel = "collaboration:bench-s:bench-c"
            var latencies: [Double] = []
            let clock = ContinuousClock()
            for n in 0..<samples {
                let member = "bench-member-\(n)"
                try await connection.run(
                    PostgresQuery(unsafeSQL: "insert into \(table) (supplier_id, user_id) values ('bench-s', '\(member)')"), logger: logger)
                let token = try await minter.mint(
                    TokenClaims(role: "supplier", subject: member, tier: "scale", expiresAt: Date().timeIntervalSince1970 + 3600))
                let client = try await WebSocketClient.connect(
                    host: target.host, port: port, path: "/socket/websocket?apikey=\(token)&vsn=1.0.0")
                try await joinWhenAllowed(client, channel: channel, clock: clock)
                let deleteAt = clock.now
                try await connection.run(
                    PostgresQuery(unsafeSQL: "delete from \(table) where supplier_id = 'bench-s' and user_id = '\(member)'"), logger: logger)
                _ = try await client.receiveText(containing: "\"phx_close\"", timeout: .seconds(60))
                latencies.append(BenchDatabaseURL.milliseconds(deleteAt.duration(to: clock.now)))
                await client.close()
            }
            try await connection.run(PostgresQuery(unsafeSQL: "delete from \(table) where supplier_id like 'bench-%'"), logger: logger)
            let sorted = latencies.sorted()
            func percentile(_ p: Double) -> Double { sorted[max(0, min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1))] }
            print(
                String(
                    format: "revocation samples=%d padding=%d p50=%.1fms p99=%.1fms max=%.1fms", sorted.count, padding, percentile(0.5),
                    percentile(0.99), sorted.last ?? 0))
        }

        /// Joins `channel`, retrying while the server has not read the new row yet (within 60 s).
        private func joinWhenAllowed(_ client: WebSocketClient, channel: String, clock: ContinuousClock) async throws {
            let deadline = clock.now + .seconds(60)
            var attempt = 0
            while true {
                attempt += 1
                let ref = "j\(attempt)"
                let join: Value = [
                    "topic": .string("realtime:\(channel)"), "event": "phx_join", "ref": .string(ref), "join_ref": .string(ref),
                    "payload": ["config": ["broadcast": ["self": false], "private": true]],
                ]
                try await client.send(text: JSON.string(join))
                let reply = try await client.receiveText(containing: "\"\(ref)\"", timeout: .seconds(30))
                if reply.contains("\"ok\"") { return }
                guard clock.now < deadline else { throw ValidationError("the member could not join \(channel): \(reply)") }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }
}

/// The database URL a bench connects to (loopback only), and its figures' units.
enum BenchDatabaseURL {
    static func settings(_ url: String) throws -> DatabaseSettings {
        let settings: DatabaseSettings
        do { settings = try DatabaseSettings(url: url) } catch { throw ValidationError(error.message) }
        if case .tcp(let host, _) = settings.endpoint { try BenchTarget.requireLoopback(host) }
        return settings
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }

    static func seconds(_ duration: Duration) -> Double { milliseconds(duration) / 1000 }
}
