import ArgumentParser
import Foundation
import Synchronization
import SwitchboardAuth
import SwitchboardBench
import SwitchboardCore
import SwitchboardWire

extension Bench {
    /// `switchboard bench cluster`: publish on one node of a cluster, deliver on another.
    struct Cluster: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish on node A, deliver on node B: cross-node latency, loss, order and CPU per message.",
            discussion: """
                One publisher socket joins --channel on node A (--publish-port) and --subscribers sockets join it on \
                node B (--subscribe-port; the same port measures one node). The tokens are minted from --secret for a \
                supplier whose supplier_id is --supplier-id (the default rules let supplier bench join \
                collaboration:bench:*). Before the measurement the publisher sends probes until every subscriber has \
                received one (at most --ready-timeout), so the cluster link is known to be up and the channel exists. \
                Then it publishes --messages broadcasts of --event at --rate per second (omit for as fast as it can \
                send), each payload {"user_id": "bench", "document_id": "bench", "version": n, "n": n, "t": ns}, t \
                being the send time on this process's monotonic clock; the subscribers time each arrival against it. \
                Declare the event replay = false (user:online in the default rules) for an ephemeral message, or leave \
                it replayable (document:saved) for one numbered through the database. The rules must let one channel \
                take the rate (the default free tier's 100 messages a minute will not).

                Prints one line: delivered/expected (over all subscribers), lost, duplicated, out of order (arrived \
                after a later message), how many carried meta.seq, p50/p99/max latency in ms, the achieved publish rate \
                and delivered rate, and the publisher's refused sends. With --server-pids PID,PID each server's CPU \
                during the measurement (first publish to last delivery or the drain timeout) and per published message; \
                with --postgres-pid (the postmaster's) the same for PostgreSQL and all its processes.
                """
        )

        /// Where the two nodes are and what to read their CPU from.
        struct Nodes: ParsableArguments {
            @Option(help: "The nodes' address; loopback only.") var host: String = "127.0.0.1"
            @Option(help: "Port of node A, where the publisher connects.") var publishPort: Int
            @Option(help: "Port of node B, where the subscribers connect (the publish port for a single node).") var subscribePort: Int
            @Option(help: "HS256 secret to mint the tokens with (default: SWITCHBOARD_JWT_SECRET).") var secret: String?
            @Option(help: "The servers' process ids, comma-separated, to report each one's CPU time.") var serverPids: String?
            @Option(help: "PostgreSQL's postmaster process id, to report the CPU of it and its children.") var postgresPid: Int32?

            func validate() throws {
                try BenchTarget.requireLoopback(host)
                guard (1...65_535).contains(publishPort), (1...65_535).contains(subscribePort) else {
                    throw ValidationError("--publish-port and --subscribe-port must be 1...65535")
                }
            }

            /// The process ids in --server-pids.
            func pids() throws -> [Int32] {
                guard let serverPids else { return [] }
                let parts = serverPids.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count <= 16 else { throw ValidationError("--server-pids takes at most 16 process ids") }
                return try parts.map { part in
                    guard let pid = Int32(part), pid > 0 else { throw ValidationError("--server-pids: \"\(part)\" is not a process id") }
                    return pid
                }
            }
        }

        @OptionGroup var nodes: Nodes
        @Option(help: "Subscriber sockets on node B.") var subscribers: Int = 1
        @Option(help: "Messages to publish.") var messages: Int = 2000
        @Option(help: "Messages per second; omit for as fast as possible.") var rate: Double?
        @Option(help: "The event: user:online is ephemeral in the default rules, document:saved replayable.") var event: String = "user:online"
        @Option(help: "The channel.") var channel: String = "collaboration:bench:c1"
        @Option(help: "The supplier_id claim of the minted tokens.") var supplierId: String = "bench"
        @Option(help: "Seconds the probes may take to reach every subscriber before the run.") var readyTimeout: Double = 15
        @Option(help: "Seconds after the last publish to wait for deliveries still on their way.") var drainTimeout: Double = 10
        @Option(help: "Seconds the whole measurement (publishing and draining) may take at most.") var maxDuration: Double = 600

        static let maxDeliveries = 20_000_000

        func run() async throws {
            guard (1...1_000).contains(subscribers), (1...1_000_000).contains(messages), subscribers * messages <= Self.maxDeliveries else {
                throw ValidationError("--subscribers must be 1...1000, --messages 1...1000000, and subscribers × messages at most \(Self.maxDeliveries)")
            }
            if let rate, !(rate > 0 && rate <= 1_000_000) { throw ValidationError("--rate must be above 0 and at most 1000000") }
            for (name, seconds, most) in [("--ready-timeout", readyTimeout, 600.0), ("--drain-timeout", drainTimeout, 600), ("--max-duration", maxDuration, 3600)] {
                guard seconds.isFinite, seconds > 0, seconds <= most else { throw ValidationError("\(name) must be in (0, \(Int(most))] seconds") }
            }
            guard !channel.isEmpty, !event.isEmpty else { throw ValidationError("--channel and --event must not be empty") }
            let pids = try nodes.pids()
            guard let secret = nodes.secret ?? Environment.string("SWITCHBOARD_JWT_SECRET") else {
                throw ValidationError("pass --secret (or SWITCHBOARD_JWT_SECRET): the bench mints its tokens")
            }
            let token = try await TokenMinter(hmacSecret: secret).mint(
                TokenClaims(
                    role: "supplier", subject: "bench-cluster", tier: "paid", supplierID: supplierId,
                    expiresAt: Date().timeIntervalSince1970 + 3600))
            let topic = "realtime:\(channel)"

            // Connect and join: the publisher on A, the subscribers on B.
            var sockets = [try await Self.join(host: nodes.host, port: nodes.publishPort, token: token, topic: topic, role: "the publisher")]
            do {
                for index in 0..<subscribers {
                    sockets.append(
                        try await Self.join(host: nodes.host, port: nodes.subscribePort, token: token, topic: topic, role: "subscriber \(index)"))
                }
                try await measure(publisher: sockets[0], subscribers: Array(sockets.dropFirst()), topic: topic, pids: pids)
            } catch {
                await Self.close(sockets)
                throw error
            }
            await Self.close(sockets)
        }

        private func measure(publisher: WebSocketClient, subscribers sockets: [WebSocketClient], topic: String, pids: [Int32]) async throws {
            let clock = ContinuousClock()
            let origin = clock.now
            let run = RunState(deadline: clock.now + .seconds(readyTimeout) + .seconds(maxDuration), subscribers: sockets.count)
            let count = messages
            let receivers = sockets.enumerated().map { index, client in
                Task { try await Self.receive(client, index: index, count: count, origin: origin, run: run) }
            }
            let refusals = Task { await Self.watchPublisher(publisher, run: run) }
            // Whatever happens, the tasks end (their loops also end at the deadline).
            defer {
                run.finish(at: clock.now)
                for receiver in receivers { receiver.cancel() }
                refusals.cancel()
            }
            let frames = FrameText(topic: topic, event: event)

            // Probes (n = 0) until every subscriber has one.
            let readyBy = clock.now + .seconds(readyTimeout)
            var probes = 0
            while !run.allReady, clock.now < readyBy, probes < 10_000 {
                try await publisher.send(text: frames.text(n: 0, t: Self.nanoseconds(origin.duration(to: clock.now))))
                probes += 1
                let wait = clock.now + .milliseconds(250)
                while !run.allReady, clock.now < wait { try await Task.sleep(for: .milliseconds(5)) }
            }
            guard run.allReady else {
                throw ValidationError(
                    "after \(probes) probes in \(readyTimeout) s only \(run.readyCount) of \(sockets.count) subscribers got one: is node B in the "
                        + "cluster? " + (run.lastServerMessage.map { "last server message: \($0)" } ?? ""))
            }
            // Let the last probes arrive before the measurement.
            try await Task.sleep(for: .milliseconds(500))

            // The measurement.
            let cpuBefore = pids.map { ProcessStats.readCPUSeconds(pid: $0) }
            let postgresBefore = nodes.postgresPid.flatMap(PostgresCPU.seconds(postmaster:))
            let start = clock.now
            run.setDeadline(start + .seconds(maxDuration))
            var sent = 0
            for n in 1...count {
                if let rate {
                    let due = start.advanced(by: .seconds(Double(n - 1) / rate))
                    if due > clock.now { try await Task.sleep(until: due, clock: clock) }
                }
                guard clock.now < run.deadline else { break }
                try await publisher.send(text: frames.text(n: n, t: Self.nanoseconds(origin.duration(to: clock.now))))
                sent += 1
            }
            let published = clock.now
            run.setDeadline(min(run.deadline, published + .seconds(drainTimeout)))
            // Until every subscriber has every message, or the drain timeout.
            while run.completeCount < sockets.count, clock.now < run.deadline { try await Task.sleep(for: .milliseconds(2)) }
            let ended = clock.now
            let cpuAfter = pids.map { ProcessStats.readCPUSeconds(pid: $0) }
            let postgresAfter = nodes.postgresPid.flatMap(PostgresCPU.seconds(postmaster:))
            // A little longer, so that a repeat arriving just after the last message is counted.
            run.setDeadline(min(run.deadline, ended + .milliseconds(500)))
            var tallies: [Tally] = []
            for receiver in receivers { tallies.append(try await receiver.value) }
            run.finish(at: clock.now)
            let refused = await refusals.value

            // Figures.
            let sorted = tallies.flatMap(\.latencies).sorted()
            func percentile(_ p: Double) -> Double {
                guard !sorted.isEmpty else { return 0 }
                return sorted[max(0, min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1))]
            }
            let delivered = tallies.reduce(0) { $0 + $1.unique }
            let expected = sent * sockets.count
            let lastArrival = tallies.compactMap(\.lastArrival).max()
            let deliverySeconds = lastArrival.map { BenchDatabaseURL.seconds(start.duration(to: origin + $0)) } ?? 0
            let publishSeconds = BenchDatabaseURL.seconds(start.duration(to: published))
            let measuredSeconds = BenchDatabaseURL.seconds(start.duration(to: ended))
            var line = String(
                format: "cluster event=%@ subscribers=%d sent=%d refused=%d delivered=%d/%d lost=%d duplicated=%d out_of_order=%d with_seq=%d "
                    + "p50=%.2fms p99=%.2fms max=%.2fms publish_rate=%.0f/s delivered_rate=%.0f/s seconds=%.2f",
                event, sockets.count, sent, refused.count, delivered, expected, max(0, expected - delivered),
                tallies.reduce(0) { $0 + $1.duplicates }, tallies.reduce(0) { $0 + $1.outOfOrder }, tallies.reduce(0) { $0 + $1.withSeq },
                percentile(0.5), percentile(0.99), sorted.last ?? 0, Double(sent) / max(publishSeconds, 1e-9),
                Double(delivered) / max(deliverySeconds, 1e-9), measuredSeconds)
            if let rate { line += String(format: " rate=%.0f", rate) }
            if nodes.publishPort == nodes.subscribePort { line += " single_node" }
            for (index, pid) in pids.enumerated() {
                guard let before = cpuBefore[index], let after = cpuAfter[index] else {
                    line += " cpu[\(pid)]=unreadable"
                    continue
                }
                line += String(
                    format: " cpu[%d]=%.3fs/%.0f%%/%.1fµs_per_msg", pid, after - before, (after - before) * 100 / max(measuredSeconds, 1e-9),
                    (after - before) * 1e6 / Double(max(sent, 1)))
            }
            if let before = postgresBefore, let after = postgresAfter {
                line += String(
                    format: " postgres_cpu=%.3fs/%.0f%%/%.1fµs_per_msg", after - before, (after - before) * 100 / max(measuredSeconds, 1e-9),
                    (after - before) * 1e6 / Double(max(sent, 1)))
            }
            print(line)
            let closed = tallies.compactMap(\.closed)
            if !closed.isEmpty { print("subscribers closed by the server: \(closed.count); first: \(closed[0])") }
            if let reason = refused.last { print("last refusal: \(reason)") }
            if let message = run.lastServerMessage { print("last server error message: \(message)") }
        }

        /// Closes the sockets, all at once.
        static func close(_ sockets: [WebSocketClient]) async {
            await withTaskGroup(of: Void.self) { group in
                for client in sockets { group.addTask { await client.close() } }
            }
        }

        // MARK: - Sockets

        /// Connects and joins `topic` with self: false and no acks.
        static func join(host: String, port: Int, token: String, topic: String, role: String) async throws -> WebSocketClient {
            let client = try await WebSocketClient.connect(host: host, port: port, path: "/socket/websocket?apikey=\(token)&vsn=1.0.0")
            let join: Value = [
                "topic": .string(topic), "event": "phx_join", "ref": "1", "join_ref": "1",
                "payload": ["config": ["broadcast": ["self": false, "ack": false], "private": true]],
            ]
            do {
                try await client.send(text: JSON.string(join))
                let reply = try await client.receiveText(containing: "\"phx_reply\"", timeout: .seconds(10))
                guard reply.contains("\"ok\"") else { throw ValidationError("\(role) could not join \(topic) on port \(port): \(reply)") }
            } catch {
                await client.close()
                throw error
            }
            return client
        }

        /// One subscriber's count: every message once, in order, with its latency.
        struct Tally: Sendable {
            var seen: [Bool]
            var unique = 0
            var duplicates = 0
            var outOfOrder = 0
            var withSeq = 0
            var highest = 0
            var latencies: [Double] = []
            /// Since the origin.
            var lastArrival: Duration?
            var closed: String?

            init(count: Int) {
                seen = Array(repeating: false, count: count + 1)
                latencies.reserveCapacity(count)
            }
        }

        /// Reads one subscriber's socket until the run's deadline (once it has every message it says
        /// so, and goes on reading to catch repeats until the deadline the publisher then sets).
        static func receive(_ client: WebSocketClient, index: Int, count: Int, origin: ContinuousClock.Instant, run: RunState) async throws -> Tally {
            let clock = ContinuousClock()
            var tally = Tally(count: count)
            var lastBeat = clock.now
            // Bounded by the deadline; the frame bound only guards against a flood of other frames.
            var frames = 0
            while frames < 4 * count + 100_000 {
                let now = clock.now
                let deadline = run.deadline
                guard now < deadline else { break }
                if now - lastBeat > .seconds(20) {
                    // The server closes sockets that send nothing for 60 s.
                    try await client.send(text: #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"hb"}"#)
                    lastBeat = now
                }
                let message: WebSocketClient.Message
                do {
                    message = try await client.receive(timeout: min(now.duration(to: deadline), .milliseconds(250)))
                } catch WebSocketClientError.timeout {
                    continue
                }
                frames += 1
                guard case .text(let text) = message else {
                    if case .closed(let code, let reason) = message {
                        tally.closed = "code \(code.map(String.init) ?? "none"): \(reason)"
                        break
                    }
                    continue
                }
                let arrived = origin.duration(to: clock.now)
                guard let frame = try? JSON.parse(text.utf8) else { continue }
                guard frame["event"]?.stringValue == "broadcast" else {
                    if let event = frame["event"]?.stringValue, ["system", "phx_error", "phx_close"].contains(event) {
                        run.note(server: text)
                    }
                    continue
                }
                let body = frame["payload"]
                guard let n = body?["payload"]?["n"]?.int64Value, let t = body?["payload"]?["t"]?.int64Value else { continue }
                if n == 0 {
                    run.ready(index)
                    continue
                }
                guard n > 0, n <= Int64(count) else { continue }
                let number = Int(n)
                if tally.seen[number] {
                    tally.duplicates += 1
                    continue
                }
                tally.seen[number] = true
                tally.unique += 1
                if number < tally.highest { tally.outOfOrder += 1 }
                tally.highest = max(tally.highest, number)
                if body?["meta"]?["seq"]?.int64Value != nil { tally.withSeq += 1 }
                tally.latencies.append(Double(nanoseconds(arrived) &- t) / 1e6)
                tally.lastArrival = arrived
                if tally.unique == count { run.complete() }
            }
            return tally
        }

        /// Drains the publisher's socket until the run ends: its refused sends (an error reply, or
        /// the `system` message a rate-limited push without ack gets), each reason.
        static func watchPublisher(_ client: WebSocketClient, run: RunState) async -> [String] {
            let clock = ContinuousClock()
            var refused: [String] = []
            var lastBeat = clock.now
            var frames = 0
            while !run.isFinished, frames < 10_000_000 {
                let now = clock.now
                if now - lastBeat > .seconds(20) {
                    try? await client.send(text: #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"hb"}"#)
                    lastBeat = now
                }
                guard let message = try? await client.receive(timeout: .milliseconds(250)) else { continue }
                frames += 1
                guard case .text(let text) = message else {
                    if message.isClosed {
                        run.note(server: "the publisher's socket closed: \(message)")
                        break
                    }
                    continue
                }
                guard let frame = try? JSON.parse(text.utf8), let event = frame["event"]?.stringValue else { continue }
                let payload = frame["payload"]
                if (event == "phx_reply" || event == "system"), payload?["status"]?.stringValue == "error" {
                    if refused.count < 1_000_000 {
                        refused.append(payload?["response"]?["reason"]?.stringValue ?? payload?["message"]?.stringValue ?? text)
                    }
                } else if event == "phx_error" || event == "phx_close" {
                    run.note(server: text)
                }
            }
            return refused
        }

        static func nanoseconds(_ duration: Duration) -> Int64 {
            let (seconds, attoseconds) = duration.components
            return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
        }
    }
}

