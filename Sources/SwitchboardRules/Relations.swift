import Foundation

/// Membership relations for `member(relation, a, b)`: read from the rules directory's
/// `data/*.json` files in the embedded default (one file per relation, named after it).
///
/// A file is either an object mapping each `a` to the list of its `b`s
/// (`{"s1": ["u7", "u9"]}`), or a list of `[a, b]` pairs (`[["s1", "u7"]]`). Numbers are
/// read as their decimal text so `42` and `"42"` are the same id.
public struct Relations: Sendable {
    private var pairs: [String: Set<Pair>] = [:]
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
