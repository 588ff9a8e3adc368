import NIOCore
import SwitchboardAuth
import SwitchboardCore
import SwitchboardWire

/// Joins, leaves, re-authorization and the subscriptions behind them.
extension RealtimeConnection {
    func join(_ inbound: InboundFrame) {
        switch JoinRequest.parse(topic: inbound.topic, payload: inbound.payload) {
        case .failure(let refusal):
            refuse(inbound, refusal)
        case .success(let request):
            completeJoin(inbound, request, identity: identity(for: JoinRequest.channelToken(in: inbound.payload, connectToken: connectToken)))
        }
    }

    private func completeJoin(_ inbound: InboundFrame, _ request: JoinRequest, identity result: Result<Identity, AuthError>) {
        let identity: Identity
        switch result {
        case .failure(let error):
            refuse(inbound, .badToken(error))
            return
        case .success(let verified):
            identity = verified
        }
        if let previous = joins[inbound.topic] {
            closeJoin(topic: inbound.topic, previous)
        }
        let limits = shared.limits(for: identity)
        if joins.count >= limits.maxChannels {
            refuse(inbound, .tooManyChannels(limits.maxChannels, tier: identity.tier))
            return
        }
        if case .deny(let why) = shared.policy.authorizeJoin(identity, channel: request.channel) {
            refuse(inbound, .joinDenied(request.channel, why))
            return
        }
        if let refusal = checkChanges(request.changes) {
            refuse(inbound, refusal)
            return
        }
        let retention = shared.policy.history(for: request.channel)
        if request.replay != nil, retention == nil {
            refuse(inbound, .replayNotKept(request.channel))
            return
        }
        var join = Join(
            joinRef: inbound.joinRef ?? inbound.ref, channel: request.channel, identity: identity,
            receivesOwn: request.receivesOwn, ack: request.ack, presenceKey: request.presenceKey ?? RealtimeContext.generatedPresenceKey())
        join.changes = request.changes
        joins[inbound.topic] = join
        subscribe(topic: inbound.topic, join)
        shared.metrics.joinsAccepted.increment()
        shared.metrics.totals.joined()
        let echoed: [Value] = zip(request.bindings, request.changes).map { binding, parsed in
            var object = binding.objectValue ?? .init()
            object["id"] = .int(parsed.id)
            return .object(object)
        }
        var response: Value.Object = ["postgres_changes": .array(echoed)]
        var replayed: [ByteBuffer] = []
        if let retention {
            // Subscribed first, then the snapshot: a message published in between is both
            // replayed and queued live, and the fence drops the live copy.
            let replay = shared.log.replay(topic: inbound.topic, since: request.replay, retention: retention, version: version)
            shard?.setFence(topic: inbound.topic, self, tag: replay.position.tag, seq: replay.position.seq)
            response["epoch"] = .string(replay.position.epoch)
            response["seq"] = .int(replay.position.seq)
            if let recovered = replay.recovered {
                response["recovered"] = .bool(recovered)
                shared.metrics.replays(recovered: recovered, messages: replay.frames.count)
            }
            replayed = replay.frames
        }
        replyOK(to: inbound, response: .object(response))
        if !request.changes.isEmpty {
            pushSystem(topic: inbound.topic, join, extension: "postgres_changes", status: "ok", message: "Subscribed to PostgreSQL")
        }
        if request.presenceEnabled {
            push(topic: inbound.topic, joinRef: join.joinRef, event: "presence_state", payload: shared.presence.state(topic: inbound.topic))
        }
        if !replayed.isEmpty {
            for frame in replayed { _ = writeBroadcast(frame) }
            flushBroadcasts()
        }
        perform(machine.tokenExpires(topic: inbound.topic, at: identity.expiresAt, now: shared.now()))
    }

    func subscribe(topic: String, _ join: Join) {
        guard let shard else { return }
        if shard.subscribe(topic: topic, .init(connection: self, receivesOwn: join.receivesOwn)) {
            shared.hub.setShard(shard.index, topic: topic, hasSubscribers: true)
        }
        shared.metrics.subscriptions(scope: join.channel.scope)?.increment(by: 1)
    }

    func unsubscribe(topic: String, _ join: Join) {
        guard let shard else { return }
        if shard.unsubscribe(topic: topic, self) {
            shared.hub.setShard(shard.index, topic: topic, hasSubscribers: false)
        }
        shared.metrics.subscriptions(scope: join.channel.scope)?.decrement(by: 1)
    }

    /// Ends a join: `phx_close` to the client, subscription removed.
    func closeJoin(topic: String, _ join: Join) {
        joins[topic] = nil
        leavePresence(topic: topic, join)
        unsubscribe(topic: topic, join)
        perform(machine.joinEnded(topic: topic, now: shared.now()))
        push(topic: topic, ref: join.joinRef, joinRef: join.joinRef, event: "phx_close", payload: .object(.init()))
    }

    /// Shuts one channel down with a `system` error saying why, then `phx_close`.
    func shutDownChannel(topic: String, _ join: Join, message: String) {
        pushSystem(topic: topic, join, status: "error", message: message)
        closeJoin(topic: topic, join)
    }

    /// Re-checks each join against the current policy (after a rules reload); a join that lost
    /// access gets a `system` message with the rules' reason and a `phx_close`. Returns how
    /// many joins were closed.
    /// Runs the join rule again for this connection's subscriptions (only those whose user's
    /// `sub`, `supplier_id` or `couple_id` is in `members`, when given) and removes the ones it
    /// now denies.
    func reauthorize(members: Set<String>? = nil) -> Int {
        var removed = 0
        for (topic, join) in joins {
            if let members {
                let identity = join.identity
                let ids = [identity.subject, identity.supplierID, identity.coupleID].compactMap { $0 }
                guard ids.contains(where: members.contains) else { continue }
            }
            var denied: String?
            if case .deny(let why) = shared.policy.authorizeJoin(join.identity, channel: join.channel) {
                denied = why
            } else if members == nil, let table = join.changes.lazy.compactMap(\.qualifiedTable).first(where: { !shared.policy.hasRowRule(table: $0) }) {
                // A reload that dropped a table's rule ends the bindings on it (default deny).
                denied = "no rule says who may read changes of table \(table)"
            }
            guard let denied else { continue }
            revoke(topic: topic, join, .revoked(join.channel, denied))
            removed += 1
        }
        return removed
    }

    /// Why a join's `postgres_changes` bindings cannot be served, if they cannot: a table
    /// without a rule; with a database, a table outside the publication, or a filter or
    /// `select` naming a column the table does not have.
    func checkChanges(_ bindings: [ChangeBinding]) -> Refusal? {
        let catalog = shared.changesCatalog?.current
        for (position, binding) in bindings.enumerated() {
            guard let table = binding.qualifiedTable else { continue }
            if !shared.policy.hasRowRule(table: table) { return .noRowRule(table) }
            guard let catalog else { continue }
            guard let columns = catalog[table] else { return .notPublished(table) }
            let named = (binding.filter?.conditions.map(\.column) ?? []) + (binding.select ?? [])
            if let missing = named.first(where: { !columns.contains($0) }) {
                return .invalidPostgresChanges(
                    "postgres_changes[\(position)]: \(table) has no column \(missing) (its columns: \(columns.joined(separator: ", ")))")
            }
        }
        return nil
    }

    /// Counts `refusal` and shuts the join down with its reason.
    func revoke(topic: String, _ join: Join, _ refusal: Refusal) {
        shared.metrics.rejected(refusal.metric)
        shutDownChannel(topic: topic, join, message: refusal.reason)
    }
}
