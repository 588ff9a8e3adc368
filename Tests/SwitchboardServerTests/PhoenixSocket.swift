import NIOCore
import SwitchboardBench
import SwitchboardCore
import SwitchboardWire
import Testing

/// A raw Phoenix-protocol client over a real WebSocket, for the integration tests.
struct PhoenixSocket {
    /// One server frame, decoded from either protocol version.
    struct Frame: CustomStringConvertible {
        let joinRef: String?
        let ref: String?
        let topic: String
        let event: String
        let payload: Value

        var status: String? { payload["status"]?.stringValue }
        var reason: String? { payload["response"]?["reason"]?.stringValue }
        var description: String { "\(topic) \(event) ref=\(ref ?? "nil") \(JSON.string(payload))" }
    }

    let client: WebSocketClient
    let version: ProtocolVersion

    /// How long a wait for an expected frame lasts by default: generous, since CI shares two
    /// cores with everything else (a test waiting this long has failed; one that passes never
    /// waits it out, and no test waits for a frame that must not come).
    static let patience = Duration.seconds(30)

    static let defaultConfig: Value = [
        "broadcast": ["self": false, "ack": false], "presence": ["key": "", "enabled": false], "private": false,
    ]

    static func connect(
        _ server: TestServer, token: String?, version: ProtocolVersion = .v1, path: String = "/socket/websocket",
        headers: [(String, String)] = []
    ) async throws -> PhoenixSocket {
        var query = "vsn=\(version.rawValue)"
        if let token { query += "&apikey=\(token)" }
        let client = try await WebSocketClient.connect(
            host: "127.0.0.1", port: server.port, path: "\(path)?\(query)", headers: headers)
        return PhoenixSocket(client: client, version: version)
    }

    func push(_ topic: String, _ event: String, _ payload: Value, ref: String?, joinRef: String? = nil) async throws {
        let text: String
        switch version {
        case .v1:
            text = JSON.string([
                "topic": .string(topic), "event": .string(event), "payload": payload, "ref": ref.map(Value.string) ?? .null,
                "join_ref": joinRef.map(Value.string) ?? .null,
            ])
        case .v2:
            text = JSON.string([
                joinRef.map(Value.string) ?? .null, ref.map(Value.string) ?? .null, .string(topic), .string(event), payload,
            ])
        }
        try await client.send(text: text)
    }

    /// Joins `realtime:<channel>` and returns the reply.
    @discardableResult
    func join(_ channel: String, ref: String, config: Value = defaultConfig, accessToken: String? = nil) async throws -> Frame {
        var payload: Value.Object = ["config": config]
        if let accessToken { payload["access_token"] = .string(accessToken) }
        try await push("realtime:\(channel)", "phx_join", .object(payload), ref: ref, joinRef: ref)
        return try await reply(to: ref)
    }

    func broadcast(_ channel: String, event: String, payload: Value, ref: String? = nil, joinRef: String? = nil) async throws {
        try await push(
            "realtime:\(channel)", "broadcast", ["type": "broadcast", "event": .string(event), "payload": payload], ref: ref,
            joinRef: joinRef)
    }

    /// The next text frame, decoded.
    func next(timeout: Duration = Self.patience) async throws -> Frame {
        while true {
            switch try await client.receive(timeout: timeout) {
            case .text(let text):
                return try Self.decode(text)
            case .binary:
                continue
            case .closed(let code, let reason):
                throw SocketClosed(code: code, reason: reason)
            }
        }
    }

    /// Skips frames until one matches, within the deadline.
    func next(timeout: Duration = Self.patience, where matches: (Frame) -> Bool) async throws -> Frame {
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw WebSocketClientError.timeout }
            let frame = try await next(timeout: left)
            if matches(frame) { return frame }
        }
    }

    func reply(to ref: String, timeout: Duration = Self.patience) async throws -> Frame {
        try await next(timeout: timeout) { $0.event == "phx_reply" && $0.ref == ref }
    }

    func event(_ event: String, on topic: String? = nil, timeout: Duration = Self.patience) async throws -> Frame {
        try await next(timeout: timeout) { $0.event == event && (topic == nil || $0.topic == topic) }
    }

    /// A user broadcast with the given user event name.
    func broadcastEvent(_ name: String, timeout: Duration = Self.patience) async throws -> Frame {
        try await next(timeout: timeout) { $0.event == "broadcast" && $0.payload["event"]?.stringValue == name }
    }

    /// Waits for the server to close the socket and returns the close code.
    func closed(timeout: Duration = Self.patience) async throws -> (code: Int?, reason: String) {
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw WebSocketClientError.timeout }
            if case .closed(let code, let reason) = try await client.receive(timeout: left) { return (code, reason) }
        }
    }

    /// A heartbeat round trip: proves the connection is alive and serving.
    func heartbeat(ref: String = "hb") async throws {
        try await push("phoenix", "heartbeat", .object(.init()), ref: ref)
        let reply = try await reply(to: ref)
        #expect(reply.status == "ok")
    }

    func close() async { await client.close() }

    static func decode(_ text: String) throws -> Frame {
        let value = try JSON.parse(Array(text.utf8))
        if let array = value.arrayValue {
            try #require(array.count == 5, "a vsn 2.0.0 frame must have 5 elements: \(text)")
            return Frame(
                joinRef: array[0].stringValue, ref: array[1].stringValue, topic: array[2].stringValue ?? "",
                event: array[3].stringValue ?? "", payload: array[4])
        }
        return Frame(
            joinRef: value["join_ref"]?.stringValue, ref: value["ref"]?.stringValue, topic: value["topic"]?.stringValue ?? "",
            event: value["event"]?.stringValue ?? "", payload: value["payload"] ?? .null)
    }
}

struct SocketClosed: Error {
    let code: Int?
    let reason: String
}
