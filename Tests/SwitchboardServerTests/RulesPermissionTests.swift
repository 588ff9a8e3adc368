import SwitchboardCore
import Testing

/// The default rules (`Rules/`) over real WebSockets: each permission admits the right user and
/// refuses the wrong one with the rules' reason after Supabase's `Unauthorized:` prefix.
@Suite struct RulesPermissionTests {
    struct Who: CustomStringConvertible, Sendable {
        var role = "supplier"
        var sub = "u1"
        var tier: String? = "paid"
        var supplier: String?
        var couple: String?

        var description: String { "\(role) \(sub) tier=\(tier ?? "none") supplier=\(supplier ?? "-") couple=\(couple ?? "-")" }

        func token(_ server: TestServer) async throws -> String {
            try await server.token(role: role, sub: sub, tier: tier, supplierID: supplier, coupleID: couple)
        }
    }

    struct JoinCase: CustomStringConvertible, Sendable {
        let channel: String
        let who: Who
        /// nil when the join must succeed; otherwise a fragment of the refusal reason.
        let refusal: String?
        var description: String { "\(who) joins \(channel): \(refusal.map { "refused (\($0))" } ?? "allowed")" }
    }

    static let supplierS1 = Who(sub: "s1-user", supplier: "s1")
    static let supplierS2 = Who(sub: "s2-user", supplier: "s2")
    static let coupleC1 = Who(role: "couple", sub: "c1-user", couple: "c1")
    static let coupleC2 = Who(role: "couple", sub: "c2-user", couple: "c2")
    static let annaOnScale = Who(sub: "team-anna", tier: "scale")
    static let annaOnPaid = Who(sub: "team-anna", tier: "paid")
    static let admin = Who(role: "admin", sub: "ops")

    static let joins: [JoinCase] = [
        // private: supplier dashboard (and the team on the scale tier)
        .init(channel: "supplier:dashboard:s1", who: supplierS1, refusal: nil),
        .init(channel: "supplier:dashboard:s1", who: annaOnScale, refusal: nil),
        .init(channel: "supplier:dashboard:s1", who: supplierS2, refusal: "only supplier s1 may open this dashboard"),
        .init(channel: "supplier:dashboard:s1", who: annaOnPaid, refusal: "only supplier s1 may open this dashboard"),
        // private: couple dashboard
        .init(channel: "couple:dashboard:c1", who: coupleC1, refusal: nil),
        .init(channel: "couple:dashboard:c1", who: coupleC2, refusal: "only couple c1 may open this dashboard"),
        // private: form responses (form_owner relation: f1 → s1)
        .init(channel: "form:responses:f1", who: supplierS1, refusal: nil),
        .init(channel: "form:responses:f1", who: supplierS2, refusal: "only the supplier who owns form f1 may read its responses"),
        // private: journeys (journeys relation: j1 → s1, c1)
        .init(channel: "journey:progress:j1", who: supplierS1, refusal: nil),
        .init(channel: "journey:progress:j1", who: coupleC1, refusal: nil),
        .init(channel: "journey:progress:j1", who: coupleC2, refusal: "only the supplier and couple of journey j1 may follow it"),
        // shared: collaboration
        .init(channel: "collaboration:s1:c1", who: supplierS1, refusal: nil),
        .init(channel: "collaboration:s1:c1", who: coupleC1, refusal: nil),
        .init(channel: "collaboration:s1:c1", who: annaOnScale, refusal: nil),
        .init(channel: "collaboration:s1:c1", who: annaOnPaid, refusal: "only supplier s1 and couple c1 may collaborate here"),
        .init(channel: "collaboration:s1:c1", who: coupleC2, refusal: "only supplier s1 and couple c1 may collaborate here"),
        // broadcast: every authenticated user joins
        .init(channel: "system:announcements", who: coupleC2, refusal: nil),
        .init(channel: "public:directory", who: supplierS2, refusal: nil),
        // admins may open any private channel
        .init(channel: "couple:dashboard:c1", who: admin, refusal: nil),
        // a channel no rule matches
        .init(channel: "random:channel", who: admin, refusal: "no rule matches channel random:channel"),
    ]

