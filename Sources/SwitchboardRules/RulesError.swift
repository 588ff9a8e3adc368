/// A problem with the rules: where (`file:line` when a script is at fault) and what.
public struct RulesError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable category.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// A file did not compile, or failed while running its declarations.
        public static let loadFailed = Code(name: "load_failed")
        /// A declaration is malformed: bad pattern, unknown field type or tier field, missing tier.
        public static let invalidDeclaration = Code(name: "invalid_declaration")
        /// A hook failed while deciding (error, budget, memory): the decision is a denial.
        public static let hookFailed = Code(name: "hook_failed")
        /// The rules directory or a data file could not be read.
        public static let unreadable = Code(name: "unreadable")
        /// A relation's query on the database failed, timed out or returned the wrong columns.
        public static let relationQuery = Code(name: "relation_query")
    }

    public let code: Code
    /// `file:line` (or just the file) at fault, when known.
    public let location: String?
    public let message: String

    public init(_ code: Code, _ message: String, at location: String? = nil) {
        self.code = code
        self.message = message
        self.location = location
    }

    /// `file:line: message`, the form `rules check` prints.
    public var description: String {
        guard let location, !location.isEmpty else { return message }
        return "\(location): \(message)"
    }
}
