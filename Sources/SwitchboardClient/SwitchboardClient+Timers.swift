import SwitchboardCore

extension SwitchboardClient {
    /// The heartbeat timer of connection `id` asks what to do now; a due heartbeat is sent.
    func heartbeatTimer(connection id: Int) -> ClientConnectionMachine.HeartbeatAction {
        guard connection?.id == id else { return .notConnected }
        let action = machine.heartbeatDue(at: clock.now)
        if case .send = action {
            let ref = makeRef()
            inFlight[ref] = .heartbeat
            send(topic: "phoenix", event: "heartbeat", payload: .object(.init()), ref: ref, joinRef: nil)
        }
        return action
    }

    /// Keeps one timer sleeping until the earliest deadline of a buffered message (none when
    /// nothing waits); call after anything enters or leaves the buffer.
    func scheduleExpiry() {
        let next = isClosed ? nil : machine.nextExpiry
        guard next != expiryTimer?.deadline else { return }
        expiryTimer?.task.cancel()
        expiryTimer = nil
        guard let next else { return }
        nextExpiryTimer += 1
        let generation = nextExpiryTimer
        let clock = self.clock
        let task = Task {
            do { try await clock.sleep(until: next) } catch { return }
            self.expiryTimerFired(generation)
        }
        expiryTimer = ExpiryTimer(generation: generation, deadline: next, task: task)
    }

    private func expiryTimerFired(_ generation: Int) {
        guard expiryTimer?.generation == generation else { return }
        expiryTimer = nil
        expireBuffered()
    }

    /// Fails the buffered messages whose lifetime has passed.
    private func expireBuffered() {
        let expired = Set(machine.expire(at: clock.now))
        if !expired.isEmpty {
            let lifetime = configuration.bufferedLifetime
            outbox.removeAll { outgoing in
                guard expired.contains(outgoing.id) else { return false }
                outgoing.done?.resume(throwing: ClientError(.expired, "not sent within \(lifetime): no connection to the server"))
                return true
            }
        }
        scheduleExpiry()
    }
}
