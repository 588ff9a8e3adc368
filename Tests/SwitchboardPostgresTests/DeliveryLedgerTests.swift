import SwitchboardCore
import Testing

@testable import SwitchboardPostgres

@Suite struct DeliveryLedgerTests {
    static func row(_ id: String) -> DatabaseMessage {
        DatabaseMessage(id: id, topic: "room:a", event: "note", payload: .object(Value.Object([("n", .string(id))])), isPrivate: false)
    }

    // Mutating calls cannot sit inside #expect.
    func announce(_ ledger: inout DeliveryLedger, _ id: String) -> Bool { ledger.announce(id) }
    func register(_ ledger: inout DeliveryLedger, upto: LSN, rows: [DatabaseMessage]) -> Int? { ledger.register(upto: upto, rows: rows) }
    func pass(_ ledger: inout DeliveryLedger, _ fence: Int) -> (missed: [DatabaseMessage], upto: LSN)? { ledger.passFence(fence) }
    func catchUp(_ ledger: inout DeliveryLedger) -> (rows: [DatabaseMessage], upto: LSN?) { ledger.catchUp() }

    @Test func lsnReadsAndWritesPostgresText() throws {
        let lsn = try #require(LSN("16/B374D448"))
        #expect(lsn.value == 0x16_B374_D448)
        #expect(lsn.description == "16/B374D448")
        #expect(LSN("0/0") == LSN(0))
        #expect(LSN("16B374D448") == nil)
        #expect(LSN("x/1") == nil)
        #expect(LSN("1/100000000") == nil, "the low half is 32 bits")
        let top = try #require(LSN("0/FFFFFFFF"))
        #expect(top.adding(1).description == "1/0")
    }

    @Test func anAnnouncedRowIsDeliveredOnceAndTheSlotsCopyIsNotMissed() throws {
        var ledger = DeliveryLedger()
        #expect(announce(&ledger, "a"))
        #expect(!announce(&ledger, "a"), "a repeated notification")
        let fence = try #require(register(&ledger, upto: LSN(100), rows: [Self.row("a")]))
        let passed = try #require(pass(&ledger, fence))
        #expect(passed.missed.isEmpty)
        #expect(passed.upto == LSN(100))
        #expect(!ledger.wasDelivered("a"), "the slot passed it")
    }

    @Test func aRowNoNotificationAnnouncedIsDeliveredAtItsFence() throws {
        var ledger = DeliveryLedger()
        #expect(announce(&ledger, "b"))
        let fence = try #require(register(&ledger, upto: LSN(100), rows: [Self.row("a"), Self.row("b"), Self.row("c")]))
        let passed = try #require(pass(&ledger, fence))
        #expect(passed.missed.map(\.id) == ["a", "c"])
        #expect(pass(&ledger, fence) == nil, "a fence passes once")
    }

    @Test func aReadThatFindsNothingWithNoRoundWaitingAdvancesAtOnce() {
        var ledger = DeliveryLedger()
        #expect(register(&ledger, upto: LSN(100), rows: []) == nil)
    }

    @Test func anEmptyReadAfterAWaitingRoundWaitsForItsOwnFence() throws {
        var ledger = DeliveryLedger()
        let first = try #require(register(&ledger, upto: LSN(100), rows: [Self.row("a")]))
        let second = try #require(register(&ledger, upto: LSN(200), rows: []), "the slot must not pass the first round's rows early")
        #expect(second > first)
        #expect(try #require(pass(&ledger, first)).upto == LSN(100))
        #expect(try #require(pass(&ledger, second)).upto == LSN(200))
    }

    @Test func rowsReadAgainBeforeTheSlotAdvancedAreNotRegisteredTwice() throws {
        var ledger = DeliveryLedger()
        let first = try #require(register(&ledger, upto: LSN(100), rows: [Self.row("a")]))
        // The slot has not moved: the next read decodes "a" again.
        let second = try #require(register(&ledger, upto: LSN(200), rows: [Self.row("a"), Self.row("b")]))
        #expect(try #require(pass(&ledger, first)).missed.map(\.id) == ["a"])
        #expect(try #require(pass(&ledger, second)).missed.map(\.id) == ["b"], "a is not delivered twice")
        ledger.advanced(to: LSN(200))
        #expect(ledger.claimed.isEmpty)
        _ = ledger.register(upto: LSN(300), rows: [Self.row("a")])
        #expect(ledger.claimed["a"] == LSN(300), "once the slot moved past it, a row read again is a new one")
    }

