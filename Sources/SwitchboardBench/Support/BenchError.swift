/// Why a bench run could not start or finish.
public struct BenchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable category for the error; compare with `==`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidOptions
            case notLoopback
            case joinFailed
            case connectionClosed
            case timedOut
            case resourceLimit
            case unsupportedEventLoopGroup
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// An option is out of range or malformed.
        public static let invalidOptions = Code(.invalidOptions)
        /// The host is not a loopback address.
        public static let notLoopback = Code(.notLoopback)
        /// The server answered a `phx_join` with an error.
        public static let joinFailed = Code(.joinFailed)
        /// The server closed a connection before it was joined.
        public static let connectionClosed = Code(.connectionClosed)
        /// A join, the connect phase or the whole run took too long.
        public static let timedOut = Code(.timedOut)
        /// A process limit (open files) is too low for the requested connections.
        public static let resourceLimit = Code(.resourceLimit)
        /// The event loop group does not enumerate its loops.
        public static let unsupportedEventLoopGroup = Code(.unsupportedEventLoopGroup)

        /// The code's name.
        public var description: String { self.base.rawValue }
    }

    /// The category.
    public let code: Code
    /// What went wrong, in one sentence.
    public let message: String

    /// Creates an error with a code and a one-sentence message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `code: message`.
    public var description: String { "\(self.code): \(self.message)" }
}
