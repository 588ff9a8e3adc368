import Testing
@testable import SwitchboardLua

@Suite struct LuaStateTests {
    @Test func runsTextChunks() throws {
        let lua = try #require(LuaState())
        #expect(lua.run("answer = string.format('%d', 6 * 7)", chunkName: "test.lua") == nil)
        #expect(lua.globalString("answer") == "42")
        #expect(LuaState.release.hasPrefix("Lua 5.4"))
    }

    @Test(arguments: ["os.execute('true')", "io.open('/etc/passwd')", "require('x')", "load('x=1')", "string.dump(print)"])
    func sandboxRefusesEscapes(_ source: String) throws {
        let lua = try #require(LuaState())
        let error = try #require(lua.run(source, chunkName: "hostile.lua"))
        #expect(error.hasPrefix("hostile.lua:1:"))
    }

    @Test func errorsCarryFileAndLine() throws {
        let lua = try #require(LuaState())
        let error = try #require(lua.run("\n\nerror('boom')", chunkName: "Rules/x.lua"))
        #expect(error == "Rules/x.lua:3: boom")
    }
}
