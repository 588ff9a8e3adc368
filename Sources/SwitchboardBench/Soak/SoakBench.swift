import SwitchboardCore
import Synchronization

/// The soak: a mixed load against a running server for a fixed time, and whether the server
/// stayed healthy under it (see ``SoakOptions`` for the load, ``SoakResult`` for the verdict).
///
/// Long-lived subscribers join the replay channels first; then publishers broadcast a
/// replayable event at a steady rate (ack on), churners connect, join, leave and disconnect in
/// a loop (each cycle also probes a join the rules refuse, an expected error), presence members
/// track and untrack, every long-lived connection refreshes its short-lived channel tokens, and
/// the rules switch every ``SoakOptions/reloadInterval``. At the end the publishers stop and the
/// subscribers wait until every channel's last message arrived. Every loop is bounded by the
/// run's deadline; loopback only.
public enum SoakBench {
    /// The replayable event (declared in the default rules on `collaboration:*`).
    public static let event = "document:saved"
    /// How long the end waits for outstanding acks and the channels' last messages.
    static let drainTimeout = Duration.seconds(15)
    /// How long the subscribers may take to join before the load starts.
    static let joinTimeout = Duration.seconds(60)
    /// How often a waiting task looks at the run's phase.
    static let slice = Duration.milliseconds(200)
    /// The pause before a role reconnects after an error.
    static let retryPause = Duration.seconds(1)

    /// Runs the soak and returns its result; throws only when it could not start.
    public static func run(_ options: SoakOptions) async throws -> SoakResult {
        try options.validate()
        try FileDescriptorLimit.ensure(atLeast: options.subscribers + options.publishers + options.churners + options.presenceMembers + 64)
        let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let topics = (0..<options.channels).map { "realtime:collaboration:soak\(run):c\($0)" }
        let clock = ContinuousClock()
        let loadStart = Mutex<ContinuousClock.Instant?>(nil)
        let stats = SoakStats(channels: options.channels) { sample in
            let elapsed = loadStart.withLock { $0 }.map { SoakResult.clock($0.duration(to: .now).seconds) } ?? "setup"
            options.progress("  ! \(elapsed) unexpected: \(sample)")
        }
        let control = SoakControl()

        let adminToken = try await options.mint(
            .init(role: "admin", subject: "soak-admin", supplierID: nil, lifetime: options.duration + .seconds(3600)))
        let rules = options.rulesDirectory.map { SoakRules(directory: $0, host: options.host, port: options.port, adminToken: adminToken) }
        var generation: Int64 = 0
        if let rules {
            generation = try await rules.status().generation
            if rules.variantInPlace {
                // Left by an interrupted soak: start from the rules as they were.
                try await rules.restore(from: generation)
                generation = try await rules.status().generation
            }
        }
        let startGeneration = generation

        // Long-lived subscribers, all joined before anything is published.
        let gate = SoakGate()
        async let subscribing: Void = self.subscribers(options: options, topics: topics, stats: stats, control: control, gate: gate)
        do {
            try await gate.wait(for: options.subscribers, timeout: Self.joinTimeout)
        } catch {
            control.set(.done)
            await subscribing
            throw error
        }

        let started = clock.now
        let end = started.advanced(by: options.duration)
        loadStart.withLock { $0 = started }
        options.progress(
            "soak run \(run): \(SoakResult.clock(options.duration.seconds)) against \(options.host):\(options.port)"
                + (options.serverPid.map { " (pid \($0))" } ?? "") + (options.rulesDirectory.map { ", rules \($0)" } ?? ", no rules reloads")
                + "; \(options.subscribers) subscribers × \(options.channelsPerSubscriber) of \(options.channels) channels,"
                + " \(options.publishers) publishers at \(BenchFormat.count(options.rate)) msg/s, \(options.churners) churners,"
                + " \(options.presenceMembers) presence members")
        options.progress("  elapsed       rss  conns  published  delivered  reloads  unexpected  expected")

        let lastGeneration = await withTaskGroup(of: Int64?.self) { group in
            group.addTask {
                await self.publishers(options: options, topics: topics, stats: stats, end: end)
                return nil
            }
            for index in 0..<options.churners {
                group.addTask {
                    await self.churn(index: index, options: options, topics: topics, stats: stats, end: end)
                    return nil
                }
            }
            for index in 0..<options.presenceMembers {
                group.addTask {
                    await self.presence(index: index, options: options, topic: topics[index % topics.count], stats: stats, end: end)
                    return nil
                }
            }
            if let rules {
                group.addTask {
                    await self.reload(rules: rules, from: startGeneration, interval: options.reloadInterval, stats: stats, end: end)
                }
            }
            group.addTask {
                await self.sample(options: options, stats: stats, started: started, end: end)
                return nil
            }
            var last: Int64?
            for await value in group {
                if let value { last = value }
            }
            return last
        }

        // The load has stopped: every live subscription should reach its channel's last seq.
        let state = stats.snapshot
        let finalSeq = (0..<options.channels).map { (state.baseSeq[$0] ?? 0) + Int64(state.acceptedPerChannel[$0]) }
        control.set(.draining(finalSeq: finalSeq, until: clock.now.advanced(by: Self.drainTimeout)))
        await subscribing
        let elapsed = started.duration(to: clock.now).seconds

        var setupFailures: [String] = []
        if let rules {
            do {
                try await rules.restore(from: lastGeneration ?? startGeneration)
            } catch {
                setupFailures.append("could not restore the rules directory: \(error)")
            }
        }
        return SoakResult(
            state: stats.snapshot, durationSeconds: min(elapsed, options.duration.seconds), channels: options.channels,
            measuresRSS: options.serverPid != nil, setupFailures: setupFailures)
    }

