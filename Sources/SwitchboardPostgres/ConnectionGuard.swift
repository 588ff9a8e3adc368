import NIOCore
import PostgresNIO
import Synchronization

extension PostgresConnection {
    /// How long a statement may go on after its connection closed before it is abandoned.
    static let abandonAfterClose = Duration.seconds(1)

    /// Runs `body` on this connection, with two guarantees postgres-nio 1.33 does not give:
    ///
    /// - it ends when the connection closes: a statement sent while the connection is closing
    ///   can wait for ever (postgres-nio writes it to the channel without a promise, so when the
    ///   channel is already closed nobody fails it; seen as a server whose database went down
    ///   never noticing, and never stopping). Once the connection has been closed for
    ///   `abandonAfterClose` and `body` has not finished, it is abandoned (left waiting on its
    ///   own, cancelled) and this throws a ``DatabaseError``;
    /// - cancelling the calling task closes the connection, which ends whatever `body` waits for.
    public func guarded<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let outcome = GuardedOutcome<Result>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                outcome.install(continuation)
                let work = Task {
                    do {
                        outcome.finish(.success(try await body(self)))
                    } catch {
                        outcome.finish(.failure(error))
                    }
                }
                let closed = self.closeFuture
                closed.whenComplete { _ in
                    closed.eventLoop.scheduleTask(in: TimeAmount(Self.abandonAfterClose)) {
                        let abandoned = outcome.finish(
                            .failure(DatabaseError("the database connection closed while a statement on it was waiting; it was abandoned")))
                        if abandoned { work.cancel() }
                    }
                }
            }
        } onCancel: {
            _ = self.close() as EventLoopFuture<Void>
        }
    }
}

/// The first of a guarded body's result and its abandonment, handed to the waiting caller once.
private final class GuardedOutcome<Result: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<Result, any Error>?>(nil)

    func install(_ continuation: CheckedContinuation<Result, any Error>) {
        self.continuation.withLock { $0 = continuation }
    }

    /// Resumes the caller unless it was already; returns whether this call did.
    @discardableResult
    func finish(_ result: Swift.Result<Result, any Error>) -> Bool {
        let waiting = continuation.withLock { continuation -> CheckedContinuation<Result, any Error>? in
            defer { continuation = nil }
            return continuation
        }
        waiting?.resume(with: result)
        return waiting != nil
    }
}
