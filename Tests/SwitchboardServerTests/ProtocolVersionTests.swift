import SwitchboardBench
import SwitchboardCore
import SwitchboardWire
import Testing

/// vsn 2.0.0: array frames, and binary user broadcasts (kind 3 in, kind 4 or JSON out).
@Suite struct ProtocolVersionTests {
    @Test func version2ClientsGetArrayFrames() async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await server.token(supplierID: "s1"), version: .v2)
            try await socket.push("realtime:supplier:dashboard:s1", "phx_join", ["config": PhoenixSocket.defaultConfig], ref: "3", joinRef: "3")
            guard case .text(let text) = try await socket.client.receive(timeout: .seconds(5)) else {
                Issue.record("expected a text frame")
                return
            }
            #expect(text.hasPrefix(#"["3","3","realtime:supplier:dashboard:s1","phx_reply",{"status":"ok","response":{"postgres_changes":[],"epoch":""#))
            #expect(text.hasSuffix(#","seq":0}}]"#), "the join reply ends with the channel's position: \(text)")
            await socket.close()
        }
    }

    /// realtime-js's kind 3 layout: kind, join_ref/ref/topic/event/meta sizes, encoding, then the strings and the body.
    static func kind3(joinRef: String, ref: String, topic: String, event: String, meta: String = "", json: Bool, body: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = [3]
        for part in [joinRef, ref, topic, event, meta] { bytes.append(UInt8(part.utf8.count)) }
        bytes.append(json ? 1 : 0)
        for part in [joinRef, ref, topic, event, meta] { bytes += Array(part.utf8) }
        return bytes + body
    }

    @Test func kind3ArrivesAsKind4ForVersion2AndAsJSONForVersion1() async throws {
        try await withServer { server in
            let sender = try await PhoenixSocket.connect(server, token: try await server.token(sub: "a", supplierID: "s1"), version: .v2)
            let v2 = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "b", coupleID: "c1"), version: .v2)
            let v1 = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c", coupleID: "c1"), version: .v1)
            for socket in [sender, v2, v1] {
                #expect(try await socket.join("collaboration:s1:c1", ref: "1").status == "ok")
            }
            let topic = "realtime:collaboration:s1:c1"
            try await sender.client.send(
                binary: Self.kind3(joinRef: "1", ref: "2", topic: topic, event: "cursor", json: true, body: Array(#"{"x":1}"#.utf8)))

            guard case .binary(let kind4) = try await v2.client.receive(timeout: .seconds(5)) else {
                Issue.record("the vsn 2 subscriber did not get a binary frame")
                return
            }
            // kind, sizes of topic, event and meta, encoding (1 = JSON), then topic, event, meta, body.
            try #require(kind4.count > 5)
            let metaSize = Int(kind4[3])
            #expect(Array(kind4[0..<3]) == [4, UInt8(topic.utf8.count), UInt8("cursor".utf8.count)])
            #expect(kind4[4] == 1)
            let headerEnd = 5 + topic.utf8.count + "cursor".utf8.count
            #expect(Array(kind4[5..<headerEnd]) == Array(topic.utf8) + Array("cursor".utf8))
            try #require(kind4.count >= headerEnd + metaSize)
            let meta = try JSON.parse(Array(kind4[headerEnd..<headerEnd + metaSize]))
            #expect(meta["id"]?.stringValue != nil && meta["seq"] == 1 && meta["epoch"]?.stringValue != nil, "meta: \(meta)")
            #expect(Array(kind4[(headerEnd + metaSize)...]) == Array(#"{"x":1}"#.utf8))

            let json = try await v1.broadcastEvent("cursor")
            #expect(json.topic == topic)
            #expect(json.payload["payload"] == ["x": 1])

            // A binary body goes to vsn 2 as kind 4 and cannot go to vsn 1 at all.
            try await sender.client.send(
                binary: Self.kind3(joinRef: "1", ref: "3", topic: topic, event: "blob", json: false, body: [0, 255, 7]))
            guard case .binary(let raw) = try await v2.client.receive(timeout: .seconds(5)) else {
                Issue.record("the vsn 2 subscriber did not get the binary body")
                return
            }
            #expect(Array(raw.suffix(3)) == [0, 255, 7])
            #expect(raw[4] == 0)
            try await sender.broadcast("collaboration:s1:c1", event: "marker", payload: [:], ref: "4", joinRef: "1")
            let next = try await v1.next { $0.event == "broadcast" }
            #expect(next.payload["event"] == "marker", "a binary body reached a vsn 1 client")
            for socket in [sender, v2, v1] { await socket.close() }
        }
    }
}
