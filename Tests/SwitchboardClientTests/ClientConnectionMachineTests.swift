import SwitchboardCore
import Testing

@testable import SwitchboardClient

/// The client's timing decisions, driven directly: no sockets, no sleeps, the time passed in.
@Suite struct ClientConnectionMachineTests {
    static func machine(
        heartbeat: Duration = .seconds(30), backoff: Backoff = Backoff(jitter: 0), lifetime: Duration = .seconds(300)
    ) -> ClientConnectionMachine {
        ClientConnectionMachine(heartbeatInterval: heartbeat, backoff: backoff, bufferedLifetime: lifetime)
    }

    @Test func aHeartbeatIsSentWhenDueAndTheNextIsDueOneIntervalAfterIt() {
        var machine = Self.machine()
        var beat = machine.heartbeatDue(at: .seconds(1))
        #expect(beat == .notConnected)
        machine.connected(at: .seconds(10))
        #expect(machine.nextHeartbeat == .seconds(40))
        beat = machine.heartbeatDue(at: .seconds(39))
        #expect(beat == .wait(until: .seconds(40)), "not due yet")
        beat = machine.heartbeatDue(at: .seconds(40))
        #expect(beat == .send(nextDue: .seconds(70)))
        beat = machine.heartbeatDue(at: .seconds(41))
        #expect(beat == .wait(until: .seconds(70)), "one heartbeat per interval")
        machine.heartbeatReplied()
        #expect(machine.heartbeatsAnswered == 1)
        beat = machine.heartbeatDue(at: .seconds(75))
        #expect(beat == .send(nextDue: .seconds(105)), "a late timer counts from when it fired")
        machine.heartbeatReplied()
        machine.heartbeatReplied()
        #expect(machine.heartbeatsAnswered == 2, "a reply without a heartbeat outstanding is not counted")
    }

    @Test func aHeartbeatStillUnansweredWhenTheNextIsDueMeansTheConnectionIsDead() {
        var machine = Self.machine(heartbeat: .seconds(5))
        machine.connected(at: .zero)
        var beat = machine.heartbeatDue(at: .seconds(5))
        #expect(beat == .send(nextDue: .seconds(10)))
        beat = machine.heartbeatDue(at: .seconds(9))
        #expect(beat == .wait(until: .seconds(10)), "the reply may still come")
        beat = machine.heartbeatDue(at: .seconds(10))
        #expect(beat == .connectionDead(reason: "no heartbeat reply within 5.0 seconds"))
        #expect(machine.heartbeatsAnswered == 0)
        _ = machine.disconnected(at: .seconds(10), random: 0.5)
        #expect(!machine.isConnected)
        beat = machine.heartbeatDue(at: .seconds(20))
        #expect(beat == .notConnected, "the timer of a lost connection stops")
        machine.connected(at: .seconds(20))
        beat = machine.heartbeatDue(at: .seconds(25))
        #expect(beat == .send(nextDue: .seconds(30)), "a new connection starts unanswered-free")
    }

    @Test func theBackoffGrowsPerFailedAttemptAndStartsAgainAfterAConnection() {
        var machine = Self.machine(backoff: Backoff(jitter: 0))
        machine.connected(at: .zero)
        var delays: [Double] = []
        for second in 1...4 {
            guard case .reconnect(let delay, let deadline, _) = machine.disconnected(at: .seconds(second), random: 0.5) else {
                Issue.record("no reconnect")
                return
            }
            #expect(deadline == .seconds(second) + delay)
            delays.append(Backoff.seconds(delay))
        }
        #expect(delays == [0.5, 1, 2, 4])
        #expect(machine.attempt == 4)
        machine.connected(at: .seconds(10))
        #expect(machine.attempt == 0, "a successful connection resets the backoff")
        let reconnect = machine.disconnected(at: .seconds(20), random: 0.5)
        #expect(reconnect == .reconnect(after: .milliseconds(500), at: .milliseconds(20_500), attempt: 0))
    }

