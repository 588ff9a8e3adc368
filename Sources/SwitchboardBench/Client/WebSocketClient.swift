import NIOCore
import NIOPosix
import NIOWebSocket

/// A small WebSocket client on SwiftNIO: connect with an HTTP upgrade, send text or binary
/// frames (masked, as RFC 6455 requires of clients), receive whole messages with a timeout.
///
/// Inbound frames are queued as they arrive, so nothing is lost between `receive` calls;
/// fragmented messages are reassembled and pings are answered automatically. After the
/// connection ends every `receive` returns ``Message/closed(code:reason:)``.
public final class WebSocketClient: Sendable {
    /// One inbound message, or the end of the connection.
    public enum Message: Sendable, Equatable, CustomStringConvertible {
        /// A complete text message.
        case text(String)
        /// A complete binary message.
        case binary([UInt8])
        /// The connection ended: `code` from the server's close frame (nil when there was none
        /// or it carried no code) and its reason, or a description of what ended the connection.
        case closed(code: Int?, reason: String)

        /// The text of a `.text` message, otherwise nil.
        public var text: String? {
            if case .text(let text) = self { return text }
            return nil
        }

        /// Whether this is the end of the connection.
        public var isClosed: Bool {
            if case .closed = self { return true }
            return false
        }

        /// A short description for logs and test failures.
        public var description: String {
            switch self {
            case .text(let text): return "text(\(text.count > 512 ? String(text.prefix(512)) + "…" : text))"
            case .binary(let bytes): return "binary(\(bytes.count) bytes)"
            case .closed(let code, let reason): return "closed(code: \(code.map(String.init) ?? "none"), reason: \(reason))"
            }
        }
    }

    /// The most unread messages kept before the client gives up on the connection.
    public static let inboxCapacity = 1 << 16

    private let channel: any Channel
    private let inbox: Inbox
    private let handler: NIOLoopBound<FrameHandler>

    private init(channel: any Channel, inbox: Inbox, handler: NIOLoopBound<FrameHandler>) {
        self.channel = channel
        self.inbox = inbox
        self.handler = handler
    }

    private struct Installed: Sendable {
        let inbox: Inbox
        let handler: NIOLoopBound<FrameHandler>
    }

    /// Connects to `ws://host:port/path` and completes the WebSocket upgrade.
    ///
    /// - Parameters:
    ///   - path: the request target including any query, e.g. `/socket/websocket?apikey=X&vsn=1.0.0`.
    ///   - headers: extra request headers (`Host`, `Upgrade`, `Connection` and `Sec-WebSocket-*` are set for you).
    ///   - maxFrameSize: the largest inbound message accepted, after reassembly.
    ///   - timeout: the bound on TCP connect and on the upgrade response.
    /// - Throws: ``WebSocketClientError/upgradeRejected(status:body:)`` when the server answers
    ///   with an HTTP error instead of 101, ``WebSocketClientError/timeout``, or NIO's connect errors.
    public static func connect(
        host: String,
        port: Int,
        path: String,
        headers: [(String, String)] = [],
        maxFrameSize: Int = 1 << 24,
        timeout: Duration = .seconds(10),
        on eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> WebSocketClient {
        let connection = try await WebSocketConnector.connect(
            host: host,
            port: port,
            uri: path,
            headers: headers,
            maxFrameSize: maxFrameSize,
            timeout: timeout.timeAmount,
            group: eventLoopGroup
        ) { channel in
            let inbox = Inbox(eventLoop: channel.eventLoop, capacity: Self.inboxCapacity)
            let handler = FrameHandler(inbox: inbox)
            try channel.pipeline.syncOperations.addHandler(handler)
            return Installed(inbox: inbox, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
        }
        return WebSocketClient(
            channel: connection.channel,
            inbox: connection.value.inbox,
            handler: connection.value.handler
        )
    }

    /// Whether the TCP connection is still open.
    public var isConnected: Bool {
        self.channel.isActive
    }

    /// The local port of the connection, if known.
    public var localPort: Int? {
        self.channel.localAddress?.port
    }

    /// Sends one text message in a single masked frame.
    public func send(text: String) async throws {
        var buffer = self.channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        try await self.sendRaw(frame: WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: buffer))
    }

    /// Sends one binary message in a single masked frame.
    public func send(binary: [UInt8]) async throws {
        let buffer = self.channel.allocator.buffer(bytes: binary)
        try await self.sendRaw(frame: WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: buffer))
    }

    /// Sends `frame` exactly as given: fragments, control frames, or an unmasked frame to see
    /// how the server copes. Set `maskKey` yourself (e.g. `.random()`) for a well-formed client frame.
    public func sendRaw(frame: WebSocketFrame) async throws {
        try await self.channel.writeAndFlush(frame).get()
    }

    /// The next message, waiting at most `timeout`.
    ///
    /// - Throws: ``WebSocketClientError/timeout`` if nothing arrived in time; `CancellationError`
    ///   if the task is cancelled. A closed connection is not an error: it returns `.closed`.
    public func receive(timeout: Duration = .seconds(5)) async throws -> Message {
        try await self.inbox.next(timeout: timeout)
    }

    /// The first message satisfying `predicate` before the deadline, skipping the others.
    ///
    /// - Throws: ``WebSocketClientError/timeout`` at the deadline;
    ///   ``WebSocketClientError/connectionClosed(code:reason:)`` if the connection ends first
    ///   (unless `predicate` accepts the `.closed` message).
    public func receive(
        matching predicate: (Message) -> Bool,
        timeout: Duration = .seconds(5)
    ) async throws -> Message {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        // Bounded by the deadline; the count bound only guards against a pathological flood.
        for _ in 0..<Self.maxSkippedMessages {
            let remaining = clock.now.duration(to: deadline)
            guard remaining > .zero else { throw WebSocketClientError.timeout }
            let message = try await self.receive(timeout: remaining)
            if predicate(message) { return message }
            if case .closed(let code, let reason) = message {
                throw WebSocketClientError.connectionClosed(code: code, reason: reason)
            }
        }
        throw WebSocketClientError.timeout
    }

    /// The first text message containing `fragment` before the deadline, skipping the others.
    public func receiveText(containing fragment: String, timeout: Duration = .seconds(5)) async throws -> String {
        let message = try await self.receive(matching: { $0.text?.contains(fragment) ?? false }, timeout: timeout)
        return message.text ?? ""
    }

    /// Closes the connection: sends a close frame, waits briefly for the server's, then drops
    /// the TCP connection. Safe to call more than once.
    public func close(code: Int = 1000, reason: String = "") async {
        let handler = self.handler
        self.channel.eventLoop.execute {
            handler.value.initiateClose(code: code, reason: reason)
        }
        // The handler drops the connection after its close-handshake timeout; this is a backstop.
        let closed = self.channel.closeFuture.failing(
            after: FrameHandler.closeHandshakeTimeout + .seconds(1),
            with: WebSocketClientError.timeout
        )
        if (try? await closed.get()) == nil {
            try? await self.channel.close()
        }
    }

    static let maxSkippedMessages = 1 << 20
}
