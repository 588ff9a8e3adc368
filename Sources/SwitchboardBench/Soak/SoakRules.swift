import Foundation
import SwitchboardCore
import SwitchboardWire

/// Alternates two rule sets in the server's rules directory — as found, and with one more
/// event declared in a file of the soak's own — and confirms each switch through
/// `GET /admin/rules` (the generation goes up and the reload reports no error).
struct SoakRules: Sendable {
    /// The file the soak adds and removes.
    static let fileName = "soak_variant.lua"
    /// The variant's one addition.
    static let variant = """
        -- Written by `switchboard bench soak` while it runs (and removed when it ends): one more
        -- event, so that the soak can switch between two valid rule sets.
        event "soak:variant" { on = { "collaboration:*" }, fields = { n = "integer?" } }

        """
    /// How long a reload may take to show in `/admin/rules`.
    static let confirmTimeout = Duration.seconds(5)

    let directory: String
    let host: String
    let port: Int
    let adminToken: String

    var filePath: String { (self.directory as NSString).appendingPathComponent(Self.fileName) }

    /// The generation in force and the last reload's error, from `GET /admin/rules`.
    func status() async throws -> (generation: Int64, error: String?) {
        let (status, body) = try await HTTPGet.get(host: self.host, port: self.port, path: "/admin/rules", bearer: self.adminToken)
        guard status == 200 else { throw BenchError(.connectionClosed, "GET /admin/rules answered \(status): \(body.prefix(200))") }
        let value = try JSON.parse(Array(body.utf8))
        guard let generation = value["generation"]?.int64Value else {
            throw BenchError(.invalidOptions, "GET /admin/rules has no generation: \(body.prefix(200))")
        }
        let lastError = value["last_error"]
        let error: String? =
            switch lastError {
            case nil, .null?: nil
            case .array(let items)? where items.isEmpty: nil
            case let other?: JSON.describe(other)
            }
        return (generation, error)
    }

    /// Whether the variant file is in place.
    var variantInPlace: Bool { FileManager.default.fileExists(atPath: self.filePath) }

    /// Switches to the other rule set and waits until the server has loaded it; returns the new generation.
    func toggle(from generation: Int64) async throws -> Int64 {
        if self.variantInPlace {
            try FileManager.default.removeItem(atPath: self.filePath)
        } else {
            try Self.variant.write(toFile: self.filePath, atomically: true, encoding: .utf8)
        }
        return try await self.confirm(after: generation)
    }

    /// Removes the variant file if it is there (and confirms the reload); the server's rules are as found.
    func restore(from generation: Int64) async throws {
        guard self.variantInPlace else { return }
        try FileManager.default.removeItem(atPath: self.filePath)
        _ = try await self.confirm(after: generation)
    }

    private func confirm(after generation: Int64) async throws -> Int64 {
        let deadline = ContinuousClock.now.advanced(by: Self.confirmTimeout)
        var last: (generation: Int64, error: String?) = (generation, nil)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            last = try await self.status()
            if last.generation > generation {
                if let error = last.error { throw BenchError(.invalidOptions, "the reload failed: \(error)") }
                return last.generation
            }
        }
        throw BenchError(
            .timedOut,
            "the rules generation stayed at \(last.generation) for \(Self.confirmTimeout)\(last.error.map { " (last error: \($0))" } ?? "")")
    }
}
