/// A WAL position (PostgreSQL's `pg_lsn`), ordered.
struct LSN: Comparable, Hashable, Sendable, CustomStringConvertible {
    let value: UInt64

    init(_ value: UInt64) { self.value = value }

    /// Reads PostgreSQL's text form, `16/B374D448`.
    init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let high = UInt32(parts[0], radix: 16), let low = UInt32(parts[1], radix: 16) else { return nil }
        value = UInt64(high) << 32 | UInt64(low)
    }

    var description: String { String(value >> 32, radix: 16, uppercase: true) + "/" + String(value & 0xFFFF_FFFF, radix: 16, uppercase: true) }

    static func < (a: LSN, b: LSN) -> Bool { a.value < b.value }

    func adding(_ bytes: Int) -> LSN { LSN(value &+ UInt64(bytes)) }
}

/// What the message reader delivered, what its slot has read, and when the slot may move on:
/// the bookkeeping that lets rows arrive by two roads (a NOTIFY carrying the row as it commits,
/// and the replication slot's decoded WAL) and still be delivered once each, in commit order.
///
/// - A row announced by a notification is delivered at once and remembered in `delivered`.
/// - A *read* of the slot (up to a WAL position) is registered as a round. Its rows that an
///   earlier, not yet advanced round holds are dropped (they were read twice because the slot
///   had not moved yet). The reader then sends a *fence*: a notification of its own, which
///   PostgreSQL queues after the notifications of every transaction that committed before the
///   read's position. When the fence comes back, every row of the round was either announced
///   (and delivered) or never will be: those are delivered then (`passFence`), and the slot may
///   advance to the round's position.
/// - A *catch-up* (at connect, after notifications were dropped, for a row too big to be
///   announced) reads the slot up to the current WAL end and delivers at once every row of every
///   registered round not yet delivered, in order, then advances: everything up to there is
///   delivered whatever notifications say later.
struct DeliveryLedger {
    struct Round {
        let fence: Int
        let upto: LSN
        let rows: [DatabaseMessage]
    }

    /// Delivered rows no fence has passed yet (their notification may still come, or the slot
    /// has still to read them): id → the number of fences passed when it was delivered.
    private(set) var delivered: [String: Int] = [:]
    /// Rows registered rounds read, until the slot advances past them: id → the round's position.
    private(set) var claimed: [String: LSN] = [:]
    /// Registered rounds whose fence has not come back, oldest first.
    private(set) var rounds: [Round] = []
    private(set) var fencesPassed = 0
    private var lastFence = 0

    /// How many fences a delivered row is remembered for when no round reads it (a row the slot
    /// never decodes: it was inserted before the slot existed, or the slot was recreated).
    static let forgetAfterFences = 10

    /// A row a notification announced: true when it is to be delivered now (and it is then
    /// remembered), false when it was delivered already.
    mutating func announce(_ id: String) -> Bool {
        guard delivered[id] == nil else { return false }
        delivered[id] = fencesPassed
        return true
    }

    /// Whether the row was delivered and no fence has passed it.
    func wasDelivered(_ id: String) -> Bool { delivered[id] != nil }

    /// Registers what a read of the slot up to `upto` decoded, and returns the fence to send.
    /// Nil when there is nothing to wait for: the read found no row and no round is waiting, so
    /// the slot may move to `upto` at once.
    mutating func register(upto: LSN, rows: [DatabaseMessage]) -> Int? {
        let fresh = rows.filter { claimed[$0.id] == nil }
        if rows.isEmpty && rounds.isEmpty { return nil }
        lastFence += 1
        for row in fresh { claimed[row.id] = upto }
        rounds.append(Round(fence: lastFence, upto: upto, rows: fresh))
        return lastFence
    }

    /// A fence came back. Returns the round's rows that were not delivered (announced by no
    /// notification: to be delivered now) and the position the slot may advance to; nil for a
    /// fence of a round a catch-up already took (or of another reader).
    mutating func passFence(_ fence: Int) -> (missed: [DatabaseMessage], upto: LSN)? {
        guard let index = rounds.firstIndex(where: { $0.fence == fence }) else { return nil }
        // Fences come back in the order they were sent; earlier rounds have been passed.
        let passed = rounds[...index]
        rounds.removeSubrange(...index)
        fencesPassed += 1
        var missed: [DatabaseMessage] = []
        for round in passed {
            for row in round.rows where delivered.removeValue(forKey: row.id) == nil { missed.append(row) }
        }
        let oldest = fencesPassed - Self.forgetAfterFences
        if delivered.values.contains(where: { $0 < oldest }) { delivered = delivered.filter { $0.value >= oldest } }
        return (missed, passed[index].upto)
    }

    /// Takes every registered round (a catch-up has just registered its own, the newest):
    /// returns their rows not yet delivered, in order, now remembered as delivered, and the
    /// position the slot may advance to once they are.
    mutating func catchUp() -> (rows: [DatabaseMessage], upto: LSN?) {
        var rows: [DatabaseMessage] = []
        for round in rounds {
            for row in round.rows where delivered[row.id] == nil {
                delivered[row.id] = fencesPassed
                rows.append(row)
            }
        }
        let upto = rounds.last?.upto
        rounds.removeAll()
        return (rows, upto)
    }

    /// The slot moved to `position`: it will not read the rows before it again.
    mutating func advanced(to position: LSN) {
        if claimed.values.contains(where: { $0 <= position }) { claimed = claimed.filter { $0.value > position } }
    }

    /// The connection ended: its rounds' fences will not come back, and the next connection's
    /// slot reads start again from the slot's position. What was delivered is kept, so rows
    /// delivered but not yet passed by the slot are not delivered again.
    mutating func connectionEnded() {
        rounds.removeAll()
        claimed.removeAll()
    }
}
