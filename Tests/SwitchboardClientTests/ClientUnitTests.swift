import SwitchboardCore
import Testing

@testable import SwitchboardClient

@Suite struct BackoffTests {
    @Test func delaysDoubleUpToTheCap() {
        let backoff = Backoff(jitter: 0)
        let seconds = (0..<9).map { Backoff.seconds(backoff.delay(attempt: $0, random: 0.5)) }
        #expect(seconds == [0.5, 1, 2, 4, 8, 16, 30, 30, 30])
        #expect(Backoff.seconds(backoff.delay(attempt: 10_000, random: 0.5)) == 30, "huge attempts stay capped")
    }

    @Test func jitterStaysWithinItsBand() {
        let backoff = Backoff(initial: .seconds(10), jitter: 0.2)
        #expect(Backoff.seconds(backoff.delay(attempt: 0, random: 0)) == 8)
        #expect(Backoff.seconds(backoff.delay(attempt: 0, random: 1)) == 12)
        #expect(Backoff.seconds(backoff.delay(attempt: 0, random: 0.5)) == 10)
    }
}

@Suite struct ChannelTrackerTests {
    static func message(_ id: String?, seq: UInt64?, epoch: String? = "e1", replayed: Bool = false) -> ChannelMessage {
        ChannelMessage(event: "comment:added", payload: ["n": 1], id: id, seq: seq, epoch: seq == nil ? nil : epoch, replayed: replayed)
    }

    static func tracker() -> ChannelTracker {
        ChannelTracker(idLifetime: .seconds(300), idCapacity: 100)
    }

    @Test func eachIdIsDeliveredOnce() {
        var tracker = Self.tracker()
        let answers = [
            tracker.accept(Self.message("a", seq: 1), at: .zero),
            tracker.accept(Self.message("a", seq: 1, replayed: true), at: .zero),  // the replayed copy of a delivered message
            tracker.accept(Self.message("b", seq: nil), at: .zero),
            tracker.accept(Self.message("b", seq: nil), at: .zero),
            tracker.accept(Self.message(nil, seq: nil), at: .zero),  // a message without an id cannot be deduplicated
        ]
        #expect(answers == [true, false, true, false, true])
    }

    @Test func thePositionFollowsMessagesAndJoins() {
        var tracker = Self.tracker()
        #expect(tracker.resumeFrom == nil, "nothing to resume before the first join")
        tracker.joined(epoch: "e1", seq: 7, recovered: nil)
        #expect(tracker.resumeFrom?.seq == 7 && tracker.resumeFrom?.epoch == "e1")
        _ = tracker.accept(Self.message("x", seq: 8), at: .zero)
        _ = tracker.accept(Self.message("y", seq: nil), at: .zero)
        #expect(tracker.resumeFrom?.seq == 8, "messages without a position do not move it")
        tracker.joined(epoch: "e1", seq: 12, recovered: true)
        #expect(tracker.resumeFrom?.seq == 8, "a recovered rejoin's replay moves the position, message by message")
        tracker.joined(epoch: "e2", seq: 3, recovered: false)
        #expect(tracker.resumeFrom?.seq == 3 && tracker.resumeFrom?.epoch == "e2", "not recovered: start again from the server's position")
        _ = tracker.accept(Self.message("z", seq: 1, epoch: "e3"), at: .zero)
        #expect(tracker.resumeFrom?.epoch == "e3" && tracker.resumeFrom?.seq == 1, "a message of a new epoch resets the position")
    }

    @Test func aDeliveredIdIsForgottenAfterItsLifetimeOnTheClientsClock() {
        var tracker = ChannelTracker(idLifetime: .seconds(300), idCapacity: 100)
        var delivered = tracker.accept(Self.message("a", seq: nil), at: .seconds(10))
        #expect(delivered)
        delivered = tracker.accept(Self.message("a", seq: nil), at: .milliseconds(309_999))
        #expect(!delivered, "a repeat within the lifetime is dropped")
        delivered = tracker.accept(Self.message("a", seq: nil), at: .seconds(310))
        #expect(delivered, "the lifetime is measured on the time passed in")
    }

    @Test func durationsBecomeWholeMilliseconds() {
        #expect(ChannelTracker.milliseconds(.milliseconds(1_500)) == 1_500)
        #expect(ChannelTracker.milliseconds(.microseconds(2_999)) == 2)
        #expect(ChannelTracker.milliseconds(.seconds(Int64.max)) == .max, "saturates instead of trapping")
    }
}
