import Synchronization
import SwitchboardCore
import Testing
@_spi(Fuzzing) @testable import SwitchboardRules

@Suite struct RulesEngineTests {
    static let base = """
        tier "free" { max_channels = 3, messages_per_minute = 100, max_payload = 65536 }
        default_tier "free"
        """

    static func channelWith(join body: String) -> String {
        """
        channel "room:{id}" {
          kind = "shared",
          join = function(user, ch)
            \(body)
          end,
        }
        """
    }

    @Test func hooksSeeClaimsAndCaptures() throws {
        let rules = try RulesFixture([
            "a.lua": Self.base,
            "b.lua": Self.channelWith(join: #"if user.sub == "u1" and ch.id == "7" and ch.name == "room:7" then return true end return false, "nope: " .. tostring(user.sub)"#),
        ])
        let engine = try rules.engine()
        #expect(engine.authorizeJoin(user(sub: "u1"), channel: try channel("room:7")) == .allow)
        #expect(engine.authorizeJoin(user(sub: "u2"), channel: try channel("room:7")) == .deny("nope: u2"))
    }

    /// What a join hook returns, and the decision it makes (nil: the hook fails, with `mention`).
    @Test(arguments: [
        ("return true", Decision.allow, ""),
        ("return true, {}, 3", .allow, ""),
        ("return false", .deny("join refused by the rules for room:1"), ""),
        ("return", .deny("join refused by the rules for room:1"), ""),
        ("return nil, 'why'", .deny("why"), ""),
        ("return false, 42", .deny("42"), ""),
        ("return false, 1.5", .deny("1.5"), ""),
        ("return false, true", .deny("true"), ""),
        ("return false, setmetatable({}, { __tostring = function() return 'custom' end })", .deny("custom"), ""),
        ("return 1", nil, "channel room:{id}: the join hook must return true, or false and a reason (got number)"),
        ("return function() end", nil, "(got function)"),
        ("return {}", nil, "(got table)"),
        ("return 'yes'", nil, "(got string)"),
    ] as [(String, Decision?, String)])
    func answersBecomeDecisions(_ body: String, _ expected: Decision?, _ mention: String) throws {
        let failures = Mutex<[RulesError]>([])
        let rules = try RulesFixture(["a.lua": Self.base, "b.lua": Self.channelWith(join: body)])
        let engine = try rules.engine { options in
            options.onHookError = { error in failures.withLock { $0.append(error) } }
        }
        for _ in 0..<2 {
            let decision = engine.authorizeJoin(user(), channel: try channel("room:1"))
            if let expected {
                #expect(decision == expected)
                #expect(failures.withLock { $0.isEmpty })
            } else {
                #expect(decision == .deny("the rules could not decide (the operator can see why in the server log)"))
                let logged = failures.withLock { $0.last?.description ?? "" }
                #expect(logged.contains(mention), "operator saw: \(logged)")
            }
        }
    }

    /// Loops stop with either way of enforcing the budget.
    @Test(arguments: [true, false])
    func loopingHooksStopWatchedOrCounted(watchdog: Bool) throws {
        let failures = Mutex<[RulesError]>([])
        let rules = try RulesFixture(["a.lua": Self.base, "b.lua": Self.channelWith(join: "if ch.id == '1' then while true do end end return true")])
        let engine = try rules.engine { options in
            options.budgetWatchdog = watchdog
            options.onHookError = { error in failures.withLock { $0.append(error) } }
        }
        #expect(engine.authorizeJoin(user(), channel: try channel("room:1")) != .allow)
        #expect(engine.authorizeJoin(user(), channel: try channel("room:2")) == .allow)
        #expect(failures.withLock { $0.first?.message.contains("instruction budget of 200000 exceeded") } == true)
    }

    /// Hostile hooks deny with a clear message to the operator, and the engine keeps deciding.
    @Test(arguments: [
        ("while true do end", "budget"),
        ("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1024) end", "memory"),
        ("error('boom')", "boom"),
        ("os.execute('true')", "os"),
        ("io.open('/etc/passwd')", "io"),
        ("return load(string.char(27) .. 'Lua')()", "load"),
        ("return string.dump(function() end)", "dump"),
        ("require('socket')", "require"),
    ])
    func hostileHooksDenyAndTheEngineGoesOn(_ body: String, _ mention: String) throws {
        let failures = Mutex<[RulesError]>([])
        let rules = try RulesFixture(["a.lua": Self.base, "b.lua": Self.channelWith(join: body)])
        let engine = try rules.engine { options in
            options.memoryLimitBytes = 8 << 20
            options.onHookError = { error in failures.withLock { $0.append(error) } }
        }
        let decision = engine.authorizeJoin(user(), channel: try channel("room:1"))
        guard case .deny(let reason) = decision else {
            Issue.record("a hostile hook allowed the join")
            return
        }
        #expect(reason.contains("could not decide"))
        let logged = try #require(failures.withLock { $0.first })
        #expect(logged.code == .hookFailed)
        #expect(logged.description.lowercased().contains(mention), "operator saw: \(logged)")
        #expect(logged.description.contains("b.lua"), "operator saw no file: \(logged)")
        // The same lanes keep serving afterwards.
        #expect(engine.authorizeJoin(user(), channel: try channel("other:1")) == .deny("no rule matches channel other:1"))
        #expect(engine.authorizeJoin(user(), channel: try channel("room:1")) != .allow)
    }

    @Test(arguments: [
        ("channel \"x:{a}\" { kind = \"private\", join = function() return true end ", "syntax", "b.lua:1"),
        ("error('broken at load')", "broken at load", "b.lua:1"),
        ("event \"e\" { on = { \"x:*\" }, fields = { a = \"strnig\" } }", "unknown type \"strnig\"", "b.lua:1"),
        ("channel \"x::y\" { kind = \"private\", join = function() return true end }", "empty segment", "b.lua:1"),
        ("\n\nwhile true do end", "budget", "b.lua:3"),
        ("channel \"x:{a}\" { kind = \"secret\" }", "kind must be", "b.lua:1"),
        ("tier \"gold\" { max_channels = 0 }", "at least 1", "b.lua:1"),
        ("event \"t\" { on = { \"x:*\" }, rate = { per_minute = 0 } }", "rate.per_minute must be 1...1000000", "b.lua:1"),
        ("\nemit(\"x:1\", \"t\", {})", "emit is only available inside an event's on_publish hook", "b.lua:2"),
        ("event \"t\" { on = { \"x:*\" }, rate = { per_minute = 5, per = \"room\" } }", "rate.per must be", "b.lua:1"),
        ("channel \"x:{a}\" { kind = \"shared\", join = function() return true end, history = 5 }", "history must be false or a table", "b.lua:1"),
        ("channel \"x:{a}\" { kind = \"shared\", join = function() return true end, history = { messages = 0 } }", "history.messages must be a whole number in 1...1000", "b.lua:1"),
        ("channel \"x:{a}\" { kind = \"shared\", join = function() return true end, history = { seconds = 7200 } }", "history.seconds must be a whole number in 1...3600", "b.lua:1"),
        ("channel \"x:{a}\" { kind = \"shared\", join = function() return true end, history = { count = 5 } }", "history has an unknown field count", "b.lua:1"),
        ("\nrelation \"team\" { }", "relation \"team\": sql must be a query returning two columns", "b.lua:2"),
        ("relation \"team\" { sql = \"select a, b from t\", table = \"t\" }", "relation \"team\": unknown field table", "b.lua:1"),
        ("relation \"my-team\" { sql = \"select a, b from t\" }", "the name must be letters, digits and _", "b.lua:1"),
        ("relation \"team\" { sql = \"select a, b from t\", watch = { \"app.t\", 5 } }", "watch must be a list of table names", "b.lua:1"),
        ("relation \"team\" { sql = \"select a, b from t\", watch = { \"a.b.c\" } }", "watch must be a list of table names", "b.lua:1"),
        ("relation \"t\" { sql = \"select 1, 2\" }\nrelation \"t\" { sql = \"select 1, 2\" }", "relation \"t\" is declared twice", "b.lua:2"),
        ("relation \"team\" { sql = \"select a, b from t\", max_rows = 0 }", "max_rows must be a whole number from 1 to", "b.lua:1"),
        ("\ntable \"public.t\" { }", "table \"public.t\": read must be a function(user, row)", "b.lua:2"),
        ("table \"a.b.c\" { read = function() return true end }", "the name must be a table", "b.lua:1"),
        ("table \"t\" { read = function() return true end, write = 1 }", "unknown field write", "b.lua:1"),
        ("table \"t\" { read = function() return true end }\ntable \"public.t\" { read = function() return true end }", "table \"public.t\" is declared twice", "b.lua:2"),
        ("relation \"team\" { sql = \"select a, b from t\", watch = { \"app.t(a-b)\" } }", "each optionally with the column", "b.lua:1"),
        ("relation \"team\" { sql = \"select a, b from t\", watch = { \"app.t(a\" } }", "watch must be a list of table names", "b.lua:1"),
        (
            "relation \"a\" { sql = \"select 1, 2\", watch = { \"app.t(x)\" } }\nrelation \"b\" { sql = \"select 1, 2\", watch = { \"app.t(y)\" } }",
            "a table has one key column", "b.lua:2"
        ),
        ("relation \"team\" { sql = \"select a, b from t\", max_rows = \"lots\" }", "max_rows must be a whole number", "b.lua:1"),
    ])
    func brokenRulesFailTheLoadWithFileAndLine(_ text: String, _ mention: String, _ location: String) throws {
        let rules = try RulesFixture(["a.lua": Self.base, "b.lua": text])
        do {
            _ = try rules.engine()
            Issue.record("broken rules loaded")
        } catch let error as RulesLoadError {
            let all = error.description
            #expect(all.contains(mention), "errors: \(all)")
            #expect(all.contains(location), "errors: \(all)")
        }
    }

    @Test func aBrokenReloadKeepsTheOldRulesServing() throws {
        let rules = try RulesFixture(["a.lua": Self.base, "b.lua": Self.channelWith(join: "return true")])
        let engine = try rules.engine()
        try rules.write("b.lua", "channel \"room:{id}\" { kind = ")
        guard case .failure(let failure) = engine.reload() else {
            Issue.record("a syntax error replaced the rules")
            return
        }
        #expect(failure.description.contains("b.lua"))
        #expect(engine.status.generation == 1)
        #expect(engine.status.lastErrors.count == 1)
        #expect(engine.authorizeJoin(user(), channel: try channel("room:1")) == .allow)

        try rules.write("b.lua", Self.channelWith(join: #"return false, "closed""#))
        #expect(try engine.reload().get() == 2)
        #expect(engine.status.lastErrors.isEmpty)
        #expect(engine.authorizeJoin(user(), channel: try channel("room:1")) == .deny("closed"))
    }

    @Test func presenceNeedsTheChannelsConsent() throws {
        let rules = try RulesFixture([
            "a.lua": Self.base,
            "b.lua": """
                local yes = function() return true end
                channel "open:{id}" { kind = "shared", join = yes, presence = true }
                channel "closed:{id}" { kind = "shared", join = yes }
                channel "vip:{id}" { kind = "shared", join = yes,
                  presence = function(user, ch)
                    if user.sub == "anna" then return true end
                    return false, "only anna shows up in " .. ch.name
                  end }
                """,
        ])
        let engine = try rules.engine()
        #expect(engine.authorizePresence(user(), channel: try channel("open:1")) == .allow)
        #expect(engine.authorizePresence(user(), channel: try channel("closed:1")) == .deny("presence is not enabled on closed:1"))
        #expect(engine.authorizePresence(user(sub: "anna"), channel: try channel("vip:1")) == .allow)
        #expect(engine.authorizePresence(user(sub: "ben"), channel: try channel("vip:1")) == .deny("only anna shows up in vip:1"))
        #expect(engine.authorizePresence(user(), channel: try channel("nowhere:1")) == .deny("no rule matches channel nowhere:1"))
    }

    @Test func eventPolicyCarriesBatchAndRate() throws {
        let engine = try RulesEngine(directory: RulesFixture.defaultRules)
        let typing = engine.eventPolicy("user:typing", channel: try channel("collaboration:s1:c1"))
        #expect(typing.batch == BatchPolicy(windowMilliseconds: 100, keep: .latest, by: "user_id"))
        #expect(typing.rateLimit == EventRateLimit(perMinute: 1200, per: .user))
        #expect(engine.eventPolicy("comment:added", channel: try channel("collaboration:s1:c1")) == EventPolicy(derives: true))
        #expect(engine.eventPolicy("document:saved", channel: try channel("collaboration:s1:c1")) == .immediate)
        #expect(engine.eventPolicy("free-form", channel: try channel("collaboration:s1:c1")) == .immediate)
    }

    @Test func channelsDeclareTheirHistoryAndEventsWhetherTheyEnterIt() throws {
        let rules = try RulesFixture([
            "a.lua": Self.base,
            "b.lua": """
                channel "plain:{id}" { kind = "shared", join = function() return true end }
                channel "quiet:{id}" { kind = "shared", join = function() return true end, history = false }
                channel "short:{id}" { kind = "shared", join = function() return true end, history = { messages = 10, seconds = 60 } }
                event "ping" { on = { "plain:*", "quiet:*" }, replay = false }
                event "alarm" { on = { "plain:*", "quiet:*" }, critical = true }
                """,
        ])
        let engine = try rules.engine()
        let plain = try channel("plain:1")
        let quiet = try channel("quiet:1")
        #expect(engine.history(for: plain) == .standard)
        #expect(engine.history(for: quiet) == nil)
        #expect(engine.history(for: try channel("short:1")) == HistoryRetention(maxMessages: 10, maxAgeMilliseconds: 60_000))
        #expect(engine.history(for: try channel("nowhere:1")) == nil)
        #expect(engine.eventPolicy("ping", channel: plain).retention(on: engine.history(for: plain)) == nil, "replay = false")
        #expect(engine.eventPolicy("undeclared", channel: plain).retention(on: engine.history(for: plain)) == .standard)
        #expect(engine.eventPolicy("alarm", channel: quiet).retention(on: engine.history(for: quiet)) == .standard, "critical: always kept")
        #expect(engine.eventPolicy("undeclared", channel: quiet).retention(on: engine.history(for: quiet)) == nil)
    }

    @Test func emitsAreCheckedAndBadOnesReported() throws {
        let failures = Mutex<[RulesError]>([])
        let rules = try RulesFixture([
            "a.lua": Self.base,
            "b.lua": """
                channel "room:{id}" { kind = "shared", join = function() return true end }
                event "said" {
                  on = { "room:*" },
                  fields = { text = "string" },
                  on_publish = function(msg, user, ch)
                    emit("room:" .. ch.id .. "-copy", "said", msg.payload)   -- fine
                    emit("nowhere:1", "said", msg.payload)                    -- no rule
                    emit("room:2", "said", { text = 5 })                      -- bad field
                    emit("room:3", "unknown", {})                             -- undeclared
                    emit("bad name!", "said", msg.payload)                    -- invalid name
                    for n = 1, related("owners", ch.id)[1] == "u1" and 1 or 0 do emit("room:" .. n, "said", msg.payload) end
                  end,
                }
                """,
            "data/owners.json": #"{"7": ["u1"]}"#,
        ])
        let engine = try rules.engine { $0.onHookError = { error in failures.withLock { $0.append(error) } } }
        let derived = engine.derivedEvents(of: "said", payload: ["text": "hi"], on: try channel("room:7"), by: user())
        #expect(derived.map(\.0.rawValue) == ["room:7-copy", "room:1"])
        #expect(derived.allSatisfy { $0.1.payload == ["text": "hi"] })
        let reported = failures.withLock { $0.map(\.description) }
        #expect(reported.count == 4, "\(reported)")
        #expect(reported.contains { $0.contains("no rule matches channel nowhere:1") })
        #expect(reported.contains { $0.contains("field text must be string") })
        #expect(reported.contains { $0.contains("event unknown is not declared") })
        #expect(reported.contains { $0.contains("bad name! is not a valid channel name") })
        #expect(engine.eventPolicy("said", channel: try channel("room:7")).derives)
    }

    /// A relation's pairs replaced while the rules serve (as a database relation is refreshed)
    /// decide the very next join on every lane, without a reload; a reload reads the files again.
    @Test func aReplacedRelationDecidesTheNextJoinWithoutAReload() throws {
        let rules = try RulesFixture([
            "a.lua": """
                channel "team:{id}" { kind = "shared",
                  join = function(user, ch) return member("team", ch.id, user.sub), "not on team " .. ch.id end }
                """,
            "data/team.json": #"{"t1": ["u1"]}"#,
        ])
        let engine = try rules.engine()
        let room = try channel("team:t1")
        #expect(engine.authorizeJoin(user(sub: "u1"), channel: room) == .allow)
        #expect(engine.authorizeJoin(user(sub: "u2"), channel: room) == .deny("not on team t1"))
        engine.replaceRelation("team", with: [(a: "t1", b: "u2")])
        // Two lanes: each sees the new pairs.
        for _ in 0..<4 {
            #expect(engine.authorizeJoin(user(sub: "u1"), channel: room) == .deny("not on team t1"))
            #expect(engine.authorizeJoin(user(sub: "u2"), channel: room) == .allow)
        }
        #expect(engine.relationInfo.mapValues(\.rows) == ["team": 1])
        engine.replaceRelation("team", with: [])
        #expect(engine.authorizeJoin(user(sub: "u2"), channel: room) == .deny("not on team t1"))
        #expect(engine.relationInfo.mapValues(\.rows) == ["team": 0])
        _ = engine.reload()
        #expect(engine.authorizeJoin(user(sub: "u1"), channel: room) == .allow)
    }

    @Test func relationsDeclaredFromTheDatabaseAreRead() throws {
        let rules = try RulesFixture([
            "a.lua": """
                relation "supplier_team" {
                  sql = [[select supplier_id, user_id from app.supplier_team]],
                  watch = { "app.supplier_team" },
                }
                relation "form_owner" { sql = "select form_id, supplier_id from forms", watch = { "forms(form_id)", "app.extra" } }
                """
        ])
        let engine = try rules.engine()
        let declared = engine.rules.relations
        #expect(declared.keys.sorted() == ["form_owner", "supplier_team"])
        #expect(declared["supplier_team"]?.sql == "select supplier_id, user_id from app.supplier_team")
        #expect(declared["supplier_team"]?.watch == ["app.supplier_team"])
        #expect(declared["supplier_team"]?.location.hasSuffix(".lua:1") == true)
        #expect(declared["form_owner"]?.watch == ["forms", "app.extra"])
        #expect(declared["form_owner"]?.keyColumns == ["forms": "form_id"])
        #expect(declared["supplier_team"]?.keyColumns == [:])
        #expect(declared["form_owner"]?.maxRows == RuleSet.Relation.defaultMaxRows)
    }

    /// `table "schema.name" { read = function(user, row) ... end }` decides who sees a row; a
    /// table without one is denied naming the declaration to add; `table` stays Lua's table
    /// library; a hook that fails denies and is reported at its line.
    @Test func tableRulesDecideWhoSeesARow() throws {
        let failures = Mutex<[RulesError]>([])
        let rules = try RulesFixture([
            "a.lua": Self.base,
            "b.lua": """
                local owners = {}
                table.insert(owners, "s1")
                table "form_responses" {
                  read = function(user, row)
                    if row.supplier_id == owners[1] and user.supplier_id == "s1" then return true end
                    return false, "not your form"
                  end,
                }
                table "app.broken" { read = function(user, row) return row.missing.field end }
                """,
        ])
        let engine = try rules.engine { options in options.onHookError = { error in failures.withLock { $0.append(error) } } }
        #expect(engine.rules.tables.keys.sorted() == ["app.broken", "public.form_responses"])
        #expect(engine.rules.tables["public.form_responses"]?.location.hasSuffix("b.lua:3") == true)
        #expect(engine.hasRowRule(table: "public.form_responses") && engine.hasRowRule(table: "form_responses"))
        #expect(!engine.hasRowRule(table: "public.invoices"))
        let row: Value = ["id": 1, "supplier_id": "s1"]
        #expect(engine.authorizeRow(user(supplier: "s1"), table: "public.form_responses", row: row) == .allow)
        #expect(engine.authorizeRow(user(supplier: "s2"), table: "public.form_responses", row: row) == .deny("not your form"))
        #expect(
            engine.authorizeRow(user(supplier: "s1"), table: "public.invoices", row: row)
                == .deny("no rule for table public.invoices: declare table \"public.invoices\" { read = function(user, row) ... end }"))
        #expect(engine.authorizeRow(user(supplier: "s1"), table: "app.broken", row: row) != .allow)
        let reported = failures.withLock { $0 }
        #expect(reported.count == 1 && reported.first?.location?.hasSuffix("b.lua:9") == true, "\(reported)")
    }

    @Test func transformsRewriteThePayloadOrRefuse() throws {
        let failures = Mutex<[RulesError]>([])
        let rules = try RulesFixture([
            "a.lua": Self.base,
            "b.lua": """
                channel "room:{id}" { kind = "shared", join = function() return true end }
                event "shout" { on = { "room:*" }, fields = { text = "string" },
                  transform = function(msg, user, ch)
                    return { text = string.upper(msg.payload.text), by = user.sub, room = ch.id } end }
                event "keep" { on = { "room:*" }, transform = function() return nil end }
                event "wrong" { on = { "room:*" }, transform = function() return "text" end }
                event "breaks" { on = { "room:*" }, fields = { text = "string" }, transform = function() return { text = 5 } end }
                event "fails" { on = { "room:*" }, transform = function() error("nope") end }
                """,
        ])
        let engine = try rules.engine { $0.onHookError = { error in failures.withLock { $0.append(error) } } }
        let room = try channel("room:7")
        #expect(engine.eventPolicy("shout", channel: room).transforms)
        #expect(
            engine.transform("shout", payload: ["text": "hi"], on: room, by: user(sub: "anna"))
                == .replaced(["by": "anna", "room": "7", "text": "HI"]))
        #expect(engine.transform("keep", payload: ["x": 1], on: room, by: user()) == .unchanged)
        for event in ["wrong", "breaks", "fails"] {
            guard case .refused(let reason) = engine.transform(event, payload: ["text": "a"], on: room, by: user()) else {
                Issue.record("\(event) was not refused")
                continue
            }
            #expect(reason.contains("could not transform \(event)"))
        }
        let reported = failures.withLock { $0.map(\.description) }
        #expect(reported.count == 3, "\(reported)")
        #expect(reported.contains { $0.contains("transform must return a table") })
        #expect(reported.contains { $0.contains("field text must be string") })
        #expect(reported.contains { $0.contains("nope") })
    }

    @Test func undeclaredEventsAreRefusedByDefault() throws {
        let rules = try RulesFixture(["a.lua": Self.base, "b.lua": Self.channelWith(join: "return true")])
        let engine = try rules.engine()
        #expect(engine.authorizeSend(user(), channel: try channel("room:1"), event: "x", payload: nil) == .deny("event x is not declared in the rules"))
    }

    @Test func testsFolderIsNotLoaded() throws {
        let rules = try RulesFixture(["a.lua": Self.base, "tests/t.lua": "error('tests are not rules')"])
        _ = try rules.engine()
    }

    @Test(arguments: [("collaboration:*", "collaboration:s1:c1", true), ("collaboration:*", "collaboration", false),
        ("form:responses:*", "form:responses:f1", true), ("form:responses:*", "form:responses:f1:x", true),
        ("a:{x}:b", "a:1:b", true), ("a:{x}:b", "a:1:c", false), ("a:{x}", "a:1:2", false),
        ("a:*:b", "a:xyz:b", true), ("a:*:b", "a:b", false), ("ab:c", "a:c", false), ("a:c", "ab:c", false),
        ("ab", "abc", false), ("abc", "ab", false), ("a:b", "a:b:c", false), ("*", "x", true), ("*", "x:y", true),
        ("{x}", "x:y", false), ("supplier:dashboard:{id}", "supplier:dashboards:s1", false),
        ("supplier:dashboard:{id}", "supplier:dashboard:s1", true)])
    func patterns(_ pattern: String, _ name: String, _ matches: Bool) throws {
        let compiled = try ChannelPattern(pattern)
        let name = try channel(name)
        #expect((compiled.match(name) != nil) == matches)
        #expect(compiled.matches(name) == matches)
    }
}

@Suite struct NameTableTests {
    @Test func findsEveryNameAndNothingElse() {
        var names: [String: Int] = [:]
        for index in 0..<100 { names["event:\(index):" + String(repeating: "x", count: index % 20)] = index }
        let table = NameTable(names)
        for (name, index) in names { #expect(table[name] == index) }
        #expect(table["event:1"] == nil)
        #expect(table[""] == nil)
        #expect(NameTable<Int>([:])["x"] == nil)
    }
}