    @Test func aCatchUpDeliversEveryWaitingRoundsUndeliveredRowsInOrderAndTheirFencesAreIgnored() throws {
        var ledger = DeliveryLedger()
        #expect(announce(&ledger, "a"))
        let background = try #require(register(&ledger, upto: LSN(100), rows: [Self.row("a"), Self.row("b")]))
        _ = ledger.register(upto: LSN(200), rows: [Self.row("a"), Self.row("b"), Self.row("c")])
        let taken = ledger.catchUp()
        #expect(taken.rows.map(\.id) == ["b", "c"])
        #expect(taken.upto == LSN(200))
        #expect(ledger.rounds.isEmpty)
        #expect(pass(&ledger, background) == nil)
        #expect(!announce(&ledger, "c"), "its notification still to come is not delivered again")
        #expect(!announce(&ledger, "b"))
    }

    @Test func deliveredRowsNoRoundReadAreForgottenAfterSomeFences() throws {
        var ledger = DeliveryLedger()
        #expect(announce(&ledger, "orphan"))
        for n in 1...DeliveryLedger.forgetAfterFences {
            let fence = try #require(register(&ledger, upto: LSN(UInt64(n)), rows: [Self.row("r\(n)")]))
            _ = ledger.passFence(fence)
            #expect(ledger.wasDelivered("orphan"), "after \(n) fences")
        }
        let fence = try #require(register(&ledger, upto: LSN(1000), rows: [Self.row("last")]))
        _ = ledger.passFence(fence)
        #expect(!ledger.wasDelivered("orphan"))
    }

    @Test func aLostConnectionForgetsRoundsButNotWhatWasDelivered() throws {
        var ledger = DeliveryLedger()
        #expect(announce(&ledger, "a"))
        let fence = try #require(register(&ledger, upto: LSN(100), rows: [Self.row("a"), Self.row("b")]))
        ledger.connectionEnded()
        #expect(pass(&ledger, fence) == nil)
        #expect(ledger.claimed.isEmpty)
        // The next connection's catch-up reads both again: only b is new.
        _ = ledger.register(upto: LSN(100), rows: [Self.row("a"), Self.row("b")])
        #expect(catchUp(&ledger).rows.map(\.id) == ["b"])
    }

    @Test func eventsPastTheCapacityAreDroppedAndMarkedByAGap() {
        let events = ReaderEvents(capacity: 2)
        events.push(.notification("1"))
        events.push(.notification("2"))
        events.push(.notification("3"))
        events.push(.tick)
        #expect(Self.names(events.drain()) == ["1", "2"])
        events.push(.notification("4"))
        events.push(.notification("5"))
        #expect(Self.names(events.drain()) == ["gap", "4"], "the gap comes before what follows the dropped ones (5 is dropped)")
        events.push(.notification("6"))
        #expect(Self.names(events.drain()) == ["gap", "6"])
        events.push(.notification("7"))
        #expect(Self.names(events.drain()) == ["7"])
    }

    static func names(_ events: [ReaderEvents.Event]) -> [String] {
        events.map {
            switch $0 {
            case .notification(let text): text
            case .gap: "gap"
            case .tick: "tick"
            case .listening: "listening"
            case .slotDone: "done"
            }
        }
    }

    @Test func notificationsAreReadAsRowsFencesOrIDs() throws {
        let reader = MessageReader(
            settings: try DatabaseSettings(url: "postgres://u@localhost/db"), slotName: "s", health: DatabaseHealth(),
            logger: .init(label: "test"), deliver: { _ in true })
        let row = reader.announcement(
            #"{"id": "0b1c", "topic": "room:a", "event": "note", "payload": {"n": 1}, "private": true, "extension": "broadcast", "inserted_at": "2026-12-05 21:00:00.5"}"#
        )
        #expect(
            row
                == .row(
                    DatabaseMessage(
                        id: "0b1c", topic: "room:a", event: "note", payload: .object(Value.Object([("n", .number("1"))])), isPrivate: true,
                        insertedAt: "2026-12-05 21:00:00.5")))
        if case .row(let message) = reader.announcement(#"{"id": "x", "payload": null}"#) {
            #expect(message.payload == nil)
        } else {
            Issue.record("a row with a null payload")
        }
        #expect(reader.announcement("0b1c-44") == .tooBig(id: "0b1c-44"))
        #expect(reader.announcement("") == .wake)
        #expect(reader.announcement("{not json") == .wake)
        #expect(reader.announcement("fence:someoneelse:3") == .other)
        #expect(reader.announcement("fence:\(reader.token):3") == .fence(3))
        #expect(reader.announcement("fence:\(reader.token):x") == .other)
    }
}
