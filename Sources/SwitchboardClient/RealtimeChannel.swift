import Foundation
import SwitchboardCore

/// A joined channel. Its ``events`` stream delivers messages (each id once, in order),
/// presence and the join's recovery status; it ends when the channel is left or closed.
public struct RealtimeChannel: Sendable {
    /// The channel's name, e.g. `collaboration:s1:c1`.
    public let name: String
    /// What happens on the channel, in order; ends when it is left or closed.
    public let events: AsyncStream<ChannelEvent>
    let client: SwitchboardClient
    let topic: String

    init(client: SwitchboardClient, name: String, topic: String, events: AsyncStream<ChannelEvent>) {
        self.client = client
        self.name = name
        self.topic = topic
        self.events = events
    }

    /// Publishes `event` with `payload`; returns once the server acknowledged it. Sent
    /// again after a reconnect until acknowledged, with the same `id` (a UUID unless given),
    /// so subscribers get it once. Fails with `.expired` after `bufferedLifetime` without a
    /// connection, `.refused` when the server says no (the message says why).
    public func send(_ event: String, payload: Value, id: String = UUID().uuidString.lowercased()) async throws {
        try await client.push(
            topic: topic, event: "broadcast",
            payload: ["type": "broadcast", "event": .string(event), "payload": payload, "meta": ["id": .string(id)]])
    }

    /// Tracks this client's presence with `meta` (tracked again after every reconnect).
    public func track(_ meta: Value.Object) async throws {
        try await client.track(topic: topic, meta: meta)
    }

    /// Stops tracking this client's presence (and forgets the meta for reconnects).
    public func untrack() async throws {
        try await client.untrack(topic: topic)
    }

    /// Leaves the channel; its events end.
    public func leave() async {
        await client.leave(topic: topic)
    }
}