/// The broadcast push, built from fixed text around the two numbers.
private struct FrameText {
    let prefix: String
    let suffix: String

    init(topic: String, event: String) {
        prefix =
            #"{"topic":"# + JSON.string(.string(topic)) + #","event":"broadcast","payload":{"type":"broadcast","event":"#
            + JSON.string(.string(event)) + #","payload":{"user_id":"bench","document_id":"bench","version":"#
        suffix = #"}},"ref":null,"join_ref":"1"}"#
    }

    func text(n: Int, t: Int64) -> String {
        "\(prefix)\(n),\"n\":\(n),\"t\":\(t)\(suffix)"
    }
}

/// What the publisher and the subscribers share: the deadline, who has seen a probe, the end.
final class RunState: Sendable {
    private struct State {
        var deadline: ContinuousClock.Instant
        var ready: [Bool]
        var readyCount = 0
        var complete = 0
        var finished = false
        var lastServerMessage: String?
    }

    private let state: Mutex<State>

    init(deadline: ContinuousClock.Instant, subscribers: Int) {
        state = Mutex(State(deadline: deadline, ready: Array(repeating: false, count: subscribers)))
    }

    var deadline: ContinuousClock.Instant { state.withLock { $0.deadline } }
    func setDeadline(_ deadline: ContinuousClock.Instant) { state.withLock { $0.deadline = deadline } }

