import NIOCore
import SwitchboardCore
import SwitchboardWire

/// Presence: `track` and `untrack` pushes, and leaving what a join tracked.
extension RealtimeConnection {
    func presence(_ inbound: InboundFrame, join: Join) {
        let limit = shared.configuration.presenceUpdatesPerMinute
        let budget = "presence#\(join.channel)#\(id)"
        if case .refused(let retryAfter) = shared.rateLimiter.attempt(
            key: budget, limit: limit, now: shared.configuration.clock.monotonicSeconds())
        {
            refuse(inbound, .presenceRateLimited(join.channel, limit: limit, retryAfter: retryAfter))
            return
        }
        switch inbound.payload["event"]?.stringValue?.lowercased() {
        case "track":
            guard let meta = inbound.payload["payload"]?.objectValue else {
                refuse(inbound, .presenceNotAMap)
                return
            }
            var bytes = ByteBufferAllocator().buffer(capacity: 0)
            JSON.serialize(.object(meta), into: &bytes)
            let limit = shared.configuration.maxPresenceMetaBytes
            if bytes.readableBytes > limit {
                refuse(inbound, .presenceTooLarge(bytes.readableBytes, limit: limit))
                return
            }
            if case .deny(let why) = shared.policy.authorizePresence(join.identity, channel: join.channel) {
                refuse(inbound, .presenceDenied(join.channel, why))
                return
            }
            let diff = shared.presence.track(topic: inbound.topic, owner: id, key: join.presenceKey, meta: meta)
            if let diff, diff.leaves.isEmpty { shared.metrics.presences(scope: join.channel.scope)?.increment(by: 1) }
            if let link = shared.cluster, let ref = diff?.joins.first?.meta["phx_ref"]?.stringValue {
                ClusterNode.tracked(topic: inbound.topic, owner: id, key: join.presenceKey, ref: ref, meta: meta, link: link)
            }
            joins[inbound.topic]?.tracking = true
            replyOK(to: inbound, response: .object(.init()))
            publishPresence(diff, topic: inbound.topic)
        case "untrack":
            joins[inbound.topic]?.tracking = false
            let diff = shared.presence.untrack(topic: inbound.topic, owner: id)
            if diff != nil { shared.metrics.presences(scope: join.channel.scope)?.decrement(by: 1) }
            if diff != nil, let link = shared.cluster { ClusterNode.untracked(topic: inbound.topic, owner: id, link: link) }
            replyOK(to: inbound, response: .object(.init()))
            publishPresence(diff, topic: inbound.topic)
        default:
            refuse(inbound, .presenceEvent)
        }
    }

    /// Removes what `join` tracked and tells the channel.
    func leavePresence(topic: String, _ join: Join) {
        guard join.tracking else { return }
        let diff = shared.presence.untrack(topic: topic, owner: id)
        if diff != nil { shared.metrics.presences(scope: join.channel.scope)?.decrement(by: 1) }
        if diff != nil, let link = shared.cluster { ClusterNode.untracked(topic: topic, owner: id, link: link) }
        publishPresence(diff, topic: topic)
    }

    private func publishPresence(_ diff: ChannelPresence.Diff?, topic: String) {
        shared.publishPresence(diff, topic: topic, allocator: context?.channel.allocator ?? ByteBufferAllocator())
    }
}
