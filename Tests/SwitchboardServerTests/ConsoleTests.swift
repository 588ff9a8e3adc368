import Foundation
import NIOCore
import SwitchboardCore
import SwitchboardWire
import Testing
@testable import SwitchboardServer

/// The operator console (`/console`, `/admin/feed`): in a real headless Chromium driven by
/// Selenium (`Tests/Interop/console_check.py`), and its endpoints' refusals over plain HTTP.
@Suite struct ConsoleTests {
    @Test func theFeedAndTheAdminEndpointsRefuseAnythingButAnAdminToken() async throws {
        try await withServer { server in
            let user = try await server.token(role: "supplier", sub: "u", supplierID: "s1")
            let service = try await server.token(role: "service_role", sub: "backend")
            for path in ["/admin/feed", "/admin/rules", "/admin/channels", "/admin/cluster"] {
                #expect(try await HTTPTests.request(server, "GET", path).status == 401, "\(path) without a token")
                #expect(try await HTTPTests.request(server, "GET", path, token: "not.a.jwt").status == 401, "\(path) with a bad token")
                #expect(try await HTTPTests.request(server, "GET", path, token: user).status == 403, "\(path) with a supplier's token")
            }
            #expect(try await HTTPTests.request(server, "GET", "/admin/feed?apikey=\(user)").status == 403)
            #expect(try await HTTPTests.request(server, "GET", "/admin/feed?apikey=\(service)&channel=no%20spaces").status == 400)
            #expect(try await HTTPTests.request(server, "POST", "/admin/disconnect?sub=x", token: user, contentType: nil).status == 403)
            // The page itself is public (it holds no data) and runs only its own files.
            let page = try await LoopbackHTTP.request(port: server.port, method: .GET, path: "/console")
            #expect(page.status == 200 && page.body.contains("<title>Switchboard console</title>"))
            for file in ["/console/console.js", "/console/console.css"] {
                #expect(try await HTTPTests.request(server, "GET", file).status == 200, "\(file)")
            }
        }
    }

    @Test func theTailShowsWhatIsPublishedOnAChannelAsText() {
        // A vsn 1 frame with its WebSocket header, as the hub's tap hands it over.
        let json = #"{"topic":"realtime:a:b","event":"broadcast","payload":{"type":"broadcast","event":"hello","payload":{"text":"<b>x</b>"},"meta":{"id":"i1"}},"ref":null}"#
        var frame = ByteBufferAllocator().buffer(capacity: 0)
        frame.writeBytes([0x81, UInt8(126)])
        frame.writeInteger(UInt16(json.utf8.count))
        frame.writeString(json)
        let message = ConsoleRoutes.tailMessage(frame, channel: "a:b", now: 5)
        #expect(message?["event"] == "hello" && message?["payload"]?["text"] == "<b>x</b>" && message?["meta"]?["id"] == "i1", "\(String(describing: message))")
    }

    @Test(.timeLimit(.minutes(3))) func theConsoleWorksInAHeadlessChromium() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"), "no chromium: run ./scripts/test.sh")
        #expect(FileManager.default.isExecutableFile(atPath: PythonInteropTests.python), "no Python with selenium: run ./scripts/test.sh")
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"), FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver"),
            FileManager.default.isExecutableFile(atPath: PythonInteropTests.python)
        else { return }
        let rules = try RulesCopy()
        defer { rules.delete() }
        // The screenshots go to docs/ only when asked (they are committed; a test run leaves the
        // work tree alone).
        let shots: URL
        if ProcessInfo.processInfo.environment["SWITCHBOARD_UPDATE_SCREENSHOTS"] == "1" {
            shots = PythonInteropTests.repositoryRoot.appendingPathComponent("docs")
        } else {
            shots = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-console-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: shots, withIntermediateDirectories: true)
        }
        try await withServer({
            $0.rulesDirectory = rules.path
            $0.watchRules = true
            $0.rulesReloadDebounce = .milliseconds(50)
        }) { server in
            let admin = try await server.token(role: "admin", sub: "ops")
            let user = try await server.token(role: "supplier", sub: "console-user", supplierID: "s1")
            let script = PythonInteropTests.repositoryRoot.appendingPathComponent("Tests/Interop/console_check.py").path
            let (status, output) = try await runProcess(PythonInteropTests.python, [script, String(server.port), admin, user, rules.path, shots.path])
            #expect(status == 0, "the browser check failed:\n\(output)")
            for check in [
                "ok signed in by link", "ok a client joining shows in the counts", "ok the filter box filters channels",
                "ok a broken save shows its file:line", "ok the fix clears it", "ok a REST message appears in the tail",
                "ok pause holds the tail", "ok the form sends a test message", "ok disconnecting a user asks first",
                "ok no errors in the browser console", "ok the page fits a phone's width", "ok a non-admin token is refused", "ALL PASSED",
            ] {
                #expect(output.contains(check), "missing '\(check)' in:\n\(output)")
            }
            print(output)
        }
    }

    @Test(.timeLimit(.minutes(2))) func devModePrintsASignedInConsoleLinkAndAnExampleThatReceivesAMessage() async throws {
        let binary = ClusterTests.binary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "no switchboard binary next to the tests at \(binary)")
        guard FileManager.default.isExecutableFile(atPath: PythonInteropTests.python) else { return }
        let port = try freeLoopbackPort()
        let server = try ChildProcess(binary, ["serve", "--host", "127.0.0.1", "--port", String(port), "--rules-dir", TestServer.defaultRules])
        defer { server.killHard() }
        try await server.waitForOutput(containing: "listening")
        // The banner is written once the server listens; its last line names more tokens.
        try await server.waitForOutput(containing: "More tokens:")
        let banner = server.output
        // The link opens the console signed in: its token is an admin's.
        let link = try #require(banner.split(separator: "\n").first { $0.contains("/console#token=") }, "no console link in:\n\(banner)")
        let token = String(link.split(separator: "#token=").last ?? "")
        let rules = try await LoopbackHTTP.request(port: port, method: .GET, path: "/admin/rules", headers: [("Authorization", "Bearer \(token)")])
        #expect(rules.status == 200, "the link's token is not an admin's: \(rules.status) \(rules.body)")
        // The Python example, run as printed, receives the message it sends.
        let start = try #require(banner.range(of: "python3 -c \"\n"), "no Python example in:\n\(banner)")
        let end = try #require(banner.range(of: "asyncio.run(main())", range: start.upperBound..<banner.endIndex))
        let example = String(banner[start.upperBound..<end.upperBound])
        let (status, output) = try await runProcess(PythonInteropTests.python, ["-c", example])
        #expect(status == 0 && output.contains("got {'event': 'hello'"), "the example printed:\n\(output)")
    }
}
