import Foundation
import SwitchboardAuth
import SwitchboardBench
import SwitchboardCore
import SwitchboardWire
import Testing

/// The bad-input table: each gets a clear error reply or close, and the server keeps serving.
@Suite struct BadInputTests {
    /// Frames a client may send that must be answered with an error reply on the same socket,
    /// which then stays usable.
    struct BadFrame: CustomTestStringConvertible, Sendable {
        let name: String
        let text: String
        /// The topic and ref the error reply must carry.
        let replyTopic: String
        let replyRef: String?
        let reasonContains: String
        var testDescription: String { name }
    }

    static let frames: [BadFrame] = [
        BadFrame(name: "malformed JSON", text: #"{"topic":"realtime:x","event":"#, replyTopic: "phoenix", replyRef: nil, reasonContains: "malformed JSON"),
        BadFrame(name: "a JSON array in vsn 1", text: #"["1","1","realtime:x","phx_join",{}]"#, replyTopic: "phoenix", replyRef: nil, reasonContains: "object"),
        BadFrame(name: "missing payload", text: #"{"topic":"realtime:x","event":"phx_join","ref":"7"}"#, replyTopic: "realtime:x", replyRef: "7", reasonContains: "payload"),
        BadFrame(name: "missing topic", text: #"{"event":"phx_join","payload":{},"ref":"7"}"#, replyTopic: "phoenix", replyRef: "7", reasonContains: "topic"),
        BadFrame(name: "event of the wrong type", text: #"{"topic":"realtime:x","event":42,"payload":{},"ref":"7"}"#, replyTopic: "realtime:x", replyRef: "7", reasonContains: "event"),
        BadFrame(name: "payload of the wrong type", text: #"{"topic":"realtime:x","event":"broadcast","payload":"hi","ref":"7"}"#, replyTopic: "realtime:x", replyRef: "7", reasonContains: "payload"),
        BadFrame(name: "push to an unjoined topic", text: #"{"topic":"realtime:collaboration:s1:c1","event":"broadcast","payload":{"type":"broadcast","event":"e","payload":{}},"ref":"7"}"#, replyTopic: "realtime:collaboration:s1:c1", replyRef: "7", reasonContains: "unmatched topic"),
        BadFrame(name: "unknown event on a joined topic", text: #"{"topic":"realtime:supplier:dashboard:s1","event":"launch_rockets","payload":{},"ref":"7","join_ref":"1"}"#, replyTopic: "realtime:supplier:dashboard:s1", replyRef: "7", reasonContains: "UnknownEvent: launch_rockets"),
        BadFrame(name: "a 10,000-character topic", text: #"{"topic":"realtime:"# + String(repeating: "a", count: 10_000) + #"","event":"phx_join","payload":{},"ref":"7"}"#, replyTopic: "realtime:" + String(repeating: "a", count: 10_000), replyRef: "7", reasonContains: "InvalidTopicName: the channel name is 10000 bytes long; at most 255"),
        BadFrame(name: "unknown event on phoenix", text: #"{"topic":"phoenix","event":"reboot","payload":{},"ref":"7"}"#, replyTopic: "phoenix", replyRef: "7", reasonContains: "only accepts heartbeat"),
    ]

    @Test(arguments: frames)
    func badFrameGetsAClearErrorAndTheSocketSurvives(_ bad: BadFrame) async throws {
        try await withServer { server in
            let token = try await server.token(supplierID: "s1")
            let socket = try await PhoenixSocket.connect(server, token: token)
            try await socket.join("supplier:dashboard:s1", ref: "1")
            try await socket.client.send(text: bad.text)
            let reply = try await socket.next { $0.event == "phx_reply" }
            #expect(reply.topic == bad.replyTopic)
            #expect(reply.ref == bad.replyRef)
            #expect(reply.status == "error")
            let reason = try #require(reply.reason)
            #expect(reason.contains(bad.reasonContains), "reason was: \(reason)")
            try await socket.heartbeat()
            await socket.close()
            try await Self.freshConnectionWorks(server)
        }
    }

    @Test func megabyteFrameClosesWithMessageTooBig() async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1"))
            try await socket.client.send(text: String(repeating: "a", count: 1 << 20))
            let (code, _) = try await socket.closed()
            #expect(code == 1009)
            try await Self.freshConnectionWorks(server)
        }
    }

    @Test func binaryFramesNeedVersion2() async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1"))
            try await socket.client.send(binary: [3, 0, 0, 0, 0, 0, 1])
            let reply = try await socket.next { $0.event == "phx_reply" }
            #expect(reply.reason?.hasPrefix("MalformedMessage:") == true)
            try await socket.heartbeat()
            await socket.close()
        }
    }

    enum BadToken: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case expired, wronglySigned, algNone, missing, garbage
        var testDescription: String { rawValue }
    }

    @Test(arguments: BadToken.allCases)
    func badTokenIsRefusedAtConnect(_ kind: BadToken) async throws {
        try await withServer { server in
            let token: String?
            let message: String
            switch kind {
            case .expired:
                token = try await server.token(ttl: -30)
                message = "Token has expired"
            case .wronglySigned:
                token = try await TokenMinter(hmacSecret: "another-secret-that-is-long-enough-0123")
                    .mint(TokenClaims(role: "supplier", expiresAt: Date().timeIntervalSince1970 + 60))
                message = "Failed to validate JWT signature"
            case .algNone:
                let header = Data(#"{"alg":"none","typ":"JWT"}"#.utf8).base64URL
                let claims = Data(#"{"role":"admin","exp":9999999999}"#.utf8).base64URL
                token = "\(header).\(claims)."
                message = "Failed to validate JWT signature"
            case .missing:
                token = nil
                message = "API key is missing"
            case .garbage:
                token = "not-a-jwt"
                message = "The token provided is not a valid JWT"
            }
            do {
                let socket = try await PhoenixSocket.connect(server, token: token)
                await socket.close()
                Issue.record("the upgrade with a \(kind) token was accepted")
            } catch WebSocketClientError.upgradeRejected(let status, let body) {
                #expect(status == 401)
                #expect(body.contains(message), "body was \(body)")
            }
            try await Self.freshConnectionWorks(server)
        }
    }

    @Test func badJoinTokenIsRefusedWithSupabaseReasons() async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1"))
            let expired = try await socket.join("supplier:dashboard:s1", ref: "1", accessToken: try await server.token(supplierID: "s1", ttl: -5))
            #expect(expired.reason?.hasPrefix("InvalidJWTToken: Token has expired") == true)
            let garbage = try await socket.join("supplier:dashboard:s1", ref: "2", accessToken: "x.y.z")
            #expect(garbage.reason?.hasPrefix("MalformedJWT:") == true)
            try await socket.heartbeat()
            await socket.close()
        }
    }

    static func freshConnectionWorks(_ server: TestServer) async throws {
        let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1"))
        #expect(try await socket.join("supplier:dashboard:s1", ref: "1").status == "ok")
        try await socket.heartbeat()
        await socket.close()
    }
}

extension Data {
    var base64URL: String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
