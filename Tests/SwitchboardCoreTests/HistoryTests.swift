import SwitchboardCore
import Synchronization
import Testing

/// The replay history state machine with a manual clock (milliseconds since 1970).
@Suite struct HistoryTests {
    static let channel = "collaboration:s1:c1"
    static let standard = History<String>.Retention.standard

    /// A history whose epochs are e1, e2, … in creation order.
    static func history(maxTotalBytes: Int = 1 << 30, maxChannels: Int = 1000) -> History<String> {
        let counter = EpochCounter()
        return History(maxTotalBytes: maxTotalBytes, maxChannels: maxChannels) { _ in counter.next() }
    }

    /// Appends `count` messages `m<seq>` of 10 bytes at `at`.
    static func publish(_ count: Int, on channel: String = channel, to history: inout History<String>, at: Int64 = 1_000_000) {
        for _ in 0..<count {
            let seq = history.position(of: channel).seq + 1
            _ = history.append("m\(seq)", id: "id\(seq)", bytes: 10, to: channel, retention: standard, at: at)
        }
    }

    @Test func sequenceNumbersAreDenseAndTheEpochStaysWhileTheRecordLives() {
        var history = Self.history()
        let start = history.position(of: Self.channel)
        #expect(start.seq == 0)
        let first = history.append("a", id: "1", bytes: 1, to: Self.channel, retention: Self.standard, at: 0)
        let second = history.append("b", id: "2", bytes: 1, to: Self.channel, retention: Self.standard, at: 0)
        #expect(first.seq == 1 && second.seq == 2)
        #expect(first.epoch == start.epoch && second.epoch == start.epoch)
        let other = history.append("c", id: "3", bytes: 1, to: "collaboration:s2:c2", retention: Self.standard, at: 0)
        #expect(other.seq == 1, "each channel counts on its own")
        #expect(other.epoch != start.epoch)
    }

    @Test func resumingFromASequenceReplaysExactlyTheMissedMessagesInOrder() {
        var history = Self.history()
        Self.publish(10, to: &history)
        let epoch = history.position(of: Self.channel).epoch
        Self.publish(50, to: &history)
        let replay = history.replay(Self.channel, since: .sequence(10, epoch: epoch), retention: Self.standard, at: 1_000_000)
        #expect(replay.recovered)
        #expect(replay.entries.map(\.seq) == Array(11...60))
        #expect(replay.entries.first?.item == "m11")
        #expect(replay.position.seq == 60)
        let upToDate = history.replay(Self.channel, since: .sequence(60, epoch: epoch), retention: Self.standard, at: 1_000_000)
        #expect(upToDate.recovered && upToDate.entries.isEmpty)
    }

    @Test func exactlyTheLastHundredAreRecoverableAndOneMoreIsNot() {
        var history = Self.history()
        let epoch = history.position(of: Self.channel).epoch
        Self.publish(100, to: &history)
        let all = history.replay(Self.channel, since: .sequence(0, epoch: epoch), retention: Self.standard, at: 1_000_000)
        #expect(all.recovered && all.entries.count == 100)
        Self.publish(1, to: &history)
        let over = history.replay(Self.channel, since: .sequence(0, epoch: epoch), retention: Self.standard, at: 1_000_000)
        #expect(!over.recovered, "101 missed: the first is gone")
        #expect(over.entries.isEmpty, "nothing misleading is delivered")
        let fromOne = history.replay(Self.channel, since: .sequence(1, epoch: epoch), retention: Self.standard, at: 1_000_000)
        #expect(fromOne.recovered && fromOne.entries.count == 100)
    }

    @Test func messagesOlderThanTheAgeLimitAreNotRecoverable() {
        var history = Self.history()
        let epoch = history.position(of: Self.channel).epoch
        Self.publish(3, to: &history, at: 0)
        let inTime = history.replay(Self.channel, since: .sequence(0, epoch: epoch), retention: Self.standard, at: 300_000)
        #expect(inTime.recovered && inTime.entries.count == 3, "exactly 5 minutes old is still held")
        let late = history.replay(Self.channel, since: .sequence(0, epoch: epoch), retention: Self.standard, at: 300_001)
        #expect(!late.recovered && late.entries.isEmpty)
        #expect(history.totalBytes == 0, "expired messages free their bytes")
        let caughtUp = history.replay(Self.channel, since: .sequence(3, epoch: epoch), retention: Self.standard, at: 400_000)
        #expect(caughtUp.recovered, "a client that missed nothing is recovered even when the history expired")
    }

    @Test func anUnknownEpochOrAFuturePositionIsNotRecovered() {
        var history = Self.history()
        Self.publish(5, to: &history)
        let epoch = history.position(of: Self.channel).epoch
        let restarted = history.replay(Self.channel, since: .sequence(2, epoch: "before-restart"), retention: Self.standard, at: 1_000_000)
        #expect(!restarted.recovered && restarted.entries.isEmpty)
        let future = history.replay(Self.channel, since: .sequence(9, epoch: epoch), retention: Self.standard, at: 1_000_000)
        #expect(!future.recovered)
        let fresh = history.replay("journey:j1", since: .sequence(0, epoch: "e-other"), retention: Self.standard, at: 1_000_000)
        #expect(!fresh.recovered, "a channel without a record has a new epoch")
    }

