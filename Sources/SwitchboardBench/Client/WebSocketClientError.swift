/// Errors thrown by ``WebSocketClient``.
///
/// An enum rather than a code struct so that tests can pattern-match the status and body of
/// a refused upgrade (`catch WebSocketClientError.upgradeRejected(let status, let body)`).
public enum WebSocketClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The server answered the upgrade request with a non-101 HTTP status; `body` is the
    /// response body as text (at most 64 KB), empty if the server sent none.
    case upgradeRejected(status: Int, body: String)
    /// The server answered 101 but the handshake was invalid (bad `Sec-WebSocket-Accept`, no `Upgrade`).
    case handshakeFailed(String)
    /// Nothing arrived (or the handshake did not finish) within the allowed time.
    case timeout
    /// The connection closed while a specific message was still awaited.
    case connectionClosed(code: Int?, reason: String)

    /// A one-line description for logs and test failures.
    public var description: String {
        switch self {
        case .upgradeRejected(let status, let body):
            return "WebSocket upgrade rejected with HTTP \(status): \(body)"
        case .handshakeFailed(let reason):
            return "WebSocket handshake failed: \(reason)"
        case .timeout:
            return "timed out waiting for the WebSocket server"
        case .connectionClosed(let code, let reason):
            return "WebSocket connection closed (code \(code.map(String.init) ?? "none")): \(reason)"
        }
    }
}
