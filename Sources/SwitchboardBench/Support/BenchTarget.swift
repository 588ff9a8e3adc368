import Foundation

/// Where bench connections go: a loopback host, a port and the request target with the query.
public struct BenchTarget: Sendable {
    let host: String
    let port: Int
    let uri: String

    /// A Switchboard (Supabase Realtime vsn 1.0.0) endpoint: `path?apikey=<token>&vsn=1.0.0`.
    init(host: String, port: Int, path: String, token: String) {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let encoded = token.addingPercentEncoding(withAllowedCharacters: allowed) ?? token
        self.host = host
        self.port = port
        self.uri = "\(path)?apikey=\(encoded)&vsn=1.0.0"
    }

    /// An nchan pubsub location: `<pathPrefix>/<channel>` without a query.
    init(host: String, port: Int, nchanPathPrefix pathPrefix: String, channel: String) {
        self.host = host
        self.port = port
        self.uri = pathPrefix.hasSuffix("/") ? pathPrefix + channel : "\(pathPrefix)/\(channel)"
    }

    /// Throws unless `host` is `localhost`, `::1` or an address in 127.0.0.0/8.
    public static func requireLoopback(_ host: String) throws { try validateLoopback(host) }

    /// Throws unless `host` is `localhost`, `::1` or an address in 127.0.0.0/8.
    static func validateLoopback(_ host: String) throws {
        if self.isLoopback(host) { return }
        throw BenchError(
            .notLoopback,
            "the bench only connects to loopback addresses (127.0.0.0/8, ::1, localhost), not \(host)"
        )
    }

    static func isLoopback(_ host: String) -> Bool {
        let lowered = host.lowercased()
        if lowered == "localhost" || lowered == "::1" || lowered == "[::1]" { return true }
        let parts = lowered.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else { return false }
        return parts[0] == "127"
    }
}
