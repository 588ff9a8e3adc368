import Testing

@testable import SwitchboardLua

@Suite struct LuaFunctionTests {
    @Test func hostFunctionsAreCallableFromLua() throws {
        let lua = try makeState()
        lua.register("add") { arguments throws(LuaError) in
            guard arguments.count == 2, let a = arguments[0].integer, let b = arguments[1].integer else {
                throw LuaError(.typeMismatch, "add(a, b) needs two integers")
            }
            return [.integer(a + b)]
        }
        lua.register("describe") { arguments throws(LuaError) in
            [.string(arguments.map(\.typeName).joined(separator: ",")), ["count": .integer(Int64(arguments.count))]]
        }
        #expect(try lua.load(source: "return add(2, 3)", chunkName: "a.lua") == [5])
        #expect(try lua.load(source: "local s, t = describe(1, 'x', {}, nil) return s, t.count", chunkName: "d.lua") == ["number,string,table,nil", 4])
    }

    @Test func hostFunctionErrorsBecomeLuaErrorsAtTheCallingLine() throws {
        let lua = try makeState()
        lua.register("fail") { _ throws(LuaError) in throw LuaError(.typeMismatch, "fail() wants nothing") }
        let error = try #require(luaError { () throws(LuaError) in
            try lua.load(source: "local x = 1\nfail()", chunkName: "Rules/h.lua")
        })
        #expect(error.code == .typeMismatch)
        #expect(error.location == "Rules/h.lua:2")
        #expect(error.message == "fail() wants nothing")
        let caught = try lua.load(source: "local ok, message = pcall(fail) return ok, message", chunkName: "p.lua")
        #expect(caught == [false, "fail() wants nothing"])
        let rethrown = try #require(luaError { () throws(LuaError) in
            try lua.load(source: "local ok, m = pcall(fail)\nerror('wrapped: ' .. m)", chunkName: "w.lua")
        })
        #expect(rethrown.code == .runtime)
        #expect(rethrown.description == "w.lua:2: wrapped: fail() wants nothing")
    }

    @Test func hostFunctionArgumentsThatCannotBeReadAreLuaErrors() throws {
        let lua = try makeState()
        lua.register("take") { _ throws(LuaError) in [] }
        let error = try #require(luaError { () throws(LuaError) in
            try lua.load(source: "local t = {} t.t = t take(1, t)", chunkName: "c.lua")
        })
        #expect(error.code == .runtime)
        #expect(error.description == "c.lua:1: take: argument 2: a table contains itself (a cycle)")
    }

    @Test func aHostFunctionCannotReenterItsState() throws {
        let lua = try makeState()
        try lua.load(source: "function inner() return 1 end", chunkName: "i.lua")
        lua.register("again") { [unowned lua] _ throws(LuaError) in try lua.call(global: "inner", []) }
        let error = try #require(luaError { () throws(LuaError) in try lua.load(source: "again()", chunkName: "r.lua") })
        #expect(error.code == .reentrantCall)
        #expect(error.location == "r.lua:1")
        #expect(try lua.call(global: "inner", []) == [1])
    }

    @Test func functionRefsInTablesAreCallableLater() throws {
        let lua = try makeState()
        try lua.load(
            source: """
                rules = {
                  kind = "shared",
                  join = function(user, ch)
                    if user.id == ch.owner then return true end
                    return false, "only the owner may join " .. ch.name
                  end,
                }
                """,
            chunkName: "Rules/channels.lua")
        let rules = try #require(try lua.globalValue("rules"))
        #expect(rules["kind"] == "shared")
        let join = try #require(rules["join"]?.function)
        #expect(try lua.globalValue("rules")?["join"]?.function == join)
        for _ in 0..<3 {
            #expect(try lua.call(join, [["id": "u1"], ["owner": "u1", "name": "room"]]) == [true])
            #expect(try lua.call(join, [["id": "u2"], ["owner": "u1", "name": "room"]]) == [false, "only the owner may join room"])
        }
        let error = try #require(luaError { () throws(LuaError) in try lua.call(join, [.nil, .nil]) })
        #expect(error.code == .runtime)
        #expect(error.location == "Rules/channels.lua:4")
    }

    @Test func functionRefsGoBackIntoLua() throws {
        let lua = try makeState()
        try lua.load(source: "function double(x) return x * 2 end function apply(f, x) return f(x) end", chunkName: "f.lua")
        let double = try #require(try lua.globalValue("double"))
        #expect(try lua.call(global: "apply", [double, 21]) == [42])
    }

    @Test func hostFunctionsReceiveFunctionRefs() throws {
        let lua = try makeState()
        let kept = KeptFunctions()
        lua.register("declare") { arguments throws(LuaError) in
            if let name = arguments.first?.string, let hook = arguments.last?.function { kept.hooks[name] = hook }
            return []
        }
        try lua.load(source: "declare('greet', function(who) return 'hello ' .. who end)", chunkName: "d.lua")
        let greet = try #require(kept.hooks["greet"])
        #expect(try lua.call(greet, ["ana"]) == ["hello ana"])
    }

    @Test func releasedAndForeignRefsAreRefused() throws {
        let lua = try makeState()
        let other = try makeState()
        try lua.load(source: "function f() return 1 end", chunkName: "f.lua")
        try other.load(source: "function f() return 2 end", chunkName: "f.lua")
        let mine = try #require(try lua.globalValue("f")?.function)
        let theirs = try #require(try other.globalValue("f")?.function)
        #expect(try lua.call(mine, []) == [1])
        let foreign = try #require(luaError { () throws(LuaError) in try lua.call(theirs, []) })
        #expect(foreign.code == .invalidArgument)
        let passedAlong = try #require(luaError { () throws(LuaError) in try lua.call(global: "f", [.function(theirs)]) })
        #expect(passedAlong.code == .invalidArgument)
        lua.release(mine)
        let released = try #require(luaError { () throws(LuaError) in try lua.call(mine, []) })
        #expect(released.code == .invalidArgument)
        let again = try #require(try lua.globalValue("f")?.function)
        #expect(again != mine)
        #expect(try lua.call(again, []) == [1])
    }

    @Test func hostFunctionResultsThatCannotBePushedAreErrors() throws {
        let lua = try makeState { $0.maxValueDepth = 2 }
        lua.register("deep") { _ throws(LuaError) in [[[[1]]]] }
        let error = try #require(luaError { () throws(LuaError) in try lua.load(source: "deep()", chunkName: "d.lua") })
        #expect(error.code == .typeMismatch)
        #expect(error.description == "d.lua:1: tables nest deeper than 2 levels")
    }
}

/// Functions a host function kept, for the test to call afterwards.
private final class KeptFunctions {
    var hooks: [String: LuaFunctionRef] = [:]
}

@Suite struct LuaFunctionRefLifetimeTests {
    @Test func manyFunctionsPassedToTheHostStayWithinMemory() throws {
        let lua = try makeState { $0.memoryLimitBytes = 1 << 20 }
        var seen = 0
        lua.register("take") { arguments throws(LuaError) in
            if arguments.first?.function != nil { seen += 1 }
            return []
        }
        try lua.load(
            source: "local keep = function() end for i = 1, 20000 do take(keep) local garbage = { i, tostring(i) } end",
            chunkName: "many.lua")
        #expect(seen == 20_000)
        #expect(lua.memoryInUseBytes < 1 << 20)
    }
}
