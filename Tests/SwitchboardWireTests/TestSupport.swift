import NIOCore

/// A ByteBuffer holding `string`'s UTF-8 bytes.
func buffer(_ string: String) -> ByteBuffer { ByteBuffer(string: string) }

/// A ByteBuffer holding `bytes`.
func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

extension ByteBuffer {
    /// The readable bytes, for byte-exact comparisons.
    var bytes: [UInt8] { Array(readableBytesView) }

    /// The readable bytes as UTF-8 text.
    var text: String { String(buffer: self) }
}
