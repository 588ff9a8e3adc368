import Testing

import SwitchboardLua

/// Inputs the `tape` fuzz target found (docs/FUZZING.md), kept as regular tests.
@Suite struct FuzzRegressionTests {
    /// `{"é":1,"é":2}` with the first key precomposed (U+00E9) and the second decomposed
    /// (`e` U+0301): two keys in Lua, one in `LuaTable.fields` (Swift compares strings by
    /// canonical equivalence), holding whichever value Lua's traversal gives last, as
    /// `LuaTable`'s documentation says. The fuzz target sent `{é = 1}` and read back `{é = 2}`.
    @Test func canonicallyEquivalentKeysReadBackAsOneField() throws {
        let lua = try makeState()
        try lua.load(source: "function echo(...) return ... end", chunkName: "echo.lua")
        let echo = try #require(try lua.globalValue("echo")?.function)
        let precomposed = "\u{E9}", decomposed = "e\u{301}"
        #expect(Array(precomposed.utf8) != Array(decomposed.utf8) && precomposed == decomposed)
        // `{[precomposed] = 1, [decomposed] = 2}`, written straight onto the tape.
        let bothKeys = { (arguments: inout LuaArguments) throws(LuaError) in
            try arguments.beginTable()
            try arguments.key(precomposed)
            try arguments.write(Int64(1))
            try arguments.key(decomposed)
            try arguments.write(Int64(2))
            try arguments.endTable()
        }
        let value = try lua.call(echo, arguments: bothKeys) { results in
            results.value(at: 0)
        }
        let fields = try #require(value.table).fields
        #expect(fields.count == 1)
        #expect(fields[precomposed] == 1 || fields[precomposed] == 2)
        // Lua itself keeps both keys apart.
        try lua.load(source: "function count(t) local n = 0 for _ in pairs(t) do n = n + 1 end return n end", chunkName: "count.lua")
        let count = try #require(try lua.globalValue("count")?.function)
        let counted = try lua.call(count, arguments: bothKeys) { results in
            results.value(at: 0)
        }
        #expect(counted == 2)
    }
}
