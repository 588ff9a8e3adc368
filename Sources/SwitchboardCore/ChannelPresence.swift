/// Who is present on one channel, in the Phoenix presence model that Supabase clients read:
/// each presence key (a user, usually) has one meta per tracking join, every meta carries a
/// `phx_ref`, and every change is a diff of `joins` and `leaves`.
///
/// A pure state machine: the caller supplies the tracking join's identity (`owner`) and a fresh
/// `phx_ref` for each track (see `PresenceRefs`), so that the same sequence of calls gives the
/// same states and diffs on any node.
public struct ChannelPresence: Sendable {
    /// One tracked meta.
    public struct Entry: Sendable, Equatable {
        public let key: String
        public let ref: String
        /// The client's payload, without `phx_ref`.
        public let meta: Value.Object
    }

    /// A change to send as `presence_diff`: keys to their metas (each with `phx_ref`).
    public struct Diff: Sendable, Equatable {
        public var joins: [(key: String, meta: Value.Object)] = []
        public var leaves: [(key: String, meta: Value.Object)] = []

        public var isEmpty: Bool { joins.isEmpty && leaves.isEmpty }

        /// The `presence_diff` payload: `{"joins": {key: {"metas": [...]}}, "leaves": {...}}`,
        /// both always present.
        public var payload: Value {
            ["joins": ChannelPresence.grouped(joins), "leaves": ChannelPresence.grouped(leaves)]
        }

        public static func == (a: Diff, b: Diff) -> Bool {
            a.joins.map(\.key) == b.joins.map(\.key) && a.joins.map(\.meta) == b.joins.map(\.meta)
                && a.leaves.map(\.key) == b.leaves.map(\.key) && a.leaves.map(\.meta) == b.leaves.map(\.meta)
        }
    }

    /// Tracked entries by owner, in the order they were first tracked.
    private var entries: [UInt64: Entry] = [:]
    private var order: [UInt64] = []

    public init() {}

    public var isEmpty: Bool { entries.isEmpty }
    /// Tracked metas (one per tracking join).
    public var count: Int { entries.count }

    /// Tracks `meta` under `key` for `owner`. Tracking the same key and meta again changes
    /// nothing (nil); a different meta or key is a leave of the old meta and a join of the new
    /// one, which carries `phx_ref_prev`.
    public mutating func track(owner: UInt64, key: String, meta: Value.Object, ref: String) -> Diff? {
        var diff = Diff()
        var joined = meta
        joined["phx_ref"] = .string(ref)
        if let old = entries[owner] {
            if old.key == key, old.meta == meta { return nil }
            diff.leaves.append((old.key, Self.withRef(old)))
            joined["phx_ref_prev"] = .string(old.ref)
        } else {
            order.append(owner)
        }
        entries[owner] = Entry(key: key, ref: ref, meta: meta)
        diff.joins.append((key, joined))
        return diff
    }

    /// Removes what `owner` tracked (an untrack, a leave or a closed socket); nil when it
    /// tracked nothing.
    public mutating func untrack(owner: UInt64) -> Diff? {
        guard let old = entries.removeValue(forKey: owner) else { return nil }
        order.removeAll { $0 == owner }
        var diff = Diff()
        diff.leaves.append((old.key, Self.withRef(old)))
        return diff
    }

    /// Every tracked entry with its owner, in tracking order.
    public var tracked: [(owner: UInt64, entry: Entry)] {
        order.compactMap { owner in entries[owner].map { (owner, $0) } }
    }

    /// The `presence_state` payload: every key with its metas, in tracking order.
    public var state: Value {
        Self.grouped(order.compactMap { owner in entries[owner].map { ($0.key, Self.withRef($0)) } })
    }

    private static func withRef(_ entry: Entry) -> Value.Object {
        var meta = entry.meta
        meta["phx_ref"] = .string(entry.ref)
        return meta
    }

    static func grouped(_ items: [(key: String, meta: Value.Object)]) -> Value {
        var object = Value.Object()
        for (key, meta) in items {
            var metas = object[key]?["metas"]?.arrayValue ?? []
            metas.append(.object(meta))
            object[key] = ["metas": .array(metas)]
        }
        return .object(object)
    }
}

/// Unique `phx_ref`s: a node prefix and a counter, in base 36.
public struct PresenceRefs: Sendable {
    private let prefix: String
    private var counter: UInt64 = 0

    /// - Parameter seed: distinguishes this process (and, later, this node); the server seeds
    ///   it from its start time so refs differ across restarts.
    public init(seed: UInt64) {
        prefix = String(seed, radix: 36, uppercase: true)
    }

    public mutating func next() -> String {
        counter += 1
        return prefix + "-" + String(counter, radix: 36, uppercase: true)
    }
}
