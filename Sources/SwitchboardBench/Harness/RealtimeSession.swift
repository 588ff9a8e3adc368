import SwitchboardCore
import SwitchboardWire
import Synchronization

/// One Realtime (vsn 1.0.0) connection driven from a single task, for the benches that read
/// what the server says rather than only time it (replay, soak): push frames with refs, wait
/// for a reply, take every other frame decoded, in order.
final class RealtimeSession: Sendable {
    /// A decoded server frame, or the end of the connection.
    enum Frame: Sendable {
        case message(Value)
        case closed(code: Int?, reason: String)
    }

    let client: WebSocketClient
    private let refs = Mutex(0)

    private init(client: WebSocketClient) {
        self.client = client
    }

    /// Connects to `target` (loopback only).
    static func connect(_ target: BenchTarget, timeout: Duration = .seconds(10)) async throws -> RealtimeSession {
        try BenchTarget.validateLoopback(target.host)
        let client = try await WebSocketClient.connect(host: target.host, port: target.port, path: target.uri, timeout: timeout)
        return RealtimeSession(client: client)
    }

    /// A ref not used before on this connection.
    func nextRef() -> String {
        self.refs.withLock { ref in
            ref += 1
            return String(ref)
        }
    }

    /// Sends one frame.
    func push(_ topic: String, _ event: String, _ payload: Value, ref: String?, joinRef: String?) async throws {
        let frame: Value = [
            "topic": .string(topic), "event": .string(event), "payload": payload, "ref": ref.map(Value.string) ?? .null,
            "join_ref": joinRef.map(Value.string) ?? .null,
        ]
        try await self.client.send(text: JSON.string(frame))
    }

    /// Sends a heartbeat on the `phoenix` topic (its reply comes like any other frame).
    func heartbeat() async throws {
        try await self.push("phoenix", "heartbeat", .object(.init()), ref: self.nextRef(), joinRef: nil)
    }

    /// The next frame before `deadline`, or nil when none came by then.
    func receive(before deadline: ContinuousClock.Instant) async throws -> Frame? {
        let remaining = ContinuousClock.now.duration(to: deadline)
        guard remaining > .zero else { return nil }
        let message: WebSocketClient.Message
        do {
            message = try await self.client.receive(timeout: remaining)
        } catch WebSocketClientError.timeout {
            return nil
        }
        switch message {
        case .text(let text):
            return .message(try JSON.parse(Array(text.utf8)))
        case .binary:
            return .message(.object(.init()))
        case .closed(let code, let reason):
            return .closed(code: code, reason: reason)
        }
    }

    /// The payload of the reply to `ref` within `timeout`; every other frame goes to `other`.
    func reply(to ref: String, timeout: Duration = .seconds(30), other: (Value) -> Void = { _ in }) async throws -> Value {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            switch try await self.receive(before: deadline) {
            case nil:
                throw BenchError(.timedOut, "no reply to ref \(ref) within \(timeout)")
            case .closed(let code, let reason):
                throw BenchError(.connectionClosed, "the server closed the connection (code \(code.map(String.init) ?? "none")): \(reason)")
            case .message(let frame):
                if frame["event"]?.stringValue == "phx_reply", frame["ref"]?.stringValue == ref { return frame["payload"] ?? .null }
                other(frame)
            }
        }
    }

    /// Closes the connection (close handshake, bounded).
    func close() async {
        await self.client.close()
    }
}
