import SwitchboardCore

extension RuleSet {
    /// How the prelude describes a hook.
    static let function: Value = "<function>"

    /// The most messages a channel's `history` may keep.
    public static let maxHistoryMessages = 1000
    /// The longest a channel's `history` may keep a message, in seconds.
    public static let maxHistorySeconds = 3600

    /// A channel's `history = false | { messages = N, seconds = S }` (absent: the spec's 100
    /// messages for 300 s; an unset field of the table keeps its default).
    static func history(_ spec: Value?, fail: (String) -> Void) -> HistoryRetention? {
        guard let spec else { return .standard }
        if spec.boolValue == false { return nil }
        if spec.boolValue == true { return .standard }
        guard let table = spec.objectValue else {
            fail("history must be false or a table { messages = N, seconds = S }")
            return .standard
        }
        var retention = HistoryRetention.standard
        for member in table.members {
            switch member.key {
            case "messages":
                guard let value = member.value.int64Value, (1...Int64(maxHistoryMessages)).contains(value) else {
                    fail("history.messages must be a whole number in 1...\(maxHistoryMessages)")
                    continue
                }
                retention.maxMessages = Int(value)
            case "seconds":
                guard let value = member.value.int64Value, (1...Int64(maxHistorySeconds)).contains(value) else {
                    fail("history.seconds must be a whole number in 1...\(maxHistorySeconds)")
                    continue
                }
                retention.maxAgeMilliseconds = value * 1000
            default:
                fail("history has an unknown field \(member.key); use messages, seconds")
            }
        }
        return retention
    }

