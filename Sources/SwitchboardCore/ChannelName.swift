/// A validated channel name such as `collaboration:s1:c1`: the part of a Phoenix topic after
/// `realtime:`.
///
/// Rules: 1 to 255 bytes; segments separated by `:`, at most 8 of them, none empty; each segment
/// made of ASCII letters, digits and `_ - . @`. The first segment is the channel's *scope*
/// (`supplier`, `couple`, `form`, `journey`, `collaboration`, `system`, `public`, …), used to
/// label metrics without one series per channel id.
public struct ChannelName: Sendable, Hashable, CustomStringConvertible {
    public static let maxBytes = 255
    public static let maxSegments = 8

    public let rawValue: String
    public let segments: [Substring]

    public var scope: Substring { segments[0] }
    public var description: String { rawValue }

    /// Validates a channel name, throwing a `ChannelNameError` that says what was wrong.
    public init(validating name: String) throws(ChannelNameError) {
        let bytes = name.utf8
        if bytes.isEmpty { throw .empty }
        if bytes.count > Self.maxBytes { throw .tooLong(bytes.count) }
        for byte in bytes where !Self.isAllowed(byte) {
            throw .invalidCharacter(Character(Unicode.Scalar(byte)))
        }
        let segments = name.split(separator: ":", omittingEmptySubsequences: false)
        if segments.contains(where: \.isEmpty) { throw .emptySegment }
        if segments.count > Self.maxSegments { throw .tooManySegments(segments.count) }
        self.rawValue = name
        self.segments = segments
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"),
            UInt8(ascii: "."), UInt8(ascii: "@"), UInt8(ascii: ":"):
            true
        default:
            false
        }
    }
}

/// Why a channel name was refused.
public enum ChannelNameError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case tooLong(Int)
    case invalidCharacter(Character)
    case emptySegment
    case tooManySegments(Int)

    public var description: String {
        switch self {
        case .empty:
            "the channel name is empty"
        case .tooLong(let count):
            "the channel name is \(count) bytes long; at most \(ChannelName.maxBytes) are allowed"
        case .invalidCharacter(let character):
            "the channel name contains \(character.isASCII && !character.isWhitespace ? "'\(character)'" : "a character") that is not allowed; use letters, digits and _ - . @ in segments separated by ':'"
        case .emptySegment:
            "the channel name has an empty segment; use {scope}:{entity}:{id} with no empty parts"
        case .tooManySegments(let count):
            "the channel name has \(count) segments; at most \(ChannelName.maxSegments) are allowed"
        }
    }
}
