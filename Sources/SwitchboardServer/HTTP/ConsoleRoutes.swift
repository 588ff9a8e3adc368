import Foundation
import Hummingbird
import NIOCore
import Synchronization
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardRules
import SwitchboardWire

/// The operator console: `GET /console` (static files embedded in the binary: HTML, CSS and
/// JavaScript, no build step, nothing fetched from elsewhere) and its live feed, `GET
/// /admin/feed` (Server-Sent Events, admin tokens only).
///
/// The feed sends a `snapshot` event once a second — traffic totals, the busiest channels and
/// their scopes, the rules in force and the last reload's errors, the cluster's nodes, and with
/// `?channel=NAME` that channel's subscribers and presences — and, with `channel`, a `message`
/// event for each message published on it (a tap on the hub: at most 50 a second reach the
/// page, the rest are counted as skipped). EventSource cannot send headers, so the token may
/// come as `?apikey=`.
struct ConsoleRoutes {
    let shared: RealtimeContext
    let rest: RESTRoutes
    let cluster: ClusterNode?

    /// Channels listed in a snapshot, at most (the busiest).
    static let channelsListed = 200

    func register(on router: Router<BasicRequestContext>) {
        router.get("/console") { _, _ in Self.file(PackageResources.index_html, type: "text/html; charset=utf-8") }
        router.get("/console/console.js") { _, _ in Self.file(PackageResources.console_js, type: "text/javascript; charset=utf-8") }
        router.get("/console/console.css") { _, _ in Self.file(PackageResources.console_css, type: "text/css; charset=utf-8") }
        router.get("/admin/feed") { request, _ in await feed(request) }
    }

