import SwitchboardCore
import SwitchboardWire

/// One soak connection, owned by one task: joins topics, heartbeats, refreshes its channel
/// tokens, checks every replayable message's `meta.seq` per subscription, and sorts what the
/// server says into the run's counters (errors it did not provoke are unexpected).
final class SoakClient {
    /// A joined topic.
    struct Subscription {
        let joinRef: String
        /// The channel's index among the soak's replay channels, or nil for other topics.
        let channelIndex: Int?
        var tracker = SeqTracker()
        var leaving = false
    }

    /// A push waiting for its reply.
    enum Pending {
        case publish(channelIndex: Int, sentAt: ContinuousClock.Instant)
        case presence(sentAt: ContinuousClock.Instant)
        case leave(topic: String, sentAt: ContinuousClock.Instant)
        case heartbeat(sentAt: ContinuousClock.Instant)

        var sentAt: ContinuousClock.Instant {
            switch self {
            case .publish(_, let at), .presence(let at), .leave(_, let at), .heartbeat(let at): return at
            }
        }
    }

    /// How long a push may wait for its reply before that counts as an error.
    static let replyTimeout = Duration.seconds(15)
    /// How often a connection heartbeats (the server closes after 60 s of silence).
    static let heartbeatInterval = Duration.seconds(25)

    let name: String
    let session: RealtimeSession
    private let stats: SoakStats
    private let options: SoakOptions
    private(set) var subscriptions: [String: Subscription] = [:]
    private var pending: [String: Pending] = [:]
    private var nextHeartbeat: ContinuousClock.Instant
    private var nextRefresh: ContinuousClock.Instant
    private let refreshes: Bool
    private var closedByUs = false
    private(set) var isClosed = false

    private init(name: String, session: RealtimeSession, stats: SoakStats, options: SoakOptions, refreshes: Bool) {
        self.name = name
        self.session = session
        self.stats = stats
        self.options = options
        self.refreshes = refreshes
        let now = ContinuousClock.now
        self.nextHeartbeat = now.advanced(by: Self.heartbeatInterval)
        // Spread the refreshes of many connections over the interval.
        let offset = Double.random(in: 0.2...1.0) * Double(options.tokenRefreshInterval.components.seconds)
        self.nextRefresh = now.advanced(by: .milliseconds(Int64(offset * 1000)))
    }

    /// Connects as admin `soak-<name>` with a connect token that outlives the run; `refreshes`:
    /// whether it refreshes its channel tokens (long-lived connections do).
    static func connect(
        name: String, stats: SoakStats, options: SoakOptions, refreshes: Bool
    ) async throws -> SoakClient {
        let token = try await options.mint(
            .init(role: "admin", subject: "soak-\(name)", supplierID: nil, lifetime: options.duration + .seconds(3600)))
        let session = try await RealtimeSession.connect(options.target(token: token))
        stats.update {
            $0.connects += 1
            $0.openConnections += 1
        }
        return SoakClient(name: name, session: session, stats: stats, options: options, refreshes: refreshes)
    }

    /// A channel token for this connection's identity, valid for the options' channel token lifetime.
    private func channelToken() async throws -> String {
        try await self.options.mint(
            .init(role: "admin", subject: "soak-\(self.name)", supplierID: nil, lifetime: self.options.channelTokenLifetime))
    }

    /// Joins `topic` with a short-lived channel token (so a refresh that does not take shows as
    /// a closed channel); returns the join reply's `seq`.
    @discardableResult
    func join(_ topic: String, channelIndex: Int?, ack: Bool = false, presenceKey: String = "") async throws -> Int64? {
        let ref = self.session.nextRef()
        let config: Value = [
            "config": [
                "broadcast": ["self": false, "ack": .bool(ack)], "presence": ["key": .string(presenceKey)], "private": false,
            ],
            "access_token": .string(try await self.channelToken()),
        ]
        try await self.session.push(topic, "phx_join", config, ref: ref, joinRef: ref)
        let reply = try await self.session.reply(to: ref, timeout: Self.replyTimeout) { self.handle($0) }
        guard reply["status"]?.stringValue == "ok" else {
            throw BenchError(.joinFailed, "joining \(topic) failed: \(Self.reason(reply))")
        }
        var subscription = Subscription(joinRef: ref, channelIndex: channelIndex)
        let seq = reply["response"]?["seq"]?.int64Value
        if let seq {
            subscription.tracker.joined(seq: seq)
        }
        self.subscriptions[topic] = subscription
        self.stats.update { $0.joins += 1 }
        return seq
    }

