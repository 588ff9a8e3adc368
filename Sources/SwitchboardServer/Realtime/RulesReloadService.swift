import Logging
import ServiceLifecycle
import SwitchboardRules
import UnixSignals

/// Reloads the rules when their files change (debounced by `RulesWatcher`) or on SIGHUP, then
/// re-authorizes every subscription against the new generation. A reload that fails keeps the
/// old generation serving and logs every error with its `file:line`.
struct RulesReloadService: Service {
    let rules: RulesEngine
    let hub: Hub
    let watchFiles: Bool
    let debounce: Duration
    let reloadOnHangup: Bool
    /// Fills the relations the rules declare from the database; nil without one.
    let relations: DatabaseRelations?
    let logger: Logger

    func run() async throws {
        let (requests, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let watcher = watchFiles ? RulesWatcher(directory: rules.directory, debounce: debounce) { changed in
                continuation.yield("changed: \(changed.sorted().joined(separator: ", "))")
            } : nil
        watcher?.start()
        if let mechanism = watcher?.mechanism {
            logger.info("watching the rules", metadata: ["directory": "\(rules.directory.path)", "mechanism": "\(mechanism)"])
        }
        defer { watcher?.stop() }
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                if reloadOnHangup {
                    group.addTask {
                        for await _ in await UnixSignalsSequence(trapping: .sighup) { continuation.yield("SIGHUP") }
                    }
                }
                for await reason in requests { await reload(because: reason) }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            continuation.finish()
        }
    }

    /// Loads the next generation (a few milliseconds of Lua per lane, off the event loops) and,
    /// when it is in force, removes the subscriptions it no longer allows.
    func reload(because reason: String) async {
        let outcome = await rules.prepare().asyncFlatMap { candidate -> Result<Int, RulesLoadError> in
            if let relations {
                let serving = rules.rules.relations
                let errors = await relations.fill(candidate.rules) {
                    candidate.replaceRelation($0, with: $1, source: .database)
                } carryOver: { relation in
                    serving[relation.name]?.sql == relation.sql && rules.relationInfo[relation.name]?.source == .database
                        && candidate.carryOver(relation.name, from: rules)
                }
                if !errors.isEmpty {
                    rules.recordFailure(errors)
                    return .failure(RulesLoadError(errors: errors))
                }
            }
            return .success(rules.activate(candidate))
        }
        switch outcome {
        case .success(let generation):
            hub.metrics.rulesGeneration.set(generation)
            hub.metrics.rulesReloaded.increment()
            hub.metrics.relations(rules.relationInfo)
            let removed = await hub.reauthorizeAll()
            logger.info(
                "rules reloaded",
                metadata: ["generation": "\(generation)", "trigger": "\(reason)", "subscriptions_revoked": "\(removed)"])
        case .failure(let failure):
            hub.metrics.rulesReloadFailed.increment()
            logger.error(
                "rules reload failed; the previous generation keeps serving",
                metadata: ["trigger": "\(reason)", "serving_generation": "\(rules.status.generation)"])
            for error in failure.errors { logger.error("\(error)") }
        }
    }
}

extension Result {
    /// `flatMap` with an async transform.
    func asyncFlatMap<New>(_ transform: (Success) async -> Result<New, Failure>) async -> Result<New, Failure> {
        switch self {
        case .success(let value): await transform(value)
        case .failure(let error): .failure(error)
        }
    }
}
