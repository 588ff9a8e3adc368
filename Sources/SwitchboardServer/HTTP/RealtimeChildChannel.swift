import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOSSL
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
import SwitchboardAuth
import SwitchboardCore
import SwitchboardWire

/// Hummingbird's child channel for our port: WebSocket upgrades on the realtime paths become
/// plain NIO handlers (`RealtimeConnection`); every other request goes to Hummingbird's router.
struct RealtimeChildChannel: ServerChildChannel, HTTPChannelHandler {
    /// The paths that accept WebSocket upgrades.
    static let socketPaths: Set<String> = ["/socket/websocket", "/realtime/v1/websocket"]

    enum UpgradeResult: Sendable {
        case websocket
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        /// An upgrade was asked for and refused: answer with this status and message, then close.
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, SocketRequest.Refusal)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let shared: RealtimeContext

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let shared = self.shared
            let accepted = NIOLoopBoundBox<(ProtocolVersion, Identity, String)?>(nil, eventLoop: channel.eventLoop)
            let refused = NIOLoopBoundBox<SocketRequest.Refusal?>(nil, eventLoop: channel.eventLoop)
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: shared.configuration.maxFrameBytes,
                shouldUpgrade: { channel, head in
                    let request = SocketRequest(uri: head.uri, headers: head.headers)
                    switch request.authenticate(with: shared.verifier, now: shared.configuration.clock.wallClockSeconds()) {
                    case .success(let (version, identity, token)):
                        accepted.value = (version, identity, token)
                        return channel.eventLoop.makeSucceededFuture(HTTPHeaders())
                    case .failure(let refusal):
                        if refusal.status == .unauthorized { shared.metrics.rejected(.badToken) }
                        refused.value = refusal
                        return channel.eventLoop.makeSucceededFuture(nil)
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard let (version, identity, token) = accepted.value else {
                            throw ChannelError.inappropriateOperationForState
                        }
                        let raw = RawFrameWriter()
                        let sync = channel.pipeline.syncOperations
                        // Next to the socket: below everything but TLS, which must see every byte.
                        if let tls = try? sync.handler(type: NIOSSLServerHandler.self) {
                            try sync.addHandler(raw, position: .after(tls))
                        } else {
                            try sync.addHandler(raw, position: .first)
                        }
                        try sync.addHandler(
                            NIOWebSocketFrameAggregator(
                                minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1024,
                                maxAccumulatedFrameSize: shared.configuration.maxFrameBytes))
                        try sync.addHandler(
                            RealtimeConnection(shared: shared, version: version, identity: identity, token: token, raw: raw))
                        return UpgradeResult.websocket
                    }
                }
            )
            let serverUpgrade = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true))
                        // After a refused upgrade NIO does not replay the request to the router, so the
                        // refusal is answered here.
                        if let refusal = refused.value { return UpgradeResult.refused(asyncChannel, refusal) }
                        return UpgradeResult.http(asyncChannel)
                    }
                }
            )
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(upgradeConfiguration: serverUpgrade)
            configuration.enablePipelining = false
            configuration.enableErrorHandling = false
            configuration.enableResponseHeaderValidation = false
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            // Each socket keeps receive buffers for its next reads: what an idle connection
            // holds. NIO's defaults (start at 2 KB; up to 4 reads per wake-up, so up to 4 kept
            // buffers) left two buffers, 1.6 KB, per idle connection; a heartbeat is under 100
            // bytes. Bigger reads still grow the buffer, up to 64 KB, as before.
            try channel.syncOptions?.setOption(
                ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536))
            try channel.syncOptions?.setOption(ChannelOptions.maxMessagesPerRead, value: 1)
            try channel.syncOptions?.setOption(
                ChannelOptions.writeBufferWaterMark,
                value: .init(low: shared.configuration.slowConsumerBytes / 2, high: shared.configuration.slowConsumerBytes))
            return Value(upgradeResult: result, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            // A client that never finishes its request leaves this future pending: when the
            // server gives up waiting for its connections at shutdown (the task is cancelled),
            // closing the channel fails it, so the server can stop.
            let channel = value.channel
            let upgrade = try await withTaskCancellationHandler {
                try await value.upgradeResult.get()
            } onCancel: {
                channel.close(promise: nil)
            }
            switch upgrade {
            case .websocket:
                // The connection now lives in NIO handlers; no task stays behind for it.
                return
            case .http(let channel):
                await handleHTTP(asyncChannel: channel, logger: logger)
            case .refused(let channel, let refusal):
                try await channel.executeThenClose { _, outbound in
                    let body = refusal.body
                    try await outbound.write(
                        .head(
                            HTTPResponse(
                                status: refusal.status,
                                headerFields: [
                                    .connection: "close", .contentType: "application/json", .contentLength: String(body.readableBytes),
                                ])))
                    try await outbound.write(.body(body))
                    try await outbound.write(.end(nil))
                }
            }
        } catch {
            logger.debug("connection setup failed", metadata: ["error": "\(error)"])
        }
    }
}

/// What a WebSocket connect request carries: path, `vsn`, and the token from `apikey` or the
/// `x-api-key` header (which wins, as in Supabase).
struct SocketRequest {
    /// Why a connect request is refused, as Supabase answers it: a status and `{"error": message}`.
    struct Refusal: Error, Sendable {
        let status: HTTPResponse.Status
        let message: String

        var body: ByteBuffer {
            var buffer = ByteBufferAllocator().buffer(capacity: message.utf8.count + 16)
            JSON.serialize(["error": .string(message)], into: &buffer)
            return buffer
        }
    }

    let path: String
    let versionText: String?
    let token: String?

    init(uri: String, headers: HTTPHeaders) {
        self.init(uri: uri, headerToken: headers.first(name: "x-api-key"))
    }

    init(uri text: String, headerToken: String?) {
        let uri = URI(text)
        path = uri.path
        let query = uri.queryParameters
        versionText = query["vsn"].map(String.init)
        let headerToken = headerToken.flatMap { $0.isEmpty ? nil : $0 }
        let queryToken = query["apikey"].flatMap { $0.isEmpty ? nil : String($0) }
        token = headerToken ?? queryToken
    }

    /// The protocol version, nil when `vsn` names one we do not speak.
    var version: ProtocolVersion? {
        guard let versionText else { return .v1 }
        return ProtocolVersion(rawValue: versionText)
    }

    /// Decides a connect request: the version, identity and token to serve it with, or why not.
    func authenticate(with verifier: TokenVerifier, now: Double) -> Result<(ProtocolVersion, Identity, String), Refusal> {
        guard RealtimeChildChannel.socketPaths.contains(path) else {
            return .failure(Refusal(status: .notFound, message: "no WebSocket endpoint at \(path); use /socket/websocket"))
        }
        guard let version else {
            return .failure(Refusal(status: .badRequest, message: "vsn \(versionText ?? "") is not supported; use 1.0.0 or 2.0.0"))
        }
        guard let token else { return .failure(Refusal(status: .unauthorized, message: "API key is missing")) }
        switch verifier.verifySynchronously(token, now: now) {
        case .success(let identity): return .success((version, identity, token))
        case .failure(let error): return .failure(Refusal(status: .unauthorized, message: error.httpMessage))
        }
    }
}
