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
        switch rules.reload() {
        case .success(let generation):
            hub.metrics.rulesGeneration.set(generation)
            hub.metrics.rulesReloaded.increment()
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