    func ready(_ index: Int) {
        state.withLock { state in
            guard state.ready.indices.contains(index), !state.ready[index] else { return }
            state.ready[index] = true
            state.readyCount += 1
        }
    }

    var readyCount: Int { state.withLock { $0.readyCount } }

    /// A subscriber has every message.
    func complete() { state.withLock { $0.complete += 1 } }
    var completeCount: Int { state.withLock { $0.complete } }
    var allReady: Bool { state.withLock { $0.readyCount == $0.ready.count } }

    func finish(at instant: ContinuousClock.Instant) {
        state.withLock { state in
            state.finished = true
            state.deadline = min(state.deadline, instant)
        }
    }

    var isFinished: Bool { state.withLock { $0.finished } }

    func note(server message: String) { state.withLock { $0.lastServerMessage = String(message.prefix(500)) } }
    var lastServerMessage: String? { state.withLock { $0.lastServerMessage } }
}

/// The CPU time of PostgreSQL: its postmaster (with the children it has reaped) and every live
/// child (backends, writers, autovacuum), so a backend that exits mid-run still counts.
enum PostgresCPU {
    static func seconds(postmaster: Int32) -> Double? {
        guard let root = fields(of: postmaster) else { return nil }
        // utime, stime, cutime, cstime: fields 14–17 (indices 11–14 after the command name).
        var ticks = root[11...14].reduce(0.0) { $0 + (Double($1) ?? 0) }
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap(Int32.init) ?? []
        for pid in pids where pid != postmaster {
            // The parent's pid is field 4 (index 1).
            guard let stat = fields(of: pid), stat.count > 12, Int32(stat[1]) == postmaster else { continue }
            ticks += (Double(stat[11]) ?? 0) + (Double(stat[12]) ?? 0)
        }
        #if os(Linux)
        let perSecond = sysconf(Int32(_SC_CLK_TCK))
        #else
        let perSecond = sysconf(_SC_CLK_TCK)
        #endif
        guard perSecond > 0 else { return nil }
        return ticks / Double(perSecond)
    }

    /// The fields of `/proc/PID/stat` after the command name (the first is the state, field 3).
    private static func fields(of pid: Int32) -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        return fields.count > 14 ? fields : nil
    }
}
