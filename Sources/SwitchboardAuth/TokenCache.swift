import SwitchboardCore

/// Identities of tokens that verified, by token text, at most `capacity` of them.
///
/// When full, an insert first drops the expired entries and, if that frees less than a quarter,
/// arbitrary ones down to three quarters of the capacity, so that inserts stay O(1) amortised.
struct TokenCache: Sendable {
    private var entries: [String: Identity] = [:]
    let capacity: Int
    let leeway: Double

    init(capacity: Int, leeway: Double) {
        self.capacity = max(0, capacity)
        self.leeway = leeway
    }

    var count: Int { entries.count }

    /// The identity of `token` if it is cached and not expired by `now`; an expired entry is dropped.
    mutating func identity(for token: String, now: Double) -> Identity? {
        guard let identity = entries[token] else { return nil }
        guard now < identity.expiresAt + leeway else {
            entries[token] = nil
            return nil
        }
        return identity
    }

    mutating func insert(_ identity: Identity, for token: String, now: Double) {
        guard capacity > 0 else { return }
        if entries.count >= capacity, entries[token] == nil {
            entries = entries.filter { now < $0.value.expiresAt + leeway }
            let target = capacity - capacity / 4
            if entries.count > target {
                let victims = Array(entries.keys.prefix(entries.count - target))
                for key in victims { entries[key] = nil }
            }
        }
        entries[token] = identity
    }
}
