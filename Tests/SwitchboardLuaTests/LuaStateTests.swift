import Testing

@testable import SwitchboardLua

@Suite struct LuaStateTests {
    @Test func runsTextChunksAndReadsGlobals() throws {
        let lua = try makeState()
        try lua.load(source: "answer = string.format('%d', 6 * 7)", chunkName: "test.lua")
        #expect(try lua.globalValue("answer") == .string("42"))
        #expect(try lua.globalValue("missing") == nil)
        #expect(LuaState.release.hasPrefix("Lua 5.4"))
    }

    @Test func loadReturnsWhatTheChunkReturns() throws {
        let lua = try makeState()
        #expect(try lua.load(source: "return 1, 'two', nil, true", chunkName: "r.lua") == [1, "two", .nil, true])
    }

    @Test func callsGlobalFunctionsWithArgumentsAndResults() throws {
        let lua = try makeState()
        try lua.load(source: "function divmod(a, b) return a // b, a % b end", chunkName: "m.lua")
        #expect(try lua.call(global: "divmod", [17, 5]) == [3, 2])
        #expect(try lua.call(global: "divmod", [17, 5]) == [.integer(3), .integer(2)])
    }

    @Test func callingANonFunctionGlobalIsATypeMismatch() throws {
        let lua = try makeState()
        try lua.load(source: "notAFunction = 3", chunkName: "g.lua")
        let missing = try #require(luaError { () throws(LuaError) in try lua.call(global: "nope", []) })
        #expect(missing.code == .typeMismatch)
        #expect(missing.message == "global 'nope' is not a function (it is nil)")
        let number = try #require(luaError { () throws(LuaError) in try lua.call(global: "notAFunction", []) })
        #expect(number.message == "global 'notAFunction' is not a function (it is number)")
    }

    @Test func setGlobalIsVisibleToScripts() throws {
        let lua = try makeState()
        try lua.setGlobal("config", ["limit": 3, "names": ["a", "b"]])
        #expect(try lua.load(source: "return config.limit, #config.names, config.names[2]", chunkName: "c.lua") == [3, 2, "b"])
        try lua.setGlobal("config", .nil)
        #expect(try lua.globalValue("config") == nil)
    }

    @Test func globalsAreReadRawSoMetamethodsDoNotRun() throws {
        let lua = try makeState()
        try lua.load(
            source: "setmetatable(_G, { __index = function() error('trap') end, __newindex = function() error('trap') end })",
            chunkName: "meta.lua")
        #expect(try lua.globalValue("anything") == nil)
        try lua.setGlobal("x", 1)
        #expect(try lua.globalValue("x") == 1)
        lua.register("host") { _ throws(LuaError) in [true] }
        #expect(try lua.call(global: "host", []) == [true])
    }

    @Test func printGoesToTheSink() throws {
        let log = PrintLog()
        let lua = try makeState { $0.print = { log.append($0) } }
        try lua.load(source: "print('a', 1, 2.5, nil, true) print()", chunkName: "p.lua")
        #expect(log.all == ["a\t1\t2.5\tnil\ttrue", ""])
    }

    @Test func printWithoutASinkIsDiscarded() throws {
        let lua = try makeState()
        try lua.load(source: "print('nobody listens')", chunkName: "p.lua")
    }

    @Test func runtimeErrorsCarryFileAndLine() throws {
        let lua = try makeState()
        let error = try #require(luaError { () throws(LuaError) in try lua.load(source: "\n\nerror('boom')", chunkName: "Rules/x.lua") })
        #expect(error.code == .runtime)
        #expect(error.file == "Rules/x.lua")
        #expect(error.line == 3)
        #expect(error.message == "boom")
        #expect(error.location == "Rules/x.lua:3")
        #expect(error.description == "Rules/x.lua:3: boom")
    }

