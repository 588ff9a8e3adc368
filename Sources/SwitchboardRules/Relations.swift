import Foundation
import Synchronization

/// Membership relations for `member(relation, a, b)`: read from the rules directory's
/// `data/*.json` files in the embedded default (one file per relation, named after it).
///
/// A file is either an object mapping each `a` to the list of its `b`s
/// (`{"s1": ["u7", "u9"]}`), or a list of `[a, b]` pairs (`[["s1", "u7"]]`). Numbers are
/// read as their decimal text so `42` and `"42"` are the same id.
public struct Relations: Sendable {
    fileprivate(set) var pairs: [String: Set<Pair>] = [:]
    /// Each relation's `b`s by `a`, in insertion order, for `related(relation, a)`.
    private var byA: [String: [String: [String]]] = [:]

    struct Pair: Hashable, Sendable {
        let a: String
        let b: String
    }

    public init() {}

    /// Whether `b` is related to `a` in `relation`.
    public func contains(_ relation: String, _ a: String, _ b: String) -> Bool {
        pairs[relation]?.contains(Pair(a: a, b: b)) ?? false
    }

    /// Every `b` related to `a` in `relation`.
    public func related(_ relation: String, _ a: String) -> [String] {
        byA[relation]?[a] ?? []
    }

    /// The relations defined, with their sizes (for the admin view).
    public var sizes: [String: Int] { pairs.mapValues(\.count) }

    /// Adds pairs (tests and, later, a database mirror).
    public mutating func insert(_ relation: String, _ a: String, _ b: String) {
        if pairs[relation, default: []].insert(Pair(a: a, b: b)).inserted {
            byA[relation, default: [:]][a, default: []].append(b)
        }
    }

    /// Takes `relation`'s pairs from `other` (replacing its own).
    mutating func adopt(_ relation: String, from other: Relations) {
        pairs[relation] = other.pairs[relation] ?? []
        byA[relation] = other.byA[relation] ?? [:]
    }

    /// Replaces every pair of `relation` (an empty list leaves it defined and empty).
    public mutating func replace(_ relation: String, with newPairs: [(a: String, b: String)]) {
        pairs[relation] = []
        byA[relation] = [:]
        for (a, b) in newPairs { insert(relation, a, b) }
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
            do {
                let data = try Data(contentsOf: folder.appendingPathComponent(name))
                let json = try JSONSerialization.jsonObject(with: data)
                if let map = json as? [String: Any] {
                    for (a, list) in map {
                        guard let list = list as? [Any] else {
                            throw RulesError(.unreadable, "\"\(a)\" must map to a list of ids", at: path)
                        }
                        for b in list { relations.insert(relation, a, try id(b, in: path)) }
                    }
                } else if let list = json as? [Any] {
                    for item in list {
                        guard let pair = item as? [Any], pair.count == 2 else {
                            throw RulesError(.unreadable, "every entry must be an [a, b] pair", at: path)
                        }
                        relations.insert(relation, try id(pair[0], in: path), try id(pair[1], in: path))
                    }
                } else {
                    throw RulesError(.unreadable, "must hold an object of lists or a list of pairs", at: path)
                }
            } catch let error as RulesError {
                errors.append(error)
            } catch {
                errors.append(RulesError(.unreadable, "is not valid JSON: \(error.localizedDescription)", at: path))
            }
        }
        return errors.isEmpty ? .success(relations) : .failure(RulesLoadError(errors: errors))
    }

    private static func id(_ value: Any, in path: String) throws -> String {
        if let string = value as? String { return string }
        if let number = value as? NSNumber { return number.stringValue }
        throw RulesError(.unreadable, "ids must be strings or numbers, not \(value)", at: path)
    }
}

/// The relations one rules generation reads, shared by its Lua lanes. A relation's pairs can be
/// replaced while the generation serves (a relation kept in a database and refreshed when its
/// table changes), without a reload: the next `member()` or `related()` call sees the new pairs.
/// A reload builds a new store from the rules directory.
public final class RelationStore: Sendable {
    private let relations: Mutex<Relations>

    public init(_ relations: Relations = Relations()) {
        self.relations = Mutex(relations)
    }

    public func contains(_ relation: String, _ a: String, _ b: String) -> Bool {
        relations.withLock { $0.contains(relation, a, b) }
    }

    public func related(_ relation: String, _ a: String) -> [String] {
        relations.withLock { $0.related(relation, a) }
    }

    /// The relations defined, with their sizes.
    public var sizes: [String: Int] { relations.withLock { $0.sizes } }

    /// Replaces every pair of `relation` and returns the members (`b`s) of the pairs it no
    /// longer has. The new pairs are indexed before the lock is taken, so rule hooks wait only
    /// for the swap.
    @discardableResult
    public func replace(_ relation: String, with pairs: [(a: String, b: String)]) -> Set<String> {
        var fresh = Relations()
        fresh.replace(relation, with: pairs)
        let old = relations.withLock { relations in
            defer { relations.adopt(relation, from: fresh) }
            return relations.pairs[relation] ?? []
        }
        let kept = fresh.pairs[relation] ?? []
        return Set(old.subtracting(kept).map(\.b))
    }
}
