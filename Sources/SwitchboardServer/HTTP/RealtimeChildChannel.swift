import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
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
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: shared.configuration.maxFrameBytes,
                shouldUpgrade: { channel, head in
                    let request = SocketRequest(uri: head.uri, headers: head.headers)
                    guard Self.socketPaths.contains(request.path), let version = request.version, let token = request.token else {
                        return channel.eventLoop.makeSucceededFuture(nil)
                    }
                    guard case .success(let identity) = shared.verifier.verifySynchronously(token, now: RealtimeContext.now()) else {
                        return channel.eventLoop.makeSucceededFuture(nil)
                    }
                    accepted.value = (version, identity, token)
                    return channel.eventLoop.makeSucceededFuture(HTTPHeaders())
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard let (version, identity, token) = accepted.value else {
                            throw ChannelError.inappropriateOperationForState
                        }
                        let raw = RawFrameWriter()
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(raw, position: .first)
                        try sync.addHandler(
                            NIOWebSocketFrameAggregator(
                                minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1024,
                                maxAccumulatedFrameSize: shared.configuration.maxFrameBytes))
                        try sync.addHandler(
                            IdleStateHandler(readTimeout: .seconds(Int64(shared.configuration.idleTimeoutSeconds))))
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
                        return UpgradeResult.http(asyncChannel)
                    }
                }
            )
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(upgradeConfiguration: serverUpgrade)
            configuration.enablePipelining = false
            configuration.enableErrorHandling = false
            configuration.enableResponseHeaderValidation = false
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            try channel.syncOptions?.setOption(
                ChannelOptions.writeBufferWaterMark,
                value: .init(low: shared.configuration.slowConsumerBytes / 2, high: shared.configuration.slowConsumerBytes))
            return Value(upgradeResult: result, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .websocket:
                // The connection now lives in NIO handlers; no task stays behind for it.
                return
            case .http(let channel):
                await handleHTTP(asyncChannel: channel, logger: logger)
            }
        } catch {
            logger.debug("connection setup failed", metadata: ["error": "\(error)"])
        }
    }
}

/// What a WebSocket connect request carries: path, `vsn`, and the token from `apikey` or the
/// `x-api-key` header (which wins, as in Supabase).
struct SocketRequest {
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
}
