import SwitchboardCore
import Testing

/// The sliding window with a manual clock: exact counts in every 60 s window.
@Suite struct SlidingWindowTests {
    @Test func acceptsExactlyTheLimitThenRefusesUntilTheOldestLeaves() {
        var window = SlidingWindow(window: 60)
        // 150 attempts over 3 s: exactly the first 100 pass.
        var accepted = 0
        for i in 0..<150 {
            if window.attempt(at: Double(i) * 0.02, limit: 100) == .accepted { accepted += 1 }
        }
        #expect(accepted == 100)
        #expect(window.count(at: 3) == 100)
        // The first message was at t=0, so the window has room again just after t=60.
        #expect(window.attempt(at: 59.99, limit: 100) == .refused(retryAfter: 60 - 59.99))
        #expect(window.attempt(at: 60.0, limit: 100) == .accepted)
        // Only as many as have slid out come back.
        #expect(window.attempt(at: 60.0, limit: 100) != .accepted)
        #expect(window.attempt(at: 60.02, limit: 100) == .accepted)
        #expect(window.count(at: 60.02) == 100)
    }

    @Test func refusedAttemptsDoNotDelayRecovery() {
        var window = SlidingWindow(window: 10)
        for t in 0..<3 { #expect(window.attempt(at: Double(t), limit: 3) == .accepted) }
        for t in stride(from: 3.0, to: 10.0, by: 0.5) { #expect(window.attempt(at: t, limit: 3) != .accepted) }
        #expect(window.attempt(at: 10, limit: 3) == .accepted)
    }

    @Test func aLargerLimitKeepsTheHistoryItHas() {
        var window = SlidingWindow(window: 60)
        for t in 0..<5 { #expect(window.attempt(at: Double(t), limit: 5) == .accepted) }
        #expect(window.attempt(at: 5, limit: 5) != .accepted)
        // A sender on a bigger tier may go on up to its own limit, counting the same events.
        for t in 5..<10 { #expect(window.attempt(at: Double(t), limit: 10) == .accepted) }
        #expect(window.attempt(at: 10, limit: 10) == .refused(retryAfter: 50))
        // And the small limit still sees all ten.
        #expect(window.attempt(at: 10, limit: 5) == .refused(retryAfter: 55))
        #expect(window.count(at: 10) == 10)
        #expect(window.newest == 9)
    }

    @Test func aZeroLimitRefusesEverything() {
        var window = SlidingWindow(window: 60)
        #expect(window.attempt(at: 0, limit: 0) == .refused(retryAfter: 60))
        #expect(window.newest == nil)
    }
}
