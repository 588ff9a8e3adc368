import Foundation
import NIOCore
import NIOSSL
import PostgresNIO

/// Where the database is and how to reach it, read from a `postgres://` URL:
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require|verify-full][&host=/socket/dir]`.
/// `postgresql://` is accepted too; `host=` in the query names a Unix socket directory, as in libpq.
public struct DatabaseSettings: Sendable, CustomStringConvertible {
    /// How the connection is encrypted, with libpq's names: `prefer` (the default) tries TLS and
    /// falls back to plain text; `require` insists on TLS without checking the certificate;
    /// `verify-full` checks it against the system's trust roots and the host name.
    public enum TLSMode: String, Sendable, CaseIterable {
        case disable, prefer, require
        case verifyFull = "verify-full"
    }

    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        /// The socket file itself (`DIR/.s.PGSQL.PORT`).
        case unixSocket(path: String)
    }

    public let endpoint: Endpoint
    public let username: String
    public let password: String?
    public let database: String
    public let tls: TLSMode

    public init(url text: String) throws(DatabaseError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme,
            ["postgres", "postgresql"].contains(scheme.lowercased())
        else {
            throw DatabaseError("the database URL must look like postgres://user:password@host:5432/database (got \(Self.redact(text)))")
        }
        let query = components.queryItems ?? []
        func parameter(_ name: String) -> String? { query.last { $0.name == name }?.value }
        let known: Set = ["sslmode", "host", "port"]
        if let unknown = query.first(where: { !known.contains($0.name) }) {
            throw DatabaseError("the database URL has an unknown parameter \(unknown.name) (known: sslmode, host, port)")
        }
        let port: Int
        if let given = components.port ?? parameter("port").flatMap(Int.init) {
            guard (1...65535).contains(given) else { throw DatabaseError("the database URL's port must be 1...65535") }
            port = given
        } else {
            port = 5432
        }
        if let socketDirectory = parameter("host"), socketDirectory.hasPrefix("/") {
            endpoint = .unixSocket(path: "\(socketDirectory)/.s.PGSQL.\(port)")
        } else {
            let host = components.percentEncodedHost.flatMap { $0.removingPercentEncoding } ?? ""
            if host.hasPrefix("/") {
                endpoint = .unixSocket(path: "\(host)/.s.PGSQL.\(port)")
            } else {
                endpoint = .tcp(host: host.isEmpty ? "localhost" : host, port: port)
            }
        }
        guard let user = components.user, !user.isEmpty else {
            throw DatabaseError("the database URL names no user (postgres://USER@host/database)")
        }
        username = user
        password = components.password
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? user : path
        if let mode = parameter("sslmode") {
            switch mode {
            case "allow": tls = .prefer
            case "verify-ca": tls = .verifyFull
            default:
                guard let known = TLSMode(rawValue: mode) else {
                    throw DatabaseError(
                        "sslmode=\(mode) is not one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                tls = known
            }
        } else {
            tls = .prefer
        }
    }

    /// The URL without its password, for logs and errors.
    public var description: String {
        let place: String
        switch endpoint {
        case .tcp(let host, let port): place = "\(host):\(port)"
        case .unixSocket(let path): place = path
        }
        return "postgres://\(username)\(password == nil ? "" : ":***")@\(place)/\(database)"
    }

    /// A URL with its password replaced, for messages about a URL that did not parse.
    static func redact(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? "(unreadable URL)"
    }

    private func tlsConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if tls != .verifyFull { configuration.certificateVerification = .none }
        return configuration
    }

    /// One connection's configuration (the reader's, the history writer's, the CLI's).
    func connectionConfiguration() throws(DatabaseError) -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        switch endpoint {
        case .tcp(let host, let port):
            let mode: PostgresConnection.Configuration.TLS
            do {
                switch tls {
                case .disable: mode = .disable
                case .prefer: mode = .prefer(try NIOSSLContext(configuration: tlsConfiguration()))
                case .require, .verifyFull: mode = .require(try NIOSSLContext(configuration: tlsConfiguration()))
                }
            } catch {
                throw DatabaseError("could not set up TLS for the database: \(error)")
            }
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: mode)
        case .unixSocket(let path):
            configuration = .init(unixSocketPath: path, username: username, password: password, database: database)
        }
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.additionalStartupParameters = [("application_name", "switchboard")]
        return configuration
    }
}
