/// A failure in the Lua host: a stable code, the message, and the script position when Lua
/// reported one (`Rules/x.lua:3: boom` becomes file `Rules/x.lua`, line 3, message `boom`).
public struct LuaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable category of failure; switch on it, show `message` to people.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case syntax
            case runtime
            case memory
            case budgetExceeded = "budget_exceeded"
            case bytecodeRefused = "bytecode_refused"
            case typeMismatch = "type_mismatch"
            case invalidArgument = "invalid_argument"
            case reentrantCall = "reentrant_call"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The snake_case name, e.g. `budget_exceeded`.
        public var description: String { base.rawValue }

        /// A chunk did not compile.
        public static let syntax = Code(.syntax)
        /// A script raised an error (`error(...)`, indexing nil, a host function that threw, ...).
        public static let runtime = Code(.runtime)
        /// The state's memory limit was reached (or the system is out of memory).
        public static let memory = Code(.memory)
        /// The call ran more instructions than its budget allows.
        public static let budgetExceeded = Code(.budgetExceeded)
        /// A precompiled (binary) chunk was offered; only source text is loaded.
        public static let bytecodeRefused = Code(.bytecodeRefused)
        /// A value could not cross the boundary, or a global is not what was expected.
        public static let typeMismatch = Code(.typeMismatch)
        /// The host was asked for something invalid: a bad configuration, a foreign or released function reference.
        public static let invalidArgument = Code(.invalidArgument)
        /// The state was used again from inside one of its own host functions.
        public static let reentrantCall = Code(.reentrantCall)
    }

    /// What kind of failure this is.
    public var code: Code
    /// The message without its `file:line:` prefix.
    public var message: String
    /// The script file (chunk name without `@`) the error points at, when known.
    public var file: String?
    /// The line in `file`, when known.
    public var line: Int?

    /// An error with an explicit position (or none).
    public init(_ code: Code, _ message: String, file: String? = nil, line: Int? = nil) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
    }

    /// An error from a Lua message, splitting a leading `chunk:line: ` into `file` and `line`.
    public init(_ code: Code, luaMessage: String) {
        if let (file, line, rest) = Self.splitPosition(luaMessage) {
            self.init(code, rest, file: file, line: line)
        } else {
            self.init(code, luaMessage)
        }
    }

    /// `file:line`, or just `file`, when the error has a position.
    public var location: String? {
        guard let file else { return nil }
        guard let line else { return file }
        return "\(file):\(line)"
    }

    /// `file:line: message` when the position is known, otherwise the message.
    public var description: String {
        guard let location else { return message }
        return message.isEmpty ? "\(location):" : "\(location): \(message)"
    }

    /// Finds the first `:<digits>:` followed by a space or the end, with no `": "` before it.
    static func splitPosition(_ text: String) -> (file: String, line: Int, rest: String)? {
        let bytes = Array(text.utf8)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: ":") {
                if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: " ") { return nil }
                var end = index + 1
                while end < bytes.count, bytes[end] >= UInt8(ascii: "0"), bytes[end] <= UInt8(ascii: "9") { end += 1 }
                if index > 0, end > index + 1, end - index <= 10, end < bytes.count, bytes[end] == UInt8(ascii: ":"),
                    end + 1 == bytes.count || bytes[end + 1] == UInt8(ascii: " "),
                    let line = Int(String(decoding: bytes[(index + 1)..<end], as: UTF8.self))
                {
                    let file = String(decoding: bytes[0..<index], as: UTF8.self)
                    let restStart = min(end + 2, bytes.count)
                    return (file, line, String(decoding: bytes[restStart...], as: UTF8.self))
                }
            }
            index += 1
        }
        return nil
    }
}
