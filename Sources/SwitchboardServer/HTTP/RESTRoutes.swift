import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import SwitchboardAuth
import SwitchboardCore
import SwitchboardWire

/// The HTTP side: REST broadcast (PROTOCOL.md §8), `/health`, `/metrics`, and plain-HTTP
/// answers on the WebSocket paths that explain why an upgrade was refused.
struct RESTRoutes {
    let shared: RealtimeContext
    /// This server as a node of its database's cluster; nil without a database.
    var cluster: ClusterNode? = nil

    func register(on router: Router<BasicRequestContext>) {
        router.get("/health") { _, _ in
            let connections = await shared.hub.connectionCount()
            var body: Value.Object = ["status": "ok", "connections": .int(connections)]
            if let cluster { body["node"] = .string(cluster.name) }
            // Still 200 while the database is down: local delivery goes on.
            switch shared.database?.current {
            case nil: break
            case .up: body["database"] = "up"
            case .down(let reason):
                body["status"] = "degraded"
                body["database"] = "down"
                body["database_error"] = .string(reason)
            }
            // Relations the rules read from the database: fresh while their tables are watched.
            if let relations = shared.relations, shared.rules?.rules.relations.isEmpty == false {
                switch relations.current {
                case .watching: body["relations"] = "watching"
                case .stale(let since, let reason):
                    body["status"] = "degraded"
                    body["relations"] = "stale"
                    body["relations_stale_since"] = .string(since.formatted(.iso8601))
                    body["relations_error"] = .string(reason)
                }
            }
            return Self.json(.ok, .object(body))
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: shared.metrics.exposition())))
        }
        AdminRoutes(shared: shared, rest: self, cluster: cluster).register(on: router)
        ConsoleRoutes(shared: shared, rest: self, cluster: cluster).register(on: router)
        for path in RealtimeChildChannel.socketPaths {
            router.get(RouterPath(path)) { request, _ in await explainRefusedUpgrade(request) }
        }
        for prefix in ["/api", "/realtime/v1/api"] {
            router.post(RouterPath("\(prefix)/broadcast")) { request, _ in await batch(request) }
            router.post(RouterPath("\(prefix)/broadcast/:topic/events/:event")) { request, context in
                await single(request, topic: Self.decoded(context.parameters.get("topic")), event: Self.decoded(context.parameters.get("event")))
            }
        }
    }

    // MARK: WebSocket paths over plain HTTP

    private func explainRefusedUpgrade(_ request: Request) async -> Response {
        let socket = SocketRequest(uri: request.uri.description, headerToken: request.headers[.xAPIKey])
        switch socket.authenticate(with: shared.verifier, now: shared.configuration.clock.wallClockSeconds()) {
        case .failure(let refusal):
            return Response(
                status: refusal.status, headers: [.contentType: "application/json"], body: .init(byteBuffer: refusal.body))
        case .success:
            return Self.json(.badRequest, ["error": "expected a WebSocket upgrade request (Upgrade: websocket)"])
        }
    }

    // MARK: REST broadcast

    func authenticate(_ request: Request) async -> Identity? {
        var token = request.headers[.authorization].flatMap { header -> String? in
            header.lowercased().hasPrefix("bearer ") ? String(header.dropFirst(7)) : nil
        }
        if token?.isEmpty ?? true { token = request.headers[.apikey] }
        return await authenticate(token: token)
    }

    /// The identity of a token, when it verifies.
    func authenticate(token: String?) async -> Identity? {
        guard let token, !token.isEmpty else { return nil }
        if case .success(let identity) = await shared.verifier.verify(token, now: shared.configuration.clock.wallClockSeconds()) {
            return identity
        }
        return nil
    }

    private var bodyLimit: Int { shared.configuration.maxRESTBatch * (shared.configuration.maxPayloadBytes + 1024) }

    private func batch(_ request: Request) async -> Response {
        guard let identity = await authenticate(request) else {
            shared.metrics.rejected(.badToken)
            return Self.json(.unauthorized, ["message": "Unauthorized"])
        }
        guard isJSON(request) else {
            return Self.json(.unsupportedMediaType, ["message": "Content-Type must be application/json"])
        }
        let body: Value
        do {
            var request = request
            body = try JSON.parse(try await request.collectBody(upTo: bodyLimit))
        } catch let error as WireError {
            return unprocessable("body", error.message)
        } catch {
            return Self.json(.contentTooLarge, ["message": .string("the request body is larger than \(bodyLimit) bytes")])
        }
        guard let messages = body["messages"]?.arrayValue else {
            return unprocessable("messages", "the body must be an object with a \"messages\" list")
        }
        if messages.count > shared.configuration.maxRESTBatch {
            return Self.json(.tooManyRequests, ["message": "Too many messages to broadcast, please reduce the batch size"])
        }
        var prepared: [(ChannelName, String, Value, String?, Int)] = []
        for (index, message) in messages.enumerated() {
            guard let topic = message["topic"]?.stringValue, let event = message["event"]?.stringValue else {
                return unprocessable("messages", "message \(index) needs a string \"topic\" and a string \"event\"")
            }
            let payload = message["payload"] ?? .object(.init())
            guard case .success(let id) = ChannelLog.clientID(in: message) else {
                return unprocessable("messages", "message \(index): id must be a string of 1 to \(ChannelLog.maxClientIDLength) bytes")
            }
            switch validate(topic: topic, payload: payload, identity: identity) {
            case .failure(let reason):
                return unprocessable("messages", "message \(index): \(reason.message)")
            case .success(let (channel, size)):
                prepared.append((channel, event, payload, id, size))
            }
        }
        var limited: [String] = []
        for (channel, event, payload, id, size) in prepared {
            switch publish(channel, event: event, payload: payload, size: size, id: id, identity: identity) {
            case .rateLimited(let reason), .refused(let reason): limited.append(reason)
            case .published, .denied: break
            }
        }
        if let first = limited.first {
            let published = prepared.count - limited.count
            return Self.json(
                .tooManyRequests,
                ["message": .string("\(published) of \(prepared.count) messages were published; \(limited.count) were refused: \(first)")])
        }
        return Response(status: .accepted)
    }

    private func single(_ request: Request, topic: String, event: String) async -> Response {
        guard let identity = await authenticate(request) else {
            shared.metrics.rejected(.badToken)
            return Self.json(.unauthorized, ["message": "Unauthorized"])
        }
        let payload: Value
        do {
            var request = request
            let bytes = try await request.collectBody(upTo: shared.configuration.maxPayloadBytes * 2)
            if isJSON(request) {
                payload = try JSON.parse(bytes)
            } else {
                return Self.json(.unsupportedMediaType, ["message": "Content-Type must be application/json"])
            }
        } catch let error as WireError {
            return unprocessable("payload", error.message)
        } catch {
            return unprocessable("payload", "the payload is larger than \(shared.configuration.maxPayloadBytes) bytes")
        }
        let id = request.uri.queryParameters.get("id")
        if let id, !(1...ChannelLog.maxClientIDLength).contains(id.utf8.count) {
            return unprocessable("id", "id must be 1 to \(ChannelLog.maxClientIDLength) bytes")
        }
        switch validate(topic: topic, payload: payload, identity: identity) {
        case .failure(let reason):
            return unprocessable("payload", reason.message)
        case .success(let (channel, size)):
            switch publish(channel, event: event, payload: payload, size: size, id: id, identity: identity) {
            case .rateLimited(let reason): return Self.json(.tooManyRequests, ["message": .string(reason)])
            case .refused(let reason): return unprocessable("payload", reason)
            case .published, .denied: return Response(status: .accepted)
            }
        }
    }

    /// The channel and the payload's exact size. The size is checked here against the tier's
    /// limit too, so that one oversized message refuses a whole batch before any of it is
    /// published; the decision checks it again, with the rest, from one rules generation.
    private func validate(topic: String, payload: Value, identity: Identity) -> Result<(channel: ChannelName, size: Int), InputError> {
        let channel: ChannelName
        do {
            channel = try ChannelName(validating: topic)
        } catch {
            return .failure(InputError(error.description))
        }
        var bytes = ByteBufferAllocator().buffer(capacity: 0)
        JSON.serialize(payload, into: &bytes)
        let limit = shared.limits(for: identity).maxPayloadBytes
        if bytes.readableBytes > limit {
            shared.metrics.rejected(.payloadTooLarge)
            return .failure(Self.tooLarge(bytes.readableBytes, limit: limit))
        }
        return .success((channel, bytes.readableBytes))
    }

    private static func tooLarge(_ bytes: Int, limit: Int) -> InputError {
        InputError("the payload is \(bytes) bytes; at most \(limit) are allowed")
    }

    enum PublishOutcome {
        case published, denied
        case rateLimited(String)
        /// The rules' `transform` refused it.
        case refused(String)
    }

    /// Publishes when the rules allow and the channel's budget has room; like Supabase, a
    /// denied message is skipped silently (and counted in
    /// `switchboard_rejected_total{reason="unauthorized"}`); a rate-limited one is reported.
    @discardableResult
    private func publish(_ channel: ChannelName, event: String, payload: Value, size: Int, id: String?, identity: Identity) -> PublishOutcome {
        shared.metrics.messagesIn.increment()
        shared.metrics.totals.received()
        // One decision, from one rules generation: size, permission, the event's policy, history.
        let decision = shared.decide(identity, channel: channel, event: event, payload: payload, sizeOver: PushDecision.size(size))
        switch decision.verdict {
        case .allow: break
        case .tooLarge(let bytes, let limit):
            shared.metrics.rejected(.payloadTooLarge)
            return .refused(Self.tooLarge(bytes, limit: limit).message)
        case .deny:
            shared.metrics.rejected(.unauthorized)
            return .denied
        }
        let topic = "realtime:\(channel)"
        if let refusal = shared.admit(
            event: event, payload: payload, clientID: id, channel: channel, topic: topic, identity: identity, sender: nil,
            loop: shared.hub.loops[0], decision: decision)
        {
            return refusal.isRateLimit ? .rateLimited(refusal.reason) : .refused(refusal.reason)
        }
        return .published
    }

    private func isJSON(_ request: Request) -> Bool {
        guard let type = request.headers[.contentType]?.lowercased() else { return false }
        return type.hasPrefix("application/json")
    }

    private func unprocessable(_ field: String, _ message: String) -> Response {
        Self.json(.unprocessableContent, ["errors": [field: [.string(message)]]])
    }

    /// A path parameter with its percent-escapes decoded (Python's client escapes `:` in topics).
    static func decoded(_ parameter: String?) -> String {
        guard let parameter else { return "" }
        return parameter.removingPercentEncoding ?? parameter
    }

    static func json(_ status: HTTPResponse.Status, _ body: Value) -> Response {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        JSON.serialize(body, into: &buffer)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
    }
}

/// Why a piece of client input (a REST body, a push's meta, a join's replay config) was refused.
struct InputError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

extension HTTPField.Name {
    // Literal, valid header names: the initializer only fails on invalid characters.
    static let xAPIKey = HTTPField.Name("x-api-key")!
    static let apikey = HTTPField.Name("apikey")!
}
