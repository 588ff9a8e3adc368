/// One entry of a join's `config.postgres_changes`: which changes of which table the channel
/// wants (`{event, schema, table?, filter?, select?}`), read and checked, with the id the join
/// reply gives it.
public struct ChangeBinding: Sendable, Equatable {
    public enum Event: String, Sendable, CaseIterable {
        case all = "*"
        case insert = "INSERT"
        case update = "UPDATE"
        case delete = "DELETE"
    }

    /// The id echoed in the join reply and sent in each change's `ids`.
    public let id: Int
    public let event: Event
    public let schema: String
    /// nil: every table of the schema (each change still needs its table's rule).
    public let table: String?
    public let filter: RowFilter?
    /// The columns to send instead of the whole row; nil: every column.
    public let select: [String]?

    public init(id: Int, event: Event, schema: String, table: String?, filter: RowFilter?, select: [String]?) {
        self.id = id
        self.event = event
        self.schema = schema
        self.table = table
        self.filter = filter
        self.select = select
    }

    /// Why an entry cannot be read.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Reads entry number `position` (from 0) of `config.postgres_changes`.
    public static func parse(_ entry: Value, id: Int, position: Int) throws(ParseError) -> ChangeBinding {
        let label = "postgres_changes[\(position)]"
        func fail(_ why: String) -> ParseError { ParseError(message: "\(label): \(why)") }
        guard entry.objectValue != nil else { throw fail("must be an object {event, schema, table, filter}") }
        let events = Event.allCases.map(\.rawValue).joined(separator: ", ")
        guard let name = entry["event"]?.stringValue, let event = Event(rawValue: name.uppercased()) else {
            throw fail("event must be one of \(events), not \(entry["event"].map { String(describing: $0) } ?? "missing")")
        }
        var schema = "public"
        if let given = entry["schema"], !given.isNull {
            guard let text = given.stringValue, isName(text) else { throw fail("schema must be a name (letters, digits and _)") }
            schema = text
        }
        var table: String?
        if let given = entry["table"], !given.isNull {
            guard let text = given.stringValue, text == "*" || isName(text) else {
                throw fail("table must be a table's name (letters, digits and _) or *")
            }
            table = text == "*" ? nil : text
        }
        var filter: RowFilter?
        if let given = entry["filter"], !given.isNull {
            guard let text = given.stringValue else { throw fail("filter must be a string such as supplier_id=eq.s1") }
            guard table != nil else { throw fail("a filter needs a table") }
            do throws(RowFilter.ParseError) {
                filter = try RowFilter.parse(text)
            } catch {
                throw fail(error.message)
            }
        }
        var select: [String]?
        if let given = entry["select"], !given.isNull {
            let columns = given.arrayValue?.compactMap(\.stringValue) ?? given.stringValue.map { $0.split(separator: ",").map(String.init) }
            guard let columns, !columns.isEmpty, columns.allSatisfy(isName) else {
                throw fail("select must be a list of column names")
            }
            select = columns
        }
        return ChangeBinding(id: id, event: event, schema: schema, table: table, filter: filter, select: select)
    }

    /// `schema.table`, or nil for every table of the schema.
    public var qualifiedTable: String? { table.map { "\(schema).\($0)" } }

    /// Whether a change of `type` to `schema.table` is one this binding asks for (its filter
    /// aside).
    public func wants(_ type: Event, schema: String, table: String) -> Bool {
        (event == .all || event == type) && self.schema == schema && (self.table == nil || self.table == table)
    }

    private static func isName(_ text: String) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }
    }
}
