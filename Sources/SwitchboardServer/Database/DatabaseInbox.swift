import Logging
import Synchronization
import NIOCore
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardWire

/// Publishes the rows that database transactions committed to `realtime.messages`, in commit
/// order, through the same path as WebSocket and REST messages (`RealtimeContext.admit`: event
/// catalog, transform, batching, history, `on_publish`, metrics). Each keeps its row id as
/// `meta.id`. Who receives one is the channel's join rule, as for any message; Supabase's
/// `private` flag is not consulted (Switchboard has one channel per name, and its rules decide).
///
/// A row that cannot be published (a bad channel name, an event the rules refuse, fields that
/// fail, a payload over the limit) is logged with its id and reason and counted in
/// `switchboard_database_messages_total{result="refused"}`; the rows after it go on.
struct DatabaseInbox: Sendable {
    let shared: RealtimeContext

    /// Who a database message is from, for hooks (`transform`, `on_publish`) that read `user`.
    static let identity = Identity(subject: "database", role: "service_role", expiresAt: .infinity)

    /// Publishes the messages in order and returns once every replayable one among them is in
    /// the database's history (or its write failed): the reader advances its slot only then, so
    /// a crash in between reads them again rather than losing them (their ids make the repeat
    /// harmless: the restored history remembers them). Returns false when some history write
    /// failed (the store keeps those records and writes them once the database answers): the
    /// reader then ends its session without moving the slot past them.
    func publish(_ messages: [DatabaseMessage]) async -> Bool {
        let waiting = Outstanding()
        for message in messages {
            waiting.add()
            let outcome = publish(message) { stored in waiting.done(stored: stored) }
            if outcome != .published { waiting.done(stored: true) }
            switch outcome {
            case .published: shared.metrics.databasePublished.increment()
            case .ignored: shared.metrics.databaseIgnored.increment()
            case .refused(let reason):
                shared.metrics.databaseRefused.increment()
                shared.logger.warning(
                    "a realtime.messages row was not published",
                    metadata: ["id": "\(message.id)", "topic": "\(message.topic)", "event": "\(message.event ?? "")", "reason": "\(reason)"])
            }
        }
        return await waiting.wait()
    }

    enum Outcome: Equatable {
        case published
        /// Not a broadcast (Supabase's other `extension`s, e.g. presence).
        case ignored
        case refused(String)
    }

    func publish(_ message: DatabaseMessage, stored: @escaping @Sendable (Bool) -> Void = { _ in }) -> Outcome {
        guard message.extension == "broadcast" else { return .ignored }
        shared.metrics.messagesIn.increment()
        shared.metrics.totals.received()
        if let problem = message.problem { return .refused(problem) }
        guard let event = message.event, !event.isEmpty else { return .refused("the row has no event") }
        let channel: ChannelName
        do {
            channel = try ChannelName(validating: message.topic)
        } catch {
            return .refused("bad topic: \(error.description)")
        }
        guard let payload = message.payload, payload.objectValue != nil else {
            return .refused("the payload must be a JSON object")
        }
        var bytes = ByteBufferAllocator().buffer(capacity: 256)
        JSON.serialize(payload, into: &bytes)
        let limit = shared.configuration.maxPayloadBytes
        guard bytes.readableBytes <= limit else {
            return .refused("the payload is \(bytes.readableBytes) bytes; at most \(limit) are allowed")
        }
        // One decision, from one rules generation: the catalog's checks (no hook: the database is
        // trusted), the event's policy, history.
        let decision = shared.decide(
            Self.identity, channel: channel, event: event, payload: payload, source: .database, sizeOver: PushDecision.size(bytes.readableBytes))
        if case .deny(let why) = decision.verdict { return .refused(why) }
        if let refusal = shared.admit(
            event: event, payload: payload, clientID: message.id, channel: channel, topic: "realtime:\(channel)",
            identity: Self.identity, sender: nil, loop: shared.hub.loops[0], decision: decision, limited: false, acknowledge: stored)
        {
            return .refused(refusal.reason)
        }
        return .published
    }
}

/// Counts messages whose storing is still on its way, remembers whether one failed, and wakes
/// one waiter when none is outstanding.
private final class Outstanding: Sendable {
    private struct State {
        var count = 0
        var allStored = true
        var waiter: CheckedContinuation<Void, Never>?
        var cancelled = false
    }

    private let state = Mutex(State())

    func add() { state.withLock { $0.count += 1 } }

    func done(stored: Bool) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.count -= 1
            if !stored { state.allStored = false }
            guard state.count == 0, let waiter = state.waiter else { return nil }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns when none is outstanding (whether all were stored), or false at once when the
    /// task is cancelled (shutdown).
    func wait() async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.count == 0 || state.cancelled { return true }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                state.cancelled = true
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
        return state.withLock { $0.allStored && $0.count == 0 }
    }
}
