/// Why a client call failed.
public struct ClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure it is.
    public enum Code: Sendable, Equatable {
        /// The client allows at most `maxChannels` channels.
        case tooManyChannels
        /// The outbound buffer is full (too many messages waiting for a connection).
        case bufferFull
        /// The message waited longer than its lifetime for a connection and was dropped.
        case expired
        /// The server refused it; the message says why.
        case refused
        /// The channel was left or closed, or the client was closed.
        case closed
        /// Bad input (a channel name, a payload).
        case invalid
    }

    /// What kind of failure it is.
    public let code: Code
    /// Why, in words (the server's reason when it refused).
    public let message: String

    /// An error of kind `code` saying `message`.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
