import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// HTTP/1.1 upgrade to WebSocket over a plain TCP connection, shared by ``WebSocketClient``
/// and the bench connections.
///
/// After a successful upgrade the pipeline holds NIO's frame encoder and decoder, its protocol
/// error handler, a `NIOWebSocketFrameAggregator`, and whatever `install` adds. A refused upgrade
/// becomes ``WebSocketClientError/upgradeRejected(status:body:)`` with the response body.
enum WebSocketConnector {
    /// What `install` produced, next to the upgraded channel.
    struct Connection<Value: Sendable>: Sendable {
        let channel: any Channel
        let value: Value
    }

    /// The most body text kept from a refused upgrade.
    static let maxRejectionBodyBytes = 64 * 1024
    /// The most fragments one aggregated message may have.
    static let maxFragments = 4096

    private enum Outcome<Value: Sendable>: Sendable {
        case upgraded(Connection<Value>)
        case rejected(EventLoopFuture<RejectedResponse>)
    }

    /// Connects, upgrades and runs `install` on the channel's event loop once the WebSocket
    /// handlers are in place. Reads arriving before `install` has run are buffered by NIO.
    static func connect<Value: Sendable>(
        host: String,
        port: Int,
        uri: String,
        headers: [(String, String)],
        maxFrameSize: Int,
        timeout: TimeAmount,
        group: any EventLoopGroup,
        install: @escaping @Sendable (any Channel) throws -> Value
    ) async throws -> Connection<Value> {
        let frameLimit = max(1024, min(maxFrameSize, Int(UInt32.max)))
        let hostHeader = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let outcomeFuture: EventLoopFuture<Outcome<Value>> = try await ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketClientUpgrader<Outcome<Value>>(
                        maxFrameSize: frameLimit,
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(
                                    NIOWebSocketFrameAggregator(
                                        minNonFinalFragmentSize: 0,
                                        maxAccumulatedFrameCount: Self.maxFragments,
                                        maxAccumulatedFrameSize: frameLimit
                                    )
                                )
                                let value = try install(channel)
                                return .upgraded(Connection(channel: channel, value: value))
                            }
                        }
                    )
                    var requestHeaders = HTTPHeaders()
                    requestHeaders.add(name: "Host", value: hostHeader)
                    requestHeaders.add(name: "Content-Length", value: "0")
                    for (name, value) in headers {
                        requestHeaders.add(name: name, value: value)
                    }
                    let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: requestHeaders)
                    let upgradeConfiguration = NIOTypedHTTPClientUpgradeConfiguration<Outcome<Value>>(
                        upgradeRequestHead: head,
                        upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in
                            channel.eventLoop.makeCompletedFuture {
                                let collector = RejectedResponseCollector(
                                    promise: channel.eventLoop.makePromise(of: RejectedResponse.self),
                                    maxBodyBytes: Self.maxRejectionBodyBytes
                                )
                                try channel.pipeline.syncOperations.addHandler(collector)
                                let response = collector.future.failing(
                                    after: timeout,
                                    with: WebSocketClientError.timeout
                                ) { channel.close(promise: nil) }
                                return .rejected(response)
                            }
                        }
                    )
                    var configuration = NIOUpgradableHTTPClientPipelineConfiguration(
                        upgradeConfiguration: upgradeConfiguration
                    )
                    // Bytes the server sends right behind its 101 belong to the WebSocket stream.
                    configuration.leftOverBytesStrategy = .forwardBytes
                    let upgraded = try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: configuration
                    )
                    upgraded.whenFailure { _ in channel.close(promise: nil) }
                    return upgraded.failing(after: timeout, with: WebSocketClientError.timeout) {
                        channel.close(promise: nil)
                    }
                }
            }

        let outcome: Outcome<Value>
        do {
            outcome = try await outcomeFuture.get()
        } catch let error as NIOHTTPClientUpgradeError {
            throw WebSocketClientError.handshakeFailed(String(describing: error))
        }
        switch outcome {
        case .upgraded(let connection):
            return connection
        case .rejected(let response):
            let rejected = try await response.get()
            throw WebSocketClientError.upgradeRejected(status: rejected.status, body: rejected.body)
        }
    }
}
