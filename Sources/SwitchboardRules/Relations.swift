import Foundation
import Synchronization
import SwitchboardCore

/// Membership relations for `member(relation, a, b)` and `related(relation, a)`: read from the
/// rules directory's `data/*.json` files (one file per relation, named after it), or from the
/// database for relations the rules declare with `relation "name" { sql = … }`.
///
/// A file is either an object mapping each `a` to the list of its `b`s
/// (`{"s1": ["u7", "u9"]}`), or a list of `[a, b]` pairs (`[["s1", "u7"]]`). Numbers are
/// read as their decimal text so `42` and `"42"` are the same id.
///
/// Memory: each key is stored once, with its members in insertion order; a key with more than
/// `Members.indexedAbove` members also keeps a hash set of them, so `member()` stays one hash
/// lookup plus a short scan or a second lookup however large a team grows.
public struct Relations: Sendable {
    /// Each relation's members by key.
    private var byKey: [String: [String: Members]] = [:]
    /// Each relation's pair count.
    private var counts: [String: Int] = [:]

    /// One key's members: a list in insertion order, plus a set once the list is long.
    struct Members: Sendable {
        static let indexedAbove = 16
        private(set) var ordered: [String] = []
        private var index: Set<String>?

        func contains(_ member: String) -> Bool {
            if let index { return index.contains(member) }
            return ordered.contains(member)
        }

        /// Adds `member` unless present; returns whether it was added.
        mutating func insert(_ member: String) -> Bool {
            if contains(member) { return false }
            ordered.append(member)
            if index != nil {
                index?.insert(member)
            } else if ordered.count > Self.indexedAbove {
                index = Set(ordered)
            }
            return true
        }
    }

    public init() {}

    /// Whether `b` is related to `a` in `relation`.
    public func contains(_ relation: String, _ a: String, _ b: String) -> Bool {
        byKey[relation]?[a]?.contains(b) ?? false
    }

    /// Every `b` related to `a` in `relation`, in the order they were added.
    public func related(_ relation: String, _ a: String) -> [String] {
        byKey[relation]?[a]?.ordered ?? []
    }

    /// The relations defined, with their sizes (pairs).
    public var sizes: [String: Int] { counts }

    /// Every pair of `relation`, key by key.
    public func pairs(of relation: String) -> [(a: String, b: String)] {
        guard let keys = byKey[relation] else { return [] }
        var pairs: [(a: String, b: String)] = []
        pairs.reserveCapacity(counts[relation] ?? 0)
        for (a, members) in keys {
            for b in members.ordered { pairs.append((a, b)) }
        }
        return pairs
    }

    /// Adds a pair (a repeated pair is kept once).
    public mutating func insert(_ relation: String, _ a: String, _ b: String) {
        if byKey[relation, default: [:]][a, default: Members()].insert(b) {
            counts[relation, default: 0] += 1
        }
    }

    /// Takes `relation`'s pairs from `other` (replacing its own).
    mutating func adopt(_ relation: String, from other: Relations) {
        byKey[relation] = other.byKey[relation] ?? [:]
        counts[relation] = other.counts[relation] ?? 0
    }

    /// Replaces every pair of `relation` (an empty list leaves it defined and empty).
    public mutating func replace(_ relation: String, with newPairs: [(a: String, b: String)]) {
        byKey[relation] = [:]
        counts[relation] = 0
        for (a, b) in newPairs { insert(relation, a, b) }
    }

    /// Replaces the pairs of `keys` in `relation` with those of `newPairs` (whose keys are all
    /// among them); returns the members those keys no longer have.
    mutating func replace(_ relation: String, keys: Set<String>, with newPairs: [(a: String, b: String)]) -> Set<String> {
        var fresh: [String: Members] = [:]
        for (a, b) in newPairs where keys.contains(a) { _ = fresh[a, default: Members()].insert(b) }
        var lost: Set<String> = []
        var count = counts[relation] ?? 0
        var table = byKey[relation] ?? [:]
        for key in keys {
            let old = table[key]
            let new = fresh[key]
            for member in old?.ordered ?? [] where new?.contains(member) != true { lost.insert(member) }
            count += (new?.ordered.count ?? 0) - (old?.ordered.count ?? 0)
            table[key] = new
        }
        byKey[relation] = table
        counts[relation] = count
        return lost
    }

    /// The members that have a pair in `relation` here and none with the same key in `newer`.
    func membersLost(in relation: String, comparedWith newer: Relations) -> Set<String> {
        guard let keys = byKey[relation] else { return [] }
        let fresh = newer.byKey[relation] ?? [:]
        var lost: Set<String> = []
        for (a, members) in keys {
            let kept = fresh[a]
            for b in members.ordered where kept?.contains(b) != true { lost.insert(b) }
        }
        return lost
    }

