import Testing

@testable import SwitchboardServer

/// The connection's timers as a pure state machine: times in, actions out.
@Suite struct ConnectionStateMachineTests {
    /// The clock `milliseconds` after the connection opened (wall time in seconds since 1970).
    static func at(ms milliseconds: Int) -> ConnectionStateMachine.Now {
        ConnectionStateMachine.Now(monotonic: 100_000_000_000 + UInt64(milliseconds) * 1_000_000, wall: 1_000_000 + Double(milliseconds) / 1000)
    }

    static func at(_ seconds: Int) -> ConnectionStateMachine.Now { at(ms: seconds * 1000) }

    static func machine() -> ConnectionStateMachine {
        ConnectionStateMachine(idleTimeoutSeconds: 60, slowConsumerGraceSeconds: 5, slowConsumerBytes: 1000, now: at(0))
    }

    @Test func aSilentConnectionClosesAfterTheIdleTimeoutAndAnyFrameKeepsItOpen() {
        var machine = Self.machine()
        #expect(machine.start() == .schedule(.idle, at: Self.at(60).monotonic))
        machine.received(now: Self.at(30))
        #expect(machine.fired(.idle, now: Self.at(60), isWritable: true) == [.schedule(.idle, at: Self.at(90).monotonic)])
        machine.heartbeat(now: Self.at(89))
        #expect(machine.heartbeats == 1)
        #expect(machine.fired(.idle, now: Self.at(90), isWritable: true) == [.schedule(.idle, at: Self.at(149).monotonic)])
        #expect(machine.fired(.idle, now: Self.at(149), isWritable: true) == [.closeIdle])
    }

    @Test func eachJoinClosesWhenItsTokenExpires() {
        var machine = Self.machine()
        // Tokens expire in wall seconds; the one timer is on the monotonic clock, 1 ms past the
        // earliest expiry.
        let wall = Self.at(0).wall
        #expect(machine.tokenExpires(topic: "a", at: wall + 30, now: Self.at(0)) == [.schedule(.tokenExpiry, at: Self.at(ms: 30_001).monotonic)])
        #expect(machine.tokenExpires(topic: "b", at: wall + 10, now: Self.at(0)) == [.schedule(.tokenExpiry, at: Self.at(ms: 10_001).monotonic)])
        #expect(machine.tokenExpires(topic: "c", at: wall + 20, now: Self.at(0)) == [], "the earlier timer stays")
        #expect(
            machine.fired(.tokenExpiry, now: Self.at(11), isWritable: true)
                == [.expire([.init(topic: "b", secondsAgo: 1)]), .schedule(.tokenExpiry, at: Self.at(ms: 20_001).monotonic)])
        // A refresh moves c's expiry and a leave forgets a; the earlier timer stays and, when it
        // fires with nothing expired, moves on to the next expiry.
        #expect(machine.tokenExpires(topic: "c", at: wall + 100, now: Self.at(15)) == [])
        #expect(machine.joinEnded(topic: "a", now: Self.at(16)) == [])
        #expect(machine.fired(.tokenExpiry, now: Self.at(21), isWritable: true) == [.schedule(.tokenExpiry, at: Self.at(ms: 100_001).monotonic)])
        #expect(machine.tokenExpires(topic: "d", at: wall + 50, now: Self.at(22)) == [.schedule(.tokenExpiry, at: Self.at(ms: 50_001).monotonic)], "an earlier expiry moves the timer")
        #expect(machine.joinEnded(topic: "d", now: Self.at(23)) == [])
        #expect(machine.joinEnded(topic: "c", now: Self.at(23)) == [.cancel(.tokenExpiry)])
        #expect(machine.joinEnded(topic: "c", now: Self.at(23)) == [], "already gone")
    }

    @Test func aConsumerThatStaysUnwritableForTheGraceIsClosed() {
        var machine = Self.machine()
        #expect(machine.writabilityChanged(isWritable: false, now: Self.at(1)) == [.schedule(.slowConsumer, at: Self.at(6).monotonic)])
        #expect(machine.writabilityChanged(isWritable: false, now: Self.at(2)) == [], "still the first period")
        #expect(machine.writabilityChanged(isWritable: true, now: Self.at(3)) == [.cancel(.slowConsumer)])
        #expect(machine.fired(.slowConsumer, now: Self.at(6), isWritable: true) == [], "writable again")
        #expect(machine.writabilityChanged(isWritable: false, now: Self.at(10)) == [.schedule(.slowConsumer, at: Self.at(15).monotonic)])
        #expect(machine.fired(.slowConsumer, now: Self.at(15), isWritable: false) == [.closeSlowConsumer])
    }

    @Test func aConsumerFarOverItsCapIsClosedAtOnce() {
        var machine = Self.machine()
        _ = machine.writabilityChanged(isWritable: false, now: Self.at(1))
        let answers = [machine.queuedWhileUnwritable(5000), machine.queuedWhileUnwritable(3000), machine.queuedWhileUnwritable(1)]
        #expect(answers == [false, false, true], "8,000 bytes is at the cap, one more is past it")
        _ = machine.writabilityChanged(isWritable: true, now: Self.at(2))
        #expect(machine.bytesWhileUnwritable == 0, "the count starts again")
    }
}
