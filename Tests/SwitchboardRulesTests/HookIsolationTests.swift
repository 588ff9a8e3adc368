import SwitchboardCore
import Synchronization
import Testing
@testable import SwitchboardRules

/// `user` and `ch` are read-only (nested tables too), and a lane hands the same table to every
/// call with the same claims or channel: nothing one call tries to do to them reaches another.
@Suite struct HookIsolationTests {
    static let rules = """
        tier "free" { max_channels = 3, messages_per_minute = 100, max_payload = 65536 }
        default_tier "free"
        channel "room:{id}" {
          kind = "shared",
          join = function(user, ch)
            -- Report what this call sees, then try to leave traces for later calls.
            local seen = tostring(user.role) .. "/" .. tostring(user.marked) .. "/" .. tostring(ch.id)
              .. "/" .. tostring(ch.marked) .. "/" .. tostring(getmetatable(user))
              .. "/" .. tostring(user.meta and user.meta.level)
            local attempts = {
              function() user.role = "admin" end,
              function() user.marked = true end,
              function() rawset(ch, "marked", true) end,
              function() ch.id = "other" end,
              function() if user.meta then user.meta.level = 99 else error("no meta") end end,
              function() setmetatable(user, { __index = function() return "ghost" end }) end,
            }
            local refused = 0
            for _, attempt in ipairs(attempts) do
              if not pcall(attempt) then refused = refused + 1 end
            end
            first_user = first_user or user  -- a reference kept across calls
            return false, seen .. "/" .. refused .. "/" .. first_user.role
          end,
        }
        channel "scribble:{id}" {
          kind = "shared",
          join = function(user, ch)
            user.note = "x"
            return true
          end,
        }
        """

    @Test func tablesDoNotCarryStateBetweenCalls() throws {
        let fixture = try RulesFixture(["a.lua": Self.rules])
        let engine = try fixture.engine { $0.lanes = 1 }
        var claims: Value.Object = ["role": "supplier", "sub": "u1", "meta": ["level": 1]]
        let first = Identity(subject: "u1", role: "supplier", expiresAt: 0, claims: claims)
        let room = try channel("room:7")
        let expected = Decision.deny("supplier/nil/7/nil/read-only/1/6/supplier")
        // The same identity and channel again and again: the lane hands over its kept tables.
        for _ in 0..<3 { #expect(engine.authorizeJoin(first, channel: room) == expected) }
        // An equal identity built separately, and then a different one.
        claims["sub"] = "u1"
        #expect(engine.authorizeJoin(Identity(subject: "u1", role: "supplier", expiresAt: 0, claims: claims), channel: room) == expected)
        #expect(engine.authorizeJoin(user(role: "couple", sub: "u2"), channel: room) == .deny("couple/nil/7/nil/read-only/nil/6/supplier"))
        #expect(engine.authorizeJoin(first, channel: room) == expected)
        #expect(engine.authorizeJoin(first, channel: try channel("room:8")) == .deny("supplier/nil/8/nil/read-only/1/6/supplier"))
    }

    @Test func aHookThatWritesToUserFailsWithALine() throws {
        let fixture = try RulesFixture(["a.lua": Self.rules])
        let errors = Mutex<[RulesError]>([])
        let engine = try fixture.engine {
            $0.lanes = 1
            $0.onHookError = { error in errors.withLock { $0.append(error) } }
        }
        let decision = engine.authorizeJoin(user(), channel: try channel("scribble:1"))
        #expect(!decision.isAllowed)
        let reported = errors.withLock { $0 }
        #expect(reported.count == 1)
        #expect(reported.first?.location == "\(fixture.url.lastPathComponent)/a.lua:29")
        #expect(reported.first?.message.hasSuffix("attempt to modify a read-only table") == true, "\(reported)")
    }

    @Test func keptTablesOutliveTheirCapacity() throws {
        let fixture = try RulesFixture([
            "a.lua": """
                tier "free" { max_channels = 3, messages_per_minute = 100, max_payload = 65536 }
                default_tier "free"
                channel "room:{id}" {
                  kind = "shared",
                  join = function(user, ch) return user.sub == ch.id, user.sub .. " is not " .. ch.id end,
                }
                """,
        ])
        let engine = try fixture.engine { $0.lanes = 1 }
        // More claims and channels than a lane keeps, twice round: every answer stays right.
        let count = Generation.KeptTables.capacity + 5
        let users = (0..<count).map { user(sub: "u\($0)") }
        let rooms = try (0..<count).map { try channel("room:u\($0)") }
        for _ in 0..<2 {
            for index in 0..<count {
                #expect(engine.authorizeJoin(users[index], channel: rooms[index]) == .allow)
                #expect(engine.authorizeJoin(users[index], channel: rooms[(index + 1) % count]) == .deny("u\(index) is not u\((index + 1) % count)"))
            }
        }
    }

    @Test func aFailedCallKeepsNothingWrong() throws {
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
