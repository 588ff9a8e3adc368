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
    func fill(
        _ rules: RuleSet, replace: (String, [(a: String, b: String)]) -> Void
    ) async -> [RulesError] {
        let declared = rules.relations.values.sorted { $0.name < $1.name }
        guard !declared.isEmpty else { return [] }
        let results: [(RuleSet.Relation, Result<[(a: String, b: String)], DatabaseError>)]
        do {
            results = try await read(declared, installTriggers: true)
        } catch {
            let reason = DatabaseError.describe(error)
            return declared.map {
                RulesError(.relationQuery, "relation \"\($0.name)\": the database could not be reached to read it: \(reason)", at: $0.location)
            }
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

    /// Each relation's pairs, or why its query failed, in the order given (with `installTriggers`,
    /// after putting the change trigger on its watched tables). Throws when the database cannot
    /// be reached.
    func read(
        _ declared: [RuleSet.Relation], installTriggers: Bool
    ) async throws -> [(RuleSet.Relation, Result<[(a: String, b: String)], DatabaseError>)] {
        let results = try await RelationQuery.fetch(
            declared.map { ($0.name, $0.sql, $0.watch) }, settings: settings, installTriggers: installTriggers, logger: logger)
        return declared.map { relation in
            (relation, results[relation.name] ?? .failure(DatabaseError("its query did not run")))
        }
    }
}