    @Test(arguments: joins)
    func joinFollowsTheDefaultRules(_ example: JoinCase) async throws {
        try await withServer { server in
            let socket = try await PhoenixSocket.connect(server, token: try await example.who.token(server))
            let reply = try await socket.join(example.channel, ref: "1")
            if let refusal = example.refusal {
                #expect(reply.status == "error")
                #expect(
                    reply.reason
                        == "Unauthorized: You do not have permissions to read from this Channel topic: \(example.channel) (\(refusal))")
            } else {
                #expect(reply.status == "ok", "\(reply)")
            }
            try await socket.heartbeat()
            await socket.close()
        }
    }

    @Test(arguments: ["system:announcements", "public:directory"])
    func onlyAdminsSendOnBroadcastChannels(_ channel: String) async throws {
        try await withServer { server in
            let listener = try await PhoenixSocket.connect(server, token: try await Self.coupleC1.token(server))
            try #require(try await listener.join(channel, ref: "1").status == "ok")
            let user = try await PhoenixSocket.connect(server, token: try await Self.supplierS1.token(server))
            let ack: Value = ["broadcast": ["self": false, "ack": true], "presence": ["key": "", "enabled": false], "private": false]
            try #require(try await user.join(channel, ref: "1", config: ack).status == "ok")
            try await user.broadcast(channel, event: "news", payload: ["text": "not from an admin"], ref: "2", joinRef: "1")
            let refused = try await user.reply(to: "2")
            #expect(refused.status == "error")
            #expect(
                refused.reason
                    == "Unauthorized: You do not have permissions to write to this Channel topic: \(channel) (\(channel) is read-only; only admins send announcements)"
            )
            let admin = try await PhoenixSocket.connect(server, token: try await Self.admin.token(server))
            try #require(try await admin.join(channel, ref: "1", config: ack).status == "ok")
            try await admin.broadcast(channel, event: "news", payload: ["text": "from ops"], ref: "2", joinRef: "1")
            #expect(try await admin.reply(to: "2").status == "ok")
            // The listener's first broadcast is the admin's: the refused one never went out.
            let first = try await listener.next { $0.event == "broadcast" }
            #expect(first.payload["payload"]?["text"] == "from ops")
            for socket in [listener, user, admin] { await socket.close() }
        }
    }

    @Test func sendOnPrivateChannelsFollowsTheJoinRule() async throws {
        try await withServer { server in
            // A supplier who joined its own dashboard may publish there; the default rules have
            // no send hook on it, so the join rule decides.
            let ack: Value = ["broadcast": ["self": true, "ack": true], "presence": ["key": "", "enabled": false], "private": false]
            let owner = try await PhoenixSocket.connect(server, token: try await Self.supplierS1.token(server))
            try #require(try await owner.join("supplier:dashboard:s1", ref: "1", config: ack).status == "ok")
            try await owner.broadcast("supplier:dashboard:s1", event: "note", payload: ["text": "hi"], ref: "2", joinRef: "1")
            // The ack and the echo may come in either order.
            var reply: PhoenixSocket.Frame?
            var echo: PhoenixSocket.Frame?
            while reply == nil || echo == nil {
                let frame = try await owner.next()
                if frame.event == "phx_reply", frame.ref == "2" { reply = frame }
                if frame.event == "broadcast" { echo = frame }
            }
            #expect(reply?.status == "ok")
            #expect(echo?.payload["payload"]?["text"] == "hi")
            await owner.close()
        }
    }

    @Test func declaredEventsAreCheckedAgainstTheirFields() async throws {
        try await withServer { server in
            let ack: Value = ["broadcast": ["self": false, "ack": true], "presence": ["key": "", "enabled": false], "private": false]
            let socket = try await PhoenixSocket.connect(server, token: try await Self.supplierS1.token(server))
            try #require(try await socket.join("collaboration:s1:c1", ref: "1", config: ack).status == "ok")
            try await socket.broadcast("collaboration:s1:c1", event: "comment:added", payload: ["text": 42], ref: "2", joinRef: "1")
            let refused = try await socket.reply(to: "2")
            #expect(refused.status == "error")
            #expect(refused.reason?.hasPrefix("Unauthorized: You do not have permissions to write to this Channel topic: collaboration:s1:c1 (event comment:added") == true, "\(refused)")
            // A free-form event name is allowed by the default rules (allow_undeclared_events).
            try await socket.broadcast("collaboration:s1:c1", event: "anything-goes", payload: ["x": 1], ref: "3", joinRef: "1")
            #expect(try await socket.reply(to: "3").status == "ok")
            await socket.close()
        }
    }
}
