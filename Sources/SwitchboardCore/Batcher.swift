/// Holds the messages of batched events for a window and hands them back together: the state
/// machine behind `batch = { window_ms, keep, by }`. Time is passed in (milliseconds on a
/// monotonic clock), so tests drive it with a manual clock.
///
/// A window opens at the first message of an event on a channel and closes `window_ms` later;
/// `add` says when a window opened, so that the caller can schedule its `flush`. With
/// `keep = "latest"` only the newest message per value of the `by` field survives (messages
/// without that field are all kept), in the order the survivors arrived.
public struct Batcher<Message: Sendable>: Sendable {
    /// What `add` did.
    public enum Added: Sendable, Equatable {
        /// A window opened: call `flush(_:at:)` for this key at `closesAt`.
        case openedWindow(closesAt: Int64)
        /// Joined the window already open.
        case joinedWindow
    }

    /// A channel and an event: each has its own window.
    public struct Key: Sendable, Hashable {
        public let channel: String
        public let event: String
        public init(channel: String, event: String) {
            self.channel = channel
            self.event = event
        }
    }

    private struct Window {
        let closesAt: Int64
        /// Arrival order; nil entries were replaced by a newer message of the same `by` value.
        var messages: [Message?] = []
        /// With `latest`: index in `messages` of the newest message per `by` value.
        var latest: [String: Int] = [:]
    }

    private var windows: [Key: Window] = [:]

    public init() {}

    /// Open windows.
    public var count: Int { windows.count }

    /// Holds `message`. `by` is the value of the policy's `by` field in this message, if any.
    public mutating func add(_ message: Message, to key: Key, policy: BatchPolicy, by: String?, at now: Int64) -> Added {
        var added = Added.joinedWindow
        var window: Window
        if let open = windows[key] {
            window = open
        } else {
            let closesAt = now + Int64(policy.windowMilliseconds)
            window = Window(closesAt: closesAt)
            added = .openedWindow(closesAt: closesAt)
        }
        if policy.keep == .latest, let by {
            if let previous = window.latest[by] { window.messages[previous] = nil }
            window.latest[by] = window.messages.count
        }
        window.messages.append(message)
        windows[key] = window
        return added
    }

    /// Closes the window of `key` and returns what it held, in order; nothing when no window is
    /// open or it closes later than `now` (a flush scheduled for an older window).
    public mutating func flush(_ key: Key, at now: Int64) -> [Message] {
        guard let window = windows[key], window.closesAt <= now else { return [] }
        windows[key] = nil
        return window.messages.compactMap { $0 }
    }
}
