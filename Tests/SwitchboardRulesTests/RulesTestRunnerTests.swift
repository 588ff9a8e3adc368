import Foundation
import SwitchboardCore
import Testing
@testable import SwitchboardRules

/// `rules test`: the default rules' own tests pass, and failures point at the right line.
@Suite struct RulesTestRunnerTests {
    static let rules = """
        tier "free" { max_channels = 3, messages_per_minute = 100, max_payload = 65536 }
        tier "paid" { max_channels = 10 }
        default_tier "free"
        channel "room:{id}" {
          kind = "shared",
          join = function(user, ch)
            if user.sub == "u" .. ch.id then return true end
            return false, "room " .. ch.id .. " is for u" .. ch.id
          end,
        }
        event "note" { on = { "room:*" }, fields = { text = "string" } }
        """

    func run(_ tests: [String: String]) throws -> RulesTestReport {
        var files = ["rules.lua": Self.rules]
        for (name, text) in tests { files["tests/\(name)"] = text }
        return try RulesTestRunner(directory: RulesFixture(files).url.path).run()
    }

    @Test func theDefaultRulesPassTheirOwnTests() throws {
        let report = try RulesTestRunner(directory: RulesFixture.defaultRules).run()
        #expect(report.failures.isEmpty, "\(report.failures.map(\.description).joined(separator: "\n"))")
        #expect(report.passed > 0)
        #expect(report.succeeded)
        #expect(report.files.map { $0.split(separator: "/").last.map(String.init) ?? $0 }.contains("channels_test.lua"))
    }

    @Test func aWrongExpectationFailsAtItsLine() throws {
        let report = try run([
            "wrong_test.lua": """
                local u1 = { sub = "u1", role = "supplier" }
                expect_join(u1, "room:1", true)
                expect_join(u1, "room:2", true)
                expect_join(u1, "room:1", false)
                """
        ])
        #expect(report.summary == "1 passed, 2 failed")
        let failures = report.failures
        try #require(failures.count == 2)
        #expect(failures[0].file.hasSuffix("/tests/wrong_test.lua"))
        #expect(failures[0].line == 3)
        #expect(failures[0].kind == .join)
        #expect(failures[0].message == "expected join of room:2 by supplier u1 to be allowed, but it was denied: room 2 is for u2")
        #expect(failures[0].description.hasSuffix("tests/wrong_test.lua:3: expected join of room:2 by supplier u1 to be allowed, but it was denied: room 2 is for u2"))
        #expect(failures[1].line == 4)
        #expect(failures[1].message.contains("to be denied, but it was allowed"))
        #expect(!report.succeeded)
    }

    @Test func sendLimitsReasonsAndTestNamesAreChecked() throws {
        let report = try run([
            "cases_test.lua": """
                local u1 = { sub = "u1", role = "supplier", tier = "paid" }
                test("sends", function()
                  expect_send(u1, "room:1", "note", { text = "hi" }, true)
                  expect_send(u1, "room:1", "note", { text = 5 }, false, "field text must be string")
                  expect_send(u1, "room:1", "note", {}, false, "some other reason")
                  expect_send(u1, "room:1", "undeclared", nil, false, "not declared")
                end)
                test("limits", function()
                  expect_limits(u1, { max_channels = 10, messages_per_minute = 100 })
                  expect_limits({ sub = "u2" }, { max_channels = 10, max_payload = 65536 })
                end)
                """
        ])
        #expect(report.summary == "4 passed, 2 failed")
        let failures = report.failures
        try #require(failures.count == 2)
        #expect(failures[0].line == 5)
        #expect(failures[0].test == "sends")
        #expect(failures[0].message.contains("with a reason containing \"some other reason\", but the reason was: event note: field text"))
        #expect(failures[1].line == 10)
        #expect(failures[1].kind == .limits)
        #expect(failures[1].message == "expected authenticated u2 to have max_channels = 10, but it is 3")
    }

    @Test func aLuaErrorIsOneFailureAtItsLine() throws {
        let report = try run([
            "a_test.lua": """
                local u1 = { sub = "u1" }
                test("broken block", function()
                  expect_join(u1, "room:1", true)
                  local missing = nil
                  return missing.field
                end)
                expect_join(u1, "room:1", true)
                error("stop here")
                expect_join(u1, "room:1", true)
                """,
            "b_test.lua": "expect_join({ sub = 'u1' }, 'room:1', true)\nexpect_join({ sub = 'u1' }, 'room:1', 'yes')\n",
            "c_test.lua": "expect_join({ sub = 'u1' }, 'room:1', true\n",
        ])
        #expect(report.files.count == 3)
        #expect(report.summary == "3 passed, 4 failed")
        let failures = report.failures
        try #require(failures.count == 4)
        #expect(failures[0].kind == .error)
        #expect(failures[0].file.hasSuffix("tests/a_test.lua"))
        #expect(failures[0].line == 5)
        #expect(failures[0].test == "broken block")
        #expect(failures[0].message.contains("attempt to index a nil value"))
        #expect(failures[1].line == 8)
        #expect(failures[1].message == "error: stop here")
        // A usage mistake is raised at the test's own line.
        #expect(failures[2].file.hasSuffix("tests/b_test.lua"))
        #expect(failures[2].line == 2)
        #expect(failures[2].message.contains("allowed must be true or false"))
        #expect(failures[3].file.hasSuffix("tests/c_test.lua"))
        #expect(failures[3].message.contains("syntax error"))
    }

