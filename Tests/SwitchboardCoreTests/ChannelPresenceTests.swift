import SwitchboardCore
import Testing

/// The presence state machine: joins and leaves as Phoenix sends them, with phx_ref on every meta.
@Suite struct ChannelPresenceTests {
    @Test func trackJoinsWithARef() throws {
        var presence = ChannelPresence()
        let tracked = presence.track(owner: 1, key: "a", meta: ["status": "online"], ref: "r1")
        let diff = try #require(tracked)
        #expect(diff.payload == ["joins": ["a": ["metas": [["status": "online", "phx_ref": "r1"]]]], "leaves": [:]])
        #expect(presence.state == ["a": ["metas": [["status": "online", "phx_ref": "r1"]]]])
    }

    @Test func trackingTheSameMetaAgainChangesNothing() {
        var presence = ChannelPresence()
        _ = presence.track(owner: 1, key: "a", meta: ["status": "online"], ref: "r1")
        let again = presence.track(owner: 1, key: "a", meta: ["status": "online"], ref: "r2")
        #expect(again == nil)
        #expect(presence.state == ["a": ["metas": [["status": "online", "phx_ref": "r1"]]]])
    }

    @Test func reTrackIsALeaveAndAJoinWithThePreviousRef() throws {
        var presence = ChannelPresence()
        _ = presence.track(owner: 1, key: "a", meta: ["status": "online"], ref: "r1")
        let updated = presence.track(owner: 1, key: "a", meta: ["status": "away"], ref: "r2")
        let diff = try #require(updated)
        #expect(
            diff.payload == [
                "joins": ["a": ["metas": [["status": "away", "phx_ref": "r2", "phx_ref_prev": "r1"]]]],
                "leaves": ["a": ["metas": [["status": "online", "phx_ref": "r1"]]]],
            ])
        #expect(presence.state == ["a": ["metas": [["status": "away", "phx_ref": "r2"]]]])
    }

    @Test func oneKeyMayHaveSeveralMetasAndEachLeavesAlone() throws {
        var presence = ChannelPresence()
        _ = presence.track(owner: 1, key: "anna", meta: ["device": "phone"], ref: "r1")
        _ = presence.track(owner: 2, key: "anna", meta: ["device": "laptop"], ref: "r2")
        _ = presence.track(owner: 3, key: "ben", meta: [:], ref: "r3")
        #expect(presence.count == 3)
        #expect(
            presence.state == [
                "anna": ["metas": [["device": "phone", "phx_ref": "r1"], ["device": "laptop", "phx_ref": "r2"]]],
                "ben": ["metas": [["phx_ref": "r3"]]],
            ])
        let untracked = presence.untrack(owner: 1)
        let diff = try #require(untracked)
        #expect(diff.payload == ["joins": [:], "leaves": ["anna": ["metas": [["device": "phone", "phx_ref": "r1"]]]]])
        #expect(presence.state == ["anna": ["metas": [["device": "laptop", "phx_ref": "r2"]]], "ben": ["metas": [["phx_ref": "r3"]]]])
        let twice = presence.untrack(owner: 1)
        #expect(twice == nil)
        _ = presence.untrack(owner: 2)
        _ = presence.untrack(owner: 3)
        #expect(presence.isEmpty)
        #expect(presence.state == [:])
    }

    @Test func refsAreUniqueAndCarryTheSeed() {
        var refs = PresenceRefs(seed: 36 * 36)
        let first = refs.next()
        let second = refs.next()
        #expect(first == "100-1")
        #expect(second == "100-2")
    }
}