    /// Joins `topic` with a token of a user the rules refuse there; counts the refusal as expected.
    func probeRefusedJoin(_ topic: String) async throws {
        let token = try await self.options.mint(
            .init(role: "supplier", subject: "soak-probe", supplierID: "soak-probe", lifetime: .seconds(300)))
        let ref = self.session.nextRef()
        let payload: Value = [
            "config": ["broadcast": ["self": false, "ack": false], "presence": ["key": ""], "private": true],
            "access_token": .string(token),
        ]
        try await self.session.push(topic, "phx_join", payload, ref: ref, joinRef: ref)
        let reply = try await self.session.reply(to: ref, timeout: Self.replyTimeout) { self.handle($0) }
        if reply["status"]?.stringValue == "ok" {
            self.stats.unexpected("a join the rules should refuse was allowed", topic)
            self.subscriptions[topic] = Subscription(joinRef: ref, channelIndex: nil)
        } else {
            self.stats.expected("join refused by the rules (probe)")
        }
    }

    /// Sends a `phx_leave`; the subscription ends when its reply arrives.
    func leave(_ topic: String) async throws {
        guard var subscription = self.subscriptions[topic], !subscription.leaving else { return }
        subscription.leaving = true
        self.subscriptions[topic] = subscription
        let ref = self.session.nextRef()
        self.pending[ref] = .leave(topic: topic, sentAt: .now)
        try await self.session.push(topic, "phx_leave", .object(.init()), ref: ref, joinRef: subscription.joinRef)
    }

    /// Publishes one replayable message (ack on) on `topic`, channel `channelIndex`.
    func publish(_ topic: String, channelIndex: Int, event: String, payload: Value) async throws {
        guard let subscription = self.subscriptions[topic] else { return }
        let ref = self.session.nextRef()
        self.pending[ref] = .publish(channelIndex: channelIndex, sentAt: .now)
        try await self.session.push(
            topic, "broadcast", ["type": "broadcast", "event": .string(event), "payload": payload], ref: ref,
            joinRef: subscription.joinRef)
        self.stats.update { $0.published += 1 }
    }

    /// Tracks (`meta`) or untracks (nil) this connection's presence on `topic`.
    func presence(_ topic: String, meta: Value?) async throws {
        guard let subscription = self.subscriptions[topic] else { return }
        let ref = self.session.nextRef()
        self.pending[ref] = .presence(sentAt: .now)
        let payload: Value =
            meta.map { ["type": "presence", "event": "track", "payload": $0] } ?? ["type": "presence", "event": "untrack"]
        try await self.session.push(topic, "presence", payload, ref: ref, joinRef: subscription.joinRef)
        self.stats.update { $0.presenceUpdates += 1 }
    }

    /// Pushes waiting for their reply.
    var pendingCount: Int { self.pending.count }

    /// Reads and handles frames until `deadline` (or until the connection closes), heartbeating
    /// and refreshing the channel tokens when due.
    func pump(until deadline: ContinuousClock.Instant) async throws {
        while !self.isClosed {
            let now = ContinuousClock.now
            if now >= self.nextHeartbeat {
                self.nextHeartbeat = now.advanced(by: Self.heartbeatInterval)
                let ref = self.session.nextRef()
                self.pending[ref] = .heartbeat(sentAt: now)
                try await self.session.push("phoenix", "heartbeat", .object(.init()), ref: ref, joinRef: nil)
            }
            if self.refreshes, now >= self.nextRefresh {
                self.nextRefresh = now.advanced(by: self.options.tokenRefreshInterval)
                try await self.refreshTokens()
            }
            self.expireReplies(now: now)
            let wake = min(deadline, self.nextHeartbeat, self.refreshes ? self.nextRefresh : deadline)
            guard now < deadline else { return }
            guard let frame = try await self.session.receive(before: wake) else { continue }
            switch frame {
            case .message(let value):
                self.handle(value)
            case .closed(let code, let reason):
                self.markClosed()
                if !self.closedByUs {
                    self.stats.unexpected(
                        "connection closed by the server", "\(self.name): code \(code.map(String.init) ?? "none") \(reason)")
                }
            }
        }
    }

    /// `access_token` on every joined topic with a fresh channel token.
    private func refreshTokens() async throws {
        for (topic, subscription) in self.subscriptions where !subscription.leaving {
            let token = try await self.channelToken()
            try await self.session.push(topic, "access_token", ["access_token": .string(token)], ref: self.session.nextRef(), joinRef: subscription.joinRef)
            self.stats.update { $0.tokenRefreshes += 1 }
        }
    }

    private func expireReplies(now: ContinuousClock.Instant) {
        let late = self.pending.filter { $0.value.sentAt.duration(to: now) > Self.replyTimeout }
        for (ref, entry) in late {
            self.pending[ref] = nil
            self.stats.unexpected("no reply within \(Self.replyTimeout)", "\(self.name): \(entry)")
        }
    }

