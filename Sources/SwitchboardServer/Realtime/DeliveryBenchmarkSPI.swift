// An entry for the allocation budgets in Benchmarks/ (issue 15): the hub's per-message work on
// one loop and the server's per-message framing, reachable without making `Hub`, `HubShard`,
// `RealtimeConnection` or `EncodedBroadcast` public. Nothing in the server calls it.
import Logging
import NIOCore
import SwitchboardAuth
import SwitchboardCore
import SwitchboardWire

/// One loop's share of a fan-out, below the sockets: a `Hub` whose only loop is the caller's,
/// and on its shard `RealtimeConnection`s on the channels the caller hands in (`EmbeddedChannel`s
/// in the benchmarks), all subscribed to one topic.
///
/// Use it on `loop`'s thread only; the caller runs the loop after `publish` or `deliver`.
@_spi(Benchmarks) public final class DeliveryBenchmarkShard {
    /// A published message as the hub gets it: framed once per protocol version.
    public struct Message: Sendable {
        let encoded: EncodedBroadcast

        /// Frames `frame` for both protocol versions, as `ChannelLog` does once per published
        /// message (`asBinary`: it arrived as kind 3, so vsn 2.0.0 gets kind 4).
        public init(_ frame: BroadcastFrame, asBinary: Bool) {
            encoded = EncodedBroadcast(frame, asBinary: asBinary, allocator: ByteBufferAllocator())
        }

        /// The bytes a subscriber of `version` is written (WebSocket header included).
        public func frame(for version: ProtocolVersion) -> ByteBuffer? {
            encoded.frame(for: version)
        }
    }

    /// What a shard needs that is made with a suspension (jwt-kit hands out its keys through an
    /// actor): make it once, outside the thread that runs the loop.
    public struct Setup: Sendable {
        let verifier: TokenVerifier
        let policy: any Policy

        /// `policy` is only held by the connections' shared context: delivery does not ask it.
        public init(policy: any Policy) async throws {
            verifier = try await TokenVerifier(AuthConfiguration(hmacSecret: Self.secret))
            self.policy = policy
        }

        static let secret = "delivery-benchmark-secret-0123456789"
    }

    /// The topic every subscriber joins.
    public let topic: String
    private let context: RealtimeContext
    private let shard: HubShard
    private var subscribers = 0

    /// A hub on `loop` alone.
    public init(loop: any EventLoop, setup: Setup, topic: String) {
        self.topic = topic
        var configuration = SwitchboardConfiguration(auth: AuthConfiguration(hmacSecret: Setup.secret))
        // No connection timer fires unless this clock moves, and nothing here moves it.
        configuration.clock = ManualClock(wallSeconds: 1_800_000_000)
        let hub = Hub(group: loop, metrics: ServerMetrics(), clock: configuration.clock)
        context = RealtimeContext(
            hub: hub, verifier: setup.verifier, policy: setup.policy, rules: nil, configuration: configuration,
            logger: Logger(label: "switchboard-delivery-benchmark") { _ in SwiftLogNoOpLogHandler() })
        guard let shard = hub.shard(on: loop) else { preconditionFailure("the hub has no shard for its own loop") }
        self.shard = shard
    }

    /// Puts a connection speaking `version` on `channel` (active, used on `loop`'s thread) and
    /// subscribes it to the topic, not receiving its own messages: `RawFrameWriter` and
    /// `RealtimeConnection` are added to its pipeline as after a WebSocket upgrade.
    public func subscribe(_ channel: any Channel, version: ProtocolVersion) throws {
        subscribers += 1
        let subject = "u-\(subscribers)"
        let identity = Identity(
            subject: subject, role: "authenticated", tier: "paid", expiresAt: 1_900_000_000,
            claims: ["sub": .string(subject), "role": "authenticated", "exp": .int(1_900_000_000)])
        let raw = RawFrameWriter()
        try channel.pipeline.syncOperations.addHandler(raw)
        let connection = RealtimeConnection(shared: context, version: version, identity: identity, token: "", raw: raw)
        try channel.pipeline.syncOperations.addHandler(connection)
        if shard.subscribe(topic: topic, .init(connection: connection, receivesOwn: false)) {
            context.hub.setShard(shard.index, topic: topic, hasSubscribers: true)
        }
    }

    /// `Hub.publish` of one message from no connection: queues its delivery on the loop
    /// (`HubShard.deliver`, one write per subscriber, then one flush per subscriber).
    public func publish(_ message: Message) {
        context.hub.publish(topic: topic, message: message.encoded, sender: nil)
    }

    /// `HubShard.deliver` at once, without the hop through `Hub.publish` (the flush is queued).
    public func deliver(_ message: Message) {
        shard.deliver(topic: topic, message: message.encoded, sender: nil)
    }
}
