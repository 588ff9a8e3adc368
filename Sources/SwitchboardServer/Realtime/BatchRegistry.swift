import NIOConcurrencyHelpers
import NIOCore
import SwitchboardCore

/// The batched events in flight: a `Batcher` per lock stripe (keyed by channel and event), and
/// for every window that opens, one flush scheduled on the publisher's event loop when it
/// closes. A flush hands the window's messages to the channel log as one batch (numbered and
/// framed then, so that `seq` follows delivery order), so each subscriber gets them in one
/// write burst and one flush.
final class BatchRegistry: Sendable {
    typealias Pending = ChannelLog.Outgoing

    private let log: ChannelLog
    private let clock: any ServerClock
    private let stripes: [NIOLockedValueBox<Batcher<Pending>>]

    init(log: ChannelLog, clock: any ServerClock, stripeCount: Int = 16) {
        self.log = log
        self.clock = clock
        stripes = (0..<max(1, stripeCount)).map { _ in NIOLockedValueBox(Batcher()) }
    }

    /// Milliseconds on the server's monotonic clock, the one the windows are scheduled on.
    private func nowMilliseconds() -> Int64 { Int64(clock.monotonicNanoseconds() / 1_000_000) }

    /// Holds a message of a batched event; opens (and schedules the end of) a window when none is open.
    func add(_ message: Pending, topic: String, policy: BatchPolicy, by: String?, loop: any EventLoop) {
        let key = Batcher<Pending>.Key(channel: topic, event: message.event)
        let stripe = stripe(for: key)
        let added = stripe.withLockedValue {
            $0.add(message, to: key, policy: policy, by: by, at: nowMilliseconds())
        }
        guard case .openedWindow(let closesAt) = added else { return }
        let log = log
        let clock = clock
        _ = clock.schedule(at: UInt64(max(0, closesAt)) * 1_000_000, on: loop) {
            let now = Int64(clock.monotonicNanoseconds() / 1_000_000)
            let messages = stripe.withLockedValue { $0.flush(key, at: now) }
            log.publish(topic: topic, messages)
        }
    }

    private func stripe(for key: Batcher<Pending>.Key) -> NIOLockedValueBox<Batcher<Pending>> {
        stripes[Int(UInt(bitPattern: key.hashValue) % UInt(stripes.count))]
    }
}
