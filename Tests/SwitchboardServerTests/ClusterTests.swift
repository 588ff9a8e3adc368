import Foundation
import NIOHTTP1
import SwitchboardAuth
import SwitchboardBench
import SwitchboardClient
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardWire
import Testing

/// Several `switchboard serve` processes on one PostgreSQL database: one cluster. Each test
/// starts its nodes as separate processes (the binary built next to the tests) and talks to
/// them over real WebSockets and HTTP.
@Suite struct ClusterTests {
    static let channel = "collaboration:s1:c1"

    /// One node: a `switchboard serve` process.
    struct Node {
        let name: String
        let port: Int
        let process: ChildProcess

        var url: String { "ws://127.0.0.1:\(port)/socket/websocket" }
    }

    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("switchboard").path
    }

    /// Starts one node per name on `database`, and waits until each listens and hears the cluster.
    static func start(
        _ names: [String], postgres: TestPostgres, database: DatabaseSettings, rules: String = TestServer.defaultRules,
        rulesOf: [String: String] = [:]
    ) async throws -> [Node] {
        try #require(FileManager.default.isExecutableFile(atPath: binary), "no switchboard binary next to the tests at \(binary)")
        let url = "postgres://postgres@127.0.0.1:\(postgres.port)/\(database.database)?sslmode=disable"
        var nodes: [Node] = []
        for name in names {
            let port = try freeLoopbackPort()
            let process = try ChildProcess(
                binary,
                [
                    "serve", "--host", "127.0.0.1", "--port", String(port), "--jwt-secret", TestServer.secret, "--rules-dir", rulesOf[name] ?? rules,
                    "--database-url", url, "--no-watch-rules", "--node-name", name, "--changes-hold", "0",
                ])
            nodes.append(Node(name: name, port: port, process: process))
        }
        do {
            for node in nodes {
                try await node.process.waitForOutput(containing: "cluster link up")
                try await node.process.waitForOutput(containing: "listening")
            }
            // Every node sees every other alive (ephemeral messages go out only to nodes seen).
            let admin = try await token(role: "admin", sub: "ops")
            let expected = Set(names)
            for node in nodes {
                try await ClientTests.eventually("node \(node.name) sees \(expected.sorted()) alive", timeout: .seconds(60)) {
                    guard let view = try? await LoopbackHTTP.request(
                        port: node.port, method: .GET, path: "/admin/cluster", headers: [("Authorization", "Bearer \(admin)")]),
                        let parsed = try? JSON.parse(Array(view.body.utf8))
                    else { return false }
                    let alive = (parsed["nodes"]?.arrayValue ?? []).filter { $0["alive"] == true }.compactMap { $0["name"]?.stringValue }
                    return Set(alive) == expected
                }
            }
        } catch {
            // None is left running when one did not start.
            for node in nodes { node.process.killHard() }
            throw error
        }
        return nodes
    }

    static func token(role: String = "supplier", sub: String, supplierID: String? = nil, coupleID: String? = nil) async throws -> String {
        try await TokenMinter(hmacSecret: TestServer.secret).mint(
            TokenClaims(
                role: role, subject: sub, tier: "paid", supplierID: supplierID, coupleID: coupleID,
                expiresAt: Date().timeIntervalSince1970 + 3600))
    }

    static func socket(_ node: Node, token: String) async throws -> PhoenixSocket {
        PhoenixSocket(
            client: try await WebSocketClient.connect(host: "127.0.0.1", port: node.port, path: "/socket/websocket?vsn=1.0.0&apikey=\(token)"),
            version: .v1)
    }

    /// A join that asks for acks, without presence.
    static let ackConfig: Value = ["broadcast": ["self": false, "ack": true], "presence": ["key": "", "enabled": false], "private": false]

    static func presenceConfig(_ key: String, replay: Value? = nil) -> Value {
        var broadcast: Value.Object = ["self": false, "ack": true]
        if let replay { broadcast["replay"] = replay }
        return ["broadcast": .object(broadcast), "presence": ["key": .string(key), "enabled": true], "private": false]
    }

    static func track(_ socket: PhoenixSocket, meta: Value, ref: String) async throws {
        try await socket.push(
            "realtime:\(channel)", "presence", ["type": "presence", "event": "track", "payload": meta], ref: ref, joinRef: "1")
        #expect(try await socket.reply(to: ref).status == "ok")
    }

    /// Publishes `document:saved` messages over REST on `node`.
    static func rest(port: Int, documents: [String]) async throws {
        let backend = try await token(role: "service_role", sub: "backend")
        let messages = documents.map { id -> Value in
            ["topic": .string(channel), "event": "document:saved", "payload": ["document_id": .string(id)]]
        }
        let reply = try await LoopbackHTTP.request(
            port: port, method: .POST, path: "/api/broadcast",
            headers: [("Authorization", "Bearer \(backend)"), ("Content-Type", "application/json")],
            body: JSON.string(["messages": .array(messages)]))
        try #require(reply.status == 202, "\(reply.status) \(reply.body)")
    }

    /// Keys present on the channel as `socket` has seen them so far (presence_state, then diffs).
    struct PresenceView {
        var keys: [String: Int] = [:]
        /// Every key a diff has reported leaving.
        var left: Set<String> = []

        mutating func apply(_ frame: PhoenixSocket.Frame) {
            switch frame.event {
            case "presence_state":
                keys = [:]
                for (key, value) in frame.payload.objectValue?.members ?? [] { keys[key] = value["metas"]?.arrayValue?.count ?? 0 }
            case "presence_diff":
                for (key, value) in frame.payload["joins"]?.objectValue?.members ?? [] { keys[key, default: 0] += value["metas"]?.arrayValue?.count ?? 0 }
                for (key, value) in frame.payload["leaves"]?.objectValue?.members ?? [] {
                    left.insert(key)
                    keys[key, default: 0] -= value["metas"]?.arrayValue?.count ?? 0
                    if keys[key, default: 0] <= 0 { keys[key] = nil }
                }
            default: break
            }
        }

        /// Reads `socket` until `condition` holds for the keys present.
        mutating func wait(
            on socket: PhoenixSocket, timeout: Duration = .seconds(30), until condition: (_ present: Set<String>, _ left: Set<String>) -> Bool
        ) async throws {
            let deadline = ContinuousClock.now + timeout
            while !condition(Set(keys.keys), left) {
                let left = deadline - ContinuousClock.now
                guard left > .zero else { throw TestFailure("presence never reached the expected keys; it has \(keys)") }
                apply(try await socket.next(timeout: left))
            }
        }
    }

    @Test(.timeLimit(.minutes(3))) func supabasePythonClientOnOneNodeGetsWhatTheOthersPublishAndTheirPresences() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: PythonInteropTests.python), "no Python with realtime==2.34.1: run ./scripts/test.sh")
        guard FileManager.default.isExecutableFile(atPath: PythonInteropTests.python) else { return }
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        let nodes = try await Self.start(["A", "B", "C"], postgres: postgres, database: database)
        defer { for node in nodes { node.process.killHard() } }
        let (a, b, c) = (nodes[0], nodes[1], nodes[2])

        let script = PythonInteropTests.repositoryRoot.appendingPathComponent("Tests/Interop/python_cluster_check.py").path
        let python = try ChildProcess(PythonInteropTests.python, [script, String(a.port), try await Self.token(sub: "a", supplierID: "s1")])
        defer { python.killHard() }
        try await python.waitForOutput(containing: "READY")

        // B: a couple tracks and publishes over its WebSocket.
        let onB = try await Self.socket(b, token: try await Self.token(role: "couple", sub: "b", coupleID: "c1"))
        #expect(try await onB.join(Self.channel, ref: "1", config: Self.presenceConfig("b")).status == "ok")
        try await Self.track(onB, meta: ["node": "B"], ref: "t1")
        try await onB.broadcast(Self.channel, event: "document:saved", payload: ["document_id": "from-b"], ref: "p1", joinRef: "1")
        #expect(try await onB.reply(to: "p1").status == "ok")

        // C: a supplier's colleague tracks; the backend publishes over REST.
        let onC = try await Self.socket(c, token: try await Self.token(sub: "c", supplierID: "s1"))
        #expect(try await onC.join(Self.channel, ref: "1", config: Self.presenceConfig("c")).status == "ok")
        try await Self.track(onC, meta: ["node": "C"], ref: "t1")
        try await Self.rest(port: c.port, documents: ["from-c"])

        // The database: a trigger calls realtime.send (read by whichever node holds the reader's lock).
        try await postgres.execute(
            database, "create table notes (id serial primary key, body text not null)",
            """
            create function notes_broadcast() returns trigger language plpgsql as $$
            begin
                perform realtime.send(jsonb_build_object('document_id', new.body), 'document:saved', 'collaboration:s1:c1', false);
                return new;
            end $$
            """,
            "create trigger notes_broadcast after insert on notes for each row execute function notes_broadcast()",
            "insert into notes (body) values ('from-db')")

        let (status, output) = try await python.exit(within: .seconds(90))
        #expect(status == 0, "the Python client failed:\n\(output)")
        for check in [
            "ok got from-b", "ok got from-c", "ok got from-db", "ok each message arrived once", "ok presence on A shows a, b and c",
            "ok a client joining A later gets a, b and c", "ALL PASSED",
        ] {
            #expect(output.contains(check), "missing '\(check)' in:\n\(output)")
        }

        // B lists the three, alive, with the same rules (as of its last heartbeat).
        let admin = try await Self.token(role: "admin", sub: "ops")
        var cluster: Value = .null
        try await ClientTests.eventually("B's cluster view lists A, B and C") {
            guard let view = try? await LoopbackHTTP.request(
                port: b.port, method: .GET, path: "/admin/cluster", headers: [("Authorization", "Bearer \(admin)")]),
                view.status == 200, let parsed = try? JSON.parse(Array(view.body.utf8))
            else { return false }
            cluster = parsed
            return parsed["nodes"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["A", "B", "C"]
        }
        #expect(cluster["node"] == "B", "\(cluster)")
        #expect(cluster["nodes"]?.arrayValue?.allSatisfy { $0["alive"] == true } == true, "\(cluster)")
        #expect(cluster["rules_agree"] == true, "\(cluster)")
        let metrics = try await LoopbackHTTP.request(port: b.port, method: .GET, path: "/metrics")
        #expect(metrics.body.contains("switchboard_cluster_nodes 3"), "\(metrics.body)")
        let user = try await Self.token(sub: "u", supplierID: "s1")
        let refused = try await LoopbackHTTP.request(
            port: b.port, method: .GET, path: "/admin/cluster", headers: [("Authorization", "Bearer \(user)")])
        #expect(refused.status == 403, "\(refused.status) \(refused.body)")
        await onB.close()
        await onC.close()
    }

    @Test(.timeLimit(.minutes(3))) func killingANodeMovesItsClientsToAnotherWithNothingMissedOrRepeated() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        let rules = try RulesCopy(messagesPerMinute: 100_000)
        defer { rules.delete() }
        // The channel keeps all 200 (a slow machine may let the publisher run far ahead of the
        // raw client before B dies; the standard 100 would then not recover).
        let channels = try rules.read("channels.lua")
        let kept = channels.replacingOccurrences(
            of: "channel \"collaboration:{supplier_id}:{couple_id}\" {\n  kind = \"shared\",",
            with: "channel \"collaboration:{supplier_id}:{couple_id}\" {\n  kind = \"shared\",\n  history = { messages = 1000, seconds = 600 },")
        try #require(kept != channels, "the collaboration channel's declaration changed")
        try rules.write("channels.lua", kept)
        let nodes = try await Self.start(["A", "B", "C"], postgres: postgres, database: database, rules: rules.path)
        defer { for node in nodes { node.process.killHard() } }
        let (a, b, c) = (nodes[0], nodes[1], nodes[2])

        // Observers on A and C see the channel's presences.
        var observers: [(socket: PhoenixSocket, view: PresenceView)] = []
        for (node, key) in [(a, "obs-a"), (c, "obs-c")] {
            let socket = try await Self.socket(node, token: try await Self.token(sub: key, supplierID: "s1"))
            #expect(try await socket.join(Self.channel, ref: "1", config: Self.presenceConfig(key)).status == "ok")
            observers.append((socket, PresenceView()))
        }

        // On B: the Swift client (A as its fallback) and a raw vsn 1 client, both tracking.
        var configuration = ClientConfiguration(url: b.url, token: try await Self.token(sub: "swift", supplierID: "s1"))
        configuration.fallbackURLs = [a.url]
        configuration.backoff = Backoff(initial: .milliseconds(100), jitter: 0)
        let swift = SwitchboardClient(configuration)
        let swiftChannel = try await swift.channel(Self.channel, options: ChannelOptions(presence: true, presenceKey: "swift"))
        let swiftEvents = Inbox(swiftChannel.events)
        #expect(try await swiftEvents.next() == .joined(recovered: nil))
        try await swiftChannel.track(["node": "B"])
        let raw = try await Self.socket(b, token: try await Self.token(sub: "raw", supplierID: "s1"))
        #expect(try await raw.join(Self.channel, ref: "1", config: Self.presenceConfig("raw")).status == "ok")
        try await Self.track(raw, meta: ["node": "B"], ref: "t1")
        for index in observers.indices {
            try await observers[index].view.wait(on: observers[index].socket) { present, _ in present.isSuperset(of: ["swift", "raw"]) }
        }

        // 200 messages, published in turn on A (WebSocket) and C (REST), paced so that B dies
        // part-way through.
        let publisher = try await Self.socket(a, token: try await Self.token(sub: "pub", supplierID: "s1"))
        #expect(try await publisher.join(Self.channel, ref: "1", config: Self.presenceConfig("pub")).status == "ok")
        let restPort = c.port
        let publishing = Task {
            for n in 1...200 {
                let document = "m\(n)"
                if n % 2 == 0 {
                    try await Self.rest(port: restPort, documents: [document])
                } else {
                    try await publisher.broadcast(
                        Self.channel, event: "document:saved", payload: ["document_id": .string(document)], ref: "p\(n)", joinRef: "1")
                }
                // Pacing a load loop (not waiting for a condition): about 3 s for all 200.
                try await Task.sleep(for: .milliseconds(15))
            }
        }

        // The raw client reads until it has some, then B dies.
        var rawSeen: [(seq: Int64, document: String)] = []
        var epoch = ""
        while rawSeen.count < 40 {
            let frame = try await raw.next { $0.event == "broadcast" }
            epoch = frame.payload["meta"]?["epoch"]?.stringValue ?? ""
            rawSeen.append((frame.payload["meta"]?["seq"]?.int64Value ?? -1, frame.payload["payload"]?["document_id"]?.stringValue ?? "?"))
        }
        b.process.killHard()
        let killedAt = ContinuousClock.now
        _ = try await b.process.exit(within: .seconds(30))

        // The raw client resumes on A from the last message it saw.
        await raw.close()
        let moved = try await Self.socket(a, token: try await Self.token(sub: "raw", supplierID: "s1"))
        let replay: Value = ["since_seq": .int(rawSeen.last?.seq ?? 0), "epoch": .string(epoch)]
        let rejoined = try await moved.join(Self.channel, ref: "1", config: Self.presenceConfig("raw", replay: replay))
        #expect(rejoined.payload["response"]?["recovered"] == true, "\(rejoined)")

        // B's presences leave on A and C once B has been silent long enough (the Swift client
        // tracks again on A, so its key may come back: the leave is what counts).
        for index in observers.indices {
            try await observers[index].view.wait(on: observers[index].socket, timeout: .seconds(60)) { _, left in
                left.isSuperset(of: ["swift", "raw"])
            }
        }
        let leftAfter = ContinuousClock.now - killedAt
        print("cluster test: B's presences left on A and C \(leftAfter) after the kill (limit documented: \(ClusterLink.goneAfterSeconds) s of silence)")

        try await publishing.value
        while rawSeen.count < 200 {
            let frame = try await moved.next { $0.event == "broadcast" }
            rawSeen.append((frame.payload["meta"]?["seq"]?.int64Value ?? -1, frame.payload["payload"]?["document_id"]?.stringValue ?? "?"))
        }
        #expect(rawSeen.map(\.seq) == Array(1...200), "the raw client got every seq once, in order")
        #expect(Set(rawSeen.map(\.document)) == Set((1...200).map { "m\($0)" }), "and every message")

        // The Swift client moved to A by itself, replayed, and has every message once.
        var swiftSeen: [String] = []
        var recovered: [Bool?] = []
        while swiftSeen.count < 200 {
            switch try await swiftEvents.next(timeout: .seconds(60)) {
            case .message(let message) where message.event == "document:saved":
                swiftSeen.append(message.payload["document_id"]?.stringValue ?? "?")
            case .joined(let flag): recovered.append(flag)
            default: break
            }
        }
        #expect(recovered == [true], "the Swift client rejoined once, recovered: \(recovered)")
        #expect(swiftSeen.count == Set(swiftSeen).count, "nothing twice: \(swiftSeen)")
        #expect(Set(swiftSeen) == Set((1...200).map { "m\($0)" }))
        await swift.close()
        await moved.close()
        await publisher.close()
        for observer in observers { await observer.socket.close() }
    }

    @Test(.timeLimit(.minutes(3))) func aDatabaseRestartKeepsLocalDeliveryAndDeliversWhatWasPublishedMeanwhileOnceEverywhere() async throws {
        // A PostgreSQL of its own: this test stops it.
        let postgres = try await TestPostgres.start()
        let database = try await postgres.makeDatabase()
        let nodes = try await Self.start(["A", "B"], postgres: postgres, database: database)
        defer { for node in nodes { node.process.killHard() } }
        let (a, b) = (nodes[0], nodes[1])
        let onA = try await Self.socket(a, token: try await Self.token(sub: "a", supplierID: "s1"))
        #expect(try await onA.join(Self.channel, ref: "1").status == "ok")
        let onB = try await Self.socket(b, token: try await Self.token(sub: "b", supplierID: "s1"))
        #expect(try await onB.join(Self.channel, ref: "1").status == "ok")
        let publisher = try await Self.socket(a, token: try await Self.token(role: "couple", sub: "p", coupleID: "c1"))
        #expect(try await publisher.join(Self.channel, ref: "1").status == "ok")
        func publish(_ document: String) async throws {
            try await publisher.broadcast(Self.channel, event: "document:saved", payload: ["document_id": .string(document)], joinRef: "1")
        }
        func document(_ frame: PhoenixSocket.Frame) -> String { frame.payload["payload"]?["document_id"]?.stringValue ?? "?" }

        try await publish("before")
        #expect(document(try await onA.event("broadcast")) == "before")
        #expect(document(try await onB.event("broadcast")) == "before")

        try await postgres.stop()
        try await a.process.waitForOutput(containing: "cluster link lost")
        // Local delivery goes on: A's subscriber gets what is published on A at once.
        for n in 1...5 { try await publish("during-\(n)") }
        var seenA: [String] = []
        while seenA.count < 5 { seenA.append(document(try await onA.event("broadcast"))) }
        #expect(seenA == (1...5).map { "during-\($0)" })

        try await postgres.restart()
        // Once the database is back, B gets what was published during the outage, once.
        var seenB: [String] = []
        while seenB.count < 5 { seenB.append(document(try await onB.event("broadcast", timeout: .seconds(60)))) }
        #expect(seenB == (1...5).map { "during-\($0)" })
        try await publish("after")
        #expect(document(try await onB.event("broadcast")) == "after")
        // A's subscriber got nothing twice: the next thing it sees is the message after.
        #expect(document(try await onA.event("broadcast")) == "after")
        await onA.close()
        await onB.close()
        await publisher.close()
        try? await postgres.stop()
    }

    /// Pushes `event` on `channel` with a publisher's own id, asking for an ack; returns the reply.
    static func publish(_ socket: PhoenixSocket, event: String, payload: Value, id: String? = nil, ref: String) async throws -> PhoenixSocket.Frame {
        var push: Value.Object = ["type": "broadcast", "event": .string(event), "payload": payload]
        if let id { push["meta"] = ["id": .string(id)] }
        try await socket.push("realtime:\(channel)", "broadcast", .object(push), ref: ref, joinRef: "1")
        return try await socket.reply(to: ref)
    }

    @Test(.timeLimit(.minutes(3))) func aChannelsBudgetAndAPublishersIdHoldForTheWholeCluster() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        let nodes = try await Self.start(["A", "B"], postgres: postgres, database: database)
        defer { for node in nodes { node.process.killHard() } }
        let (a, b) = (nodes[0], nodes[1])
        var sockets: [PhoenixSocket] = []
        for (node, sub) in [(a, "pa"), (b, "pb"), (a, "sa"), (b, "sb")] {
            let socket = try await Self.socket(node, token: try await Self.token(sub: sub, supplierID: "s1"))
            #expect(try await socket.join(Self.channel, ref: "1", config: Self.ackConfig).status == "ok")
            sockets.append(socket)
        }
        let (publisherA, publisherB, subscriberA, subscriberB) = (sockets[0], sockets[1], sockets[2], sockets[3])
        func document(_ frame: PhoenixSocket.Frame) -> String { frame.payload["payload"]?["document_id"]?.stringValue ?? "?" }

        // A publisher's own id, published on A and then on B, is delivered once on each node.
        #expect(try await Self.publish(publisherA, event: "document:saved", payload: ["document_id": "d1"], id: "same-1", ref: "r1").status == "ok")
        #expect(document(try await subscriberB.event("broadcast")) == "d1")
        #expect(document(try await subscriberA.event("broadcast")) == "d1")
        #expect(try await Self.publish(publisherB, event: "document:saved", payload: ["document_id": "d1-again"], id: "same-1", ref: "r2").status == "ok")
        // Ephemeral too: each node remembers the ids the others announced.
        #expect(try await Self.publish(publisherA, event: "user:online", payload: ["user_id": "u1"], id: "same-2", ref: "r3").status == "ok")
        #expect(try await subscriberB.event("broadcast").payload["event"] == "user:online")
        #expect(try await subscriberA.event("broadcast").payload["event"] == "user:online")
        #expect(try await Self.publish(publisherB, event: "user:online", payload: ["user_id": "u1-again"], id: "same-2", ref: "r4").status == "ok")
        // Nothing more came of the repeats: the next message each subscriber sees is the marker.
        #expect(try await Self.publish(publisherA, event: "document:saved", payload: ["document_id": "marker"], ref: "r5").status == "ok")
        #expect(document(try await subscriberA.event("broadcast")) == "marker")
        #expect(document(try await subscriberB.event("broadcast")) == "marker")

        // The channel's 100 messages a minute (the default rules' free tier) count on every node:
        // A has published 3 (d1, u1 and the marker; the repeats cost nothing), 57 more make 60,
        // and B (once it has seen them) takes only 40.
        var accepted = 0
        for n in 0..<57 {
            let reply = try await Self.publish(publisherA, event: "document:saved", payload: ["document_id": .string("a\(n)")], ref: "a\(n)")
            if reply.status == "ok" { accepted += 1 }
        }
        #expect(accepted == 57)
        var seenOnB = 0
        while seenOnB < 57 {
            _ = try await subscriberB.event("broadcast")
            seenOnB += 1
        }
        var acceptedOnB = 0
        var refusal = ""
        for n in 0..<60 {
            let reply = try await Self.publish(publisherB, event: "document:saved", payload: ["document_id": .string("b\(n)")], ref: "b\(n)")
            if reply.status == "ok" { acceptedOnB += 1 } else { refusal = reply.reason ?? "" }
        }
        #expect(acceptedOnB == 40, "B accepted \(acceptedOnB) of 60 with 60 already counted on A")
        #expect(refusal.hasPrefix("ChannelRateLimitReached:"), "\(refusal)")
        for socket in sockets { await socket.close() }
    }

    @Test(.timeLimit(.minutes(2))) func nodesWithDifferentRulesShowAsDisagreeing() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        let edited = try RulesCopy()
        defer { edited.delete() }
        try edited.write("tiers.lua", try edited.read("tiers.lua") + "\n-- edited on B only\n")
        let nodes = try await Self.start(["A", "B"], postgres: postgres, database: database, rulesOf: ["B": edited.path])
        defer { for node in nodes { node.process.killHard() } }
        let admin = try await Self.token(role: "admin", sub: "ops")
        func get(_ path: String) async throws -> Value {
            let reply = try await LoopbackHTTP.request(port: nodes[0].port, method: .GET, path: path, headers: [("Authorization", "Bearer \(admin)")])
            return try JSON.parse(Array(reply.body.utf8))
        }
        try await ClientTests.eventually("A's view lists both nodes") { (try? await get("/admin/cluster"))?["nodes"]?.arrayValue?.count == 2 }
        let cluster = try await get("/admin/cluster")
        #expect(cluster["rules_agree"] == false, "\(cluster)")
        let digests = Set(cluster["nodes"]?.arrayValue?.compactMap { $0["rules_digest"]?.stringValue } ?? [])
        #expect(digests.count == 2, "\(cluster)")
        let rules = try await get("/admin/rules")
        #expect(rules["node"] == "A" && rules["cluster_rules_agree"] == false, "\(rules)")
        #expect(rules["cluster"]?.arrayValue?.count == 2, "\(rules)")
        // `db status` lists the nodes too.
        let url = "postgres://postgres@127.0.0.1:\(postgres.port)/\(database.database)?sslmode=disable"
        let (status, output) = try await runProcess(Self.binary, ["db", "status", "--database-url", url, "--node-name", "A"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("nodes:      A (alive") && output.contains("; B (alive"), "\(output)")
    }

    @Test(.timeLimit(.minutes(2))) func twoServersGivenOneNodeNameAreReported() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        let nodes = try await Self.start(["same", "same"], postgres: postgres, database: database)
        defer { for node in nodes { node.process.killHard() } }
        try await nodes[1].process.waitForOutput(containing: "another server is running with the same node name")
    }

    @Test(.timeLimit(.minutes(2))) func messagesTooLargeForANotificationReachTheOtherNodesThroughTheRelay() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.makeDatabase()
        let nodes = try await Self.start(["A", "B"], postgres: postgres, database: database)
        defer { for node in nodes { node.process.killHard() } }
        let publisher = try await Self.socket(nodes[0], token: try await Self.token(sub: "p", supplierID: "s1"))
        #expect(try await publisher.join(Self.channel, ref: "1", config: Self.ackConfig).status == "ok")
        let subscriber = try await Self.socket(nodes[1], token: try await Self.token(sub: "s", supplierID: "s1"))
        #expect(try await subscriber.join(Self.channel, ref: "1", config: Self.ackConfig).status == "ok")
        // 20 KB of text with quotes and non-ASCII, past PostgreSQL's 8,000-byte notifications.
        let text = String(repeating: "ünïcode \"quoted\" ", count: 1000)
        #expect(try await Self.publish(publisher, event: "document:saved", payload: ["document_id": "big", "text": .string(text)], ref: "r1").status == "ok")
        let stored = try await subscriber.event("broadcast")
        #expect(stored.payload["payload"]?["text"]?.stringValue == text)
        #expect(stored.payload["meta"]?["seq"]?.int64Value == 1, "\(stored.payload["meta"] ?? .null)")
        #expect(try await Self.publish(publisher, event: "user:online", payload: ["user_id": "u", "status": .string(text)], ref: "r2").status == "ok")
        let ephemeral = try await subscriber.event("broadcast")
        #expect(ephemeral.payload["event"] == "user:online" && ephemeral.payload["payload"]?["status"]?.stringValue == text)

        // A binary body (vsn 2, kind 3 in) reaches the other node's vsn 2 subscriber as kind 4.
        let sender = PhoenixSocket(
            client: try await WebSocketClient.connect(
                host: "127.0.0.1", port: nodes[0].port, path: "/socket/websocket?vsn=2.0.0&apikey=\(try await Self.token(sub: "p2", supplierID: "s1"))"),
            version: .v2)
        let receiver = PhoenixSocket(
            client: try await WebSocketClient.connect(
                host: "127.0.0.1", port: nodes[1].port, path: "/socket/websocket?vsn=2.0.0&apikey=\(try await Self.token(sub: "s2", supplierID: "s1"))"),
            version: .v2)
        for socket in [sender, receiver] { #expect(try await socket.join(Self.channel, ref: "1").status == "ok") }
        try await sender.client.send(
            binary: ProtocolVersionTests.kind3(joinRef: "1", ref: "2", topic: "realtime:\(Self.channel)", event: "blob", json: false, body: [0, 255, 7]))
        guard case .binary(let kind4) = try await receiver.client.receive(timeout: .seconds(30)) else {
            Issue.record("the vsn 2 subscriber on B did not get a binary frame")
            return
        }
        #expect(kind4.first == 4 && kind4[4] == 0 && Array(kind4.suffix(3)) == [0, 255, 7], "\(kind4)")
        for socket in [publisher, subscriber, sender, receiver] { await socket.close() }
    }
}
