import FuzzSupport
import SwitchboardCore
@_spi(Fuzzing) import SwitchboardRules

/// Channel names and the rules' channel patterns. The input is a pattern, a newline and a
/// channel name. Both are checked against a plain reading of their rules (README, "Channels";
/// `ChannelPattern`'s documentation), and when both are valid the byte-walking `matches` (what
/// every decision runs), the segment-wise `match` and that reading must agree on whether the
/// name matches and on the captures.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (patternBytes, nameBytes) = split(fuzzBytes(data, size), at: UInt8(ascii: "\n"))
    let patternText = String(decoding: patternBytes, as: UTF8.self)
    let nameText = String(decoding: nameBytes, as: UTF8.self)

    let name = try? ChannelName(validating: nameText)
    fuzzCheck((name != nil) == isValidName(Array(nameText.utf8)), "ChannelName disagrees on \(nameText.debugDescription)")
    if let name {
        fuzzCheck(name.segments.joined(separator: ":").utf8.elementsEqual(nameText.utf8), "segments do not rebuild the name")
        fuzzCheck(!name.scope.isEmpty, "an empty scope")
    }

    let pattern: ChannelPattern?
    do {
        pattern = try ChannelPattern(patternText)
    } catch {
        fuzzCheck(!error.message.isEmpty, "an empty pattern error")
        pattern = nil
    }
    let parts = patternText.utf8.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false).map(Array.init)
    fuzzCheck((pattern != nil) == isValidPattern(parts), "ChannelPattern disagrees on \(patternText.debugDescription)")

    guard let pattern, let name else { return 0 }
    let expected = referenceMatch(parts, name.segments.map { Array($0.utf8) })
    let captures = pattern.match(name)
    fuzzCheck(pattern.matches(name) == (expected != nil), "matches is \(pattern.matches(name)) for \(pattern) / \(name)")
    fuzzCheck((captures != nil) == (expected != nil), "match is \(String(describing: captures)) for \(pattern) / \(name)")
    if let captures, let expected {
        fuzzCheck(captures.mapValues { Array($0.utf8) } == expected, "captures \(captures) for \(pattern) / \(name)")
    }
    return 0
}

private func isNameByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
        UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "@"):
        true
    default:
        false
    }
}

/// 1–255 bytes, at most 8 `:`-separated segments, none empty, each of letters, digits, `_ - . @`.
private func isValidName(_ bytes: [UInt8]) -> Bool {
    let segments = bytes.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
    return !bytes.isEmpty && bytes.count <= 255 && segments.count <= 8
        && segments.allSatisfy { !$0.isEmpty && $0.allSatisfy(isNameByte) }
}

/// Each part `*`, `{name}` (a letter or `_`, then letters, digits, `_`; no name twice) or a
/// valid one-segment channel name; no part empty.
private func isValidPattern(_ parts: [[UInt8]]) -> Bool {
    var names: Set<[UInt8]> = []
    for part in parts {
        if part.isEmpty { return false }
        if part == [UInt8(ascii: "*")] { continue }
        if part.count >= 2, part.first == UInt8(ascii: "{"), part.last == UInt8(ascii: "}") {
            let name = part.dropFirst().dropLast()
            guard let first = name.first, first == UInt8(ascii: "_") || (first | 0x20) &- UInt8(ascii: "a") < 26,
                name.allSatisfy({ $0 == UInt8(ascii: "_") || ($0 | 0x20) &- UInt8(ascii: "a") < 26 || $0 &- UInt8(ascii: "0") < 10 }),
                names.insert(Array(name)).inserted
            else { return false }
            continue
        }
        if !isValidName(part) { return false }
    }
    return true
}

/// The captures when the name's segments match the pattern's parts, nil otherwise: as many
/// segments as parts (or, when the last part is `*`, at least as many), literals equal.
private func referenceMatch(_ parts: [[UInt8]], _ segments: [[UInt8]]) -> [String: [UInt8]]? {
    let star = [UInt8(ascii: "*")]
    let endsWithWildcard = parts.last == star
    guard endsWithWildcard ? segments.count >= parts.count : segments.count == parts.count else { return nil }
    var captures: [String: [UInt8]] = [:]
    for (part, segment) in zip(parts, segments) {
        if part == star { continue }
        if part.first == UInt8(ascii: "{") {
            captures[String(decoding: part.dropFirst().dropLast(), as: UTF8.self)] = segment
        } else if part != segment {
            return nil
        }
    }
    return captures
}
