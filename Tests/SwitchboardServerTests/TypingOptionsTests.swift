import SwitchboardBench
import Testing

/// `switchboard bench typing` refuses bad options before it opens a connection.
@Suite struct TypingOptionsTests {
    @Test func theIssuesStormIsValid() throws {
        let options = TypingOptions(token: "t")
        try options.validate()
        #expect(options.messagesPerTypist == 100)
        #expect(options.comments == 25)
    }

    static let bad: [(String, TypingOptions)] = [
        ("a host that is not loopback", TypingOptions(host: "10.0.0.1", token: "t")),
        ("a typist token count that is not the typists'", TypingOptions(token: "t", typistTokens: ["a", "b"])),
        ("no typists", TypingOptions(token: "t", typists: 0)),
        ("a typing rate of zero", TypingOptions(token: "t", typingRate: 0)),
        ("an infinite comment rate", TypingOptions(token: "t", commentRate: .infinity)),
        ("a storm too short for one typing update", TypingOptions(token: "t", typingRate: 1, duration: .milliseconds(100))),
        ("a channel with a quote", TypingOptions(token: "t", channel: "collaboration:\"x")),
        ("more pairs than tracked", TypingOptions(token: "t", typists: 1000, subscribers: 10_000)),
    ]

    @Test(arguments: TypingOptionsTests.bad)
    func badOptionsAreRefused(_ what: String, _ options: TypingOptions) {
        #expect(throws: BenchError.self, "\(what)") { try options.validate() }
    }
}