    /// Builds a rule set from what `__sb_declarations()` returned, collecting every problem
    /// (not just the first) so that `rules check` can list them all.
    static func build(from declarations: Value) -> Result<RuleSet, RulesLoadError> {
        var errors: [RulesError] = []
        func fail(_ location: String?, _ message: String) {
            errors.append(RulesError(.invalidDeclaration, message, at: location))
        }

        var tiers: [String: Tier] = [:]
        for spec in declarations["tiers"]?.arrayValue ?? [] {
            let name = spec["__name"]?.stringValue ?? "?"
            let location = spec["__where"]?.stringValue ?? ""
            let known: Set<String> = ["__name", "__where", "max_channels", "messages_per_minute", "max_payload"]
            for member in spec.objectValue?.members ?? [] where !known.contains(member.key) {
                fail(location, "tier \"\(name)\": unknown field \(member.key); use max_channels, messages_per_minute, max_payload")
            }
            func positive(_ key: String) -> Int? {
                guard let value = spec[key] else { return nil }
                guard let number = value.int64Value, number >= 1, number <= Int64(Int32.max) else {
                    fail(location, "tier \"\(name)\": \(key) must be a whole number of at least 1")
                    return nil
                }
                return Int(number)
            }
            if tiers[name] != nil { fail(location, "tier \"\(name)\" is declared twice") }
            tiers[name] = Tier(
                name: name, maxChannels: positive("max_channels"), messagesPerMinute: positive("messages_per_minute"),
                maxPayload: positive("max_payload"), location: location)
        }

        let defaultLocation = declarations["default_tier"]?["where"]?.stringValue
        var defaultTier = declarations["default_tier"]?["name"]?.stringValue ?? ""
        if defaultTier.isEmpty {
            if tiers.isEmpty {
                defaultTier = "free"
            } else if let free = tiers["free"] {
                defaultTier = free.name
            } else {
                fail(nil, "no default_tier is declared and there is no tier \"free\" to default to")
            }
        } else if !tiers.isEmpty, tiers[defaultTier] == nil {
            fail(defaultLocation, "default_tier \"\(defaultTier)\" is not a declared tier")
        }
        var limits: [String: Limits] = [:]
        let base = tiers[defaultTier]
        let fallback = RuleSet.fallbackLimits
        for (name, tier) in tiers {
            guard
                let maxChannels = tier.maxChannels ?? base?.maxChannels,
                let perMinute = tier.messagesPerMinute ?? base?.messagesPerMinute,
                let maxPayload = tier.maxPayload ?? base?.maxPayload
            else {
                fail(tier.location, "tier \"\(name)\" leaves max_channels, messages_per_minute or max_payload unset and the default tier does not set it")
                continue
            }
            limits[name] = Limits(maxChannels: maxChannels, maxPayloadBytes: maxPayload, messagesPerMinute: perMinute)
        }
        if tiers.isEmpty { limits[defaultTier] = fallback }

        var channels: [Channel] = []
        for (offset, spec) in (declarations["channels"]?.arrayValue ?? []).enumerated() {
            let text = spec["__name"]?.stringValue ?? "?"
            let location = spec["__where"]?.stringValue ?? ""
            let known: Set<String> = ["__name", "__where", "kind", "presence", "join", "send", "history"]
            for member in spec.objectValue?.members ?? [] where !known.contains(member.key) {
                fail(location, "channel \"\(text)\": unknown field \(member.key); use kind, presence, join, send, history")
            }
            let history = Self.history(spec["history"]) { fail(location, "channel \"\(text)\": \($0)") }
            let pattern: ChannelPattern
            do {
                pattern = try ChannelPattern(text)
            } catch {
                fail(location, error.message)
                continue
            }
            guard let kindText = spec["kind"]?.stringValue, let kind = Kind(rawValue: kindText) else {
                fail(location, "channel \"\(text)\": kind must be \"private\", \"shared\" or \"broadcast\"")
                continue
            }
            let presence = spec["presence"]
            if let presence, presence.boolValue == nil, presence != Self.function {
                fail(location, "channel \"\(text)\": presence must be true, false or a function")
            }
            for hook in ["join", "send"] where spec[hook] != nil && spec[hook] != Self.function {
                fail(location, "channel \"\(text)\": \(hook) must be a function")
            }
            if kind != .broadcast, spec["join"] == nil {
                fail(location, "channel \"\(text)\": a \(kind.rawValue) channel needs a join function")
            }
            channels.append(
                Channel(
                    index: offset + 1, pattern: pattern, kind: kind,
                    presence: presence == Self.function || presence?.boolValue == true,
                    hasJoin: spec["join"] == Self.function, hasSend: spec["send"] == Self.function,
                    hasPresenceHook: presence == Self.function, history: history, location: location))
        }

        var events: [String: Event] = [:]
        for (offset, spec) in (declarations["events"]?.arrayValue ?? []).enumerated() {
            let name = spec["__name"]?.stringValue ?? "?"
            let location = spec["__where"]?.stringValue ?? ""
            let known: Set<String> = [
                "__name", "__where", "on", "replay", "critical", "batch", "rate", "fields", "transform", "on_publish",
            ]
            for member in spec.objectValue?.members ?? [] where !known.contains(member.key) {
                fail(location, "event \"\(name)\": unknown field \(member.key); use on, fields, replay, critical, batch, rate, transform, on_publish")
            }
            var on: [ChannelPattern] = []
            for text in spec["on"]?.arrayValue ?? [] {
                guard let text = text.stringValue else {
                    fail(location, "event \"\(name)\": on must list channel patterns as strings")
                    continue
                }
                do { on.append(try ChannelPattern(text)) } catch { fail(location, "event \"\(name)\": \(error.message)") }
            }
            if on.isEmpty { fail(location, "event \"\(name)\": on must list at least one channel pattern") }
            var fields: [(name: String, type: FieldType)] = []
            if let declared = spec["fields"] {
                guard let object = declared.objectValue else {
                    fail(location, "event \"\(name)\": fields must be a table of name = \"type\"")
                    continue
                }
                for member in object.members {
                    guard let text = member.value.stringValue, let type = FieldType(text) else {
                        let types = FieldType.Base.allCases.map(\.rawValue).joined(separator: ", ")
                        fail(location, "event \"\(name)\": field \(member.key) has unknown type \(member.value.stringValue.map { "\"\($0)\"" } ?? "(not a string)"); use one of \(types), with ? for optional")
                        continue
                    }
                    fields.append((member.key, type))
                }
            }
            var batch: Batch?
            if let spec = spec["batch"] {
                let window = spec["window_ms"]?.int64Value ?? 0
                let keep = spec["keep"].map { $0.stringValue.flatMap(Batch.Keep.init(rawValue:)) } ?? .all
                if !(1...60_000).contains(window) { fail(location, "event \"\(name)\": batch.window_ms must be 1...60000") }
                if keep == nil { fail(location, "event \"\(name)\": batch.keep must be \"all\" or \"latest\"") }
                let by = spec["by"]?.stringValue
                if keep == .latest, by == nil { fail(location, "event \"\(name)\": batch.keep = \"latest\" needs by = \"field\"") }
                if let keep, (1...60_000).contains(window) { batch = Batch(windowMilliseconds: Int(window), keep: keep, by: by) }
            }
            var rate: EventRateLimit?
            if let spec = spec["rate"] {
                let perMinute = spec["per_minute"]?.int64Value ?? 0
                let per = spec["per"].map { $0.stringValue.flatMap(EventRateLimit.Scope.init(rawValue:)) } ?? .channel
                if !(1...1_000_000).contains(perMinute) { fail(location, "event \"\(name)\": rate.per_minute must be 1...1000000") }
                if per == nil { fail(location, "event \"\(name)\": rate.per must be \"channel\" or \"user\"") }
                if let per, (1...1_000_000).contains(perMinute) { rate = EventRateLimit(perMinute: Int(perMinute), per: per) }
            }
            if events[name] != nil { fail(location, "event \"\(name)\" is declared twice") }
            for flag in ["replay", "critical"] where spec[flag] != nil && spec[flag]?.boolValue == nil {
                fail(location, "event \"\(name)\": \(flag) must be true or false")
            }
            events[name] = Event(
                index: offset + 1, name: name, on: on, replay: spec["replay"]?.boolValue,
                critical: spec["critical"]?.boolValue ?? false, batch: batch, rate: rate, fields: fields,
                hasTransform: spec["transform"] == Self.function, hasOnPublish: spec["on_publish"] == Self.function,
                location: location)
        }

