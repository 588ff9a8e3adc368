import ArgumentParser
import Foundation

/// Reads `SWITCHBOARD_*` environment variables for options not given on the command line.
enum Environment {
    static func string(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    static func int(_ name: String) throws -> Int? {
        guard let text = string(name) else { return nil }
        guard let value = Int(text) else { throw ValidationError("\(name)=\(text) is not a whole number") }
        return value
    }

    /// `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`.
    static func bool(_ name: String) throws -> Bool? {
        guard let text = string(name) else { return nil }
        switch text.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ValidationError("\(name)=\(text) is not a boolean; use 1 or 0")
        }
    }

    /// A duration such as `90`, `90s`, `15m`, `1h` or `7d`, in seconds.
    static func seconds(_ text: String) throws -> Double {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let last = text.last, let unit = units[last], let value = Double(text.dropLast()), value > 0 {
            return value * unit
        }
        if let value = Double(text), value > 0 { return value }
        throw ValidationError("\(text) is not a duration; use e.g. 90s, 15m, 1h or 7d")
    }
}
