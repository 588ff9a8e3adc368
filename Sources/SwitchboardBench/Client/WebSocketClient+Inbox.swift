import NIOCore
import Synchronization

extension WebSocketClient {
    /// The queue between the channel handler (producer, on the event loop) and `receive` callers.
    ///
    /// Invariant: waiters exist only while the queue is empty. Once closed, the queue drains first,
    /// then every receive returns the stored `.closed` message.
    final class Inbox: Sendable {
        private struct Waiter {
            let id: UInt64
            let continuation: CheckedContinuation<Message, any Error>
            var timer: Scheduled<Void>?
        }

        private struct State {
            var queue = CircularBuffer<Message>()
            var closed: Message?
            var waiters: [Waiter] = []
            var nextID: UInt64 = 0
        }

        /// What the producer should do after a push.
        enum PushResult {
            case accepted
            case overflowed
        }

        private let state = Mutex(State())
        private let eventLoop: any EventLoop
        private let capacity: Int

        init(eventLoop: any EventLoop, capacity: Int) {
            self.eventLoop = eventLoop
            self.capacity = capacity
        }

        /// Hands `message` to the oldest waiter, or queues it. Dropped once closed.
        func push(_ message: Message) -> PushResult {
            let outcome: (Waiter?, PushResult) = self.state.withLock { state in
                guard state.closed == nil else { return (nil, .accepted) }
                if !state.waiters.isEmpty {
                    return (state.waiters.removeFirst(), .accepted)
                }
                guard state.queue.count < self.capacity else { return (nil, .overflowed) }
                state.queue.append(message)
                return (nil, .accepted)
            }
            if let waiter = outcome.0 {
                waiter.timer?.cancel()
                waiter.continuation.resume(returning: message)
            }
            return outcome.1
        }

        /// Records the end of the connection; the first call wins.
        func finish(code: Int?, reason: String) {
            let waiters: [Waiter] = self.state.withLock { state in
                if state.closed == nil {
                    state.closed = .closed(code: code, reason: reason)
                }
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            let closed = Message.closed(code: code, reason: reason)
            for waiter in waiters {
                waiter.timer?.cancel()
                waiter.continuation.resume(returning: closed)
            }
        }

        /// Whether the connection has ended (queued messages may remain).
        var isFinished: Bool {
            self.state.withLock { $0.closed != nil }
        }

        /// The next message, waiting at most `timeout`.
        func next(timeout: Duration) async throws -> Message {
            let id = self.state.withLock { state in
                state.nextID &+= 1
                return state.nextID
            }
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Message, any Error>) in
                    let immediate: Result<Message, any Error>? = self.state.withLock { state in
                        if let message = state.queue.popFirst() { return .success(message) }
                        if let closed = state.closed { return .success(closed) }
                        if Task.isCancelled { return .failure(CancellationError()) }
                        state.waiters.append(Waiter(id: id, continuation: continuation, timer: nil))
                        return nil
                    }
                    if let immediate {
                        continuation.resume(with: immediate)
                        return
                    }
                    let timer = self.eventLoop.scheduleTask(in: timeout.timeAmount) {
                        self.fail(id: id, error: WebSocketClientError.timeout)
                    }
                    let stillWaiting = self.state.withLock { state in
                        guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return false }
                        state.waiters[index].timer = timer
                        return true
                    }
                    if !stillWaiting { timer.cancel() }
                }
            } onCancel: {
                self.fail(id: id, error: CancellationError())
            }
        }

        private func fail(id: UInt64, error: any Error) {
            let waiter: Waiter? = self.state.withLock { state in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.timer?.cancel()
            waiter?.continuation.resume(throwing: error)
        }
    }
}
