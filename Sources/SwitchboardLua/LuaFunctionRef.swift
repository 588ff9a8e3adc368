/// A Lua function held by a `LuaState`, callable later with `LuaState.call(_:_:)`.
///
/// Reading a function out of Lua (a global, a table field, an argument or a result) pins it in
/// the state and yields a reference; reading the same function again yields the same
/// reference. It stays pinned until `LuaState.release(_:)` or until the state is closed.
/// A reference is only meaningful to the state it came from; others refuse it.
public struct LuaFunctionRef: Sendable, Hashable, CustomStringConvertible {
    let state: UInt64
    let number: Int64

    init(state: UInt64, number: Int64) {
        self.state = state
        self.number = number
    }

    /// `<function N of state S>`.
    public var description: String { "<function \(number) of state \(state)>" }
}
