import SwitchboardCore

/// The baseline for measuring what the rules engine costs (`serve --benchmark-allow-everything`,
/// hidden, loopback only): every join, send and row is allowed, at no cost.
struct AllowEverythingPolicy: Policy {
    func authorizeJoin(_ identity: Identity, channel: ChannelName) -> Decision { .allow }
    func authorizeSend(_ identity: Identity, channel: ChannelName, event: String, payload: Value?) -> Decision { .allow }
    func authorizePresence(_ identity: Identity, channel: ChannelName) -> Decision { .allow }
    func eventPolicy(_ event: String, channel: ChannelName) -> EventPolicy { .immediate }
    func transform(_ event: String, payload: Value?, on channel: ChannelName, by identity: Identity) -> Transformed { .unchanged }
    func derivedEvents(of event: String, payload: Value?, on channel: ChannelName, by identity: Identity) -> [(ChannelName, DerivedEvent)] {
        []
    }
    func limits(for identity: Identity) -> Limits { Limits(maxChannels: 100, maxPayloadBytes: 16 << 20, messagesPerMinute: .max) }
    func hasRowRule(table: String) -> Bool { true }
    func authorizeRow(_ identity: Identity, table: String, row: Value) -> Decision { .allow }
}
