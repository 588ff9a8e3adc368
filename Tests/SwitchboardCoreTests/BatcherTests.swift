import SwitchboardCore
import Testing

/// The batching state machine with a manual clock (milliseconds).
@Suite struct BatcherTests {
    typealias Key = Batcher<String>.Key
    static let typing = Key(channel: "collaboration:s1:c1", event: "user:typing")
    static let latestByUser = BatchPolicy(windowMilliseconds: 100, keep: .latest, by: "user_id")
    static let all = BatchPolicy(windowMilliseconds: 100, keep: .all, by: nil)

    @Test func theFirstMessageOpensAWindowThatCollectsUntilItCloses() {
        var batcher = Batcher<String>()
        #expect(batcher.add("a1", to: Self.typing, policy: Self.all, by: nil, at: 1000) == .openedWindow(closesAt: 1100))
        #expect(batcher.add("a2", to: Self.typing, policy: Self.all, by: nil, at: 1050) == .joinedWindow)
        #expect(batcher.flush(Self.typing, at: 1099) == [], "a window is not flushed before it closes")
        #expect(batcher.flush(Self.typing, at: 1100) == ["a1", "a2"])
        #expect(batcher.count == 0)
        // The next message opens a new window.
        #expect(batcher.add("a3", to: Self.typing, policy: Self.all, by: nil, at: 1101) == .openedWindow(closesAt: 1201))
        #expect(batcher.flush(Self.typing, at: 1201) == ["a3"])
    }

    @Test func latestKeepsTheNewestPerKeyInTheOrderTheyArrived() {
        var batcher = Batcher<String>()
        _ = batcher.add("anna-1", to: Self.typing, policy: Self.latestByUser, by: "anna", at: 0)
        _ = batcher.add("ben-1", to: Self.typing, policy: Self.latestByUser, by: "ben", at: 10)
        _ = batcher.add("anna-2", to: Self.typing, policy: Self.latestByUser, by: "anna", at: 20)
        _ = batcher.add("nobody", to: Self.typing, policy: Self.latestByUser, by: nil, at: 30)
        _ = batcher.add("anna-3", to: Self.typing, policy: Self.latestByUser, by: "anna", at: 40)
        _ = batcher.add("nobody-2", to: Self.typing, policy: Self.latestByUser, by: nil, at: 50)
        #expect(batcher.flush(Self.typing, at: 100) == ["ben-1", "nobody", "anna-3", "nobody-2"])
    }

    @Test func channelsAndEventsHaveTheirOwnWindows() {
        var batcher = Batcher<String>()
        let other = Key(channel: "collaboration:s2:c2", event: "user:typing")
        let saved = Key(channel: "collaboration:s1:c1", event: "document:saved")
        #expect(batcher.add("x", to: Self.typing, policy: Self.all, by: nil, at: 0) == .openedWindow(closesAt: 100))
        #expect(batcher.add("y", to: other, policy: Self.all, by: nil, at: 50) == .openedWindow(closesAt: 150))
        #expect(batcher.add("z", to: saved, policy: BatchPolicy(windowMilliseconds: 500, keep: .all, by: nil), by: nil, at: 60)
            == .openedWindow(closesAt: 560))
        #expect(batcher.flush(Self.typing, at: 100) == ["x"])
        #expect(batcher.flush(other, at: 100) == [])
        #expect(batcher.flush(other, at: 150) == ["y"])
        #expect(batcher.flush(saved, at: 560) == ["z"])
    }

    @Test func aStaleFlushDoesNotCloseANewerWindow() {
        var batcher = Batcher<String>()
        _ = batcher.add("a", to: Self.typing, policy: Self.all, by: nil, at: 0)
        #expect(batcher.flush(Self.typing, at: 100) == ["a"])
        _ = batcher.add("b", to: Self.typing, policy: Self.all, by: nil, at: 150)
        // A flush scheduled for the first window fires late, at 200: the second closes at 250.
        #expect(batcher.flush(Self.typing, at: 200) == [])
        #expect(batcher.flush(Self.typing, at: 250) == ["b"])
    }
}