    @Test func resumingFromATimeGivesAtMostLimitAndSaysWhetherThatIsAll() {
        var history = Self.history()
        for at in [Int64(1000), 2000, 3000, 4000] {
            _ = history.append("at\(at)", id: "\(at)", bytes: 1, to: Self.channel, retention: Self.standard, at: at)
        }
        let since = history.replay(Self.channel, since: .time(milliseconds: 2000, limit: 10), retention: Self.standard, at: 5000)
        #expect(since.entries.map(\.item) == ["at2000", "at3000", "at4000"])
        #expect(since.recovered)
        let limited = history.replay(Self.channel, since: .time(milliseconds: 0, limit: 2), retention: Self.standard, at: 5000)
        #expect(limited.entries.map(\.item) == ["at3000", "at4000"], "the newest `limit`")
        #expect(!limited.recovered)
        let evicted = history.replay(Self.channel, since: .time(milliseconds: 0, limit: 10), retention: .init(maxMessages: 2), at: 5000)
        #expect(!evicted.recovered, "messages after `since` were dropped")
    }

    @Test func theByteCapForgetsTheLeastRecentlyUsedChannelsFirst() {
        var history = Self.history(maxTotalBytes: 100)
        Self.publish(4, on: "a", to: &history)
        Self.publish(4, on: "b", to: &history)
        let epochB = history.position(of: "b").epoch
        Self.publish(2, on: "a", to: &history)  // a is now the most recent
        #expect(history.totalBytes == 100)
        Self.publish(1, on: "c", to: &history)
        #expect(history.totalBytes == 70, "b (least recently used) was forgotten")
        let b = history.replay("b", since: .sequence(0, epoch: epochB), retention: Self.standard, at: 1_000_000)
        #expect(!b.recovered && b.position.epoch != epochB && b.position.seq == 0)
        let a = history.position(of: "a")
        #expect(a.seq == 6)
    }

    @Test func oneChannelOverTheCapDropsItsOwnOldestMessages() {
        var history = Self.history(maxTotalBytes: 50)
        let epoch = history.position(of: "a").epoch
        Self.publish(8, on: "a", to: &history)
        #expect(history.totalBytes == 50)
        let replay = history.replay("a", since: .sequence(3, epoch: epoch), retention: Self.standard, at: 1_000_000)
        #expect(replay.recovered && replay.entries.map(\.seq) == [4, 5, 6, 7, 8])
        let tooFar = history.replay("a", since: .sequence(2, epoch: epoch), retention: Self.standard, at: 1_000_000)
        #expect(!tooFar.recovered)
    }

    @Test func theRecordCapForgetsTheOldestRecords() {
        var history = Self.history(maxChannels: 2)
        Self.publish(1, on: "a", to: &history)
        Self.publish(1, on: "b", to: &history)
        _ = history.position(of: "a")
        Self.publish(1, on: "c", to: &history)
        #expect(history.channelCount == 2)
        let a = history.position(of: "a")
        let c = history.position(of: "c")
        #expect(a.seq == 1, "a was used after b")
        #expect(c.seq == 1)
    }

    @Test func manyMessagesKeepMemoryBounded() {
        var history = Self.history()
        Self.publish(10_000, to: &history)
        #expect(history.messageCount == 100)
        #expect(history.totalBytes == 1000)
    }

    @Test func recentIDsRememberForTheirLifetimeAndUpToTheirCapacity() {
        var ids = RecentIDs(lifetimeMilliseconds: 1000, capacity: 3)
        var answers: [Bool] = []
        answers.append(ids.insert("x", on: "a", at: 0))
        answers.append(ids.insert("x", on: "a", at: 500))  // a repeat within the lifetime
        answers.append(ids.insert("x", on: "b", at: 500))  // ids are per channel
        answers.append(ids.contains("x", on: "a", at: 999))
        answers.append(ids.contains("x", on: "a", at: 1000))  // forgotten after the lifetime
        answers.append(ids.insert("x", on: "a", at: 1000))
        answers.append(ids.insert("y", on: "a", at: 1001))
        answers.append(ids.insert("z", on: "a", at: 1002))
        #expect(answers == [true, false, true, true, false, true, true, true])
        #expect(ids.count == 3)
        let oldest = ids.contains("x", on: "b", at: 1002)
        #expect(!oldest, "the oldest is forgotten past the capacity")
    }
}

/// Epochs e1, e2, … (a class so that the history's closure can count).
private final class EpochCounter: Sendable {
    private let value = Mutex(0)
    func next() -> String {
        value.withLock { count in
            count += 1
            return "e\(count)"
        }
    }
}
