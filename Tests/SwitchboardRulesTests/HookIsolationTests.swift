import SwitchboardCore
import Testing
@testable import SwitchboardRules

/// Each hook call gets its own `user`, `ch` and `msg` tables, even when a lane reuses the
/// templates of the previous call's tables: what one call does to them never reaches the next.
@Suite struct HookIsolationTests {
    static let rules = """
        tier "free" { max_channels = 3, messages_per_minute = 100, max_payload = 65536 }
        default_tier "free"
        channel "room:{id}" {
          kind = "shared",
          join = function(user, ch)
            -- Report what this call sees, then try to leave traces for the next call.
            local seen = tostring(user.role) .. "/" .. tostring(user.marked) .. "/" .. tostring(user.ghost)
              .. "/" .. tostring(ch.id) .. "/" .. tostring(ch.marked) .. "/" .. tostring(getmetatable(user))
              .. "/" .. tostring(user.meta and user.meta.level)
            user.role = "admin"
            user.marked = true
            rawset(ch, "marked", true)
            ch.id = "other"
            if user.meta then user.meta.level = 99 end
            setmetatable(user, { __index = function() return "ghost" end })
            return false, seen
          end,
        }
        """

    @Test func tablesDoNotCarryStateBetweenCalls() throws {
        let fixture = try RulesFixture(["a.lua": Self.rules])
        let engine = try fixture.engine { $0.lanes = 1 }
        var claims: Value.Object = ["role": "supplier", "sub": "u1", "meta": ["level": 1]]
        let first = Identity(subject: "u1", role: "supplier", expiresAt: 0, claims: claims)
        let room = try channel("room:7")
        let expected = Decision.deny("supplier/nil/nil/7/nil/nil/1")
        // The same identity and channel again and again: the lane copies its kept templates.
        for _ in 0..<3 { #expect(engine.authorizeJoin(first, channel: room) == expected) }
        // An equal identity built separately, and then a different one.
        claims["sub"] = "u1"
        #expect(engine.authorizeJoin(Identity(subject: "u1", role: "supplier", expiresAt: 0, claims: claims), channel: room) == expected)
        #expect(engine.authorizeJoin(user(role: "couple", sub: "u2"), channel: room) == .deny("couple/nil/nil/7/nil/nil/nil"))
        #expect(engine.authorizeJoin(first, channel: room) == expected)
        #expect(engine.authorizeJoin(first, channel: try channel("room:8")) == .deny("supplier/nil/nil/8/nil/nil/1"))
    }

    @Test func aFailedCallForgetsTheKeptTables() throws {
        let fixture = try RulesFixture([
            "a.lua": """
                tier "free" { max_channels = 3, messages_per_minute = 100, max_payload = 65536 }
                default_tier "free"
                channel "room:{id}" {
                  kind = "shared",
                  join = function(user, ch)
                    if ch.id == "boom" then error("boom") end
                    return user.sub == ch.id, "not " .. ch.id
                  end,
                }
                """,
        ])
        let engine = try fixture.engine { $0.lanes = 1 }
        #expect(engine.authorizeJoin(user(sub: "a"), channel: try channel("room:a")) == .allow)
        #expect(engine.authorizeJoin(user(sub: "b"), channel: try channel("room:boom")) != .allow)
        #expect(engine.authorizeJoin(user(sub: "a"), channel: try channel("room:a")) == .allow)
        #expect(engine.authorizeJoin(user(sub: "b"), channel: try channel("room:a")) == .deny("not a"))
    }
}
