import Foundation
import SwitchboardCore

/// A channel name pattern from the rules: segments separated by `:`, each a literal, a
/// `{capture}` matching one segment, or `*` matching one segment (or, as the last segment,
/// one or more). `collaboration:{supplier_id}:{couple_id}` captures two ids;
/// `collaboration:*` matches every collaboration channel.
public struct ChannelPattern: Sendable, Hashable, CustomStringConvertible {
    enum Segment: Sendable, Hashable {
        case literal(String)
        case capture(String)
        case wildcard
    }

    public let text: String
    let segments: [Segment]
    /// Whether the last segment is `*` (which then matches one or more segments).
    let endsWithWildcard: Bool
    /// The segments compiled for matching a name's bytes: every literal's UTF-8 in
    /// `literalBytes`, and one step per segment.
    private let steps: [Step]
    private let literalBytes: [UInt8]

    private struct Step: Sendable, Hashable {
        enum Kind: UInt8, Sendable, Hashable { case literal, oneSegment, rest }
        let kind: Kind
        let start: Int
        let length: Int
    }

    public var description: String { text }

    /// Parses a pattern, throwing a message that says what is wrong with it.
    public init(_ text: String) throws(PatternError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard !text.isEmpty, !parts.contains(where: \.isEmpty) else {
            throw PatternError("channel pattern \"\(text)\" has an empty segment; use e.g. \"supplier:dashboard:{supplier_id}\"")
        }
        var segments: [Segment] = []
        var names: Set<String> = []
        for part in parts {
            if part == "*" {
                segments.append(.wildcard)
            } else if part.hasPrefix("{") && part.hasSuffix("}") {
                let name = String(part.dropFirst().dropLast())
                guard let first = name.first, first.isLetter || first == "_",
                    name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
                else {
                    throw PatternError("channel pattern \"\(text)\": {\(name)} is not a capture name (letters, digits, _)")
                }
                guard names.insert(name).inserted else {
                    throw PatternError("channel pattern \"\(text)\" captures {\(name)} twice")
                }
                segments.append(.capture(name))
            } else {
                do {
                    _ = try ChannelName(validating: String(part))
                } catch {
                    throw PatternError("channel pattern \"\(text)\": segment \"\(part)\" is not valid: \(error)")
                }
                segments.append(.literal(String(part)))
            }
        }
        self.text = text
        self.segments = segments
        self.endsWithWildcard = segments.last == .wildcard
        var steps: [Step] = []
        var literalBytes: [UInt8] = []
        for (index, segment) in segments.enumerated() {
            switch segment {
            case .literal(let literal):
                steps.append(Step(kind: .literal, start: literalBytes.count, length: literal.utf8.count))
                literalBytes.append(contentsOf: literal.utf8)
            case .capture:
                steps.append(Step(kind: .oneSegment, start: 0, length: 0))
            case .wildcard:
                steps.append(Step(kind: index == segments.count - 1 ? .rest : .oneSegment, start: 0, length: 0))
            }
        }
        self.steps = steps
        self.literalBytes = literalBytes
    }

    /// Whether `channel` matches, without collecting the captures. SPI for the fuzz target,
    /// which checks it against `match(_:)`.
    @_spi(Fuzzing) public func matches(_ channel: ChannelName) -> Bool {
        channel.rawValue.utf8.withContiguousStorageIfAvailable { matches(utf8: $0) } ?? matchesSegments(channel)
    }

    /// Whether a channel name, given as its UTF-8 bytes (a valid `ChannelName`: no empty
    /// segment), matches. This runs for every rule before the matching one on every decision,
    /// so it walks the bytes once instead of comparing `Substring`s with `String`s.
    func matches(utf8 name: UnsafeBufferPointer<UInt8>) -> Bool {
        let colon = UInt8(ascii: ":")
        return steps.withUnsafeBufferPointer { steps in
            literalBytes.withUnsafeBufferPointer { literals in
                var position = 0
                let end = name.count
                for index in 0..<steps.count {
                    if index > 0 {
                        guard position < end, name[position] == colon else { return false }
                        position += 1
                    }
                    let step = steps[index]
                    switch step.kind {
                    case .literal:
                        guard end - position >= step.length, step.length > 0,
                            name[position] == literals[step.start],
                            memcmp(name.baseAddress! + position, literals.baseAddress! + step.start, step.length) == 0
                        else { return false }
                        position += step.length
                        guard position == end || name[position] == colon else { return false }
                    case .oneSegment:
                        guard position < end else { return false }
                        while position < end && name[position] != colon { position += 1 }
                    case .rest:
                        return position < end
                    }
                }
                return position == end
            }
        }
    }

    /// `matches` on the name's segments, for a name whose bytes are not contiguous.
    private func matchesSegments(_ channel: ChannelName) -> Bool {
        let parts = channel.segments
        guard endsWithWildcard ? parts.count >= segments.count : parts.count == segments.count else { return false }
        for index in segments.indices {
            guard case .literal(let literal) = segments[index] else { continue }
            guard parts[index] == literal else { return false }
        }
        return true
    }

    /// Calls `body` with each capture's name and value of a `channel` that `matches`.
    func forEachCapture<Failure: Error>(
        in channel: ChannelName, _ body: (String, Substring) throws(Failure) -> Void
    ) throws(Failure) {
        let parts = channel.segments
        for (index, segment) in segments.enumerated() where index < parts.count {
            if case .capture(let name) = segment { try body(name, parts[index]) }
        }
    }

    /// The captures when `channel` matches, nil otherwise.
    public func match(_ channel: ChannelName) -> [String: String]? {
        let parts = channel.segments
        var captures: [String: String] = [:]
        for (index, segment) in segments.enumerated() {
            guard index < parts.count else { return nil }
            switch segment {
            case .literal(let literal):
                guard parts[index] == literal else { return nil }
            case .capture(let name):
                captures[name] = String(parts[index])
            case .wildcard:
                if index == segments.count - 1 { return captures }
            }
        }
        return parts.count == segments.count ? captures : nil
    }
}

/// A malformed channel pattern.
public struct PatternError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
