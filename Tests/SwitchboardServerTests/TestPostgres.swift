import Foundation
import Logging
import PostgresNIO
import SwitchboardPostgres
import Testing

/// A real PostgreSQL 15 for the tests: `initdb` in a temporary directory (as the `postgres` user
/// when the tests run as root, since initdb refuses root), started by `pg_ctl` on a free loopback
/// port with its socket in that directory, `wal_level = logical` and no fsync. One cluster is
/// shared by every test (`TestPostgres.shared`), each test with a database of its own; tests that
/// stop PostgreSQL start a cluster of their own. A watcher process stops the cluster and removes
/// its directory when the test process exits, however it exits.
final class TestPostgres: Sendable {
    let directory: String
    let port: Int
    let binaries: String

    static let logger = Logger(label: "test-postgres") { _ in SwiftLogNoOpLogHandler() }

    /// The cluster shared by the suite (started on first use).
    static func shared() async throws -> TestPostgres { try await sharedCluster.value }
    private static let sharedCluster = Task { try await TestPostgres.start() }

    private init(directory: String, port: Int, binaries: String) {
        self.directory = directory
        self.port = port
        self.binaries = binaries
    }

    /// Starts a new cluster.
    static func start() async throws -> TestPostgres {
        let binaries = "/usr/lib/postgresql/15/bin"
        guard FileManager.default.isExecutableFile(atPath: "\(binaries)/initdb") else {
            throw TestPostgresError(
                "PostgreSQL 15 is not installed (no \(binaries)/initdb): run ./scripts/test.sh, which installs postgresql and postgresql-15-wal2json")
        }
        guard FileManager.default.fileExists(atPath: "/usr/lib/postgresql/15/lib/wal2json.so") else {
            throw TestPostgresError("wal2json is not installed: run ./scripts/test.sh (apt-get install postgresql-15-wal2json)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-pg-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let asRoot = getuid() == 0
        if asRoot { try await runChecked("/bin/chown", ["postgres", directory]) }
        func asPostgres(_ tool: String, _ arguments: [String]) async throws {
            if asRoot {
                try await runChecked("/usr/sbin/runuser", ["-u", "postgres", "--", "\(binaries)/\(tool)"] + arguments)
            } else {
                try await runChecked("\(binaries)/\(tool)", arguments)
            }
        }
        try await asPostgres("initdb", ["-D", "\(directory)/data", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        var lastError: (any Error)?
        for _ in 0..<5 {
            let port = try freeLoopbackPort()
            let options = [
                "-p \(port)", "-k \(directory)", "-c listen_addresses=127.0.0.1", "-c wal_level=logical", "-c fsync=off",
                "-c synchronous_commit=off", "-c full_page_writes=off", "-c max_replication_slots=200", "-c max_connections=400",
                "-c shared_buffers=32MB",
            ].joined(separator: " ")
            do {
                try await asPostgres("pg_ctl", ["-D", "\(directory)/data", "-o", options, "-l", "\(directory)/log", "-w", "-t", "120", "start"])
                let cluster = TestPostgres(directory: directory, port: port, binaries: binaries)
                try cluster.stopWhenThisProcessExits(asRoot: asRoot)
                return cluster
            } catch {
                lastError = error
            }
        }
        throw lastError ?? TestPostgresError("PostgreSQL did not start")
    }

    /// A new, empty database on this cluster.
    func makeDatabase() async throws -> DatabaseSettings {
        let name = "t_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "_"))"
        try await Database.withConnection(url(database: "postgres"), retryingFor: .seconds(30), logger: Self.logger) { connection in
            try await connection.run(PostgresQuery(unsafeSQL: "create database \(name)"), logger: Self.logger)
        }
        return try url(database: name)
    }

    /// A new database with Switchboard's migrations applied.
    func makeMigratedDatabase() async throws -> DatabaseSettings {
        let settings = try await makeDatabase()
        try await Database.withConnection(settings, logger: Self.logger) { connection in
            try await Migrator(connection: connection, logger: Self.logger).migrate()
        }
        return settings
    }

    func url(database: String) throws -> DatabaseSettings {
        try DatabaseSettings(url: "postgres://postgres@127.0.0.1:\(port)/\(database)?sslmode=disable")
    }

    /// Runs statements in order on one connection (one transaction each unless they say otherwise).
    func execute(_ settings: DatabaseSettings, _ statements: String...) async throws {
        try await Database.withConnection(settings, retryingFor: .seconds(30), logger: Self.logger) { connection in
            for statement in statements {
                try await connection.run(PostgresQuery(unsafeSQL: statement), logger: Self.logger)
            }
        }
    }

    /// The first column of the first row of `query`, as text.
    func value(_ settings: DatabaseSettings, _ query: String) async throws -> String? {
        try await Database.withConnection(settings, logger: Self.logger) { connection in
            let rows = try await connection.query(PostgresQuery(unsafeSQL: query), logger: Self.logger)
            for try await value in rows.decode(String?.self) { return value }
            return nil
        }
    }

    /// Stops the cluster (fast shutdown: open connections are ended), as a database outage.
    func stop() async throws {
        try await pgctl(["-D", "\(directory)/data", "-m", "fast", "-w", "-t", "120", "stop"])
    }

    /// Starts it again on the same port.
    func restart() async throws {
        let options = "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c wal_level=logical -c fsync=off -c max_replication_slots=200 -c max_connections=400"
        try await pgctl(["-D", "\(directory)/data", "-o", options, "-l", "\(directory)/log", "-w", "-t", "120", "start"])
    }

    private func pgctl(_ arguments: [String]) async throws {
        if getuid() == 0 {
            try await runChecked("/usr/sbin/runuser", ["-u", "postgres", "--", "\(binaries)/pg_ctl"] + arguments)
        } else {
            try await runChecked("\(binaries)/pg_ctl", arguments)
        }
    }

    /// A shell that waits for this process to end, then stops the cluster and removes it.
    private func stopWhenThisProcessExits(asRoot: Bool) throws {
        let stop = "\(binaries)/pg_ctl -D \(directory)/data -m immediate stop"
        let script = """
            while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done
            \(asRoot ? "/usr/sbin/runuser -u postgres -- \(stop)" : stop)
            rm -rf \(directory)
            """
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: "/bin/sh")
        watcher.arguments = ["-c", script]
        watcher.standardInput = FileHandle.nullDevice
        watcher.standardOutput = FileHandle.nullDevice
        watcher.standardError = FileHandle.nullDevice
        try watcher.run()
    }
}

struct TestPostgresError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a command to completion and throws with its output when it fails.
func runChecked(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(180)) async throws {
    let child = try ChildProcess(executable, arguments)
    let (status, output) = try await child.exit(within: timeout)
    guard status == 0 else {
        throw TestPostgresError("\(executable) \(arguments.joined(separator: " ")) failed (exit \(status)):\n\(output)")
    }
}

/// A child process whose output goes to a file. Its exit is found by `waitpid` on it, polled
/// within a deadline: waiting on Foundation's termination handler, or on a pipe's end, hung
/// when `pg_ctl` left its server running.
final class ChildProcess {
    let description: String
    private let log: URL
    private let pid: pid_t
    private let process: Process

    init(_ executable: String, _ arguments: [String]) throws {
        description = "\(executable) \(arguments.joined(separator: " "))"
        log = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-child-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let output = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        try process.run()
        try? output.close()
        pid = process.processIdentifier
        self.process = process
        // Killed with the test process if that ends first (a test stopped mid-way, a run cut
        // short): a shell waits for the test process, then for this child, and kills the child
        // if it is still there.
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: "/bin/sh")
        watcher.arguments = [
            "-c",
            "while kill -0 \(getpid()) 2>/dev/null && kill -0 \(pid) 2>/dev/null; do sleep 1; done; "
                + "kill -0 \(getpid()) 2>/dev/null || kill -9 \(pid) 2>/dev/null",
        ]
        watcher.standardInput = FileHandle.nullDevice
        watcher.standardOutput = FileHandle.nullDevice
        watcher.standardError = FileHandle.nullDevice
        try? watcher.run()
    }

    deinit { try? FileManager.default.removeItem(at: log) }

    /// Everything it printed so far.
    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// Ends it at once, as a crash would (SIGKILL).
    func killHard() { kill(pid, SIGKILL) }

    /// Waits until its output contains `text`.
    func waitForOutput(containing text: String, within timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !output.contains(text) {
            guard ContinuousClock.now < deadline else {
                kill(pid, SIGKILL)
                throw TestPostgresError("\(description) did not print \(text) within \(timeout):\n\(output)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits for it to exit; its exit status (128 + n when signal n ended it) and output.
    func exit(within timeout: Duration) async throws -> (Int32, String) {
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) != pid {
            // ECHILD: Foundation reaped it first (it sometimes does, sometimes not), and knows.
            if errno == ECHILD && !process.isRunning {
                return (process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus, output)
            }
            guard ContinuousClock.now < deadline else {
                kill(pid, SIGKILL)
                throw TestPostgresError("\(description) did not finish within \(timeout):\n\(output)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let signal = status & 0x7f
        return (signal == 0 ? (status >> 8) & 0xff : 128 + signal, output)
    }
}

/// A port nobody listens on at the moment of asking (the kernel's choice for port 0).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestPostgresError("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw TestPostgresError("bind() failed") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw TestPostgresError("getsockname() failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}
