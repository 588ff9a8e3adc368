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

/// Kept tables: a template kept by one call, copied fresh into later ones.
@Suite struct LuaKeptTableTests {
    @Test func keptTablesAreCopiedAndPrivateToEachCall() throws {
        let lua = try makeState()
        try lua.load(
            source: "function touch(t) local before = t.name .. '/' .. tostring(t.extra) .. '/' .. t.inner.n t.extra = 1 t.inner.n = 0 t.name = 'changed' return before end",
            chunkName: "k.lua")
        let touch = try #require(try lua.globalValue("touch")?.function)
        let first = try lua.call(touch) { arguments throws(LuaError) in
            try arguments.beginTable(keepingAs: 3)
            try arguments.key("name")
            try arguments.write("kept")
            try arguments.key("inner")
            try arguments.beginTable()
            try arguments.key("n")
            try arguments.write(Int64(5))
            try arguments.endTable()
            try arguments.endTable()
        } results: { $0.string(at: 0) }
        #expect(first == "kept/nil/5")
        for _ in 0..<2 {
            let again = try lua.call(touch) { arguments throws(LuaError) in try arguments.writeKept(3) } results: { $0.string(at: 0) }
            #expect(again == "kept/nil/5")
        }
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
