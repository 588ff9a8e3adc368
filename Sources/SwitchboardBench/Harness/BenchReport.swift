import Foundation

/// A bench's result: printed as one summary line, then as JSON with sorted keys.
public protocol BenchReport: Encodable {
    /// One human-readable line.
    func summaryLine() -> String
}

extension BenchReport {
    /// The result as JSON with sorted keys.
    public func jsonString() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// How the benches print numbers.
public enum BenchFormat {
    /// A count or rate: `1.93M`, `912k`, `4.1k`, `25`, `2.5`.
    public static func count(_ value: Double) -> String {
        switch value {
        case 1e6...: return String(format: "%.2fM", value / 1e6)
        case 1e4...: return String(format: "%.0fk", value / 1e3)
        case 1e3...: return String(format: "%.1fk", value / 1e3)
        default: return value == value.rounded() ? String(Int(value)) : String(format: "%.1f", value)
        }
    }

    /// A latency given in µs: `812µs`, `3.1ms`, `1.20s`.
    public static func micros(_ value: Int) -> String {
        switch value {
        case ..<1000: return "\(value)µs"
        case ..<1_000_000: return String(format: "%.1fms", Double(value) / 1e3)
        default: return String(format: "%.2fs", Double(value) / 1e6)
        }
    }

    /// Bytes as MB with one decimal: `41.3MB`.
    public static func megabytes(_ bytes: Int) -> String {
        String(format: "%.1fMB", Double(bytes) / 1_048_576)
    }
}
