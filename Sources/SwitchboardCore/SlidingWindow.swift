/// Counts events in a sliding window exactly: it keeps the times of the most recent accepted
/// events (as many as the largest limit it was asked about), so "at most N in any 60 s" holds
/// for every window, not just for aligned minutes. Times are seconds on a monotonic clock,
/// passed in by the caller, so that tests drive it with a manual clock.
///
/// Refused events are not recorded: a client that keeps sending over the limit does not push
/// its own recovery further away.
public struct SlidingWindow: Sendable {
    /// The answer to one attempt.
    public enum Outcome: Sendable, Equatable {
        case accepted
        /// Refused; the next event would be accepted `retryAfter` seconds from now.
        case refused(retryAfter: Double)
    }

    /// Window length in seconds.
    public let window: Double
    /// Accepted times, oldest first once the ring has wrapped at `start`.
    private var times: [Double] = []
    private var start = 0
    /// The ring holds at most as many times as the largest limit asked about.
    private var ringCapacity = 0

    public init(window: Double) {
        self.window = window
    }

    /// Records an event at `now` if fewer than `limit` were accepted in `(now - window, now]`.
    public mutating func attempt(at now: Double, limit: Int) -> Outcome {
        guard limit > 0 else { return .refused(retryAfter: window) }
        if limit > ringCapacity { grow(to: limit) }
        if times.count >= limit {
            let limitThNewest = time(newest: limit)
            if limitThNewest > now - window {
                return .refused(retryAfter: limitThNewest + window - now)
            }
        }
        append(now)
        return .accepted
    }

    /// Records an event at `now` whatever the limit (one counted elsewhere, such as on another
    /// node of a cluster, that this window must count too).
    public mutating func record(at now: Double) {
        if ringCapacity == 0 { grow(to: 256) }
        append(now)
    }

    /// Events accepted in `(now - window, now]`.
    public func count(at now: Double) -> Int {
        var total = 0
        var k = 1
        while k <= times.count, time(newest: k) > now - window {
            total += 1
            k += 1
        }
        return total
    }

    /// The newest accepted time, if any: a window whose newest event is older than `window`
    /// holds nothing that matters and can be dropped.
    public var newest: Double? { times.isEmpty ? nil : time(newest: 1) }

    // MARK: The ring


    /// The k-th newest time (k = 1 is the newest).
    private func time(newest k: Int) -> Double {
        let count = times.count
        return times[(start + count - k) % count]
    }

    private mutating func append(_ now: Double) {
        if times.count < ringCapacity {
            // Not yet wrapped: `start` is 0 and the ring grows in place.
            times.append(now)
        } else {
            times[start] = now
            start = (start + 1) % times.count
        }
    }

    private mutating func grow(to limit: Int) {
        if start != 0 {
            times = Array(times[start...] + times[..<start])
            start = 0
        }
        ringCapacity = limit
    }
}
