import NIOCore
import SwitchboardCore

extension JSON {
    /// Parses one complete JSON document, keeping number literal text and object key order.
    public static func parse(_ bytes: some Collection<UInt8>, maxDepth: Int = defaultMaxDepth) throws(WireError) -> Value {
        let contiguous = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(WireError) -> Value in try parse(buffer: buffer, maxDepth: maxDepth) }
        }
        if let contiguous { return try contiguous.get() }
        let copy = Array(bytes)
        let result = copy.withUnsafeBufferPointer { buffer in
            Result { () throws(WireError) -> Value in try parse(buffer: buffer, maxDepth: maxDepth) }
        }
        return try result.get()
    }

    /// Parses the readable bytes of `buffer` as one complete JSON document.
    public static func parse(_ buffer: ByteBuffer, maxDepth: Int = defaultMaxDepth) throws(WireError) -> Value {
        let result = buffer.withUnsafeReadableBytes { raw in
            raw.withMemoryRebound(to: UInt8.self) { bytes in
                Result { () throws(WireError) -> Value in try parse(buffer: bytes, maxDepth: maxDepth) }
            }
        }
        return try result.get()
    }

    private static func parse(buffer: UnsafeBufferPointer<UInt8>, maxDepth: Int) throws(WireError) -> Value {
        var parser = JSONParser(bytes: buffer, maxDepth: maxDepth)
        return try parser.parseDocument()
    }
}