    // MARK: Roles

    /// The long-lived subscribers: each joins its channels, then reads until the end; one whose
    /// connection the server closes reconnects (its new subscriptions are checked from their join).
    private static func subscribers(
        options: SoakOptions, topics: [String], stats: SoakStats, control: SoakControl, gate: SoakGate
    ) async {
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<options.subscribers {
                group.addTask {
                    var first = true
                    while control.phase == .running || first {
                        let client: SoakClient
                        do {
                            client = try await SoakClient.connect(
                                name: "sub\(index)", stats: stats, options: options, refreshes: true)
                            for offset in 0..<options.channelsPerSubscriber {
                                let channel = (index + offset) % options.channels
                                let seq = try await client.join(topics[channel], channelIndex: channel)
                                stats.update { state in
                                    if state.baseSeq[channel] == nil { state.baseSeq[channel] = seq ?? 0 }
                                }
                            }
                        } catch {
                            if first {
                                gate.failed("subscriber \(index): \(error)")
                                return
                            }
                            stats.unexpected("subscriber could not reconnect", "sub\(index): \(error)")
                            try? await Task.sleep(for: Self.retryPause)
                            continue
                        }
                        if first {
                            gate.joined()
                            first = false
                        }
                        await self.read(client, control: control, stats: stats)
                        if !client.isClosed { return }
                    }
                }
            }
        }
    }

    /// Reads on a subscriber until the drain is over (then checks its tail) or its connection closes.
    private static func read(_ client: SoakClient, control: SoakControl, stats: SoakStats) async {
        while !client.isClosed {
            switch control.phase {
            case .running:
                break
            case .draining(let finalSeq, let until):
                if client.reached(finalSeq) || ContinuousClock.now >= until || Task.isCancelled {
                    await client.finish(finalSeq: finalSeq)
                    return
                }
            case .done:
                await client.finish(finalSeq: nil)
                return
            }
            do {
                try await client.pump(until: ContinuousClock.now.advanced(by: Self.slice))
            } catch {
                if Task.isCancelled {
                    await client.finish(finalSeq: nil)
                    return
                }
                stats.unexpected("subscriber error", "\(client.name): \(error)")
                await client.finish(finalSeq: nil)
                return
            }
        }
    }

    /// Publisher `p` publishes on channels p, p + publishers, …, round robin, at its share of the
    /// rate; at the end it waits for its outstanding acks.
    private static func publishers(options: SoakOptions, topics: [String], stats: SoakStats, end: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<options.publishers {
                let channels = Array(stride(from: index, to: options.channels, by: options.publishers))
                let rate = options.rate * Double(channels.count) / Double(options.channels)
                group.addTask {
                    await self.retrying(name: "publisher\(index)", stats: stats, end: end) {
                        let client = try await SoakClient.connect(
                            name: "pub\(index)", stats: stats, options: options, refreshes: true)
                        for channel in channels {
                            try await client.join(topics[channel], channelIndex: nil, ack: true)
                        }
                        let start = ContinuousClock.now
                        var sent = 0
                        while ContinuousClock.now < end {
                            let due = start.advanced(by: .nanoseconds(Int64(Double(sent) / rate * 1e9)))
                            if ContinuousClock.now >= due {
                                let channel = channels[sent % channels.count]
                                try await client.publish(
                                    topics[channel], channelIndex: channel, event: Self.event,
                                    payload: ["document_id": .string("soak-\(channel)"), "version": .int(sent)])
                                sent += 1
                            } else {
                                try await client.pump(until: min(due, end))
                            }
                        }
                        let drainEnd = ContinuousClock.now.advanced(by: Self.drainTimeout)
                        while client.pendingCount > 0, ContinuousClock.now < drainEnd, !client.isClosed {
                            try await client.pump(until: min(drainEnd, ContinuousClock.now.advanced(by: Self.slice)))
                        }
                        await client.finish(finalSeq: nil)
                    }
                }
            }
        }
    }

    /// Churner `index`: connect, join two replay channels, read 2–6 s, leave one, probe a join the
    /// rules refuse, disconnect; again until the end.
    private static func churn(index: Int, options: SoakOptions, topics: [String], stats: SoakStats, end: ContinuousClock.Instant) async {
        var cycle = 0
        await self.retrying(name: "churner\(index)", stats: stats, end: end) {
            while ContinuousClock.now < end {
                cycle += 1
                let client = try await SoakClient.connect(
                    name: "churn\(index)-\(cycle)", stats: stats, options: options, refreshes: false)
                let first = Int.random(in: 0..<topics.count)
                let second = (first + 1 + Int.random(in: 0..<max(1, topics.count - 1))) % topics.count
                for channel in Set([first, second]) {
                    try await client.join(topics[channel], channelIndex: channel)
                }
                let stay = Duration.milliseconds(Int64.random(in: 2000...6000))
                try await client.pump(until: min(end, ContinuousClock.now.advanced(by: stay)))
                try await client.leave(topics[first])
                try await client.probeRefusedJoin("realtime:supplier:dashboard:soak-other")
                try await client.pump(until: min(end, ContinuousClock.now.advanced(by: .milliseconds(500))))
                await client.finish(finalSeq: nil)
            }
        }
    }

    /// Presence member `index`: tracks a changing meta every interval on `topic`, untracking every fifth time.
    private static func presence(index: Int, options: SoakOptions, topic: String, stats: SoakStats, end: ContinuousClock.Instant) async {
        await self.retrying(name: "presence\(index)", stats: stats, end: end) {
            let client = try await SoakClient.connect(
                name: "presence\(index)", stats: stats, options: options, refreshes: true)
            try await client.join(topic, channelIndex: nil, presenceKey: "soak-\(index)")
            var update = 0
            while ContinuousClock.now < end {
                update += 1
                let meta: Value? = update % 5 == 0 ? nil : ["status": "editing", "n": .int(update)]
                try await client.presence(topic, meta: meta)
                try await client.pump(until: min(end, ContinuousClock.now.advanced(by: options.presenceInterval)))
            }
            await client.finish(finalSeq: nil)
        }
    }

    /// Switches the rules every `interval` and confirms each reload; returns the last generation.
    private static func reload(
        rules: SoakRules, from generation: Int64, interval: Duration, stats: SoakStats, end: ContinuousClock.Instant
    ) async -> Int64 {
        var generation = generation
        var next = ContinuousClock.now.advanced(by: interval)
        while next < end {
            try? await Task.sleep(until: next, clock: .continuous)
            next = next.advanced(by: interval)
            do {
                generation = try await rules.toggle(from: generation)
                stats.update { $0.reloads += 1 }
            } catch {
                stats.unexpected("rules reload not confirmed", "\(error)")
                if let status = try? await rules.status() { generation = status.generation }
            }
        }
        return generation
    }

    /// Reads the server's RSS every sample interval and prints a progress line every report interval.
    private static func sample(options: SoakOptions, stats: SoakStats, started: ContinuousClock.Instant, end: ContinuousClock.Instant) async {
        var next = started
        var nextReport = started.advanced(by: options.reportInterval)
        while next <= end {
            try? await Task.sleep(until: next, clock: .continuous)
            let now = ContinuousClock.now
            let seconds = started.duration(to: now).seconds
            let rss = options.serverPid.flatMap(ProcessStats.readRSSBytes)
            if let rss {
                stats.update { $0.rss.append(SoakResult.RSSSample(seconds: seconds, bytes: rss)) }
            }
            if now >= nextReport || next.advanced(by: options.sampleInterval) > end {
                nextReport = nextReport.advanced(by: options.reportInterval)
                let state = stats.snapshot
                let unexpected = state.unexpected.values.reduce(0, +)
                let expected = state.expected.values.reduce(0, +)
                options.progress(
                    "  " + SoakResult.pad(SoakResult.clock(seconds), 7) + SoakResult.pad(rss.map(BenchFormat.megabytes) ?? "-", 10)
                        + SoakResult.pad(String(state.openConnections), 7) + SoakResult.pad(String(state.published), 11)
                        + SoakResult.pad(String(state.delivered), 11) + SoakResult.pad(String(state.reloads), 9)
                        + SoakResult.pad(String(unexpected), 12) + SoakResult.pad(String(expected), 10))
            }
            next = next.advanced(by: options.sampleInterval)
        }
    }

    /// Runs `body` until it returns normally or the run ends; an error is counted as unexpected
    /// and the role starts again after a pause.
    private static func retrying(
        name: String, stats: SoakStats, end: ContinuousClock.Instant, _ body: () async throws -> Void
    ) async {
        while ContinuousClock.now < end {
            do {
                try await body()
                return
            } catch {
                stats.unexpected("\(name.filter { !$0.isNumber }) error", "\(name): \(error)")
                try? await Task.sleep(for: Self.retryPause)
            }
        }
    }
}