    @Test func errorsInCalledFunctionsPointAtTheirLine() throws {
        let lua = try makeState()
        try lua.load(source: "function f(t)\n  return t.missing.field\nend", chunkName: "Rules/f.lua")
        let error = try #require(luaError { () throws(LuaError) in try lua.call(global: "f", [LuaValue.table(LuaTable())]) })
        #expect(error.code == .runtime)
        #expect(error.location == "Rules/f.lua:2")
        #expect(error.message.contains("attempt to index a nil value (field 'missing')"))
    }

    @Test(arguments: [
        ("error({})", "(error object is a table value)"),
        ("error(nil)", "(error object is a nil value)"),
        ("error(42)", "42"),
        ("error(setmetatable({}, { __tostring = function() return 'custom' end }))", "custom"),
        ("error('no position', 0)", "no position"),
    ])
    func nonStringErrorObjectsBecomeMessages(source: String, message: String) throws {
        let lua = try makeState()
        let error = try #require(luaError { () throws(LuaError) in try lua.load(source: source, chunkName: "e.lua") })
        #expect(error.code == .runtime)
        #expect(error.message == message)
    }

    @Test func syntaxErrorsCarryFileAndLine() throws {
        let lua = try makeState()
        let error = try #require(luaError { () throws(LuaError) in
            try lua.load(source: "x = 1\ny = = 2", chunkName: "Rules/bad.lua")
        })
        #expect(error.code == .syntax)
        #expect(error.location == "Rules/bad.lua:2")
        #expect(error.message == "unexpected symbol near '='")
    }

    @Test func chunkNamesStartingWithEqualsAreKept() throws {
        let lua = try makeState()
        let error = try #require(luaError { () throws(LuaError) in try lua.load(source: "error('x')", chunkName: "=prelude") })
        #expect(error.description == "prelude:1: x")
    }

    @Test func aLoadedStateIsSmall() throws {
        let lua = try makeState()
        #expect(lua.memoryInUseBytes > 1_000)
        #expect(lua.memoryInUseBytes < 100_000)
    }

    @Test func invalidConfigurationsAreRefused() throws {
        for configure in [
            { (c: inout LuaConfiguration) in c.memoryLimitBytes = 0 },
            { (c: inout LuaConfiguration) in c.instructionBudget = 0 },
            { (c: inout LuaConfiguration) in c.maxValueDepth = 0 },
            { (c: inout LuaConfiguration) in c.maxValueDepth = 1_000 },
            { (c: inout LuaConfiguration) in c.maxValueElements = 0 },
        ] {
            #expect(throws: LuaError.self) { try makeState(configure) }
        }
        let tiny = try #require(luaError { () throws(LuaError) in
            var configuration = LuaConfiguration()
            configuration.memoryLimitBytes = 4_096
            return try LuaState(configuration: configuration)
        })
        #expect(tiny.code == .memory)
    }

    @Test(arguments: [
        ("Rules/x.lua:3: boom", "Rules/x.lua", 3, "boom"),
        ("a b/c.lua:12: with: colons", "a b/c.lua", 12, "with: colons"),
        ("x.lua:7:", "x.lua", 7, ""),
        ("...very/long/path.lua:1: m", "...very/long/path.lua", 1, "m"),
    ])
    func luaMessagesSplitIntoPosition(text: String, file: String, line: Int, message: String) {
        let error = LuaError(.runtime, luaMessage: text)
        #expect(error.file == file)
        #expect(error.line == line)
        #expect(error.message == message)
        #expect(error.description == text.trimmingSuffixSpace)
    }

    @Test(arguments: ["not enough memory", "error: x.lua:3: y", "x.lua:abc: y", ":3: y"])
    func messagesWithoutPositionStayWhole(text: String) {
        let error = LuaError(.runtime, luaMessage: text)
        #expect(error.file == nil)
        #expect(error.line == nil)
        #expect(error.message == text)
    }

    @Test func codesHaveStableNames() {
        #expect(LuaError.Code.budgetExceeded.description == "budget_exceeded")
        #expect(LuaError.Code.bytecodeRefused.description == "bytecode_refused")
        #expect(LuaError.Code.memory.description == "memory")
    }
}

extension String {
    fileprivate var trimmingSuffixSpace: String { hasSuffix(" ") ? String(dropLast()) : self }
}
