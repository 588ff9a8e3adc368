import NIOConcurrencyHelpers
import SwitchboardCore

/// Every channel's presence, shared by all event loops: one `ChannelPresence` per topic, in
/// lock stripes. Changes return the diff to fan out; a channel whose last presence leaves is
/// dropped.
final class PresenceRegistry: Sendable {
    private let stripes: [NIOLockedValueBox<[String: ChannelPresence]>]
    private let refs: NIOLockedValueBox<PresenceRefs>

    init(seed: UInt64, stripeCount: Int = 16) {
        stripes = (0..<max(1, stripeCount)).map { _ in NIOLockedValueBox([:]) }
        refs = NIOLockedValueBox(PresenceRefs(seed: seed))
    }

    /// Tracks `meta` for `owner`; `ref` is the entry's `phx_ref` when another node gave it one,
    /// else a new one.
    func track(topic: String, owner: UInt64, key: String, meta: Value.Object, ref given: String? = nil) -> ChannelPresence.Diff? {
        let ref = given ?? refs.withLockedValue { $0.next() }
        return stripe(topic).withLockedValue { channels in
            channels[topic, default: ChannelPresence()].track(owner: owner, key: key, meta: meta, ref: ref)
        }
    }

    func untrack(topic: String, owner: UInt64) -> ChannelPresence.Diff? {
        stripe(topic).withLockedValue { channels in
            guard var presence = channels[topic] else { return nil }
            let diff = presence.untrack(owner: owner)
            channels[topic] = presence.isEmpty ? nil : presence
            return diff
        }
    }

    /// Every entry whose owner is below `limit` (this node's connections), with its topic.
    func entries(ownersBelow limit: UInt64) -> [(topic: String, owner: UInt64, entry: ChannelPresence.Entry)] {
        stripes.flatMap { stripe in
            stripe.withLockedValue { channels in
                channels.flatMap { topic, presence in
                    presence.tracked.filter { $0.owner < limit }.map { (topic, $0.owner, $0.entry) }
                }
            }
        }
    }

    /// The `presence_state` payload of `topic`.
    func state(topic: String) -> Value {
        stripe(topic).withLockedValue { $0[topic]?.state } ?? .object(.init())
    }

    /// Tracked metas on `topic`.
    func count(topic: String) -> Int {
        stripe(topic).withLockedValue { $0[topic]?.count } ?? 0
    }

    private func stripe(_ topic: String) -> NIOLockedValueBox<[String: ChannelPresence]> {
        stripes[Int(UInt(bitPattern: topic.hashValue) % UInt(stripes.count))]
    }
}
