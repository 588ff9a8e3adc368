import Testing

@testable import SwitchboardLua

/// `LuaState.call(_:arguments:results:)`: arguments written straight onto the tape, results read in place.
@Suite struct LuaArgumentsTests {
    func echo(_ lua: LuaState) throws -> LuaFunctionRef {
        try lua.load(source: "function echo(...) return ... end", chunkName: "echo.lua")
        return try #require(try lua.globalValue("echo")?.function)
    }

    @Test func writtenValuesArriveAsTheyWouldAsLuaValues() throws {
        let lua = try makeState()
        let echo = try echo(lua)
        let values = try lua.call(echo) { arguments throws(LuaError) in
            try arguments.write("s")
            try arguments.write(Int64(7))
            try arguments.write(2.5)
            try arguments.write(true)
            try arguments.writeNil()
            try arguments.write("a:b".split(separator: ":")[1])
            try arguments.beginTable()
            try arguments.write(Int64(1))
            try arguments.write("two")
            try arguments.key("name")
            try arguments.write("x")
            try arguments.key("inner")
            try arguments.beginTable()
            try arguments.key("deep")
            try arguments.write(false)
            try arguments.endTable()
            try arguments.endTable()
        } results: { results in
            (results.count, (0..<7).map { results.value(at: $0) })
        }
        #expect(values.0 == 7)
        #expect(values.1 == ["s", 7, 2.5, true, .nil, "b", .table(LuaTable(array: [1, "two"], fields: ["name": "x", "inner": ["deep": false]]))])
    }

    @Test func resultsReadInPlace() throws {
        let lua = try makeState()
        try lua.load(source: "function f() return {1, {2, 3}, k = 'v'}, false, 'reason' end", chunkName: "f.lua")
        let f = try #require(try lua.globalValue("f")?.function)
        let read = try lua.call(f) { _ throws(LuaError) in } results: { results in
            (results.count, results.boolean(at: 1), results.string(at: 2), results.string(at: 0), results.boolean(at: 5))
        }
        #expect(read.0 == 3)
        #expect(read.1 == false)
        #expect(read.2 == "reason")
        #expect(read.3 == nil)
        #expect(read.4 == nil)
    }

    @Test func malformedArgumentsFailBeforeLuaRuns() throws {
        let lua = try makeState { $0.maxValueDepth = 3 }
        try lua.load(source: "calls = 0 function count() calls = calls + 1 end", chunkName: "c.lua")
        let count = try #require(try lua.globalValue("count")?.function)
        let misuses: [(String, (inout LuaArguments) throws(LuaError) -> Void)] = [
            ("element after field", { a throws(LuaError) in
                try a.beginTable(); try a.key("k"); try a.write(Int64(1)); try a.write(Int64(2)); try a.endTable()
            }),
            ("key outside a table", { a throws(LuaError) in try a.key("k") }),
            ("key without a value", { a throws(LuaError) in try a.beginTable(); try a.key("k"); try a.endTable() }),
            ("unclosed table", { a throws(LuaError) in try a.beginTable() }),
            ("close without open", { a throws(LuaError) in try a.endTable() }),
            ("too deep", { a throws(LuaError) in
                for _ in 0..<4 { try a.beginTable() }
                for _ in 0..<4 { try a.endTable() }
            }),
        ]
        for (name, misuse) in misuses {
            let error = luaError { () throws(LuaError) in try lua.call(count, arguments: misuse) { _ in () } }
            #expect(error?.code == .typeMismatch, "\(name)")
        }
        #expect(try lua.globalValue("calls") == 0)
        // The state is still usable afterwards.
        try lua.call(count) { _ throws(LuaError) in } results: { _ in () }
        #expect(try lua.globalValue("calls") == 1)
    }

    @Test func theBudgetAndErrorsApply() throws {
        let lua = try makeState { $0.instructionBudget = 10_000 }
        try lua.load(source: "function spin() while true do end end function boom() error('no') end", chunkName: "b.lua")
        let spin = try #require(try lua.globalValue("spin")?.function)
        let boom = try #require(try lua.globalValue("boom")?.function)
        let spun = luaError { () throws(LuaError) in try lua.call(spin) { _ throws(LuaError) in } results: { _ in () } }
        #expect(spun?.code == .budgetExceeded)
        let failed = luaError { () throws(LuaError) in try lua.call(boom) { _ throws(LuaError) in } results: { _ in () } }
        #expect(failed?.description == "b.lua:1: no")
    }
}

/// Read-only tables, and kept ones: the same read-only table handed to later calls.
@Suite struct LuaReadOnlyTableTests {
    static let probe = """
        function probe(t)
          local keys = {}
          for k, v in pairs(t) do keys[#keys + 1] = k .. "=" .. (type(v) == "table" and "table" or tostring(v)) end
          table.sort(keys)
          local list = {}
          for i, v in ipairs(t.list) do list[i] = v end
          local refused = {}
          local attempts = {
            set = function() t.name = "changed" end,
            add = function() t.extra = 1 end,
            nested = function() t.inner.n = 0 end,
            raw = function() rawset(t, "name", "raw") end,
            rawnested = function() rawset(t.inner, "n", 0) end,
            insert = function() table.insert(t.list, "x") end,
            meta = function() setmetatable(t, nil) end,
          }
          for name, attempt in pairs(attempts) do
            local ok, message = pcall(attempt)
            if not ok then refused[#refused + 1] = name .. ":" .. message end
          end
          table.sort(refused)
          return table.concat(keys, ","), table.concat(list, ","), #t.list, tostring(getmetatable(t)),
            t.inner.n, rawget(t, "name"), next(t), table.concat(refused, ";")
        end
        """

