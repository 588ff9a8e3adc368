import SwitchboardCore
import SwitchboardWire
import Testing

/// What operators watch: `GET /admin/channels` and the per-scope gauges in `/metrics`.
@Suite struct MonitoringTests {
    @Test func busiestChannelsWithSubscribersMessagesAndPresence() async throws {
        // A clock that stands still: messages per minute are counted in minute buckets, and three
        // messages sent across a minute's turn would count as two.
        try await withServer({ $0.clock = ManualClock.startingNow() }) { server in
            let config: Value = ["broadcast": ["self": false, "ack": true], "presence": ["key": "", "enabled": false], "private": false]
            let supplier = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await supplier.join("collaboration:s1:c1", ref: "1", config: config).status == "ok")
            try #require(try await supplier.join("supplier:dashboard:s1", ref: "2", config: config).status == "ok")
            let couple = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
            try #require(try await couple.join("collaboration:s1:c1", ref: "1", config: config).status == "ok")
            try await couple.push("realtime:collaboration:s1:c1", "presence", ["event": "track", "payload": ["status": "online"]], ref: "p", joinRef: "1")
            #expect(try await couple.reply(to: "p").status == "ok")
            for n in 0..<3 {
                try await couple.broadcast("collaboration:s1:c1", event: "note", payload: [:], ref: "m\(n)", joinRef: "1")
                #expect(try await couple.reply(to: "m\(n)").status == "ok")
            }

            let supplierToken = try await server.token(sub: "s1-user", supplierID: "s1")
            #expect(try await HTTPTests.request(server, "GET", "/admin/channels", token: supplierToken, contentType: nil).status == 403)
            let admin = try await server.token(role: "admin", sub: "ops")
            let reply = try await HTTPTests.request(server, "GET", "/admin/channels?limit=1", token: admin, contentType: nil)
            try #require(reply.status == 200, "\(reply.body)")
            let body = try JSON.parse(Array(reply.body.utf8))
            #expect(body["total_channels"] == 2)
            #expect(
                body["channels"] == [
                    ["channel": "collaboration:s1:c1", "subscribers": 2, "messages_per_minute": 3, "presences": 1]
                ])
            #expect(try await HTTPTests.request(server, "GET", "/admin/channels?limit=0", token: admin, contentType: nil).status == 400)

            let metrics = try await HTTPTests.request(server, "GET", "/metrics").body
            #expect(metrics.contains(#"switchboard_presences{scope="collaboration"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"switchboard_subscriptions{scope="collaboration"} 2"#))
            await couple.close()
            try await SlowConsumerTests.waitForMetric(server, #"switchboard_presences{scope="collaboration"} 0"#)
            await supplier.close()
        }
    }
}
