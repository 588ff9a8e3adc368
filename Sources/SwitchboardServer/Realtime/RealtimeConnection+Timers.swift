import NIOCore

/// Performs what `ConnectionStateMachine` decides: timers on the server's clock, closes.
extension RealtimeConnection {
    func perform(_ actions: [ConnectionStateMachine.Action]) {
        for action in actions { perform(action) }
    }

    private func perform(_ action: ConnectionStateMachine.Action) {
        switch action {
        case .schedule(let timer, let deadline):
            timers[timer]?.handle.cancel()
            guard let context else { return }
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let handle = shared.configuration.clock.schedule(at: deadline, on: context.eventLoop) {
                bound.value.fired(timer, deadline: deadline)
            }
            timers[timer] = (deadline, handle)
        case .cancel(let timer):
            timers.removeValue(forKey: timer)?.handle.cancel()
        case .closeIdle:
            close(code: 1001, reason: "no data received for \(shared.configuration.idleTimeoutSeconds) s")
        case .closeSlowConsumer:
            closeSlowConsumer()
        case .expire(let expired):
            for entry in expired {
                guard let join = joins[entry.topic] else { continue }
                shutDownChannel(topic: entry.topic, join, message: "Token has expired \(entry.secondsAgo) seconds ago")
            }
        }
    }

    /// A timer ran. One that was replaced or cancelled after it had been queued on the loop
    /// finds another deadline (or none) in `timers` and does nothing.
    private func fired(_ timer: ConnectionStateMachine.Timer, deadline: UInt64) {
        guard timers[timer]?.deadline == deadline else { return }
        timers[timer] = nil
        guard !closing, let context else { return }
        perform(machine.fired(timer, now: shared.now(), isWritable: context.channel.isWritable))
    }

    func closeSlowConsumer() {
        shared.metrics.rejected(.slowConsumer)
        logger.warning("closing a slow consumer", metadata: ["unsent_bytes_while_unwritable": "\(machine.bytesWhileUnwritable)"])
        close(code: 1008, reason: "slow consumer: more than \(shared.configuration.slowConsumerBytes) bytes unsent for too long")
    }

    func cancelTimers() {
        for timer in timers.values { timer.handle.cancel() }
        timers.removeAll()
    }
}
