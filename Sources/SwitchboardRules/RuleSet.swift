import SwitchboardCore

/// The declarations of one rules generation, validated and ready for Swift to decide with.
/// Immutable once built; hooks stay in the lanes' Lua states and are called by index.
public struct RuleSet: Sendable {
    /// How a channel may be used.
    public enum Kind: String, Sendable {
        /// One user or owner; row-level rules.
        case `private`
        /// Several parties through a membership relation.
        case shared
        /// Read-only for every authenticated user unless `send` allows.
        case broadcast
    }

    public struct Channel: Sendable {
        public let index: Int
        public let pattern: ChannelPattern
        public let kind: Kind
        public let presence: Bool
        public let hasJoin: Bool
        public let hasSend: Bool
        public let hasPresenceHook: Bool
        /// What the channel keeps for replay (`history`); nil: nothing (`history = false`).
        public let history: HistoryRetention?
        public let location: String
    }

    /// A declared field's type; `optional` when the declaration ends in `?` (`"string?"`).
    public struct FieldType: Sendable, Hashable, CustomStringConvertible {
        public enum Base: String, Sendable, CaseIterable {
            case string, number, integer, boolean, object, array, any
        }
        public let base: Base
        public let optional: Bool

        public var description: String { base.rawValue + (optional ? "?" : "") }

        init?(_ text: String) {
            let optional = text.hasSuffix("?")
            guard let base = Base(rawValue: String(optional ? text.dropLast() : Substring(text))) else { return nil }
            self.base = base
            self.optional = optional
        }

        func accepts(_ value: Value?) -> Bool {
            guard let value, !value.isNull else { return optional }
            switch (base, value) {
            case (.any, _), (.string, .string), (.number, .number), (.boolean, .bool), (.object, .object), (.array, .array):
                return true
            case (.integer, .number):
                return value.int64Value != nil
            default:
                return false
            }
        }
    }

    public typealias Batch = BatchPolicy

    public struct Event: Sendable {
        public let index: Int
        public let name: String
        public let on: [ChannelPattern]
        /// nil when the rules do not say (replayable by default).
        public let replay: Bool?
        public let critical: Bool
        public let batch: Batch?
        /// `rate = { per_minute, per }`: a budget of its own instead of the channel's.
        public let rate: EventRateLimit?
        public let fields: [(name: String, type: FieldType)]
        public let hasTransform: Bool
        public let hasOnPublish: Bool
        public let location: String
    }

    public struct Tier: Sendable, Hashable {
        public let name: String
        public let maxChannels: Int?
        public let messagesPerMinute: Int?
        public let maxPayload: Int?
        public let location: String
    }

    public let channels: [Channel]
    public let events: [String: Event]
    public let tiers: [String: Tier]
    public let defaultTier: String
    public let allowUndeclaredEvents: Bool
    /// Limits per tier with unset fields inherited from the default tier.
    public let limits: [String: Limits]

    /// The first channel declaration whose pattern matches, in declaration order.
    public func channel(for name: ChannelName) -> (Channel, [String: String])? {
        for channel in channels {
            if let captures = channel.pattern.match(name) { return (channel, captures) }
        }
        return nil
    }

    /// The first channel declaration whose pattern matches, without collecting captures.
    func rule(for name: ChannelName) -> Channel? {
        channels.first { $0.pattern.matches(name) }
    }

    /// The limits for a tier name (nil or unknown: the default tier).
    public func limits(forTier name: String?) -> Limits {
        if let name, let limits = limits[name] { return limits }
        return limits[defaultTier] ?? Self.fallbackLimits
    }

    /// Used only when the rules declare no tier at all: the spec's free tier.
    static let fallbackLimits = Limits(maxChannels: 3, maxPayloadBytes: 64 * 1024, messagesPerMinute: 100)
}