    @Test(arguments: [
        ("local f = io.open('/etc/passwd') expect_join({ sub = 'u1' }, 'room:1', f ~= nil)", "io"),
        ("os.execute('touch /tmp/switchboard-sandbox-escape')", "os"),
        ("require('io')", "require"),
        ("dofile('/etc/passwd')", "dofile"),
        ("debug.getinfo(1)", "debug"),
        ("while true do end", "budget"),
    ])
    func testFilesAreSandboxed(_ text: String, _ mention: String) throws {
        let report = try run(["escape_test.lua": text])
        #expect(report.passed == 0)
        let failure = try #require(report.failures.first)
        #expect(report.failures.count == 1)
        #expect(failure.kind == .error)
        #expect(failure.line == 1)
        #expect(failure.message.contains(mention), "got: \(failure)")
    }

    @Test func rulesThatDoNotLoadAreReportedNotTested() throws {
        let fixture = try RulesFixture(["rules.lua": "channel \"room:{id}\" { kind = ", "tests/t.lua": "expect_join({}, 'room:1', true)"])
        #expect(throws: RulesLoadError.self) { try RulesTestRunner(directory: fixture.url.path).run() }
    }

    @Test func noTestsIsNotSuccess() throws {
        let report = try run([:])
        #expect(report.cases.isEmpty)
        #expect(report.summary == "0 passed, 0 failed")
        #expect(!report.succeeded)
    }

    @Test func aHookThatFailsFailsTheCase() throws {
        let fixture = try RulesFixture([
            "rules.lua": #"""
                channel "room:{id}" { kind = "shared", join = function(user, ch) return user.nothing.field end }
                """#,
            "tests/t.lua": "expect_join({ sub = 'u1' }, 'room:1', false)",
        ])
        let report = try RulesTestRunner(directory: fixture.url.path).run()
        let failure = try #require(report.failures.first)
        #expect(failure.message.contains("a hook failed"))
        #expect(failure.message.contains("rules.lua:1"))
    }

    @Test func claimsBecomeAnIdentity() throws {
        let identity = try RulesTestRunner.Session.identity(
            from: ["sub": "u1", "tier": "scale", "supplier_id": "s1", "form_ids": ["f1", "f2"]], in: .join)
        #expect(identity.subject == "u1")
        #expect(identity.role == "authenticated")
        #expect(identity.tier == "scale")
        #expect(identity.supplierID == "s1")
        #expect(identity.expiresAt > Date().timeIntervalSince1970 + 365 * 86400)
        #expect(identity.claims["form_ids"] == ["f1", "f2"])
        #expect(RulesTestRunner.Session.summary(identity) == "authenticated u1 (form_ids=[f1,f2], supplier_id=s1, tier=scale)")
    }

    /// `given_relation` gives a relation the rules declare from the database fixture rows (in
    /// either shape), for the rest of its file only; bad rows are an error at the call's line.
    @Test func givenRelationSetsFixtureRowsForOneFile() throws {
        let rules = """
            channel "team:{id}" { kind = "shared",
              join = function(user, ch) return member("supplier_team", ch.id, user.sub), "not on team " .. ch.id end }
            relation "supplier_team" { sql = "select supplier_id, user_id from app.supplier_team" }
            """
        let report = try RulesTestRunner(
            directory: RulesFixture([
                "rules.lua": rules,
                "data/supplier_team.json": #"{"s1": ["from-file"]}"#,
                "tests/a_test.lua": """
                    local zoe = { sub = "zoe" }
                    expect_join({ sub = "from-file" }, "team:s1", true)
                    given_relation("supplier_team", { { "s1", "zoe" }, { "s2", 42 } })
                    expect_join(zoe, "team:s1", true)
                    expect_join({ sub = "42" }, "team:s2", true)
                    expect_join({ sub = "from-file" }, "team:s1", false, "not on team s1")
                    given_relation("supplier_team", { s3 = { "zoe" } })
                    expect_join(zoe, "team:s3", true)
                    expect_join(zoe, "team:s1", false)
                    given_relation("supplier_team", {})
                    expect_join(zoe, "team:s3", false)
                    test("bad rows", function() given_relation("supplier_team", { { "s1" } }) end)
                    """,
                "tests/b_test.lua": """
                    expect_join({ sub = "from-file" }, "team:s1", true)
                    expect_join({ sub = "zoe" }, "team:s3", false)
                    """,
            ]).url.path
        ).run()
        #expect(report.summary == "9 passed, 1 failed", "\(report.cases.map(\.description).joined(separator: "\n"))")
        let failure = try #require(report.failures.first)
        #expect(failure.line == 12)
        #expect(failure.message.contains(#"given_relation("supplier_team", rows): every entry must be an [a, b] pair"#), "\(failure)")
    }
}
