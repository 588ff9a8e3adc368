import Testing
@testable import SwitchboardCore

@Suite struct ConventionPolicyTests {
    let policy = ConventionPolicy.standard()

    func user(
        role: String = "supplier", supplier: String? = nil, couple: String? = nil, tier: String? = nil,
        claims: Value.Object = .init()
    ) -> Identity {
        Identity(subject: "u", role: role, tier: tier, supplierID: supplier, coupleID: couple, expiresAt: 0, claims: claims)
    }

    func join(_ identity: Identity, _ name: String) throws -> Decision {
        policy.authorizeJoin(identity, channel: try ChannelName(validating: name))
    }

    func send(_ identity: Identity, _ name: String) throws -> Decision {
        policy.authorizeSend(identity, channel: try ChannelName(validating: name), event: "e", payload: nil)
    }

    @Test func dashboardsBelongToTheirOwner() throws {
        #expect(try join(user(supplier: "s1"), "supplier:dashboard:s1") == .allow)
        #expect(try join(user(supplier: "s2"), "supplier:dashboard:s1") != .allow)
        #expect(try join(user(role: "couple", couple: "c1"), "couple:dashboard:c1") == .allow)
        #expect(try join(user(role: "couple", couple: "c2"), "couple:dashboard:c1") != .allow)
    }

    @Test func collaborationAdmitsItsSupplierAndCouple() throws {
        #expect(try join(user(supplier: "s1"), "collaboration:s1:c1") == .allow)
        #expect(try join(user(role: "couple", couple: "c1"), "collaboration:s1:c1") == .allow)
        let outsider = try join(user(role: "couple", couple: "c9"), "collaboration:s1:c1")
        guard case .deny(let reason) = outsider else {
            Issue.record("an outsider joined")
            return
        }
        #expect(reason.contains("supplier s1 and couple c1"))
    }

    @Test func formsAndJourneysFollowClaims() throws {
        let owner = user(claims: Value.Object([("form_ids", ["f1"]), ("journey_ids", ["j1"])]))
        #expect(try join(owner, "form:responses:f1") == .allow)
        #expect(try join(owner, "form:responses:f2") != .allow)
        #expect(try join(owner, "journey:progress:j1") == .allow)
        #expect(try join(user(), "journey:progress:j1") != .allow)
    }

    @Test func broadcastChannelsAreReadOnlyExceptForAdmins() throws {
        #expect(try join(user(), "system:announcements") == .allow)
        #expect(try send(user(), "system:announcements") != .allow)
        #expect(try send(user(role: "admin"), "system:announcements") == .allow)
        #expect(try send(user(role: "service_role"), "public:directory") == .allow)
    }

    @Test func unknownChannelsAreDenied() throws {
        #expect(try join(user(role: "admin"), "room-1") != .allow)
        #expect(try join(user(), "supplier:other:s1") != .allow)
    }

    @Test func freeTierIsTheDefault() {
        #expect(policy.limits(for: user()).maxChannels == 3)
        #expect(policy.limits(for: user(tier: "free")).maxChannels == 3)
        #expect(policy.limits(for: user(tier: "paid")).maxChannels == 10)
        #expect(policy.limits(for: user(tier: "scale")).maxPayloadBytes == 64 * 1024)
    }
}
