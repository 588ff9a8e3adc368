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

    /// A channel declaration. A class, not a struct: every decision finds one and passes it
    /// along, and copying a struct of strings and arrays costs a retain and release per field.
    public final class Channel: Sendable {
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

        init(
            index: Int, pattern: ChannelPattern, kind: Kind, presence: Bool, hasJoin: Bool, hasSend: Bool,
            hasPresenceHook: Bool, history: HistoryRetention?, location: String
        ) {
            self.index = index
            self.pattern = pattern
            self.kind = kind
            self.presence = presence
            self.hasJoin = hasJoin
            self.hasSend = hasSend
            self.hasPresenceHook = hasPresenceHook
            self.history = history
            self.location = location
        }
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

    /// An event declaration (a class for the same reason as `Channel`).
    public final class Event: Sendable {
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

        init(
            index: Int, name: String, on: [ChannelPattern], replay: Bool?, critical: Bool, batch: Batch?,
            rate: EventRateLimit?, fields: [(name: String, type: FieldType)], hasTransform: Bool, hasOnPublish: Bool,
            location: String
        ) {
            self.index = index
            self.name = name
            self.on = on
            self.replay = replay
            self.critical = critical
            self.batch = batch
            self.rate = rate
            self.fields = fields
            self.hasTransform = hasTransform
            self.hasOnPublish = hasOnPublish
            self.location = location
        }
    }

    public struct Tier: Sendable, Hashable {
        public let name: String
        public let maxChannels: Int?
        public let messagesPerMinute: Int?
        public let maxPayload: Int?
        public let location: String
    }

    /// `relation "name" { sql = "select a, b from …", watch = { "schema.table" } }`: a relation
    /// whose pairs come from a query on the server's database (first column the key, second
    /// the member), read at start and on every reload, and again when a watched table changes.
    /// Without a database, `data/<name>.json` serves (if there is one).
    public struct Relation: Sendable, Hashable {
        public let name: String
        public let sql: String
        /// Tables (`schema.table`) whose changes mean the query must be run again.
        public let watch: [String]
        /// For watched tables declared as `schema.table(column)`: the column whose value is the
        /// relation's key, so that a change re-reads only the keys it touched.
        public let keyColumns: [String: String]
        /// The most rows the query may return (more is a reload error): a bound on the memory
        /// a mistaken query (a missing join condition) can take. Default `defaultMaxRows`.
        public let maxRows: Int
        public let location: String

        /// 2,000,000 pairs: 130–340 MB held (65–169 B a pair, docs/BENCHMARKS.md), about twice that
        /// while a reload reads them anew.
        public static let defaultMaxRows = 2_000_000
        public static let maxRowsCeiling: Int64 = 100_000_000

        /// `supplier_team` → `public.supplier_team`, as PostgreSQL's triggers name a table.
        public static func qualified(_ table: String) -> String {
            table.contains(".") ? table : "public.\(table)"
        }
    }

    /// `table "schema.name" { read = function(user, row) ... end }`: who may see a row of a
    /// table through `postgres_changes`. The hook answers like a channel hook (true, or false
    /// and a reason); a table without a declaration is never shown (default deny).
    public struct Table: Sendable, Hashable {
        /// `schema.name` (`public.` added when the declaration names no schema).
        public let name: String
        /// Position in declaration order, from 1 (how the lanes find its hook).
        public let index: Int
        public let location: String
    }

    public let channels: [Channel]
    public let events: [String: Event]
    /// `events` again, for the lookup every send makes.
    let eventTable: NameTable<Event>
    public let tiers: [String: Tier]
    public let defaultTier: String
    public let allowUndeclaredEvents: Bool
    /// Limits per tier with unset fields inherited from the default tier.
    public let limits: [String: Limits]
    /// The relations declared to come from the database, by name.
    public let relations: [String: Relation]
    /// The tables whose rows `postgres_changes` may show, by `schema.name`.
    public let tables: [String: Table]

    /// The first channel declaration whose pattern matches, in declaration order.
    public func channel(for name: ChannelName) -> (Channel, [String: String])? {
        for channel in channels {
            if let captures = channel.pattern.match(name) { return (channel, captures) }
        }
        return nil
    }

    /// The first channel declaration whose pattern matches, without collecting captures.
    func rule(for name: ChannelName) -> Channel? {
        let found: Int?? = name.rawValue.utf8.withContiguousStorageIfAvailable { bytes in
            channels.firstIndex { $0.pattern.matches(utf8: bytes) }
        }
        let index = found ?? channels.firstIndex { $0.pattern.matches(name) }
        return index.map { channels[$0] }
    }

    /// The limits for a tier name (nil or unknown: the default tier).
    public func limits(forTier name: String?) -> Limits {
        if let name, let limits = limits[name] { return limits }
        return limits[defaultTier] ?? Self.fallbackLimits
    }

    /// Used only when the rules declare no tier at all: the spec's free tier.
    static let fallbackLimits = Limits(maxChannels: 3, maxPayloadBytes: 64 * 1024, messagesPerMinute: 100)
}
