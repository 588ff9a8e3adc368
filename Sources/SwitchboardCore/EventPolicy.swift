/// How one event travels, as the rules declare it: batching, its own rate limit, replay.
public struct EventPolicy: Sendable, Equatable {
    /// Hold messages for a window and deliver them together (nil: never delayed).
    public var batch: BatchPolicy?
    /// A budget of its own instead of the channel's (nil: the channel's budget).
    public var rateLimit: EventRateLimit?
    /// The event has an `on_publish` hook that may derive events (`Policy.derivedEvents`).
    public var derives: Bool
    /// The event has a `transform` hook that rewrites its payload (`Policy.transform`).
    public var transforms: Bool
    /// Messages enter the channel's replay history (`replay = false`: ephemeral, never).
    public var replay: Bool
    /// Always replayable (`critical = true`): kept even where the channel keeps no history.
    public var critical: Bool

    public init(
        batch: BatchPolicy? = nil, rateLimit: EventRateLimit? = nil, derives: Bool = false, transforms: Bool = false, replay: Bool = true,
        critical: Bool = false
    ) {
        self.batch = batch
        self.rateLimit = rateLimit
        self.derives = derives
        self.transforms = transforms
        self.replay = replay || critical
        self.critical = critical
    }

    /// How long this event's messages stay replayable on a channel whose rules keep `channel`
    /// (nil: the channel keeps no history): nil when they are not kept at all.
    public func retention(on channel: HistoryRetention?) -> HistoryRetention? {
        guard replay else { return nil }
        return channel ?? (critical ? .standard : nil)
    }

    /// Events the rules say nothing about: delivered at once, counted on the channel's budget.
    public static let immediate = EventPolicy()
}

/// `batch = { window_ms = 100, keep = "all" | "latest", by = "field" }`.
public struct BatchPolicy: Sendable, Hashable {
    public enum Keep: String, Sendable { case all, latest }
    public let windowMilliseconds: Int
    public let keep: Keep
    /// With `latest`: the payload field whose value names what a message is the latest of.
    public let by: String?

    public init(windowMilliseconds: Int, keep: Keep, by: String?) {
        self.windowMilliseconds = windowMilliseconds
        self.keep = keep
        self.by = by
    }
}

/// `rate = { per_minute = 1200, per = "user" | "channel" }`: messages of this event count on
/// their own sliding window, per channel or per channel and sender, and not on the channel's
/// budget — so that chatty ephemeral events cannot starve real messages.
public struct EventRateLimit: Sendable, Hashable {
    public enum Scope: String, Sendable { case channel, user }
    public let perMinute: Int
    public let per: Scope

    public init(perMinute: Int, per: Scope) {
        self.perMinute = perMinute
        self.per = per
    }
}

/// An event published by the rules themselves (`emit` in an `on_publish` hook).
public struct DerivedEvent: Sendable, Equatable {
    /// The target channel's name, as the hook gave it (validated before publishing).
    public let channel: String
    public let event: String
    public let payload: Value

    public init(channel: String, event: String, payload: Value) {
        self.channel = channel
        self.event = event
        self.payload = payload
    }
}

/// What an event's `transform` hook made of a payload.
public enum Transformed: Sendable, Equatable {
    /// Deliver the payload as it came.
    case unchanged
    /// Deliver this payload instead.
    case replaced(Value)
    /// Do not deliver the message; the sender reads the reason.
    case refused(String)
}
