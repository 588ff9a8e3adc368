import SwitchboardCore
import Testing
@testable import SwitchboardRules

/// The repository's Rules/ directory: every channel kind allows the right user and denies the
/// wrong one with a reason.
@Suite struct DefaultRulesTests {
    let engine: RulesEngine

    init() throws {
        engine = try RulesEngine(directory: RulesFixture.defaultRules)
    }

    func join(_ identity: Identity, _ name: String) throws -> Decision {
        engine.authorizeJoin(identity, channel: try channel(name))
    }

    @Test func privateDashboards() throws {
        #expect(try join(user(supplier: "s1"), "supplier:dashboard:s1") == .allow)
        #expect(try join(user(supplier: "s2"), "supplier:dashboard:s1") == .deny("only supplier s1 may open this dashboard"))
        #expect(try join(user(role: "couple", couple: "c1"), "couple:dashboard:c1") == .allow)
        #expect(try join(user(role: "couple", couple: "c2"), "couple:dashboard:c1") != .allow)
    }

    @Test func formsFollowTheFormOwnerRelation() throws {
        #expect(try join(user(supplier: "s1"), "form:responses:f1") == .allow)
        #expect(try join(user(supplier: "s1"), "form:responses:f2") != .allow)
        #expect(try join(user(role: "couple", couple: "c1"), "form:responses:f1") != .allow)
    }

    @Test func journeysAdmitTheirSupplierAndCouple() throws {
        #expect(try join(user(supplier: "s1"), "journey:progress:j1") == .allow)
        #expect(try join(user(role: "couple", couple: "c1"), "journey:progress:j1") == .allow)
        #expect(try join(user(role: "couple", couple: "c2"), "journey:progress:j1") != .allow)
    }

    @Test func collaborationAdmitsTheTeamOnlyOnScale() throws {
        #expect(try join(user(supplier: "s1"), "collaboration:s1:c1") == .allow)
        #expect(try join(user(role: "couple", couple: "c1"), "collaboration:s1:c1") == .allow)
        #expect(try join(user(sub: "team-anna", tier: "scale"), "collaboration:s1:c1") == .allow)
        #expect(try join(user(sub: "team-anna", tier: "paid"), "collaboration:s1:c1") != .allow)
        #expect(try join(user(role: "couple", couple: "c9"), "collaboration:s1:c1") != .allow)
    }

    @Test func broadcastChannelsAreReadOnly() throws {
        let reader = user(role: "couple", couple: "c1")
        #expect(try join(reader, "system:announcements") == .allow)
        #expect(engine.authorizeSend(reader, channel: try channel("system:announcements"), event: "news", payload: nil) != .allow)
        #expect(engine.authorizeSend(user(role: "admin"), channel: try channel("system:announcements"), event: "news", payload: nil) == .allow)
    }

    @Test func unknownChannelsAreDenied() throws {
        #expect(try join(user(role: "admin"), "room-1") == .deny("no rule matches channel room-1"))
    }

    @Test func declaredEventsAreChecked() throws {
        let supplier = user(supplier: "s1")
        let collaboration = try channel("collaboration:s1:c1")
        #expect(engine.authorizeSend(supplier, channel: collaboration, event: "comment:added", payload: ["comment_id": "k1", "text": "hi"]) == .allow)
        let missing = engine.authorizeSend(supplier, channel: collaboration, event: "comment:added", payload: ["comment_id": "k1"])
        #expect(missing == .deny("event comment:added: field text must be string, got nothing"))
        let wrongPlace = engine.authorizeSend(supplier, channel: try channel("supplier:dashboard:s1"), event: "user:typing", payload: ["user_id": "u"])
        #expect(wrongPlace == .deny("event user:typing is not allowed on supplier:dashboard:s1"))
        #expect(engine.authorizeSend(supplier, channel: collaboration, event: "free-form", payload: [:]) == .allow)
    }

    @Test func tiersInheritFromTheDefault() {
        #expect(engine.limits(for: user()).maxChannels == 3)
        #expect(engine.limits(for: user(tier: "paid")) == Limits(maxChannels: 10, maxPayloadBytes: 65536, messagesPerMinute: 100))
        #expect(engine.limits(for: user(tier: "unknown")).maxChannels == 3)
    }
}
