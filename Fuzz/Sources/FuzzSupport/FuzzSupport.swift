import NIOCore
import SwitchboardCore
import SwitchboardWire

/// Stops the process when a fuzz target's invariant does not hold: libFuzzer saves the input
/// that did it as a crash.
public func fuzzCheck(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition() { fatalError("fuzz invariant broken: \(message())", file: file, line: line) }
}

/// The fuzzer's input as a read-only view (libFuzzer owns the bytes for the call's duration).
public func fuzzBytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> UnsafeBufferPointer<UInt8> {
    UnsafeBufferPointer(start: data, count: size)
}

/// A fresh `ByteBuffer` holding `bytes`.
public func byteBuffer(_ bytes: some Sequence<UInt8>) -> ByteBuffer {
    var buffer = ByteBufferAllocator().buffer(capacity: 64)
    buffer.writeBytes(bytes)
    return buffer
}

/// `value` as compact JSON bytes (byte-exact, unlike `String` equality, which is Unicode
/// canonical equivalence).
public func jsonBytes(_ value: Value) -> [UInt8] {
    var buffer = ByteBufferAllocator().buffer(capacity: 64)
    JSON.serialize(value, into: &buffer)
    return Array(buffer.readableBytesView)
}

/// Whether two values are equal byte for byte: same kinds, same key order, same UTF-8.
public func sameBytes(_ lhs: Value, _ rhs: Value) -> Bool {
    jsonBytes(lhs) == jsonBytes(rhs)
}

/// Splits `bytes` at the first `separator`: the bytes before it and after it (all of them and
/// nothing when there is none).
public func split(
    _ bytes: UnsafeBufferPointer<UInt8>, at separator: UInt8
) -> (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) {
    guard let index = bytes.firstIndex(of: separator) else { return (bytes, UnsafeBufferPointer(rebasing: bytes[bytes.endIndex...])) }
    return (UnsafeBufferPointer(rebasing: bytes[..<index]), UnsafeBufferPointer(rebasing: bytes[(index + 1)...]))
}
