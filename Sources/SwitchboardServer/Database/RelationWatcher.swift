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
            var backoff = Duration.milliseconds(100)
            var failing = false
            while !Task.isCancelled {
                let connected = Atomic(false)
                do {
                    try await watchOnce { connected.store(true, ordering: .relaxed) }
                } catch {
                    if Task.isCancelled { return }
                    if connected.load(ordering: .relaxed) {
                        // It was watching: start over from the shortest wait, and say so once.
                        backoff = .milliseconds(100)
                        failing = false
                    }
                    health.stale(DatabaseError.describe(error))
                    if !failing {
                        logger.warning(
                            "watching the relations' tables stopped; the rows read last keep serving",
                            metadata: ["error": "\(DatabaseError.describe(error))"])
                    }
                    failing = true
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(2))
            }
        }
    }

    /// One connection's worth: refreshes on every change it hears of, and once everything when
    /// it starts listening; ends (throwing) with the connection.
    private func watchOnce(connected: @escaping @Sendable () -> Void) async throws {
        let pending = PendingTables()
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                for await _ in wakeups {
                    let tables = pending.take()
                    try await refresh(tables)
                    // Fresh again once everything has been read since the LISTEN began.
                    if tables == nil { health.watching() }
                }
            }
            try await RelationQuery.listenForChanges(
                settings: relations.settings, logger: logger,
                connected: {
                    connected()
                    pending.everything()
                    wake.yield()
                },
                changed: { table in
                    pending.add(table)
                    wake.yield()
                })
        }
    }

    /// Reads the relations watching any of `tables` (nil: every watched relation) again.
    func refresh(_ tables: Set<String>?) async throws {
        let declared = rules.rules.relations.values.filter { relation in
            !relation.watch.isEmpty && (tables.map { !$0.isDisjoint(with: relation.watch.map(Self.qualified)) } ?? true)
        }
        guard !declared.isEmpty else { return }
        var lost: Set<String> = []
        for (relation, result) in try await relations.read(Array(declared), purpose: .refresh) {
            switch result {
            case .success(let pairs):
                lost.formUnion(rules.replaceRelation(relation.name, with: pairs))
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
            metadata: ["relations": "\(declared.map(\.name).sorted().joined(separator: ","))", "subscriptions_revoked": "\(revoked)"])
    }

    /// `supplier_team` → `public.supplier_team`, as the trigger names its table.
    static func qualified(_ table: String) -> String {
        table.contains(".") ? table : "public.\(table)"
    }
}

/// The tables changed since the watcher last looked; nil: every watched table.
private final class PendingTables: Sendable {
    private let tables = Mutex<Set<String>?>(nil)

    func add(_ table: String) { tables.withLock { _ = $0?.insert(table) } }
    func everything() { tables.withLock { $0 = nil } }

    func take() -> Set<String>? {
        tables.withLock { tables in
            defer { tables = [] }
            return tables
        }
    }
}
