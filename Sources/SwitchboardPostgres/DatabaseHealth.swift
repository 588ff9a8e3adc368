import Synchronization

/// Whether the server can reach its database right now, for `/health` and the metrics.
public final class DatabaseHealth: Sendable {
    public enum State: Sendable, Equatable {
        case up
        /// Unreachable or failing since `sinceMonotonicSeconds`, with the last error.
        case down(reason: String)
    }

    private let state = Mutex<State>(.down(reason: "not connected yet"))
    private let onChange: @Sendable (State) -> Void

    /// `onChange` runs after every change of state (not on repeats), outside the lock.
    public init(onChange: @escaping @Sendable (State) -> Void = { _ in }) {
        self.onChange = onChange
    }

    public var current: State { state.withLock { $0 } }

    public var isUp: Bool { current == .up }

    func set(_ new: State) {
        let changed = state.withLock { state -> Bool in
            if state == new { return false }
            if case .down = state, case .down = new {
                state = new
                return false
            }
            state = new
            return true
        }
        if changed { onChange(new) }
    }
}
