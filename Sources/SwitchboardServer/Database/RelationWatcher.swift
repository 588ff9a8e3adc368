import Logging
import ServiceLifecycle
import Synchronization
import SwitchboardPostgres
import SwitchboardRules

/// Keeps the relations the rules read from the database fresh: LISTENs for the notifications
/// the tables they `watch` send on every change (migration 4's trigger, put on them when the
/// relations are read), reads each affected relation again, replaces its pairs in the rules in
/// force, and re-runs the join rule for the subscriptions of the members it lost — closing the
/// ones now denied, as a rules reload does.
///
/// Notifications that arrive while a refresh runs are gathered into the next one. When its
/// connection comes (back), it reads every watched relation, for the changes it missed.
struct RelationWatcher: Service {
    let rules: RulesEngine
    let hub: Hub
    let relations: DatabaseRelations
    let health: RelationsHealth

    private var logger: Logger { relations.logger }

    func run() async {
        await cancelWhenGracefulShutdown {
            await keepReconnecting { connected in
                try await watchOnce(connected: connected)
            } failed: { error, first in
                health.stale(DatabaseError.describe(error))
                if first {
                    logger.warning(
                        "watching the relations' tables stopped; the rows read last keep serving",
                        metadata: ["error": "\(DatabaseError.describe(error))"])
                }
            }
        }
    }

    /// One connection's worth: refreshes on every change it hears of, and once everything when
    /// it starts listening; ends (throwing) with the connection.
    private func watchOnce(connected: @escaping @Sendable () -> Void) async throws {
        let pending = PendingChanges()
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        // The LISTEN and the refreshes: the first to end (its connection lost, a refresh that
        // cannot reach the database) ends the other and this connection's watch.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in wakeups {
                    let changes = pending.take()
                    try await refresh(changes)
                    // Fresh again once everything has been read since the LISTEN began.
                    if changes.everything { health.watching() }
                }
                throw CancellationError()
            }
            group.addTask {
                try await RelationQuery.listenForChanges(
                    settings: relations.settings, logger: logger,
                    connected: {
                        connected()
                        pending.everything()
                        wake.yield()
                    },
                    changed: { table, keys in
                        pending.add(table, keys: keys)
                        wake.yield()
                    })
            }
            defer { group.cancelAll() }
            try await group.next()
            throw DatabaseError("watching the relations' tables stopped")
        }
    }

    /// Reads again the relations that watch a changed table: only the changed keys' rows of a
    /// relation whose every changed table named its key column and sent its keys, else the
    /// whole relation.
    func refresh(_ changes: PendingChanges.Changes) async throws {
        var whole: [RuleSet.Relation] = []
        var keyed: [RuleSet.Relation] = []
        var keysOf: [String: Set<String>] = [:]
        for relation in rules.rules.relations.values where !relation.watch.isEmpty {
            if changes.everything {
                whole.append(relation)
                continue
            }
            var touched = false
            var all = false
            var keys: Set<String> = []
            for table in relation.watch {
                guard let change = changes.tables[RelationQuery.qualified(table)] else { continue }
                touched = true
                if case .keys(let changed) = change, relation.keyColumns[table] != nil {
                    keys.formUnion(changed)
                } else {
                    all = true
                }
            }
            guard touched else { continue }
            if all {
                whole.append(relation)
            } else {
                keyed.append(relation)
                keysOf[relation.name] = keys
            }
        }
        guard !whole.isEmpty || !keyed.isEmpty else { return }
        var lost: Set<String> = []
        for (relation, result) in try await relations.read(whole + keyed, purpose: .refresh, onlyKeys: keysOf) {
            switch result {
            case .success(let pairs):
                if let keys = keysOf[relation.name] {
                    lost.formUnion(rules.replaceRelation(relation.name, keys: keys, with: pairs))
                } else {
                    lost.formUnion(rules.replaceRelation(relation.name, with: pairs))
                }
            case .failure(let error):
                logger.error(
                    "reading a relation again failed; its rows read last keep serving",
                    metadata: ["relation": "\(relation.name)", "location": "\(relation.location)", "error": "\(error.message)"])
            }
        }
        hub.metrics.relations(rules.relationInfo)
        let revoked = lost.isEmpty ? 0 : await hub.reauthorize(members: lost)
        logger.info(
            "relations read again after a change",
            metadata: [
                "whole": "\(whole.map(\.name).sorted().joined(separator: ","))",
                "keyed": "\(keyed.map { "\($0.name)(\(keysOf[$0.name]?.count ?? 0) keys)" }.sorted().joined(separator: ","))",
                "subscriptions_revoked": "\(revoked)",
            ])
    }
}

/// The changes heard since the watcher last looked.
final class PendingChanges: Sendable {
    enum Change: Sendable {
        /// Every key of the table may have changed.
        case all
        case keys(Set<String>)
    }

    struct Changes: Sendable {
        /// Every watched relation must be read (the LISTEN has just begun).
        var everything = false
        /// By `schema.table`.
        var tables: [String: Change] = [:]
    }

    private let changes = Mutex(Changes())

    func add(_ table: String, keys: [String]?) {
        changes.withLock { changes in
            guard !changes.everything else { return }
            switch (changes.tables[table], keys) {
            case (.all, _), (_, nil): changes.tables[table] = .all
            case (.keys(let known), let keys?): changes.tables[table] = .keys(known.union(keys))
            case (nil, let keys?): changes.tables[table] = .keys(Set(keys))
            }
        }
    }

    func everything() { changes.withLock { $0 = Changes(everything: true) } }

    func take() -> Changes {
        changes.withLock { changes in
            defer { changes = Changes() }
            return changes
        }
    }
}
