import Logging
import PostgresNIO

/// Why something Switchboard asked of PostgreSQL failed, in a sentence an operator can act on.
public struct DatabaseError: Error, CustomStringConvertible, Sendable {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }

    /// The server's own words for a failed query or connection (postgres-nio hides them from
    /// `description` so that queries and binds do not leak into logs by accident).
    public static func describe(_ error: any Error) -> String {
        if let known = error as? DatabaseError { return known.message }
        guard let error = error as? PSQLError else { return "\(error)" }
        if let info = error.serverInfo, let message = info[.message] {
            var text = message
            if let code = info[.sqlState] { text += " (SQLSTATE \(code))" }
            if let detail = info[.detail] { text += "; \(detail)" }
            if let hint = info[.hint] { text += "; hint: \(hint)" }
            return text
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }
}

extension PostgresConnection {
    /// Runs a statement and reads its rows to the end: postgres-nio reports an error raised while
    /// a statement executes (after its row description) through the row sequence, so a statement
    /// whose rows are not read could fail unnoticed.
    public func run(_ query: PostgresQuery, logger: Logger) async throws {
        for try await _ in try await self.query(query, logger: logger) {}
    }
}