        var relations: [String: Relation] = [:]
        for spec in declarations["relations"]?.arrayValue ?? [] {
            let name = spec["__name"]?.stringValue ?? "?"
            let location = spec["__where"]?.stringValue ?? ""
            let known: Set<String> = ["__name", "__where", "sql", "watch", "max_rows"]
            for member in spec.objectValue?.members ?? [] where !known.contains(member.key) {
                fail(location, "relation \"\(name)\": unknown field \(member.key); use sql, watch, max_rows")
            }
            if !Self.isRelationName(name) {
                fail(location, "relation \"\(name)\": the name must be letters, digits and _ (it is what member() and related() take)")
            }
            let sql = spec["sql"]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if sql.isEmpty {
                fail(location, "relation \"\(name)\": sql must be a query returning two columns, the key and the member, e.g. sql = \"select supplier_id, user_id from app.supplier_team\"")
            }
            var watch: [String] = []
            var keyColumns: [String: String] = [:]
            if let list = spec["watch"] {
                let entries = list.arrayValue?.compactMap(\.stringValue) ?? []
                let parsed = entries.compactMap(Self.watchEntry)
                if entries.count != (list.arrayValue?.count ?? -1) || parsed.count != entries.count {
                    fail(
                        location,
                        "relation \"\(name)\": watch must be a list of table names such as \"app.supplier_team\", each optionally with the column that holds the relation's key: \"app.supplier_team(supplier_id)\"")
                }
                watch = parsed.map(\.table)
                for entry in parsed { keyColumns[entry.table] = entry.keyColumn }
            }
            var maxRows = Relation.defaultMaxRows
            if let limit = spec["max_rows"] {
                if let value = limit.int64Value, (1...Relation.maxRowsCeiling).contains(value) {
                    maxRows = Int(value)
                } else {
                    fail(location, "relation \"\(name)\": max_rows must be a whole number from 1 to \(Relation.maxRowsCeiling)")
                }
            }
            if relations[name] != nil { fail(location, "relation \"\(name)\" is declared twice") }
            relations[name] = Relation(name: name, sql: sql, watch: watch, keyColumns: keyColumns, maxRows: maxRows, location: location)
        }
        // A table's change trigger reports one key column: every relation that names one for a
        // table must name the same.
        var keyColumnOf: [String: (column: String, relation: Relation)] = [:]
        for relation in relations.values.sorted(by: { $0.location < $1.location }) {
            for (table, column) in relation.keyColumns.sorted(by: { $0.key < $1.key }) {
                let qualified = Relation.qualified(table)
                if let other = keyColumnOf[qualified], other.column != column {
                    fail(
                        relation.location,
                        "relation \"\(relation.name)\": watch gives \(qualified) the key column \(column), but relation \"\(other.relation.name)\" (\(other.relation.location)) gives it \(other.column); a table has one key column")
                } else {
                    keyColumnOf[qualified] = (column, relation)
                }
            }
        }

