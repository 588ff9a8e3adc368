import Foundation

/// Exponential backoff with jitter: attempt n waits `initial × multiplier^n`, at most
/// `maximum`, each delay scaled by a random factor in `1 ± jitter`. Defaults: 0.5 s, ×2, at most
/// 30 s, ±20%: 0.5, 1, 2, 4, 8, 16, 30, 30, … seconds.
public struct Backoff: Sendable, Equatable {
    /// The delay before the first reconnect after a drop.
    public var initial: Duration
    /// How much longer each further attempt waits (at least 1).
    public var multiplier: Double
    /// The longest delay.
    public var maximum: Duration
    /// The random spread of each delay, a fraction in 0...1.
    public var jitter: Double

    /// A backoff of `initial × multiplier^attempt`, at most `maximum`, spread by `jitter`.
    public init(initial: Duration = .milliseconds(500), multiplier: Double = 2, maximum: Duration = .seconds(30), jitter: Double = 0.2) {
        self.initial = initial
        self.multiplier = max(1, multiplier)
        self.maximum = maximum
        self.jitter = min(max(0, jitter), 1)
    }

    /// The delay before reconnect attempt `attempt` (0 for the first after a drop), with
    /// `random` in 0...1 choosing the jitter.
    public func delay(attempt: Int, random: Double) -> Duration {
        let base = Self.seconds(initial) * pow(multiplier, Double(min(max(0, attempt), 64)))
        let capped = min(base, Self.seconds(maximum))
        let factor = 1 + jitter * (2 * min(max(random, 0), 1) - 1)
        return .nanoseconds(Int64(max(0, capped * factor) * 1e9))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
