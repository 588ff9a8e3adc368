import NIOConcurrencyHelpers
import SwitchboardCore

/// Per-channel message budgets, shared by every event loop and the REST API: at most the
/// sender's tier limit of messages in any 60 s window on one channel, counted exactly
/// (`SlidingWindow`). Channels are spread over lock stripes, so publishers on different loops
/// rarely meet; every 4096 attempts a stripe drops the windows of channels that have been quiet
/// for a whole window, so memory follows the channels that are active.
final class ChannelRateLimiter: Sendable {
    static let windowSeconds: Double = 60

    private struct Stripe {
        var windows: [String: SlidingWindow] = [:]
        var attemptsSinceSweep = 0
    }

    private let stripes: [NIOLockedValueBox<Stripe>]

    init(stripeCount: Int = 16) {
        stripes = (0..<max(1, stripeCount)).map { _ in NIOLockedValueBox(Stripe()) }
    }

    /// Counts one message on budget `key` (a channel, or a channel and event, and sender for
    /// per-user event limits) if the budget allows it.
    func attempt(key: String, limit: Int, now: Double) -> SlidingWindow.Outcome {
        let stripe = stripes[Int(UInt(bitPattern: key.hashValue) % UInt(stripes.count))]
        return stripe.withLockedValue { stripe in
            stripe.attemptsSinceSweep += 1
            if stripe.attemptsSinceSweep >= 4096 {
                stripe.attemptsSinceSweep = 0
                stripe.windows = stripe.windows.filter { ($0.value.newest ?? -.infinity) > now - Self.windowSeconds }
            }
            return stripe.windows[key, default: SlidingWindow(window: Self.windowSeconds)].attempt(at: now, limit: limit)
        }
    }

    /// Counts a message on budget `key` that was accepted elsewhere (another node of the cluster).
    func record(key: String, now: Double) {
        let stripe = stripes[Int(UInt(bitPattern: key.hashValue) % UInt(stripes.count))]
        stripe.withLockedValue { $0.windows[key, default: SlidingWindow(window: Self.windowSeconds)].record(at: now) }
    }

    /// Messages counted on budget `key` in the window ending at `now`.
    func count(key: String, now: Double) -> Int {
        let stripe = stripes[Int(UInt(bitPattern: key.hashValue) % UInt(stripes.count))]
        return stripe.withLockedValue { $0.windows[key]?.count(at: now) ?? 0 }
    }

    /// The sentence a sender over the channel's budget reads.
    static func reason(channel: ChannelName, limit: Int, retryAfter: Double) -> String {
        "ChannelRateLimitReached: channel \(channel) allows \(limit) messages per minute; try again in \(seconds(retryAfter)) s"
    }

    /// The sentence a sender over an event's own budget reads.
    static func reason(event: String, channel: ChannelName, rate: EventRateLimit, retryAfter: Double) -> String {
        let scope = rate.per == .user ? " per user" : ""
        return "ChannelRateLimitReached: event \(event) allows \(rate.perMinute) messages per minute\(scope) on channel \(channel); try again in \(seconds(retryAfter)) s"
    }

    private static func seconds(_ retryAfter: Double) -> Int { max(1, Int(retryAfter.rounded(.up))) }
}
