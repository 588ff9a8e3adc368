import Testing

@testable import SwitchboardLua

@Suite struct LuaSandboxTests {
    @Test(arguments: [
        ("os.execute('true')", "attempt to index a nil value (global 'os')"),
        ("io.open('/etc/passwd')", "attempt to index a nil value (global 'io')"),
        ("require('os')", "attempt to call a nil value (global 'require')"),
        ("load('x = 1')", "attempt to call a nil value (global 'load')"),
        ("loadstring('x = 1')", "attempt to call a nil value (global 'loadstring')"),
        ("dofile('/etc/passwd')", "attempt to call a nil value (global 'dofile')"),
        ("loadfile('/etc/passwd')", "attempt to call a nil value (global 'loadfile')"),
        ("string.dump(print)", "attempt to call a nil value (field 'dump')"),
        ("local s = ''; s:dump()", "attempt to call a nil value (method 'dump')"),
        ("collectgarbage('stop')", "attempt to call a nil value (global 'collectgarbage')"),
        ("debug.getinfo(1)", "attempt to index a nil value (global 'debug')"),
        ("return package.loaded", "attempt to index a nil value (global 'package')"),
        ("coroutine.wrap(print)", "attempt to index a nil value (global 'coroutine')"),
    ])
    func escapesFailNamingTheMissingName(source: String, message: String) throws {
        let lua = try makeState()
        let error = try #require(luaError { () throws(LuaError) in try lua.load(source: source, chunkName: "hostile.lua") })
        #expect(error.code == .runtime)
        #expect(error.location == "hostile.lua:1")
        #expect(error.message == message)
    }

    @Test func theOpenLibrariesWork() throws {
        let lua = try makeState()
        let results = try lua.load(
            source: """
                return string.format('%s-%d', 'a', 1), table.concat({'x', 'y'}, ','), math.floor(2.7),
                  utf8.char(233), select('#', 1, 2, 3), tostring(nil), type(pcall), ('abc'):upper()
                """,
            chunkName: "libs.lua")
        #expect(results == ["a-1", "x,y", 2, "é", 3, "nil", "function", "ABC"])
    }

    @Test(arguments: ["\u{1B}Lua\u{54}\u{00}\u{19}\u{93}\r\n\u{1A}\n", "\u{1B}"])
    func bytecodeIsRefused(source: String) throws {
        let lua = try makeState()
        let error = try #require(luaError { () throws(LuaError) in try lua.load(source: source, chunkName: "Rules/evil.lua") })
        #expect(error.code == .bytecodeRefused)
        #expect(error.file == "Rules/evil.lua")
        #expect(error.message.contains("refused"))
        #expect(try lua.load(source: "return 1", chunkName: "ok.lua") == [1])
    }

    @Test func luasOwnBinaryChunkRefusalMapsToBytecodeRefused() {
        let error = LuaError(.runtime, luaMessage: "x.lua: attempt to load a binary chunk (mode is 't')")
        #expect(error.message.contains("binary chunk"))
    }

    @Test func statesAreIsolated() throws {
        let first = try makeState()
        let second = try makeState()
        try first.load(source: "shared = 1; string.extra = 'mine'", chunkName: "a.lua")
        #expect(try second.globalValue("shared") == nil)
        #expect(try second.load(source: "return string.extra", chunkName: "b.lua") == [.nil])
    }
}
