import Testing

@testable import SwitchboardLua

@Suite struct LuaValueTests {
    static let roundTrips: [LuaValue] = [
        true, false, 0, 42, -7, .integer(.max), .integer(.min), 1.5, 1.0, -0.25, 1e300, .number(.infinity),
        "", "plain", "héllo wörld 🎉 日本語", "nul\u{0}inside", "\u{7F}\u{80}",
        [], [1, 2, 3], ["a", 1, 2.5, false],
        ["name": "x", "count": 3, "ratio": 0.5, "ok": true],
        ["array": [1, [2, [3, [4]]]], "object": ["inner": ["deep": "yes"]]],
        .table(LuaTable(array: [1, 2], fields: ["x": "y"])),
        .table(LuaTable(array: [1, .nil, 3])),
    ]

    @Test(arguments: roundTrips)
    func valuesRoundTrip(value: LuaValue) throws {
        let lua = try makeState()
        try lua.load(source: "function identity(...) return ... end", chunkName: "id.lua")
        #expect(try lua.call(global: "identity", [value]) == [value])
        try lua.setGlobal("stored", value)
        #expect(try lua.globalValue("stored") == value)
    }

    @Test func nilRoundTripsAsAResultButNotAsAGlobal() throws {
        let lua = try makeState()
        try lua.load(source: "function identity(...) return ... end", chunkName: "id.lua")
        #expect(try lua.call(global: "identity", [.nil, 1, .nil]) == [.nil, 1, .nil])
        #expect(try lua.call(global: "identity", []) == [])
    }

    @Test func integersAndFloatsStayDistinct() throws {
        let lua = try makeState()
        let results = try lua.load(source: "return 3, 3.0, 7 // 2, 7 / 2, 2^53, math.maxinteger, 10 // 0.0", chunkName: "n.lua")
        #expect(results == [.integer(3), .number(3), .integer(3), .number(3.5), .number(9_007_199_254_740_992), .integer(.max), .number(.infinity)])
        #expect(results[1].integer == 3)
        #expect(results[3].integer == nil)
        #expect(results[0].number == 3)
        try lua.load(source: "function kind(x) return math.type(x) end", chunkName: "k.lua")
        #expect(try lua.call(global: "kind", [.integer(2)]) == ["integer"])
        #expect(try lua.call(global: "kind", [.number(2)]) == ["float"])
    }

    @Test func tablesReadFromLuaSplitIntoArrayAndFields() throws {
        let lua = try makeState()
        let value = try #require(try lua.load(source: "return { 'a', 'b', x = 1, [3] = 'c', y = { z = true } }", chunkName: "t.lua").first)
        let table = try #require(value.table)
        #expect(table.array == ["a", "b", "c"])
        #expect(table.fields == ["x": 1, "y": ["z": true]])
        #expect(value["y"]?["z"] == true)
        #expect(try lua.load(source: "return {}", chunkName: "e.lua") == [.table(LuaTable())])
        #expect(try lua.load(source: "return {1, nil, 3}", chunkName: "h.lua") == [.table(LuaTable(array: [1, .nil, 3]))])
    }

    @Test(arguments: [
        ("local t = {} t.self = t return t", "a table contains itself (a cycle)"),
        ("local a, b = {}, {} a.b = b b.list = {a} return a", "a table contains itself (a cycle)"),
        ("local t = {} for i = 1, 100 do t = {t} end return t", "tables nest deeper than 64 levels"),
        ("local t = {} for i = 1, 40 do t = {t, t} end return t", "the value has more than 100000 elements (values and keys)"),
        ("return {[10] = 1}", "a table is too sparse to read as a list (largest index 10, 1 present)"),
        ("return {[0] = 1}", "table key 0 is neither a string nor a positive integer"),
        ("return {[1.5] = 1}", "table key 1.5 is neither a string nor a positive integer"),
        ("return {[true] = 1}", "a table key of type boolean is not supported (only strings and 1...n)"),
        ("return {[{}] = 1}", "a table key of type table is not supported (only strings and 1...n)"),
    ])
    func unreadableValuesFailCleanly(source: String, message: String) throws {
        let lua = try makeState()
        let error = try #require(luaError { () throws(LuaError) in try lua.load(source: source, chunkName: "v.lua") })
        #expect(error.code == .typeMismatch)
        #expect(error.message == "the value cannot be read from Lua: \(message)")
        #expect(try lua.load(source: "return 'usable'", chunkName: "after.lua") == ["usable"])
    }

    @Test func sharedSubtablesAreNotCycles() throws {
        let lua = try makeState()
        let result = try lua.load(source: "local s = {1} return {a = s, b = s, c = {s, s}}", chunkName: "dag.lua")
        #expect(result == [["a": [1], "b": [1], "c": [[1], [1]]]])
    }

    @Test func tooDeepSwiftValuesAreRefusedBeforeReachingLua() throws {
        let lua = try makeState { $0.maxValueDepth = 8 }
        var value: LuaValue = 1
        for _ in 0..<9 { value = [value] }
        try lua.load(source: "function identity(...) return ... end", chunkName: "id.lua")
        let error = try #require(luaError { () throws(LuaError) in try lua.call(global: "identity", [value]) })
        #expect(error.code == .typeMismatch)
        #expect(error.message == "tables nest deeper than 8 levels")
        guard case .table(let table) = value, let inner = table.array.first else { return }
        #expect(try lua.call(global: "identity", [inner]) == [inner])
    }

    @Test func invalidUTF8IsRepaired() throws {
        let lua = try makeState()
        #expect(try lua.load(source: "return 'a\\xffb'", chunkName: "u.lua") == ["a\u{FFFD}b"])
    }

    @Test func nilFieldsMeanAbsent() throws {
        var table: LuaTable = ["a": 1]
        table["a"] = .nil
        table["b"] = 2
        #expect(table == ["b": 2])
        let lua = try makeState()
        try lua.load(source: "function count(t) local n = 0 for _ in pairs(t) do n = n + 1 end return n end", chunkName: "c.lua")
        #expect(try lua.call(global: "count", [.table(LuaTable(fields: ["x": .nil, "y": 1]))]) == [1])
    }

    @Test func accessorsAndTruth() {
        let value: LuaValue = ["s": "x", "b": false, "n": 2.5, "i": 4]
        #expect(value["s"]?.string == "x")
        #expect(value["b"]?.boolean == false)
        #expect(value["n"]?.number == 2.5)
        #expect(value["i"]?.integer == 4)
        #expect(value["missing"] == nil)
        #expect(LuaValue.nil.isTruthy == false)
        #expect(LuaValue.boolean(false).isTruthy == false)
        #expect(LuaValue.integer(0).isTruthy)
        #expect(LuaValue.string("").isTruthy)
        #expect(LuaValue.integer(1).typeName == "number")
        #expect(value.description == "{b = false, i = 4, n = 2.5, s = \"x\"}")
    }
}
