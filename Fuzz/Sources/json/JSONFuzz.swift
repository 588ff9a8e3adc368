import FuzzSupport
import NIOCore
import SwitchboardCore
import SwitchboardWire

/// The JSON parser. A document that parses is serialized and parsed again: the value must be
/// the same (kinds, key order, number text and string bytes), the serialization a fixed point,
/// and the `Collection` and `ByteBuffer` entry points must agree. Depths 1 to 40 are tried, so
/// the depth limit is exercised on both sides of the input's real depth.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let maxDepth = Int(data[0] % 40) + 1
    let document = UnsafeBufferPointer(start: data + 1, count: size - 1)
    let value: Value
    do {
        value = try JSON.parse(document, maxDepth: maxDepth)
    } catch {
        fuzzCheck(error.code == .malformedJSON || error.code == .tooDeep, "unexpected error code \(error.code)")
        fuzzCheck(!error.message.isEmpty, "an empty error message")
        // The ByteBuffer path must refuse it the same way.
        do {
            _ = try JSON.parse(byteBuffer(document), maxDepth: maxDepth)
            fuzzCheck(false, "the ByteBuffer entry point accepts what the Collection one refused")
        } catch let other {
            fuzzCheck(other == error, "the two entry points fail differently: \(error) / \(other)")
        }
        return 0
    }
    fuzzCheck(String(validating: document, as: UTF8.self) != nil, "a document that is not UTF-8 was accepted")
    fuzzCheck(depth(of: value) <= maxDepth, "a value deeper than maxDepth \(maxDepth) was accepted")
    do {
        let viaBuffer = try JSON.parse(byteBuffer(document), maxDepth: maxDepth)
        fuzzCheck(sameBytes(viaBuffer, value), "the ByteBuffer entry point parses differently")
    } catch {
        fuzzCheck(false, "the ByteBuffer entry point refuses what the Collection one accepted: \(error)")
    }
    let serialized = jsonBytes(value)
    let reparsed: Value
    do {
        reparsed = try JSON.parse(serialized, maxDepth: maxDepth)
    } catch {
        fuzzCheck(false, "the serialization of a parsed value does not parse: \(error)")
        return 0
    }
    fuzzCheck(reparsed == value, "serialize → parse gives a different value")
    fuzzCheck(jsonBytes(reparsed) == serialized, "the serialization is not a fixed point")
    fuzzCheck(JSON.string(value).utf8.elementsEqual(serialized), "JSON.string differs from JSON.serialize")
    return 0
}

/// Nesting depth as the parser counts it: 0 for a scalar, 1 for `[]` or `{}`.
private func depth(of value: Value) -> Int {
    switch value {
    case .array(let items): 1 + (items.map(depth(of:)).max() ?? 0)
    case .object(let object): 1 + (object.members.map { depth(of: $0.value) }.max() ?? 0)
    default: 0
    }
}
