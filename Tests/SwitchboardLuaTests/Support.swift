import Synchronization
import Testing

@testable import SwitchboardLua

/// A state with the defaults, adjusted by `configure`.
func makeState(_ configure: (inout LuaConfiguration) -> Void = { _ in }) throws -> LuaState {
    var configuration = LuaConfiguration()
    configure(&configuration)
    return try LuaState(configuration: configuration)
}

/// Runs `body` and returns the `LuaError` it threw, recording an issue when it threw nothing.
func luaError<T>(_ body: () throws(LuaError) -> T, sourceLocation: SourceLocation = #_sourceLocation) -> LuaError? {
    do {
        _ = try body()
        Issue.record("expected a LuaError, but the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// Collects printed lines from any thread.
final class PrintLog: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    func append(_ line: String) { lines.withLock { $0.append(line) } }
}
