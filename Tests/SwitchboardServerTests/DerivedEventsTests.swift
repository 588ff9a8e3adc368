import Foundation
import SwitchboardWire
import SwitchboardCore
import Testing

/// `on_publish` + `emit`: derived events published by the rules, checked and bounded.
@Suite struct DerivedEventsTests {
    static let plain: Value = ["broadcast": ["self": false, "ack": false], "presence": ["key": "", "enabled": false], "private": false]
    static let ack: Value = ["broadcast": ["self": false, "ack": true], "presence": ["key": "", "enabled": false], "private": false]

    @Test func aCommentInACollaborationReachesTheSuppliersDashboard() async throws {
        try await withServer { server in
            let supplier = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await supplier.join("supplier:dashboard:s1", ref: "1", config: Self.plain).status == "ok")
            let couple = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
            try #require(try await couple.join("collaboration:s1:c1", ref: "1", config: Self.ack).status == "ok")
            try await couple.broadcast(
                "collaboration:s1:c1", event: "comment:added", payload: ["comment_id": "k1", "text": "love the flowers"], ref: "2",
                joinRef: "1")
            #expect(try await couple.reply(to: "2").status == "ok")
            let derived = try await supplier.broadcastEvent("comment:added")
            #expect(derived.topic == "realtime:supplier:dashboard:s1")
            #expect(derived.payload["payload"] == ["comment_id": "k1", "text": "love the flowers"])
            // Exactly one copy: the dashboard's own on_publish does not emit again.
            try await supplier.heartbeat()
            await supplier.close()
            await couple.close()
        }
    }

    @Test func aFormResponseOverRESTReachesTheOwnersDashboard() async throws {
        try await withServer { server in
            let owner = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await owner.join("supplier:dashboard:s1", ref: "1", config: Self.plain).status == "ok")
            let backend = try await server.token(role: "service_role", sub: "backend")
            let body = #"{"messages":[{"topic":"form:responses:f1","event":"form:response:new","payload":{"form_id":"f1","response_id":"r9"}}]}"#
            #expect(try await HTTPTests.request(server, "POST", "/api/broadcast", token: backend, body: body).status == 202)
            let derived = try await owner.broadcastEvent("form:response:new")
            #expect(derived.topic == "realtime:supplier:dashboard:s1")
            #expect(derived.payload["payload"]?["response_id"] == "r9")
            await owner.close()
        }
    }

    /// An `on_publish` that emits its own event to its own channel forever is stopped at the
    /// depth bound: the original and `maxEmitDepth` derived copies, then an error for the
    /// operator, and the server goes on.
    @Test func anEndlessEmitChainStopsAtTheDepthBound() async throws {
        let rules = try RulesCopy()
        defer { rules.delete() }
        try rules.write(
            "zz_echo.lua",
            """
            event "echo" {
              on = { "collaboration:*" },
              on_publish = function(msg, user, ch) emit(ch.name, "echo", msg.payload) end,
            }
            """)
        try await withServer({ $0.rulesDirectory = rules.path }) { server in
            let listener = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
            try #require(try await listener.join("collaboration:s1:c1", ref: "1", config: Self.plain).status == "ok")
            let sender = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await sender.join("collaboration:s1:c1", ref: "1", config: Self.ack).status == "ok")
            try await sender.broadcast("collaboration:s1:c1", event: "echo", payload: ["n": 1], ref: "2", joinRef: "1")
            #expect(try await sender.reply(to: "2").status == "ok")
            try await sender.broadcast("collaboration:s1:c1", event: "after", payload: [:], ref: "3", joinRef: "1")
            #expect(try await sender.reply(to: "3").status == "ok")
            var echoes = 0
            while true {
                let frame = try await listener.next { $0.event == "broadcast" }
                if frame.payload["event"] == "after" { break }
                echoes += 1
            }
            #expect(echoes == 5, "the original and 4 derived copies")
            let metrics = try await HTTPTests.request(server, "GET", "/metrics").body
            #expect(metrics.contains(#"switchboard_rejected_total{reason="emit_depth"} 1"#))
            try await listener.heartbeat()
            await listener.close()
            await sender.close()
        }
    }

    /// An `on_publish` that fans out 16 ways at every level would derive 65,536 events from one
    /// message; the chain stops after 64.
    @Test func aFanOutChainStopsAfterSixtyFourDerivedEvents() async throws {
        let rules = try RulesCopy(messagesPerMinute: 1_000_000)
        defer { rules.delete() }
        try rules.write(
            "zz_fan.lua",
            """
            event "fan" {
              on = { "collaboration:*" },
              on_publish = function(msg, user, ch)
                for n = 1, 16 do emit("collaboration:fan:" .. n, "fan", msg.payload) end
              end,
            }
            """)
        try await withServer({ $0.rulesDirectory = rules.path }) { server in
            let sender = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await sender.join("collaboration:s1:c1", ref: "1", config: Self.ack).status == "ok")
            try await sender.broadcast("collaboration:s1:c1", event: "fan", payload: [:], ref: "2", joinRef: "1")
            #expect(try await sender.reply(to: "2").status == "ok")
            let admin = try await server.token(role: "admin", sub: "ops")
            let reply = try await HTTPTests.request(server, "GET", "/admin/channels?limit=100", token: admin, contentType: nil)
            let rows = try JSON.parse(Array(reply.body.utf8))["channels"]?.arrayValue ?? []
            let published = rows.compactMap { $0["messages_per_minute"]?.int64Value }.reduce(Int64(0), +)
            #expect(published == 65, "the original and 64 derived events: \(reply.body)")
            let metrics = try await HTTPTests.request(server, "GET", "/metrics").body
            #expect(metrics.contains(#"switchboard_rejected_total{reason="emit_limit"} 1"#), "\(metrics)")
            try await sender.heartbeat()
            await sender.close()
        }
    }

    /// An event's `transform` rewrites the payload once, before fan-out.
    @Test func aTransformRewritesWhatSubscribersGet() async throws {
        let rules = try RulesCopy()
        defer { rules.delete() }
        try rules.write(
            "zz_stamp.lua",
            """
            event "note:stamped" {
              on = { "collaboration:*" },
              fields = { text = "string" },
              transform = function(msg, user, ch) return { text = msg.payload.text, by = user.sub } end,
            }
            """)
        try await withServer({ $0.rulesDirectory = rules.path }) { server in
            let listener = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
            try #require(try await listener.join("collaboration:s1:c1", ref: "1", config: Self.plain).status == "ok")
            let sender = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await sender.join("collaboration:s1:c1", ref: "1", config: Self.ack).status == "ok")
            try await sender.broadcast("collaboration:s1:c1", event: "note:stamped", payload: ["text": "hi", "by": "someone else"], ref: "2", joinRef: "1")
            #expect(try await sender.reply(to: "2").status == "ok")
            #expect(try await listener.broadcastEvent("note:stamped").payload["payload"] == ["by": "s1-user", "text": "hi"])
            await listener.close()
            await sender.close()
        }
    }
}
