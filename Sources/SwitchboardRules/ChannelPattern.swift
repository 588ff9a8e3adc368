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
    }

    /// Whether `channel` matches, without collecting the captures.
    func matches(_ channel: ChannelName) -> Bool {
        let parts = channel.segments
        for (index, segment) in segments.enumerated() {
            guard index < parts.count else { return false }
            switch segment {
            case .literal(let literal):
                guard parts[index] == literal else { return false }
            case .capture:
                continue
            case .wildcard:
                if index == segments.count - 1 { return true }
            }
        }
        return parts.count == segments.count
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
