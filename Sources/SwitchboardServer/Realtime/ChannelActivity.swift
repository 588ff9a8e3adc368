import NIOConcurrencyHelpers

/// Messages published per channel in the current and the previous minute (fixed windows, for
/// monitoring: `GET /admin/channels`), in lock stripes. A channel quiet for two minutes is dropped.
final class ChannelActivity: Sendable {
    private struct Counts {
        var minute: Int64
        var current = 0
        var previous = 0
    }

    private let stripes: [NIOLockedValueBox<[String: Counts]>]

    init(stripeCount: Int = 16) {
        stripes = (0..<max(1, stripeCount)).map { _ in NIOLockedValueBox([:]) }
    }

    func record(topic: String, now: Double) {
        let minute = Int64(now / 60)
        stripe(topic).withLockedValue { channels in
            var counts = channels[topic] ?? Counts(minute: minute)
            Self.roll(&counts, to: minute)
            counts.current += 1
            channels[topic] = counts
        }
    }

    /// Messages in the last full minute, or the current one when it is busier so far.
    func messagesPerMinute(now: Double) -> [String: Int] {
        let minute = Int64(now / 60)
        var result: [String: Int] = [:]
        for stripe in stripes {
            stripe.withLockedValue { channels in
                for (topic, var counts) in channels {
                    Self.roll(&counts, to: minute)
                    if counts.current == 0, counts.previous == 0 {
                        channels[topic] = nil
                    } else {
                        channels[topic] = counts
                        result[topic] = max(counts.current, counts.previous)
                    }
                }
            }
        }
        return result
    }

    private static func roll(_ counts: inout Counts, to minute: Int64) {
        guard minute != counts.minute else { return }
        counts.previous = minute == counts.minute + 1 ? counts.current : 0
        counts.current = 0
        counts.minute = minute
    }

    private func stripe(_ topic: String) -> NIOLockedValueBox<[String: Counts]> {
        stripes[Int(UInt(bitPattern: topic.hashValue) % UInt(stripes.count))]
    }
}
