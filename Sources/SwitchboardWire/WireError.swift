/// Why an inbound frame or JSON document could not be decoded.
///
/// `topic`, `ref` and `joinRef` are filled in when they could be read before the problem was
/// found, so the server can still reply to the right push.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable, matchable category for a `WireError`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case malformedJSON, tooDeep, notAnObject, notAnArray, wrongArity
            case missingField, wrongType, unsupportedBinary, truncated, invalidUTF8
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The code's name, e.g. `malformedJSON`.
        public var description: String { base.rawValue }

        /// The bytes are not valid JSON (RFC 8259).
        public static let malformedJSON = Code(.malformedJSON)
        /// The JSON nests more arrays and objects than allowed.
        public static let tooDeep = Code(.tooDeep)
        /// A vsn 1.0.0 frame is not a JSON object.
        public static let notAnObject = Code(.notAnObject)
        /// A vsn 2.0.0 text frame is not a JSON array.
        public static let notAnArray = Code(.notAnArray)
        /// A vsn 2.0.0 text frame is an array without exactly five elements.
        public static let wrongArity = Code(.wrongArity)
        /// A required frame field is absent.
        public static let missingField = Code(.missingField)
        /// A frame field has the wrong JSON type.
        public static let wrongType = Code(.wrongType)
        /// A binary frame that clients may not send: any kind but 3, or any binary frame on vsn 1.0.0.
        public static let unsupportedBinary = Code(.unsupportedBinary)
        /// A binary frame ends before its header or a length field says it should.
        public static let truncated = Code(.truncated)
        /// A string in a binary frame header is not valid UTF-8.
        public static let invalidUTF8 = Code(.invalidUTF8)
    }

    /// What kind of problem this is.
    public var code: Code
    /// One plain sentence saying what was wrong and what is expected.
    public var message: String
    /// The frame's topic, when it could be read.
    public var topic: String?
    /// The frame's ref, when it could be read.
    public var ref: String?
    /// The frame's join ref, when it could be read.
    public var joinRef: String?

    /// Creates an error; the context fields default to unknown.
    public init(_ code: Code, _ message: String, topic: String? = nil, ref: String? = nil, joinRef: String? = nil) {
        self.code = code
        self.message = message
        self.topic = topic
        self.ref = ref
        self.joinRef = joinRef
    }

    /// The message.
    public var description: String { message }
}
