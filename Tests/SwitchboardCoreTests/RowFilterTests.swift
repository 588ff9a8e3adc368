import Testing

@testable import SwitchboardCore

/// `postgres_changes` filters in Supabase's syntax, and the bindings that carry them.
@Suite struct RowFilterTests {
    static let row: Value.Object = [
        "id": 7, "supplier_id": "s1", "status": "open", "score": .number("4.5"), "paid": true, "deleted_at": .null,
        "title": "Wedding Menu, final",
    ]

    static func matches(_ filter: String, _ row: Value.Object = row) throws -> Bool {
        try RowFilter.parse(filter).matches(row)
    }

    static let cases: [(filter: String, matches: Bool)] = [
        ("supplier_id=eq.s1", true), ("supplier_id=eq.s2", false), ("supplier_id=neq.s2", true),
        ("id=eq.7", true), ("id=eq.7.0", true), ("id=gt.6", true), ("id=gte.7", true), ("id=lt.7", false), ("id=lte.7", true),
        ("score=gt.4", true), ("score=lt.4.5", false), ("id=eq.seven", false), ("id=not.eq.seven", false),
        ("status=in.(new,open)", true), ("status=in.(new,closed)", false), ("status=not.in.(draft,archived)", true),
        ("title=in.(\"Wedding Menu, final\",x)", true),
        ("deleted_at=is.null", true), ("deleted_at=not.is.null", false), ("paid=is.true", true), ("paid=is.false", false),
        ("supplier_id=is.null", false), ("paid=eq.true", true), ("paid=eq.f", false),
        ("title=like.Wedding%", true), ("title=like.wedding%", false), ("title=ilike.wedding%", true), ("title=ilike.*MENU*", true),
        ("title=like.Wedding_Menu%", true), ("title=like.%final", true), ("title=like.%fina", false),
        ("title=match.^Wed+ing", true), ("title=match.^wed", false), ("title=imatch.^wed", true),
        ("supplier_id=isdistinct.s2", true), ("supplier_id=isdistinct.s1", false), ("deleted_at=isdistinct.null", false),
        ("deleted_at=isdistinct.x", true),
        // SQL's unknown: a comparison with null is neither true nor, negated, true.
        ("deleted_at=eq.x", false), ("deleted_at=not.eq.x", false), ("missing=eq.1", false), ("missing=not.eq.1", false),
        // Commas join conditions (all must hold).
        ("supplier_id=eq.s1,status=in.(new,open),id=gt.5", true), ("supplier_id=eq.s1,status=eq.new", false),
    ]

    @Test(arguments: cases)
    func filtersMatchAsPostgreSQLWould(_ test: (filter: String, matches: Bool)) throws {
        #expect(try Self.matches(test.filter) == test.matches, "\(test.filter)")
    }

    static let malformed: [(filter: String, says: String)] = [
        ("", "has an empty condition"), ("supplier_id=eq.s1,", "has an empty condition"), ("supplier_id", "expected column=op.value"),
        ("supplier_id=s1", "expected op.value after supplier_id="), ("supplier_id=xx.s1", "unknown operator \"xx\"; use eq, neq"),
        ("bad column=eq.1", "the column name must be letters"), ("status=in.new", "in needs a list of at least one value in parentheses"),
        ("status=in.()", "in needs a list"), ("status=in.(a,,b)", "in's list has an empty value"),
        ("deleted_at=is.maybe", "is takes null, true, false or unknown"), ("title=match.(", "is not a valid regular expression"),
        ("title=match.(a)\\1", "uses a back reference"), ("title=match.\(String(repeating: "a", count: 300))", "is longer than 256 bytes"),
    ]

    @Test(arguments: malformed)
    func malformedFiltersSayWhatIsWrong(_ test: (filter: String, says: String)) {
        #expect(throws: RowFilter.ParseError.self) { try RowFilter.parse(test.filter) }
        do {
            _ = try RowFilter.parse(test.filter)
        } catch {
            #expect(error.message.contains(test.says), "\(error.message)")
            #expect(error.message.hasPrefix("filter \"\(test.filter)\""), "\(error.message)")
        }
    }

    /// A pattern that makes a backtracking matcher take exponential time (`(a+)+$` against
    /// many a's and a b) ends: the C library's matcher does not backtrack. (Were it to, this
    /// test would not finish.)
    @Test func aPathologicalPatternDoesNotStallTheMatcher() throws {
        let text = String(repeating: "a", count: 5000) + "b"
        #expect(try !Self.matches("title=match.(a+)+$", ["title": .string(text)]))
        #expect(try Self.matches("title=imatch.(A+)+B$", ["title": .string(text)]))
    }

    @Test func bindingsAreReadAndCheckedAndKeepTheirOwnShape() throws {
        let binding = try ChangeBinding.parse(
            ["event": "UPDATE", "schema": "public", "table": "form_responses", "filter": "supplier_id=eq.s1", "select": ["id", "status"]],
            id: 12, position: 0)
        #expect(binding.event == .update && binding.schema == "public" && binding.table == "form_responses" && binding.id == 12)
        #expect(binding.select == ["id", "status"])
        #expect(binding.qualifiedTable == "public.form_responses")
        #expect(binding.wants(.update, schema: "public", table: "form_responses"))
        #expect(!binding.wants(.insert, schema: "public", table: "form_responses"))
        let everything = try ChangeBinding.parse(["event": "*"], id: 1, position: 0)
        #expect(everything.schema == "public" && everything.table == nil && everything.qualifiedTable == nil)
        #expect(everything.wants(.delete, schema: "public", table: "anything"))
        #expect(!everything.wants(.delete, schema: "private", table: "anything"))

        let problems: [(Value, String)] = [
            (["event": "UPSERT"], "postgres_changes[3]: event must be one of *, INSERT, UPDATE, DELETE"),
            (["schema": "public"], "event must be one of"),
            (["event": "*", "table": "a b"], "table must be a table's name"),
            (["event": "*", "schema": 5], "schema must be a name"),
            (["event": "*", "filter": "id=eq.1"], "a filter needs a table"),
            (["event": "*", "table": "t", "filter": 7], "filter must be a string"),
            (["event": "*", "table": "t", "filter": "id=zz.1"], "filter \"id=zz.1\": id=zz.1: unknown operator \"zz\""),
            (["event": "*", "table": "t", "select": [1]], "select must be a list of column names"),
        ]
        for (entry, says) in problems {
            do {
                _ = try ChangeBinding.parse(entry, id: 1, position: 3)
                Issue.record("\(entry) was accepted")
            } catch {
                #expect(error.message.contains(says), "\(entry): \(error.message)")
            }
        }
    }
}
