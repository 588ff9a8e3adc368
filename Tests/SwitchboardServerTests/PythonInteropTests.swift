import Foundation
import Synchronization
import Testing

/// Supabase's Python client (`realtime==2.34.1`, installed by scripts/test.sh) against the real server.
@Suite struct PythonInteropTests {
    /// The interpreter with `realtime` installed: `SWITCHBOARD_PYTHON`, else the repo's `.venv`.
    static var python: String {
        if let configured = ProcessInfo.processInfo.environment["SWITCHBOARD_PYTHON"], !configured.isEmpty {
            return configured
        }
        return repositoryRoot.appendingPathComponent(".venv/bin/python3").path
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    @Test(.timeLimit(.minutes(2)))
    func supabasePythonClientWorksUnchanged() async throws {
        #expect(
            FileManager.default.isExecutableFile(atPath: Self.python),
            "no Python with realtime==2.34.1 at \(Self.python): run ./scripts/test.sh (or set SWITCHBOARD_PYTHON)")
        guard FileManager.default.isExecutableFile(atPath: Self.python) else { return }
        try await withServer { server in
            let supplier = try await server.token(role: "supplier", sub: "a", supplierID: "s1")
            let couple = try await server.token(role: "couple", sub: "b", coupleID: "c1")
            let fresh = try await server.token(role: "supplier", sub: "a", supplierID: "s1", ttl: 7200)
            let outsider = try await server.token(role: "couple", sub: "z", coupleID: "c9")
            let script = Self.repositoryRoot.appendingPathComponent("Tests/Interop/python_realtime_check.py").path
            let (status, output) = try await runProcess(Self.python, [script, String(server.port), supplier, couple, fresh, outsider])
            #expect(status == 0, "the Python client failed:\n\(output)")
            for check in [
                "ok subscribe reaches SUBSCRIBED", "ok ack", "ok broadcast reaches a second client", "ok self: true",
                "ok self: false", "ok set_auth", "ok http_send", "ok an outsider is refused", "ALL PASSED",
            ] {
                #expect(output.contains(check), "missing '\(check)' in:\n\(output)")
            }
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func supabasePythonClientSeesPresence() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.python), "no Python with realtime==2.34.1 at \(Self.python)")
        guard FileManager.default.isExecutableFile(atPath: Self.python) else { return }
        try await withServer { server in
            let a = try await server.token(role: "supplier", sub: "a", supplierID: "s1")
            let b = try await server.token(role: "couple", sub: "b", coupleID: "c1")
            let script = Self.repositoryRoot.appendingPathComponent("Tests/Interop/python_presence_check.py").path
            let (status, output) = try await runProcess(Self.python, [script, String(server.port), a, b])
            #expect(status == 0, "the Python client failed:\n\(output)")
            for check in ["ok B gets sync and join", "ok a re-track updates", "ok B sees A leave", "ALL PASSED"] {
                #expect(output.contains(check), "missing '\(check)' in:\n\(output)")
            }
        }
    }
}

/// Runs a process to completion without blocking the cooperative pool, returning its exit
/// status and combined output.
func runProcess(_ executable: String, _ arguments: [String]) async throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    let output = OutputCollector()
    pipe.fileHandleForReading.readabilityHandler = { handle in output.append(handle.availableData) }
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        process.terminationHandler = { _ in continuation.resume() }
        do { try process.run() } catch { continuation.resume(throwing: error) }
    }
    pipe.fileHandleForReading.readabilityHandler = nil
    output.append(pipe.fileHandleForReading.readDataToEndOfFile())
    return (process.terminationStatus, output.text)
}

/// Collects a child process's output from the pipe's handler thread.
final class OutputCollector: Sendable {
    private let data = Mutex(Data())

    func append(_ chunk: Data) { data.withLock { $0.append(chunk) } }
    var text: String { data.withLock { String(decoding: $0, as: UTF8.self) } }
}
