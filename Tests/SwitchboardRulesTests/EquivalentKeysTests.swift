import Foundation
import SwitchboardCore
import Testing

@testable import SwitchboardRules

/// A payload whose object has two names Swift takes as one (a precomposed and a decomposed `é`:
/// different bytes) reaches a hook with one key, the first member's, as every other path reads
/// it (the `tape` fuzz target found that the hook saw both and a read-back kept the last).
@Suite struct EquivalentKeysTests {
    @Test func theFirstOfTwoEquivalentNamesIsTheOneAHookSees() throws {
        let fixture = try RulesFixture([
            "rules.lua": """
            allow_undeclared_events(true)
            channel "probe:{id}" {
              kind = "shared",
              join = function() return true end,
              send = function(user, ch, msg)
                local n = 0
                for _ in pairs(msg.payload) do n = n + 1 end
                if n == 1 and msg.payload["\u{E9}"] == 1 then return true end
                return false, "keys " .. n .. ", value " .. tostring(msg.payload["\u{E9}"])
              end,
            }
            """
        ])
        let engine = try fixture.engine()
        let precomposed = "\u{E9}", decomposed = "e\u{301}"
        try #require(Array(precomposed.utf8) != Array(decomposed.utf8) && precomposed == decomposed)
        let payload = Value.object(Value.Object([(key: precomposed, value: 1), (key: decomposed, value: 2), (key: "other", value: 3)]))
        let decision = engine.decidePush(
            user(), channel: try channel("probe:1"), event: "e", payload: .object(Value.Object([(key: precomposed, value: 1), (key: decomposed, value: 2)])),
            source: .user, sizeOver: PushDecision.size(10))
        #expect(decision.verdict == .allow, "\(decision.verdict)")
        // With a third, ordinary member the first of the two still wins and the third is kept.
        let three = engine.decidePush(user(), channel: try channel("probe:1"), event: "e", payload: payload, source: .user, sizeOver: PushDecision.size(10))
        #expect(three.verdict == .deny("keys 2, value 1"), "\(three.verdict)")
    }
}
