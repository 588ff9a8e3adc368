import PostgresNIO
import Synchronization

/// What the message reader has to handle, in the order it happened, bounded: past `capacity`
/// waiting notifications the newest are dropped, and a `.gap` in their place tells the reader
/// to catch up from the slot before it goes on.
final class ReaderEvents: Sendable {
    enum Event: Sendable {
        /// The LISTEN is in place: catch up with what committed before.
        case listening
        case notification(String)
        /// Notifications were dropped here.
        case gap
        /// Time for a background read of the slot.
        case tick
        /// The slot's connection finished the operation with this number.
        case slotDone(Int)
    }

    private struct Buffer {
        var events: [Event] = []
        var dropping = false
    }

    private let capacity: Int
    private let buffer = Mutex(Buffer())
    private let wake: AsyncStream<Void>.Continuation
    /// Yields whenever events wait; `drain` takes them.
    let wakeups: AsyncStream<Void>

    init(capacity: Int) {
        self.capacity = capacity
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func push(_ event: Event) {
        let queued = buffer.withLock { buffer -> Bool in
            switch event {
            case .notification:
                guard buffer.events.count < capacity else {
                    buffer.dropping = true
                    return false
                }
                if buffer.dropping {
                    buffer.events.append(.gap)
                    buffer.dropping = false
                }
            case .tick:
                // Ticks are not worth a gap; one waiting is enough.
                guard buffer.events.count < capacity else { return false }
            case .listening, .gap, .slotDone:
                break
            }
            buffer.events.append(event)
            return true
        }
        if queued { wake.yield() }
    }

    func drain() -> [Event] {
        buffer.withLock { buffer in
            defer { buffer.events.removeAll(keepingCapacity: true) }
            return buffer.events
        }
    }
}

/// The message reader's work on one pair of connections: handles the events one at a time, in
/// order, delivering announced rows, running catch-ups, and keeping at most one background
/// operation on the slot (a read or an advance) going while delivery goes on.
final class ReaderSession {
    let reader: MessageReader
    let slot: PostgresConnection
    let events: ReaderEvents

    private var listening = false
    /// The furthest position read from the slot on this connection.
    private var readUpto: LSN?
    private var advancedTo: LSN?
    private var wantAdvance: LSN?
    private var wantRead = false
    private var busy: (number: Int, task: Task<SlotWork, any Error>)?
    private var operations = 0
    /// Announced rows waiting to be delivered together.
    private var announced: [DatabaseMessage] = []

    enum SlotWork: Sendable {
        case read(MessageReader.SlotRead)
        case advanced(LSN)
    }

    init(reader: MessageReader, slot: PostgresConnection, events: ReaderEvents) {
        self.reader = reader
        self.slot = slot
        self.events = events
    }

    func run() async throws {
        defer { busy?.task.cancel() }
        for await _ in events.wakeups {
            for event in events.drain() {
                try await handle(event)
            }
            try await deliverAnnounced()
            try Task.checkCancellation()
            startSlotWork()
        }
        throw CancellationError()
    }

    private func handle(_ event: ReaderEvents.Event) async throws {
        switch event {
        case .listening:
            listening = true
            try await catchUp()
        case .gap:
            try await catchUp()
        case .tick:
            wantRead = true
        case .slotDone(let number):
            // A catch-up may have taken that operation's result already.
            if let (running, task) = busy, running == number {
                busy = nil
                try await finish(task.value)
            }
        case .notification(let payload):
            switch reader.announcement(payload) {
            case .row(let message):
                if reader.withLedger({ $0.announce(message.id) }) { announced.append(message) }
            case .tooBig(let id):
                if !reader.withLedger({ $0.wasDelivered(id) }) { try await catchUp() }
            case .wake:
                try await catchUp()
            case .fence(let fence):
                try await deliverAnnounced()
                if let passed = reader.withLedger({ $0.passFence(fence) }) {
                    if !passed.missed.isEmpty { try await deliver(passed.missed) }
                    wantAdvance = max(wantAdvance ?? passed.upto, passed.upto)
                }
            case .other:
                break
            }
        }
    }

    private func deliverAnnounced() async throws {
        guard !announced.isEmpty else { return }
        let rows = announced
        announced.removeAll(keepingCapacity: true)
        try await deliver(rows)
    }

    /// Delivers rows; when their history could not all be stored, ends the session before the
    /// slot can move past them (the store writes them once the database answers; the next
    /// session's catch-up finds them delivered already).
    private func deliver(_ rows: [DatabaseMessage]) async throws {
        guard await reader.deliver(rows) else {
            throw DatabaseError("the replay history of delivered rows could not be stored; the slot stays where it is")
        }
    }

    /// Reads the slot up to what is written now and delivers every row not delivered yet, in
    /// order, before any later announced row; then advances the slot.
    private func catchUp() async throws {
        try await deliverAnnounced()
        if let (_, task) = busy {
            busy = nil
            try await finish(task.value)
        }
        while true {
            let read = try await reader.read(on: slot, to: .written, after: readUpto)
            if let upto = read.upto {
                readUpto = max(readUpto ?? upto, upto)
                _ = reader.withLedger { $0.register(upto: upto, rows: read.rows) }
            }
            let taken = reader.withLedger { $0.catchUp() }
            if !taken.rows.isEmpty { try await deliver(taken.rows) }
            // Stopping: their history may not be stored, so the slot stays (they are read again).
            try Task.checkCancellation()
            if let upto = [taken.upto, read.upto].compactMap({ $0 }).max() { try await advance(to: upto) }
            if read.reached { return }
        }
    }

    private func advance(to position: LSN) async throws {
        guard position > (advancedTo ?? LSN(0)) else { return }
        try await reader.advance(on: slot, to: position)
        try await finish(.advanced(position))
    }

    private func finish(_ work: SlotWork) async throws {
        switch work {
        case .read(let read):
            guard let upto = read.upto else { return }
            readUpto = max(readUpto ?? upto, upto)
            if let fence = reader.withLedger({ $0.register(upto: upto, rows: read.rows) }) {
                try await reader.sendFence(fence, on: slot)
            } else {
                wantAdvance = max(wantAdvance ?? upto, upto)
            }
        case .advanced(let position):
            advancedTo = max(advancedTo ?? position, position)
            if let wanted = wantAdvance, wanted <= position { wantAdvance = nil }
            reader.withLedger { $0.advanced(to: position) }
        }
    }

    /// Starts the next background operation on the slot when none is running: an advance
    /// first (it frees WAL and makes the next read cheaper), else a read when one is due. Both
    /// decode WAL (tens of milliseconds under load), so they never run on the delivery path.
    private func startSlotWork() {
        guard busy == nil, listening else { return }
        let reader = reader
        let slot = slot
        let events = events
        operations += 1
        let number = operations
        if let position = wantAdvance {
            wantAdvance = nil
            guard position > (advancedTo ?? LSN(0)) else { return }
            busy = (number, Task {
                defer { events.push(.slotDone(number)) }
                try await reader.advance(on: slot, to: position)
                return .advanced(position)
            })
        } else if wantRead {
            wantRead = false
            let after = readUpto
            busy = (number, Task {
                defer { events.push(.slotDone(number)) }
                return .read(try await reader.read(on: slot, to: .flushed, after: after))
            })
        }
    }
}
