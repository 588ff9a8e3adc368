import NIOCore

/// Performs what `ConnectionStateMachine` decides: timers on the server's clock, closes.
extension RealtimeConnection {
    func perform(_ actions: [ConnectionStateMachine.Action]) {
        for action in actions { perform(action) }
    }

    private func perform(_ action: ConnectionStateMachine.Action) {
        switch action {
        case .schedule(let timer, let deadline):
            timers[timer]?.handle?.cancel()
            timers[timer] = nil
            guard let context else { return }
            if let shard {
                // The loop's shard keeps every connection's timers behind one clock timer.
                timers[timer] = (deadline, nil)
                shard.schedule(self, timer, at: deadline, on: shared.configuration.clock)
                return
            }
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let handle = shared.configuration.clock.schedule(at: deadline, on: context.eventLoop) {
                bound.value.timerDue(timer, deadline: deadline)
            }
            timers[timer] = (deadline, handle)
        case .cancel(let timer):
            timers[timer]?.handle?.cancel()
            timers[timer] = nil
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

    /// Whether `timer` is scheduled for `deadline` (not replaced or cancelled since).
    func isWaiting(_ timer: ConnectionStateMachine.Timer, deadline: UInt64) -> Bool {
        timers[timer]?.deadline == deadline
    }

    /// A timer ran. One that was replaced or cancelled after it had been queued finds another
    /// deadline (or none) in `timers` and does nothing.
    func timerDue(_ timer: ConnectionStateMachine.Timer, deadline: UInt64) {
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
        for timer in ConnectionStateMachine.Timer.allCases {
            timers[timer]?.handle?.cancel()
            timers[timer] = nil
        }
    }

    /// The scheduled timer of each kind, stored inline (no collection allocated per connection):
    /// its deadline, and its clock timer when it has one of its own (no shard for its loop).
    struct ScheduledTimers {
        typealias Entry = (deadline: UInt64, handle: ServerTimer?)
        private var idle: Entry?
        private var tokenExpiry: Entry?
        private var slowConsumer: Entry?

        subscript(timer: ConnectionStateMachine.Timer) -> Entry? {
            get {
                switch timer {
                case .idle: idle
                case .tokenExpiry: tokenExpiry
                case .slowConsumer: slowConsumer
                }
            }
            set {
                switch timer {
                case .idle: idle = newValue
                case .tokenExpiry: tokenExpiry = newValue
                case .slowConsumer: slowConsumer = newValue
                }
            }
        }
    }
}