    private static func file(_ bytes: [UInt8], type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        headers[.init("X-Content-Type-Options")!] = "nosniff"
        // Only this server's own files run: nothing inline, nothing from elsewhere.
        headers[.init("Content-Security-Policy")!] =
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    private func feed(_ request: Request) async -> Response {
        var identity = await rest.authenticate(request)
        if identity == nil, let key = request.uri.queryParameters.get("apikey") {
            identity = await rest.authenticate(token: String(key))
        }
        if let refusal = AdminRoutes(shared: shared, rest: rest, cluster: cluster).refuseUnlessAdmin(identity) { return refusal }
        let channel = request.uri.queryParameters.get("channel").map { String($0) }.flatMap { $0.isEmpty ? nil : $0 }
        if let channel, (try? ChannelName(validating: channel)) == nil {
            return RESTRoutes.json(.badRequest, ["message": .string("\(channel) is not a valid channel name")])
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let body = ResponseBody { [shared, cluster] writer in
            try await Self.stream(channel: channel, shared: shared, cluster: cluster, to: &writer)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    private enum FeedEvent: Sendable {
        case tick
        case message(ByteBuffer)
    }

    /// Writes the feed until the client goes away or the server shuts down.
    private static func stream(channel: String?, shared: RealtimeContext, cluster: ClusterNode?, to writer: inout any ResponseBodyWriter)
        async throws
    {
        let (events, sink) = AsyncStream.makeStream(of: FeedEvent.self, bufferingPolicy: .bufferingNewest(512))
        let feed = shared.hub.openFeed { sink.finish() }
        let topic = channel.map { "realtime:\($0)" }
        let tap = topic.map { shared.hub.tap($0) }
        let ticker = Task {
            while !Task.isCancelled {
                sink.yield(.tick)
                try? await Task.sleep(for: .seconds(1))
            }
        }
        let tail = Task {
            guard let tap else { return }
            for await frame in tap.stream { sink.yield(.message(frame)) }
        }
        defer {
            ticker.cancel()
            tail.cancel()
            if let topic, let tap { shared.hub.untap(topic, id: tap.id) }
            shared.hub.closeFeed(feed)
            sink.finish()
        }
        try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
        for await event in events {
            switch event {
            case .tick:
                let skipped = topic.flatMap { topic in tap.map { shared.hub.tapSkipped(topic, id: $0.id) } } ?? 0
                let snapshot = await Self.snapshot(channel: channel, skipped: skipped, shared: shared, cluster: cluster)
                try await writer.write(ByteBuffer(string: "event: snapshot\ndata: \(JSON.string(snapshot))\n\n"))
            case .message(let frame):
                // The hub's tap passes at most 50 a second and counts the rest.
                guard let channel, let message = Self.tailMessage(frame, channel: channel, now: shared.configuration.clock.wallClockMilliseconds())
                else { continue }
                try await writer.write(ByteBuffer(string: "event: message\ndata: \(JSON.string(message))\n\n"))
            }
        }
        try await writer.finish(nil)
    }

    /// A published frame (vsn 1 JSON inside its WebSocket header) as the console shows it.
    static func tailMessage(_ frame: ByteBuffer, channel: String, now: Int64) -> Value? {
        var frame = frame
        guard frame.readableBytes >= 2, let first = frame.getInteger(at: frame.readerIndex + 1, as: UInt8.self) else { return nil }
        let header = switch first & 0x7f {
        case 126: 4
        case 127: 10
        default: 2
        }
        frame.moveReaderIndex(forwardBy: min(header, frame.readableBytes))
        guard let parsed = try? JSON.parse(frame) else { return nil }
        let payload = parsed["payload"] ?? .null
        let event = parsed["event"]?.stringValue == "broadcast" ? payload["event"] ?? .null : parsed["event"] ?? .null
        let body = parsed["event"]?.stringValue == "broadcast" ? payload["payload"] ?? .null : payload
        return [
            "channel": .string(channel), "time": .int(now), "event": event, "payload": body,
            "meta": parsed["event"]?.stringValue == "broadcast" ? payload["meta"] ?? .null : .null,
        ]
    }

    private static func snapshot(channel: String?, skipped: Int, shared: RealtimeContext, cluster: ClusterNode?) async -> Value {
        let totals = shared.metrics.totals.current
        let subscribers = await shared.hub.subscriberCounts()
        let rates = shared.activity.messagesPerMinute(now: shared.configuration.clock.monotonicSeconds())
        let topics = Set(subscribers.keys).union(rates.keys)
        let rows = topics.map { topic in
            (channel: String(topic.dropFirst("realtime:".count)), subscribers: subscribers[topic] ?? 0, messages: rates[topic] ?? 0,
             presences: shared.presence.count(topic: topic))
        }
        var scopes: [String: (channels: Int, subscribers: Int, presences: Int, messages: Int)] = [:]
        for row in rows {
            let scope = row.channel.split(separator: ":", maxSplits: 1).first.map(String.init) ?? row.channel
            let sum = scopes[scope] ?? (0, 0, 0, 0)
            scopes[scope] = (sum.channels + 1, sum.subscribers + row.subscribers, sum.presences + row.presences, sum.messages + row.messages)
        }
        let busiest = rows.sorted { ($0.subscribers, $0.messages, $1.channel) > ($1.subscribers, $1.messages, $0.channel) }
            .prefix(Self.channelsListed)
        let history = shared.log.usage()
        var object: Value.Object = [
            "time": .int(shared.configuration.clock.wallClockMilliseconds()),
            "node": cluster.map { .string($0.name) } ?? .null,
            "connections": .int(await shared.hub.connectionCount()),
            "joins_total": .int(totals.joins), "messages_in_total": .int(totals.messagesIn), "messages_out_total": .int(totals.messagesOut),
            "total_channels": .int(topics.count),
            "channels": .array(
                busiest.map { row in
                    [
                        "channel": .string(row.channel), "subscribers": .int(row.subscribers), "presences": .int(row.presences),
                        "messages_per_minute": .int(row.messages),
                    ]
                }),
            "scopes": .array(
                scopes.sorted { $0.key < $1.key }.map { scope, sum in
                    [
                        "scope": .string(scope), "channels": .int(sum.channels), "subscribers": .int(sum.subscribers),
                        "presences": .int(sum.presences), "messages_per_minute": .int(sum.messages),
                    ]
                }),
            "history": ["channels": .int(history.channels), "messages": .int(history.messages), "bytes": .int(history.bytes)],
            "rules": shared.rules.map { AdminRoutes.describe($0) } ?? .null,
            "cluster": cluster == nil ? .null : AdminRoutes.describe(cluster),
            "tail_skipped": .int(skipped),
        ]
        if let channel {
            let topic = "realtime:\(channel)"
            object["inspect"] = [
                "channel": .string(channel), "subscribers": .int(subscribers[topic] ?? 0), "presence": shared.presence.state(topic: topic),
            ]
        }
        return .object(object)
    }
}
