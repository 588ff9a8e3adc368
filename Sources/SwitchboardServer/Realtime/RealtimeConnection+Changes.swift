import SwitchboardCore
import SwitchboardPostgres

/// Postgres Changes: a committed row change reaches each channel of this connection whose
/// bindings ask for it (event, table, filter) and whose user the table's `read` rule lets see
/// the row, as one `postgres_changes` message carrying the ids of the bindings it matched.
extension RealtimeConnection {
    /// The filters' answers for one batch on one loop, so that each distinct filter is
    /// evaluated once per change however many sockets hold it.
    struct FilterAnswers {
        private var answers: [Int: [RowFilter: Bool]] = [:]

        mutating func matches(_ filter: RowFilter, change index: Int, row: Value.Object?) -> Bool {
            if let known = answers[index]?[filter] { return known }
            let answer = row.map(filter.matches) ?? false
            answers[index, default: [:]][filter] = answer
            return answer
        }
    }

    /// Delivers `changes` (in commit order) to this connection's channels that want them.
    func deliverChanges(_ changes: [DecodedChange], answers: inout FilterAnswers) {
        for (topic, join) in joins where !join.changes.isEmpty {
            for (index, change) in changes.enumerated() {
                let event = Self.event(change.kind)
                let filtered = change.kind == .delete ? change.oldRecord : change.record
                let matched = join.changes.filter { binding in
                    binding.wants(event, schema: change.schema, table: change.table)
                        && (binding.filter.map { answers.matches($0, change: index, row: filtered) } ?? true)
                }
                guard !matched.isEmpty, mayRead(change, as: join.identity) else { continue }
                let payload = Self.changePayload(change, ids: matched.map(\.id), select: Self.columns(for: matched), limit: shared.configuration.maxPayloadBytes)
                // A fan-out message: no refs (vsn 2 `[null, null, …]`), as broadcasts.
                push(topic: topic, joinRef: nil, event: "postgres_changes", payload: payload)
                shared.metrics.messagesOut.increment()
                shared.metrics.totals.delivered(1)
            }
        }
    }

    /// The table's rule on the rows the change shows: the new row, and the old one when it is
    /// whole (an UPDATE with a full replica identity, or a DELETE, whose old row is all it has).
    private func mayRead(_ change: DecodedChange, as identity: Identity) -> Bool {
        let table = "\(change.schema).\(change.table)"
        if let record = change.record, shared.policy.authorizeRow(identity, table: table, row: .object(record)) != .allow {
            return false
        }
        if let old = change.oldRecord, change.kind == .delete || change.oldIsWhole {
            return shared.policy.authorizeRow(identity, table: table, row: .object(old)) == .allow
        }
        return true
    }

    static func event(_ kind: DecodedChange.Kind) -> ChangeBinding.Event {
        switch kind {
        case .insert: .insert
        case .update: .update
        case .delete: .delete
        }
    }

    /// The columns to send: every column when a matched binding has no `select`, else those
    /// the matched bindings select.
    static func columns(for bindings: [ChangeBinding]) -> Set<String>? {
        var selected: Set<String> = []
        for binding in bindings {
            guard let columns = binding.select else { return nil }
            selected.formUnion(columns)
        }
        return selected
    }

    /// Values larger than this are dropped from a row too large to send, as Supabase does.
    static let largeValueBytes = 64

    /// `{ids, data: {schema, table, commit_timestamp, type, columns, record?, old_record?,
    /// errors}}`. A row whose values together exceed `limit` bytes keeps only its values of at
    /// most 64 bytes, and `errors` says why.
    static func changePayload(_ change: DecodedChange, ids: [Int], select: Set<String>?, limit: Int) -> Value {
        func shown(_ row: Value.Object) -> Value.Object {
            guard let select else { return row }
            return Value.Object(row.members.filter { select.contains($0.key) })
        }
        var record = change.record.map(shown)
        var old = change.oldRecord.map(shown)
        var errors: Value = .null
        if size(of: record) + size(of: old) > limit {
            record = record.map(Self.smallValues)
            old = old.map(Self.smallValues)
            errors = ["Error 413: Payload Too Large"]
        }
        let columns = change.columns.filter { select?.contains($0.name) ?? true }
        var data: Value.Object = [
            "schema": .string(change.schema), "table": .string(change.table), "commit_timestamp": .string(change.commitTimestamp),
            "type": .string(change.kind.rawValue),
            "columns": .array(columns.map { ["name": .string($0.name), "type": .string($0.type)] }),
        ]
        if let record { data["record"] = .object(record) }
        if let old { data["old_record"] = .object(old) }
        data["errors"] = errors
        return ["ids": .array(ids.map { .int($0) }), "data": .object(data)]
    }

    /// About how many bytes a row's values take as JSON (strings and numbers by their text).
    private static func size(of row: Value.Object?) -> Int {
        row?.members.reduce(0) { $0 + $1.key.utf8.count + valueSize($1.value) } ?? 0
    }

    private static func valueSize(_ value: Value) -> Int {
        switch value {
        case .null, .bool: 5
        case .number(let text), .string(let text): text.utf8.count + 2
        case .array(let items): items.reduce(2) { $0 + valueSize($1) + 1 }
        case .object(let object): object.members.reduce(2) { $0 + $1.key.utf8.count + 3 + valueSize($1.value) }
        }
    }

    private static func smallValues(_ row: Value.Object) -> Value.Object {
        Value.Object(row.members.filter { valueSize($0.value) <= largeValueBytes })
    }
}
