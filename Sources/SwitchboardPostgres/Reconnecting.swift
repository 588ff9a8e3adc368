import Logging
import Synchronization

/// Runs `session` again and again until the task is cancelled: after a failure it waits 100 ms,
/// doubling up to 2 s, and starts from 100 ms again once a session has said it was up
/// (`connected`). `failed` hears of every failure with whether it is the first since the last
/// good session (to log once, not at every retry).
public func keepReconnecting(
    _ session: (_ connected: @escaping @Sendable () -> Void) async throws -> Void,
    failed: (_ error: any Error, _ first: Bool) -> Void
) async {
    var backoff = Duration.milliseconds(100)
    var failing = false
    while !Task.isCancelled {
        let connected = Atomic(false)
        do {
            try await session { connected.store(true, ordering: .relaxed) }
        } catch {
            if Task.isCancelled { return }
            if connected.load(ordering: .relaxed) {
                backoff = .milliseconds(100)
                failing = false
            }
            failed(error, !failing)
            failing = true
        }
        try? await Task.sleep(for: backoff)
        backoff = min(backoff * 2, .seconds(2))
    }
}
