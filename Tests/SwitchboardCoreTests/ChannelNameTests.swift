import Testing
@testable import SwitchboardCore

@Suite struct ChannelNameTests {
    @Test(arguments: ["collaboration:s1:c1", "supplier:dashboard:s-1", "system:announcements", "form:responses:f_1.v2", "a@b"])
    func acceptsConventionalNames(_ name: String) throws {
        let channel = try ChannelName(validating: name)
        #expect(channel.rawValue == name)
        #expect(channel.scope == name.split(separator: ":")[0])
    }

    @Test func rejectsEmptyNames() {
        #expect(throws: ChannelNameError.empty) { try ChannelName(validating: "") }
    }

    @Test func rejectsTenThousandCharacters() {
        let name = String(repeating: "a", count: 10_000)
        #expect(throws: ChannelNameError.tooLong(10_000)) { try ChannelName(validating: name) }
    }

    @Test func acceptsExactly255Bytes() throws {
        _ = try ChannelName(validating: String(repeating: "a", count: 255))
        #expect(throws: ChannelNameError.tooLong(256)) { try ChannelName(validating: String(repeating: "a", count: 256)) }
    }

    @Test(arguments: ["room 1", "room/1", "room#1", "é:x", "a\u{0}b", "x*"])
    func rejectsCharactersOutsideTheSet(_ name: String) throws {
        let error = try #require(throws: ChannelNameError.self) { try ChannelName(validating: name) }
        guard case .invalidCharacter = error else {
            Issue.record("expected invalidCharacter, got \(error)")
            return
        }
        #expect(error.description.contains("letters, digits"))
    }

    @Test(arguments: [":a", "a:", "a::b"])
    func rejectsEmptySegments(_ name: String) {
        #expect(throws: ChannelNameError.emptySegment) { try ChannelName(validating: name) }
    }

    @Test func rejectsTooManySegments() {
        #expect(throws: ChannelNameError.tooManySegments(9)) { try ChannelName(validating: "a:b:c:d:e:f:g:h:i") }
    }
}
