import Foundation
import NIOHTTP1
import Testing

/// REST broadcast, /health and /metrics over real HTTP.
@Suite struct HTTPTests {
    struct Reply {
        let status: Int
        let body: String
    }

    static func request(
        _ server: TestServer, _ method: String, _ path: String, token: String? = nil, contentType: String? = "application/json",
        body: String? = nil
    ) async throws -> Reply {
        var headers: [(String, String)] = []
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        if let contentType { headers.append(("Content-Type", contentType)) }
        let response = try await LoopbackHTTP.request(
            port: server.port, method: HTTPMethod(rawValue: method), path: path, headers: headers, body: body)
        return Reply(status: response.status, body: response.body)
    }

    @Test func healthAnswers() async throws {
        try await withServer { server in
            let reply = try await Self.request(server, "GET", "/health")
            #expect(reply.status == 200)
            #expect(reply.body.contains("\"status\":\"ok\""))
        }
    }

    @Test func metricsAreLabelledByScopeNotChannel() async throws {
        try await withServer { server in
            let admin = try await server.token(role: "admin")
            let body = #"{"messages":[{"topic":"collaboration:s1:c1","event":"e","payload":{}}]}"#
            #expect(try await Self.request(server, "POST", "/api/broadcast", token: admin, body: body).status == 202)
            let reply = try await Self.request(server, "GET", "/metrics")
            #expect(reply.status == 200)
            for series in [
                "switchboard_connections", "switchboard_joins_total", "switchboard_messages_in_total 1",
                "switchboard_messages_out_total", #"switchboard_subscriptions{scope="collaboration"}"#,
                #"switchboard_rejected_total{reason="unauthorized"}"#,
            ] {
                #expect(reply.body.contains(series), "missing \(series)")
            }
            #expect(!reply.body.contains("s1"), "a channel id leaked into a metric label")
        }
    }

    @Test func restRefusesBadTokens() async throws {
        try await withServer { server in
            let body = #"{"messages":[]}"#
            let none = try await Self.request(server, "POST", "/api/broadcast", body: body)
            #expect(none.status == 401)
            #expect(none.body == #"{"message":"Unauthorized"}"#)
            let forged = try await Self.request(server, "POST", "/realtime/v1/api/broadcast", token: "a.b.c", body: body)
            #expect(forged.status == 401)
        }
    }

    @Test func restChecksContentTypeBodyAndBatchSize() async throws {
        try await withServer { server in
            let admin = try await server.token(role: "admin")
            let text = try await Self.request(server, "POST", "/api/broadcast", token: admin, contentType: "text/plain", body: "hi")
            #expect(text.status == 415)
            let malformed = try await Self.request(server, "POST", "/api/broadcast", token: admin, body: "{nope")
            #expect(malformed.status == 422)
            #expect(malformed.body.contains("malformed JSON"))
            let badTopic = #"{"messages":[{"topic":"has space","event":"e","payload":{}}]}"#
            let invalid = try await Self.request(server, "POST", "/api/broadcast", token: admin, body: badTopic)
            #expect(invalid.status == 422)
            #expect(invalid.body.contains("message 0"))
            let many = "{\"messages\":[" + Array(repeating: #"{"topic":"public:directory","event":"e","payload":{}}"#, count: 101).joined(separator: ",") + "]}"
            let tooMany = try await Self.request(server, "POST", "/api/broadcast", token: admin, body: many)
            #expect(tooMany.status == 429)
            #expect(tooMany.body.contains("reduce the batch size"))
            let big = "{\"messages\":[{\"topic\":\"public:directory\",\"event\":\"e\",\"payload\":{\"x\":\"" + String(repeating: "a", count: 70_000) + "\"}}]}"
            let oversize = try await Self.request(server, "POST", "/api/broadcast", token: admin, body: big)
            #expect(oversize.status == 422)
            #expect(oversize.body.contains("at most 65536"))
        }
    }

    @Test func singleEventEndpointAccepts() async throws {
        try await withServer { server in
            let admin = try await server.token(role: "admin")
            let reply = try await Self.request(
                server, "POST", "/api/broadcast/collaboration%3As1%3Ac1/events/saved", token: admin, body: #"{"id":1}"#)
            #expect(reply.status == 202)
        }
    }

    @Test func refusedUpgradesExplainThemselves() async throws {
        try await withServer { server in
            let missing = try await Self.request(server, "GET", "/socket/websocket", contentType: nil)
            #expect(missing.status == 401)
            #expect(missing.body == #"{"error":"API key is missing"}"#)
            let bad = try await Self.request(server, "GET", "/realtime/v1/websocket?apikey=abc", contentType: nil)
            #expect(bad.status == 401)
            #expect(bad.body == #"{"error":"The token provided is not a valid JWT"}"#)
            let version = try await Self.request(server, "GET", "/socket/websocket?vsn=3.0.0&apikey=x", contentType: nil)
            #expect(version.status == 400)
        }
    }
}
