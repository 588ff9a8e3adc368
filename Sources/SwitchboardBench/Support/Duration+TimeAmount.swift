import NIOCore

extension Duration {
    /// This duration as a NIO `TimeAmount`, clamped at zero.
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = self.components
        guard seconds >= 0 else { return .zero }
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return .nanoseconds(Int64.max) }
        return .nanoseconds(whole &+ attoseconds / 1_000_000_000)
    }

    /// This duration in (fractional) seconds.
    var seconds: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

extension EventLoopFuture where Value: Sendable {
    /// This future, or a failure with `error` if it has not completed within `timeout`.
    ///
    /// `onTimeout` runs on the event loop when the timeout wins (e.g. to close a channel).
    func failing(
        after timeout: TimeAmount,
        with error: any Error,
        onTimeout: (@Sendable () -> Void)? = nil
    ) -> EventLoopFuture<Value> {
        let promise = self.eventLoop.makePromise(of: Value.self)
        let timer = self.eventLoop.scheduleTask(in: timeout) {
            promise.fail(error)
            onTimeout?()
        }
        self.whenComplete { result in
            timer.cancel()
            promise.completeWith(result)
        }
        return promise.futureResult
    }
}