    /// Loads every `data/*.json` under `directory`; a missing `data` folder means no relations.
    static func load(from directory: URL) -> Result<Relations, RulesLoadError> {
        let folder = directory.appendingPathComponent("data")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else {
            return .success(Relations())
        }
        var relations = Relations()
        var errors: [RulesError] = []
        for name in names.sorted() where name.hasSuffix(".json") {
            let path = "data/\(name)"
            let relation = String(name.dropLast(".json".count))
            let json: Any
            do {
                json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent(name)))
            } catch {
                errors.append(RulesError(.unreadable, "is not valid JSON: \(error.localizedDescription)", at: path))
                continue
            }
            do throws(RowsError) {
                for (a, b) in try parseRows(value(json)) { relations.insert(relation, a, b) }
            } catch {
                errors.append(RulesError(.unreadable, error.message, at: path))
            }
        }
        return errors.isEmpty ? .success(relations) : .failure(RulesLoadError(errors: errors))
    }

    /// Why rows given for a relation (a data file, a test's fixture) cannot be read.
    struct RowsError: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    /// The pairs of a relation's rows: an object mapping each key to the list of its members
    /// (`{"s1": ["u7", "u9"]}`), or a list of `[key, member]` pairs (`[["s1", "u7"]]`); ids are
    /// strings or numbers (read as their decimal text).
    static func parseRows(_ rows: Value) throws(RowsError) -> [(a: String, b: String)] {
        var pairs: [(a: String, b: String)] = []
        switch rows {
        case .object(let map):
            for (a, list) in map.members {
                guard let list = list.arrayValue else { throw RowsError("\"\(a)\" must map to a list of ids") }
                for b in list { pairs.append((a, try id(b))) }
            }
        case .array(let list):
            for item in list {
                guard let pair = item.arrayValue, pair.count == 2 else { throw RowsError("every entry must be an [a, b] pair") }
                pairs.append((try id(pair[0]), try id(pair[1])))
            }
        default:
            throw RowsError("the rows must be an object of lists or a list of [a, b] pairs, not \(rows.kindDescription)")
        }
        return pairs
    }

    private static func id(_ value: Value) throws(RowsError) -> String {
        switch value {
        case .string(let text), .number(let text): return text
        default: throw RowsError("ids must be strings or numbers, not \(value.kindDescription)")
        }
    }

    /// A `JSONSerialization` result as a `Value` (numbers as their decimal text).
    private static func value(_ json: Any) -> Value {
        switch json {
        case let string as String: .string(string)
        case let number as NSNumber: .number(number.stringValue)
        case let list as [Any]: .array(list.map(value))
        case let map as [String: Any]: .object(Value.Object(map.sorted { $0.key < $1.key }.map { ($0.key, value($0.value)) }))
        default: .null
        }
    }
}

/// Where a relation's pairs came from and when, for `/admin/rules` and the metrics.
public struct RelationInfo: Sendable, Equatable {
    public enum Source: String, Sendable {
        /// `data/<name>.json` in the rules directory.
        case file
        /// The relation's `sql`, run against the database.
        case database
        /// A `given_relation` call of a `rules test` file.
        case fixture
    }

    public var source: Source
    public var rows: Int
    /// When the pairs were last read (for a database relation, the last query that succeeded).
    public var refreshedAt: Date
}

/// The relations one rules generation reads, shared by its Lua lanes. A relation's pairs can be
/// replaced while the generation serves (a relation kept in a database and refreshed when its
/// table changes), without a reload: the next `member()` or `related()` call sees the new pairs.
/// A reload builds a new store from the rules directory.
public final class RelationStore: Sendable {
    private struct State: Sendable {
        var relations: Relations
        var info: [String: RelationInfo]
    }

    private let state: Mutex<State>

    public init(_ relations: Relations = Relations(), source: RelationInfo.Source = .file, at date: Date = Date()) {
        let info = relations.sizes.mapValues { RelationInfo(source: source, rows: $0, refreshedAt: date) }
        state = Mutex(State(relations: relations, info: info))
    }

    public func contains(_ relation: String, _ a: String, _ b: String) -> Bool {
        state.withLock { $0.relations.contains(relation, a, b) }
    }

    public func related(_ relation: String, _ a: String) -> [String] {
        state.withLock { $0.relations.related(relation, a) }
    }

    /// Each relation's source, size and last refresh.
    public var info: [String: RelationInfo] { state.withLock { $0.info } }

    /// Every pair of `relation` (to carry a relation over into another store).
    public func pairs(of relation: String) -> [(a: String, b: String)] {
        state.withLock { $0.relations.pairs(of: relation) }
    }

    /// Replaces every pair of `relation` and returns the members (`b`s) of the pairs it no
    /// longer has. The new pairs are indexed before the lock is taken and compared with the old
    /// ones after it is released, so rule hooks wait only for the swap.
    @discardableResult
    public func replace(
        _ relation: String, with pairs: [(a: String, b: String)], source: RelationInfo.Source, refreshedAt: Date = Date()
    ) -> Set<String> {
        var fresh = Relations()
        fresh.replace(relation, with: pairs)
        let rows = fresh.sizes[relation] ?? 0
        // Take the old pairs out under the lock and compare outside it: the comparison walks
        // every pair. Replacements of one relation come one at a time (the watcher refreshes
        // serially), so the old value read here is the one being replaced.
        var old = Relations()
        state.withLock { state in
            old.adopt(relation, from: state.relations)
            state.relations.adopt(relation, from: fresh)
            state.info[relation] = RelationInfo(source: source, rows: rows, refreshedAt: refreshedAt)
        }
        return old.membersLost(in: relation, comparedWith: fresh)
    }

    /// Replaces the pairs of `keys` only (a change that named the keys it touched) and returns
    /// the members those keys lost. The relation's other keys stay as they are.
    @discardableResult
    public func replace(
        _ relation: String, keys: Set<String>, with pairs: [(a: String, b: String)], source: RelationInfo.Source,
        refreshedAt: Date = Date()
    ) -> Set<String> {
        state.withLock { state in
            let lost = state.relations.replace(relation, keys: keys, with: pairs)
            state.info[relation] = RelationInfo(source: source, rows: state.relations.sizes[relation] ?? 0, refreshedAt: refreshedAt)
            return lost
        }
    }
}