    static func writeSample(_ arguments: inout LuaArguments, keepingAs slot: Int? = nil) throws(LuaError) {
        try arguments.beginReadOnlyTable(keepingAs: slot)
        try arguments.key("name")
        try arguments.write("kept")
        try arguments.key("inner")
        try arguments.beginTable()
        try arguments.key("n")
        try arguments.write(Int64(5))
        try arguments.endTable()
        try arguments.key("list")
        try arguments.beginTable()
        try arguments.write("a")
        try arguments.write("b")
        try arguments.endTable()
        try arguments.endTable()
    }

    @Test func readOnlyTablesReadLikeTablesAndRefuseEveryWrite() throws {
        let lua = try makeState()
        try lua.load(source: Self.probe, chunkName: "p.lua")
        let probe = try #require(try lua.globalValue("probe")?.function)
        let seen = try lua.call(probe) { arguments throws(LuaError) in try Self.writeSample(&arguments) } results: { results in
            (0..<8).map { results.value(at: $0) }
        }
        #expect(seen[0] == "inner=table,list=table,name=kept")
        #expect(seen[1] == "a,b")
        #expect(seen[2] == 2)
        #expect(seen[3] == "read-only")
        #expect(seen[4] == 5)
        #expect(seen[5] == .nil)
        #expect(seen[6] == .nil)
        let refused = seen[7].string?.split(separator: ";").map(String.init) ?? []
        #expect(refused.map { $0.split(separator: ":")[0] } == ["add", "insert", "meta", "nested", "raw", "rawnested", "set"])
        #expect(refused.contains { $0.hasPrefix("meta:") && $0.hasSuffix("cannot change a protected metatable") })
        #expect(refused.contains("set:p.lua:9: attempt to modify a read-only table"))
        #expect(refused.filter { $0.hasSuffix("attempt to modify a read-only table") }.count == 6, "\(refused)")
    }

    @Test func aKeptTableIsTheSameUnchangedTableInLaterCalls() throws {
        let lua = try makeState()
        try lua.load(source: Self.probe + "\nfunction same(t) local was = last last = t return rawequal(was, t), t.name, t.inner.n end", chunkName: "p.lua")
        let probe = try #require(try lua.globalValue("probe")?.function)
        let same = try #require(try lua.globalValue("same")?.function)
        _ = try lua.call(probe) { arguments throws(LuaError) in try Self.writeSample(&arguments, keepingAs: 3) } results: { _ in () }
        for _ in 0..<2 {
            let kept = try lua.call(probe) { arguments throws(LuaError) in try arguments.writeKept(3) } results: { $0.value(at: 0) }
            #expect(kept == "inner=table,list=table,name=kept")
        }
        _ = try lua.call(same) { arguments throws(LuaError) in try arguments.writeKept(3) } results: { _ in () }
        let again = try lua.call(same) { arguments throws(LuaError) in try arguments.writeKept(3) } results: { results in
            (results.boolean(at: 0), results.string(at: 1), results.value(at: 2))
        }
        #expect(again.0 == true)
        #expect(again.1 == "kept")
        #expect(again.2 == 5)
    }

    @Test func readingOneBackGivesItsContentsEvenWithMetafieldNames() throws {
        let lua = try makeState()
        let echo = try LuaArgumentsTests().echo(lua)
        for withMetaName in [false, true] {
            let value = try lua.call(echo) { arguments throws(LuaError) in
                try arguments.beginReadOnlyTable()
                try arguments.key("a")
                try arguments.write(Int64(1))
                if withMetaName {
                    try arguments.key("__index")
                    try arguments.write("claim")
                }
                try arguments.key("list")
                try arguments.beginTable()
                try arguments.write(true)
                try arguments.endTable()
                try arguments.endTable()
            } results: { $0.value(at: 0) }
            var fields: [String: LuaValue] = ["a": 1, "list": [true]]
            if withMetaName { fields["__index"] = "claim" }
            #expect(value == .table(LuaTable(fields: fields)))
        }
        try lua.load(
            source: """
                function meta(t) local n = 0 for k in pairs(t) do n = n + 1 end return t.__index, n, t.a end
                """, chunkName: "m.lua")
        let meta = try #require(try lua.globalValue("meta")?.function)
        let read = try lua.call(meta) { arguments throws(LuaError) in
            try arguments.beginReadOnlyTable()
            try arguments.key("__index")
            try arguments.write("claim")
            try arguments.key("a")
            try arguments.write(Int64(1))
            try arguments.endTable()
        } results: { ($0.string(at: 0), $0.value(at: 1), $0.value(at: 2)) }
        #expect(read.0 == "claim")
        #expect(read.1 == 2)
        #expect(read.2 == 1)
    }

    @Test func anEmptySlotFailsTheCall() throws {
        let lua = try makeState()
        let echo = try LuaArgumentsTests().echo(lua)
        let error = luaError { () throws(LuaError) in
            try lua.call(echo) { arguments throws(LuaError) in try arguments.writeKept(9) } results: { _ in () }
        }
        #expect(error?.code == .runtime)
        let badSlot = luaError { () throws(LuaError) in
            try lua.call(echo) { arguments throws(LuaError) in try arguments.writeKept(0) } results: { _ in () }
        }
        #expect(badSlot?.code == .invalidArgument)
    }
}
