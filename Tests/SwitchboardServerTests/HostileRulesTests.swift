import Foundation
import Logging
import SwitchboardCore
import SwitchboardServer
import Testing

/// Rules that misbehave, in a running server: each hostile hook denies the one join with a
/// clear reason, and the server goes on serving everyone else. Hostile rules at load time stop
/// the server from starting with the error's file:line.
@Suite struct HostileRulesTests {
    static let hostileBodies: [String: String] = [
        "loop": "while true do end",
        "bomb": "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1024) .. i end",
        "error": "error('deliberate')",
        "os": "return os.execute('true')",
        "io": "return io.open('/etc/passwd')",
        "bytecode": "return load(string.char(27) .. 'Lua')()",
        "dump": "return string.dump(function() end)",
        "require": "return require('socket')",
    ]

    static func rulesDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        var text = """
            tier "free" { max_channels = 20, messages_per_minute = 100, max_payload = 65536 }
            default_tier "free"
            allow_undeclared_events(true)
            channel "ok:{x}" { kind = "shared", join = function() return true end }

            """
        for (name, body) in hostileBodies.sorted(by: { $0.key < $1.key }) {
            text += "channel \"\(name):{x}\" { kind = \"shared\", join = function() \(body) end }\n"
        }
        try text.write(to: url.appendingPathComponent("rules.lua"), atomically: true, encoding: .utf8)
        return url
    }

    @Test func hostileHooksDenyAndTheServerKeepsServing() async throws {
        let rules = try Self.rulesDirectory()
        defer { try? FileManager.default.removeItem(at: rules) }
        try await withServer({ $0.rulesDirectory = rules.path }) { server in
            let bystander = try await PhoenixSocket.connect(server, token: try await server.token(sub: "bystander"))
            try #require(try await bystander.join("ok:1", ref: "1").status == "ok")
            let attacker = try await PhoenixSocket.connect(
                server, token: try await server.token(sub: "attacker"))
            try #require(try await attacker.join("ok:1", ref: "1", config: HotReloadTests.ack).status == "ok")

            for (index, name) in Self.hostileBodies.keys.sorted().enumerated() {
                let reply = try await attacker.join("\(name):1", ref: "h\(index)")
                #expect(reply.status == "error", "\(name): \(reply)")
                #expect(
                    reply.reason
                        == "Unauthorized: You do not have permissions to read from this Channel topic: \(name):1 (the rules could not decide (the operator can see why in the server log))",
                    "\(name)")
                // Everyone else is still served, right after each hostile call.
                try await attacker.broadcast("ok:1", event: "after-\(name)", payload: [:], ref: "b\(index)", joinRef: "1")
                #expect(try await attacker.reply(to: "b\(index)").status == "ok")
                #expect(try await bystander.broadcastEvent("after-\(name)").topic == "realtime:ok:1")
            }
            let metrics = try await HTTPTests.request(server, "GET", "/metrics").body
            #expect(metrics.contains("switchboard_rule_hook_errors_total \(Self.hostileBodies.count)"), "\(metrics)")
            await attacker.close()
            await bystander.close()
        }
    }

    @Test func hostileRulesAtLoadTimeStopTheServerFromStarting() async throws {
        let rules = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-hostile-load-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: rules, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: rules) }
        try "tier \"free\" {}\ndefault_tier \"free\"\n\nwhile true do end\n".write(
            to: rules.appendingPathComponent("spin.lua"), atomically: true, encoding: .utf8)
        do {
            let server = try await TestServer.start { $0.rulesDirectory = rules.path }
            await server.stop()
            Issue.record("a server started on rules that never finish loading")
        } catch let error as ServerStartError {
            #expect(error.description.contains("spin.lua:4"), "\(error)")
            #expect(error.description.contains("budget"), "\(error)")
        }
    }

    @Test func aMissingRulesDirectoryStopsTheServerFromStarting() async throws {
        do {
            let server = try await TestServer.start { $0.rulesDirectory = "/nonexistent/switchboard-rules" }
            await server.stop()
            Issue.record("a server started without rules")
        } catch let error as ServerStartError {
            #expect(error.description.contains("/nonexistent/switchboard-rules does not exist"), "\(error)")
        }
    }
}
