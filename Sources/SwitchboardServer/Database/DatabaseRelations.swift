import Logging
import SwitchboardPostgres
import SwitchboardRules

/// Fills the relations a rules generation declares from the database (`relation "name" { sql =
/// … }`) by running their queries: at start, and on every reload before the new generation is
/// put in force, so that a query that fails (or returns the wrong columns, or times out) is a
/// reload error with the declaration's `file:line` and the previous generation, with its
/// relation data, keeps serving.
struct DatabaseRelations: Sendable {
    let settings: DatabaseSettings
    let logger: Logger

    /// Runs every declared relation's query and hands the pairs to `replace`; returns the
    /// problems, each at its declaration.
    ///
    /// When the database cannot be reached at all, a relation `carryOver` accepts (on a reload:
    /// one the rules in force declare with the same query and hold from the database) keeps the
    /// rows read last, so that a rules change still applies during an outage; the watcher reads
    /// it again once the database is back. Without `carryOver` (at start), or for a new or
    /// changed query, an unreachable database is an error at the declaration.
    func fill(
        _ rules: RuleSet, replace: (String, [(a: String, b: String)]) -> Void,
        carryOver: ((RuleSet.Relation) -> Bool)? = nil
    ) async -> [RulesError] {
        let declared = rules.relations.values.sorted { $0.name < $1.name }
        guard !declared.isEmpty else { return [] }
        let results: [(RuleSet.Relation, Result<[(a: String, b: String)], DatabaseError>)]
        do {
            results = try await read(declared, purpose: .load)
        } catch {
            let reason = DatabaseError.describe(error)
            var errors: [RulesError] = []
            for relation in declared {
                if let carryOver, carryOver(relation) {
                    logger.warning(
                        "the database cannot be reached; the relation keeps the rows read last",
                        metadata: ["relation": "\(relation.name)", "error": "\(reason)"])
                    continue
                }
                errors.append(
                    RulesError(
                        .relationQuery, "relation \"\(relation.name)\": the database could not be reached to read it: \(reason)",
                        at: relation.location))
            }
            return errors
        }
        var errors: [RulesError] = []
        for (relation, result) in results {
            switch result {
            case .success(let pairs):
                replace(relation.name, pairs)
                logger.info("relation read from the database", metadata: ["relation": "\(relation.name)", "rows": "\(pairs.count)"])
            case .failure(let error):
                errors.append(RulesError(.relationQuery, "relation \"\(relation.name)\": its query failed: \(error.message)", at: relation.location))
            }
        }
        return errors
    }

    /// Each relation's pairs, or why its query failed, in the order given (for a load, after
    /// checking its columns and putting the change triggers on its watched tables; with
    /// `onlyKeys`, just the rows of those keys of each relation named). Throws when the database
    /// cannot be reached.
    func read(
        _ declared: [RuleSet.Relation], purpose: RelationQuery.Purpose, onlyKeys: [String: Set<String>] = [:]
    ) async throws -> [(RuleSet.Relation, Result<[(a: String, b: String)], DatabaseError>)] {
        let results = try await RelationQuery.fetch(
            declared.map { Self.spec($0, onlyKeys: onlyKeys[$0.name]) }, settings: settings, purpose: purpose, logger: logger)
        return declared.map { relation in
            (relation, results[relation.name] ?? .failure(DatabaseError("its query did not run")))
        }
    }

    static func spec(_ relation: RuleSet.Relation, onlyKeys: Set<String>? = nil) -> RelationQuery.Spec {
        RelationQuery.Spec(
            name: relation.name, sql: relation.sql, watch: relation.watch, keyColumns: relation.keyColumns, maxRows: relation.maxRows,
            onlyKeys: onlyKeys)
    }
}
