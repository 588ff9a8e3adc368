import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwitchboardAuth
import SwitchboardCore

/// The Switchboard server: one port serving the realtime WebSocket protocol, the REST
/// broadcast API, `/health` and `/metrics`.
public struct SwitchboardServer: Sendable {
    /// The HTTP application (Hummingbird) whose child channel also accepts WebSocket upgrades.
    let application: Application<RouterResponder<BasicRequestContext>>
    /// The service that drains WebSocket connections on graceful shutdown.
    let realtime: RealtimeService

    /// Builds a server; fails with a clear message when the auth configuration is unusable.
    public init(
        configuration: SwitchboardConfiguration,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let metrics = ServerMetrics()
        let hub = Hub(group: group, metrics: metrics)
        let verifier = try await TokenVerifier(configuration.auth)
        let shared = RealtimeContext(
            hub: hub, verifier: verifier, policy: configuration.effectivePolicy, configuration: configuration, logger: logger)
        let router = Router()
        RESTRoutes(shared: shared).register(on: router)
        application = Application(
            router: router,
            server: HTTPServerBuilder { responder in RealtimeChildChannel(responder: responder, shared: shared) },
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? configuration.port) },
            eventLoopGroupProvider: .shared(group),
            logger: logger
        )
        realtime = RealtimeService(hub: hub)
    }

    /// The services to run, in start order (shut down in reverse: WebSockets drain first).
    public var services: [any Service] { [application, realtime] }

    /// Runs until SIGTERM or SIGINT, then drains: every client gets a `system` "Server requested
    /// disconnect" message and a close with code 1012.
    public func run(logger: Logger) async throws {
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// Waits for graceful shutdown, then closes every WebSocket connection politely.
struct RealtimeService: Service {
    let hub: Hub

    func run() async throws {
        try? await gracefulShutdown()
        await hub.drain(reason: "Server requested disconnect")
    }
}