        var tables: [String: Table] = [:]
        for (offset, spec) in (declarations["tables"]?.arrayValue ?? []).enumerated() {
            let name = spec["__name"]?.stringValue ?? "?"
            let location = spec["__where"]?.stringValue ?? ""
            for member in spec.objectValue?.members ?? [] where !["__name", "__where", "read"].contains(member.key) {
                fail(location, "table \"\(name)\": unknown field \(member.key); use read = function(user, row) ... end")
            }
            guard Self.isTableName(name) else {
                fail(location, "table \"\(name)\": the name must be a table: schema.name or name (letters, digits and _)")
                continue
            }
            if spec["read"] != Self.function {
                fail(location, "table \"\(name)\": read must be a function(user, row) returning true, or false and a reason")
            }
            let qualified = Relation.qualified(name)
            if let other = tables[qualified] {
                fail(location, "table \"\(qualified)\" is declared twice (first at \(other.location))")
            }
            tables[qualified] = Table(name: qualified, index: offset + 1, location: location)
        }

        guard errors.isEmpty else { return .failure(RulesLoadError(errors: errors)) }
        return .success(
            RuleSet(
                channels: channels, events: events, eventTable: NameTable(events), tiers: tiers, defaultTier: defaultTier,
                allowUndeclaredEvents: declarations["allow_undeclared"]?.boolValue ?? false, limits: limits, relations: relations,
                tables: tables))
    }

    /// `supplier_team`: ASCII letters, digits and `_`, not starting with a digit.
    static func isRelationName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
        }
    }

    /// `app.supplier_team` or `app.supplier_team(supplier_id)`: a table name and, optionally, the
    /// column holding the relation's key; nil when malformed.
    static func watchEntry(_ entry: String) -> (table: String, keyColumn: String?)? {
        guard let open = entry.firstIndex(of: "(") else { return isTableName(entry) ? (entry, nil) : nil }
        let table = String(entry[..<open])
        guard entry.hasSuffix(")"), isTableName(table) else { return nil }
        let column = String(entry[entry.index(after: open)..<entry.index(before: entry.endIndex)])
        return isRelationName(column) ? (table, column) : nil
    }

    /// `app.supplier_team` or `supplier_team`: one or two relation-style names joined by a dot.
    static func isTableName(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return (1...2).contains(parts.count) && parts.allSatisfy { isRelationName(String($0)) }
    }
}
