import Foundation
import Synchronization

/// Whether the relations the rules read from the database are kept fresh right now: the
/// `RelationWatcher` is listening for changes to their tables. While it is not (the database is
/// down, or the LISTEN failed), the rows read last keep serving and `/health` says since when.
final class RelationsHealth: Sendable {
    enum State: Sendable, Equatable {
        case watching
        /// Not watching since `since`, because of `reason`.
        case stale(since: Date, reason: String)
    }

    private let state: Mutex<State>
    private let onChange: @Sendable (State) -> Void

    /// `onChange` runs after every change between watching and stale, outside the lock.
    init(now: Date = Date(), onChange: @escaping @Sendable (State) -> Void = { _ in }) {
        state = Mutex(.stale(since: now, reason: "not listening for changes yet"))
        self.onChange = onChange
    }

    var current: State { state.withLock { $0 } }

    func watching() { set(.watching) }

    /// Marks the relations stale from `now`, unless they already are (the first failure's time
    /// and reason stay).
    func stale(_ reason: String, now: Date = Date()) { set(.stale(since: now, reason: reason)) }

    private func set(_ new: State) {
        let changed = state.withLock { state -> Bool in
            switch (state, new) {
            case (.watching, .watching), (.stale, .stale): return false
            default:
                state = new
                return true
            }
        }
        if changed { onChange(new) }
    }
}