    @Test func theRandomNumberPassedInChoosesTheJitter() {
        var low = Self.machine(backoff: Backoff(initial: .seconds(10), jitter: 0.2))
        var high = low
        let lowJitter = low.disconnected(at: .zero, random: 0)
        #expect(lowJitter == .reconnect(after: .seconds(8), at: .seconds(8), attempt: 0))
        let highJitter = high.disconnected(at: .zero, random: 1)
        #expect(highJitter == .reconnect(after: .seconds(12), at: .seconds(12), attempt: 0))
    }

    @Test func aClosedMachineNeitherReconnectsNorBeatsNorBuffers() {
        var machine = Self.machine()
        machine.connected(at: .zero)
        machine.buffered(1, at: .zero)
        machine.close()
        #expect(machine.isClosed)
        let beat = machine.heartbeatDue(at: .seconds(60))
        #expect(beat == .notConnected)
        let reconnect = machine.disconnected(at: .seconds(1), random: 0.5)
        #expect(reconnect == .stop)
        #expect(machine.nextExpiry == nil && machine.outstanding == 0)
    }

    @Test func expiryPicksExactlyTheOverdueWaitingMessages() {
        var machine = Self.machine(lifetime: .seconds(10))
        #expect(machine.nextExpiry == nil)
        let deadline = machine.buffered(1, at: .seconds(0))
        #expect(deadline == .seconds(10))
        machine.buffered(2, at: .seconds(3))
        machine.buffered(3, at: .seconds(5))
        machine.buffered(4, at: .seconds(8))
        #expect(machine.nextExpiry == .seconds(10))
        var expired = machine.expire(at: .milliseconds(9_999))
        #expect(expired.isEmpty, "none is overdue before the first deadline")
        expired = machine.expire(at: .seconds(15))
        #expect(expired == [1, 2, 3], "the deadline itself counts as passed; oldest first")
        #expect(machine.nextExpiry == .seconds(18))
        expired = machine.expire(at: .seconds(15))
        #expect(expired.isEmpty, "an expired message is reported once")
        machine.finished(4)
        expired = machine.expire(at: .seconds(100))
        #expect(expired.isEmpty, "an acknowledged message does not expire")
        #expect(machine.nextExpiry == nil && machine.outstanding == 0)
    }

    @Test func aSentMessageDoesNotExpireUntilItsConnectionIsLostThenKeepsItsFirstDeadline() {
        var machine = Self.machine(lifetime: .seconds(10))
        machine.connected(at: .zero)
        machine.buffered(1, at: .seconds(1))
        machine.buffered(2, at: .seconds(2))
        machine.sent(1)
        #expect(machine.nextExpiry == .seconds(12), "only the waiting message has a deadline that matters")
        var expired = machine.expire(at: .seconds(30))
        #expect(expired == [2])
        #expect(machine.outstanding == 1, "the sent one waits for its acknowledgement")
        _ = machine.disconnected(at: .seconds(31), random: 0.5)
        #expect(machine.nextExpiry == .seconds(11), "unacknowledged: it waits again, with its first deadline")
        expired = machine.expire(at: .seconds(31))
        #expect(expired == [1])
    }
}

/// The configured clock as the client reads it: time since the client was made.
@Suite struct ClientClockTests {
    @Test func itCountsFromItsStartAndSleepsUntilTheClockIsAdvanced() async throws {
        let manual = ManualClock(wallSeconds: 1_700_000_000)
        manual.advance(by: .seconds(100))
        let clock = ClientClock(manual)
        #expect(clock.now == .zero, "the time counts from when the client was made")
        manual.advance(by: .seconds(3))
        #expect(clock.now == .seconds(3))
        let sleeper = Task { try await clock.sleep(until: .seconds(5)) }
        try await waitUntil { manual.waitingCount == 1 }
        #expect(manual.nextDeadline == ManualClock.Instant(offset: .seconds(105)), "the deadline is on the clock's own scale")
        manual.advance(by: .seconds(2))
        try await sleeper.value
        #expect(clock.now == .seconds(5))
    }
}

/// Polls `condition` until it holds, for at most `timeout` of real time.
func waitUntil(timeout: Duration = .seconds(20), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { throw WaitTimedOut(timeout: timeout) }
        try await Task.sleep(for: .milliseconds(5))
    }
}

struct WaitTimedOut: Error, CustomStringConvertible {
    let timeout: Duration
    var description: String { "the condition did not hold within \(timeout)" }
}
