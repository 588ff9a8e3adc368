import Foundation

/// Reads another process's resident memory and CPU time from `/proc` (Linux only), so the CLI
/// can report server RSS per connection and server CPU per delivered message.
public enum ProcessStats {
    /// The resident set size (`VmRSS` in `/proc/PID/status`) in bytes; nil if unavailable.
    public static func readRSSBytes(pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.dropFirst("VmRSS:".count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let value = fields.first.flatMap({ Int($0) }) else { return nil }
            let unit = fields.count > 1 ? fields[1].lowercased() : "kb"
            switch unit {
            case "kb": return value * 1024
            case "mb": return value * 1024 * 1024
            case "b": return value
            default: return nil
            }
        }
        return nil
    }

    /// User plus system CPU time in seconds (`utime + stime` of `/proc/PID/stat` over the clock tick); nil if unavailable.
    public static func readCPUSeconds(pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return nil }
        // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        guard fields.count > 12, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        #if os(Linux)
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        #else
        let ticks = sysconf(_SC_CLK_TCK)
        #endif
        guard ticks > 0 else { return nil }
        return (utime + stime) / Double(ticks)
    }
}