    /// Sorts one server frame into the counters.
    func handle(_ frame: Value) {
        guard let event = frame["event"]?.stringValue, let topic = frame["topic"]?.stringValue else { return }
        let payload = frame["payload"] ?? .null
        switch event {
        case "broadcast":
            guard var subscription = self.subscriptions[topic] else { return }
            if let seq = payload["meta"]?["seq"]?.int64Value {
                let inOrder = subscription.tracker.receive(seq: seq)
                self.stats.update { $0.delivered += 1 }
                if !inOrder {
                    self.stats.unexpected("replayable message out of sequence", "\(self.name) \(topic): seq \(seq)")
                }
                self.subscriptions[topic] = subscription
            } else if subscription.channelIndex != nil, payload["event"]?.stringValue == SoakBench.event {
                self.stats.unexpected("replayable message without meta.seq", "\(self.name) \(topic)")
            }
        case "phx_reply":
            guard let ref = frame["ref"]?.stringValue, let entry = self.pending.removeValue(forKey: ref) else { return }
            let ok = payload["status"]?.stringValue == "ok"
            switch entry {
            case .publish(let channelIndex, _):
                if ok {
                    self.stats.update { $0.acceptedPerChannel[channelIndex] += 1 }
                } else {
                    self.stats.update { $0.refused += 1 }
                    self.stats.unexpected("publish refused", "\(self.name) \(topic): \(Self.reason(payload))")
                }
            case .presence:
                if !ok { self.stats.unexpected("presence update refused", "\(self.name) \(topic): \(Self.reason(payload))") }
            case .leave(let left, _):
                if ok {
                    self.end(topic: left)
                    self.stats.update { $0.leaves += 1 }
                } else {
                    self.stats.unexpected("leave refused", "\(self.name) \(left): \(Self.reason(payload))")
                }
            case .heartbeat:
                if !ok { self.stats.unexpected("heartbeat refused", "\(self.name): \(Self.reason(payload))") }
            }
        case "phx_close":
            if let subscription = self.subscriptions[topic], !subscription.leaving {
                self.stats.unexpected("channel closed by the server", "\(self.name) \(topic): \(JSON.describe(payload))")
                self.end(topic: topic)
            }
        case "phx_error":
            self.stats.unexpected("channel error", "\(self.name) \(topic): \(JSON.describe(payload))")
        case "system":
            if payload["status"]?.stringValue == "error" {
                self.stats.unexpected("system error", "\(self.name) \(topic): \(payload["message"]?.stringValue ?? "")")
            }
        default:
            break
        }
    }

    /// Ends the subscription to `topic` (its counts go into the run's).
    private func end(topic: String) {
        guard let subscription = self.subscriptions.removeValue(forKey: topic) else { return }
        self.account(subscription, finalSeq: nil)
    }

    private func account(_ subscription: Subscription, finalSeq: Int64?) {
        let tracker = subscription.tracker
        self.stats.update { state in
            state.subscriptions += 1
            state.received += tracker.received
            state.repeated += tracker.repeated
            state.skipped += tracker.skipped
            if let finalSeq, let last = tracker.lastSeq {
                state.tailChecked += 1
                state.tailLost += max(0, finalSeq - last)
            }
        }
    }

    /// Whether every replay subscription has reached its channel's final seq.
    func reached(_ finalSeq: [Int64]) -> Bool {
        self.subscriptions.values.allSatisfy { subscription in
            guard let index = subscription.channelIndex, index < finalSeq.count else { return true }
            return (subscription.tracker.lastSeq ?? 0) >= finalSeq[index]
        }
    }

    /// Ends every subscription (with a tail check against `finalSeq` when given) and closes the connection.
    func finish(finalSeq: [Int64]?) async {
        for (topic, subscription) in self.subscriptions {
            let final = subscription.channelIndex.flatMap { index in finalSeq.flatMap { index < $0.count ? $0[index] : nil } }
            self.account(subscription, finalSeq: final)
            self.subscriptions[topic] = nil
        }
        self.closedByUs = true
        await self.session.close()
        self.markClosed()
    }

    private func markClosed() {
        guard !self.isClosed else { return }
        self.isClosed = true
        self.stats.update { $0.openConnections -= 1 }
        for (topic, subscription) in self.subscriptions {
            self.account(subscription, finalSeq: nil)
            self.subscriptions[topic] = nil
        }
    }

    static func reason(_ payload: Value) -> String {
        payload["response"]?["reason"]?.stringValue ?? JSON.describe(payload)
    }
}

extension JSON {
    /// `value` as compact JSON, cut at 300 characters.
    static func describe(_ value: Value) -> String {
        let text = JSON.string(value)
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }
}
