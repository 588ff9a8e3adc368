import NIOCore
import SwitchboardCore

extension JSON {
    /// Appends `value` as compact JSON: numbers as their literal text, keys in their order.
    public static func serialize(_ value: Value, into buffer: inout ByteBuffer) {
        switch value {
        case .null:
            buffer.writeStaticString("null")
        case .bool(let bool):
            buffer.writeStaticString(bool ? "true" : "false")
        case .number(let text):
            buffer.writeString(text)
        case .string(let string):
            writeString(string, into: &buffer)
        case .array(let items):
            buffer.writeInteger(UInt8.openBracket)
            for (position, item) in items.enumerated() {
                if position > 0 { buffer.writeInteger(UInt8.comma) }
                serialize(item, into: &buffer)
            }
            buffer.writeInteger(UInt8.closeBracket)
        case .object(let object):
            buffer.writeInteger(UInt8.openBrace)
            for (position, member) in object.members.enumerated() {
                if position > 0 { buffer.writeInteger(UInt8.comma) }
                writeString(member.key, into: &buffer)
                buffer.writeInteger(UInt8.colon)
                serialize(member.value, into: &buffer)
            }
            buffer.writeInteger(UInt8.closeBrace)
        }
    }

    /// `value` as a compact JSON string.
    public static func string(_ value: Value) -> String {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        serialize(value, into: &buffer)
        return String(buffer: buffer)
    }

    /// Appends `string` as a quoted JSON string.
    ///
    /// Quote and backslash are escaped, control characters use `\b \f \n \r \t` or `\u00XX`,
    /// and everything else is written as UTF-8.
    static func writeString(_ string: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8.quote)
        var string = string
        string.withUTF8 { bytes in
            var runStart = 0
            for position in bytes.indices {
                let byte = bytes[position]
                guard byte < 0x20 || byte == .quote || byte == .backslash else { continue }
                if runStart < position {
                    buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[runStart..<position]))
                }
                writeEscape(for: byte, into: &buffer)
                runStart = position + 1
            }
            if runStart < bytes.count {
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[runStart...]))
            }
        }
        buffer.writeInteger(UInt8.quote)
    }

    /// Appends `string` quoted, or `null` when it is nil.
    static func writeOptionalString(_ string: String?, into buffer: inout ByteBuffer) {
        if let string { writeString(string, into: &buffer) } else { buffer.writeStaticString("null") }
    }

    private static func writeEscape(for byte: UInt8, into buffer: inout ByteBuffer) {
        switch byte {
        case .quote: buffer.writeStaticString("\\\"")
        case .backslash: buffer.writeStaticString("\\\\")
        case 0x08: buffer.writeStaticString("\\b")
        case 0x0C: buffer.writeStaticString("\\f")
        case .newline: buffer.writeStaticString("\\n")
        case .carriageReturn: buffer.writeStaticString("\\r")
        case .tab: buffer.writeStaticString("\\t")
        default:
            let digits: StaticString = "0123456789abcdef"
            buffer.writeStaticString("\\u00")
            buffer.writeInteger(digits.utf8Start[Int(byte >> 4)])
            buffer.writeInteger(digits.utf8Start[Int(byte & 0x0F)])
        }
    }
}
