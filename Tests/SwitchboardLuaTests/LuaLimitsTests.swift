import Foundation
import Synchronization
import Testing

@testable import SwitchboardLua

@Suite struct LuaLimitsTests {
    @Test(arguments: [
        "while true do end",
        "local i = 0 repeat i = i + 1 until false",
        "while true do pcall(function() while true do end end) end",
        "local function spin() while true do end end\nwhile true do pcall(spin) end",
        "do local x <close> = setmetatable({}, { __close = function() while true do end end }) end",
        "local t = setmetatable({}, { __index = function(t, k) while true do end end }) return t.x",
    ])
    func runawayLoopsStopAndTheStateStaysUsable(source: String) throws {
        for watchdog in [true, false] {
            try runawayLoopStops(source: source, watchdog: watchdog)
        }
    }

    func runawayLoopStops(source: String, watchdog: Bool) throws {
        let lua = try makeState {
            $0.instructionBudget = 100_000
            $0.budgetWatchdog = watchdog
        }
        #expect(lua.isWatched == watchdog)
        try lua.load(source: "function loop()\n\(source)\nend\nfunction ok() return 'fine' end", chunkName: "Rules/loop.lua")
        let error = try #require(luaError { () throws(LuaError) in try lua.call(global: "loop", []) })
        #expect(error.code == .budgetExceeded)
        #expect(error.file == "Rules/loop.lua")
        #expect(error.message == "instruction budget of 100000 exceeded")
        #expect(try lua.call(global: "ok", []) == ["fine"])
    }

    /// The watchdog parks when no call has run for two ticks and is woken by the next call: a
    /// runaway loop that starts after a quiet spell is still stopped (were the wake-up lost,
    /// it would spin until the time limit).
    @Test(.timeLimit(.minutes(1))) func aRunawayLoopAfterAQuietSpellIsStopped() throws {
        let lua = try makeState {
            $0.instructionBudget = 100_000
            $0.budgetWatchdog = true
        }
        try #require(lua.isWatched)
        try lua.load(source: "function loop() while true do end end", chunkName: "Rules/quiet.lua")
        for _ in 0..<3 {
            // Long enough for the watchdog to park, when no other test is running Lua.
            usleep(20_000)
            let error = try #require(luaError { () throws(LuaError) in try lua.call(global: "loop", []) })
            #expect(error.code == .budgetExceeded)
        }
    }

    /// The watchdog arms the count while a call waits in a host function; the rest of that call
    /// and the next calls each get their whole budget again.
    @Test func anArmedCallDoesNotShortenTheNextOne() throws {
        let lua = try makeState { $0.instructionBudget = 100_000 }
        let armed = Mutex(0)
        // Waits (with a generous deadline, in case the machine is busy) until the watchdog has
        // armed this call: a pause that merely slept might end before any tick saw it.
        lua.register("pause") { [unowned lua] _ throws(LuaError) in
            let deadline = ContinuousClock.now + .seconds(30)
            while !lua.isArmed, ContinuousClock.now < deadline { usleep(200) }
            if lua.isArmed { armed.withLock { $0 += 1 } }
            return []
        }
        try lua.load(
            source: """
                function work(n) local s = 0 for i = 1, n do s = s + i end return s end
                function slow() pause() pause() return work(15000) end
                function stuck() pause() pause() while true do end end
                """,
            chunkName: "w.lua")
        for _ in 0..<3 {
            #expect(try lua.call(global: "slow", []) == [112_507_500])
            #expect(try lua.call(global: "work", [25_000]) == [312_512_500])
        }
        let error = try #require(luaError { () throws(LuaError) in try lua.call(global: "stuck", []) })
        #expect(error.code == .budgetExceeded)
        #expect(error.location == "w.lua:3")
        #expect(try lua.call(global: "work", [25_000]) == [312_512_500])
        #expect(armed.withLock { $0 } == 8, "every pause saw its call armed")
    }

    /// Long calls that stay within the budget finish, watched or counted.
    @Test(arguments: [true, false])
    func longCallsWithinTheBudgetFinish(watchdog: Bool) throws {
        let lua = try makeState {
            $0.instructionBudget = 50_000_000
            $0.budgetWatchdog = watchdog
        }
        try lua.load(source: "function work(n) local s = 0 for i = 1, n do s = s + i end return s end", chunkName: "w.lua")
        #expect(try lua.call(global: "work", [5_000_000]) == [12_500_002_500_000])
    }

    /// Threads of libdispatch's pools block every signal; a runaway call on one is still stopped.
    @Test func aThreadThatBlocksSignalsIsStillWatched() throws {
        let outcome = Mutex<LuaError.Code?>(nil)
        let finished = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { finished.signal() }
            var all = sigset_t()
            sigfillset(&all)
            pthread_sigmask(SIG_BLOCK, &all, nil)
            do {
                let lua = try makeState { $0.instructionBudget = 100_000 }
                try lua.load(source: "function loop() while true do end end", chunkName: "l.lua")
                _ = try lua.call(global: "loop", [])
            } catch let error as LuaError {
                outcome.withLock { $0 = error.code }
            } catch {}
        }
        thread.start()
        // A generous deadline: a stopped loop ends within milliseconds; a busy machine is slower.
        #expect(finished.wait(timeout: .now() + 60) == .success, "the runaway call was not stopped")
        #expect(outcome.withLock { $0 } == .budgetExceeded)
    }

    @Test func theBudgetAppliesToLoadingToo() throws {
        let lua = try makeState { $0.instructionBudget = 10_000 }
        let error = try #require(luaError { () throws(LuaError) in try lua.load(source: "while true do end", chunkName: "l.lua") })
        #expect(error.code == .budgetExceeded)
        #expect(error.location == "l.lua:1")
    }

    @Test func theBudgetIsPerCall() throws {
        let lua = try makeState { $0.instructionBudget = 10_000 }
        try lua.load(source: "function work() local n = 0 for i = 1, 1000 do n = n + i end return n end", chunkName: "w.lua")
        for _ in 0..<20 { #expect(try lua.call(global: "work", []) == [500_500]) }
    }

    @Test(arguments: [
        "local t = {} for i = 1, 1e8 do t[i] = {} end",
        "local t = {} for i = 1, 1e8 do t[i] = i end",
        "local s = 'x' while true do s = s .. s end",
        "local s = string.rep('x', 1 << 24)",
        "local t = {} for i = 1, 1e8 do t['k' .. i] = true end",
    ])
    func memoryBombsStopAndTheStateStaysUsable(source: String) throws {
        let lua = try makeState { $0.memoryLimitBytes = 1 << 20 }
        try lua.load(source: "function bomb()\n\(source)\nend\nfunction ok() return {1, 2, 3} end", chunkName: "Rules/bomb.lua")
        let before = lua.memoryInUseBytes
        let error = try #require(luaError { () throws(LuaError) in try lua.call(global: "bomb", []) })
        #expect(error.code == .memory)
        #expect(error.message == "memory limit of 1048576 bytes exceeded")
        #expect(lua.memoryInUseBytes <= 1 << 20)
        #expect(lua.memoryInUseBytes < before + 256 * 1024)
        #expect(try lua.call(global: "ok", []) == [[1, 2, 3]])
    }

    @Test func aCaughtMemoryErrorLetsTheScriptCarryOn() throws {
        let lua = try makeState { $0.memoryLimitBytes = 1 << 20 }
        let results = try lua.load(
            source: "local ok, message = pcall(string.rep, 'x', 1 << 30) return ok, message", chunkName: "m.lua")
        #expect(results == [false, "not enough memory"])
    }

    @Test(arguments: [
        "local function f() return f() + 1 end return f()",
        "local function f(n) return 1 + f(n + 1) end return f(1)",
        "local t = setmetatable({}, { __index = function(t, k) return t[k] end }) return t.x",
        "local function f(s) return (s:gsub('.', f)) end return f('ab')",
    ])
    func deepRecursionFailsCleanly(source: String) throws {
        let lua = try makeState()
        let error = try #require(luaError { () throws(LuaError) in try lua.load(source: source, chunkName: "deep.lua") })
        #expect([LuaError.Code.runtime, .memory, .budgetExceeded].contains(error.code))
        #expect(try lua.load(source: "return 'alive'", chunkName: "after.lua") == ["alive"])
    }

    @Test func recursionThroughPcallEndsWithoutAnError() throws {
        let lua = try makeState()
        let results = try lua.load(source: "local function f() return pcall(f) end return select('#', f())", chunkName: "p.lua")
        #expect(results.count == 1)
    }

    @Test func deeplyNestedSourceIsASyntaxError() throws {
        let lua = try makeState()
        let source = "return " + String(repeating: "(", count: 1_000) + "1" + String(repeating: ")", count: 1_000)
        let error = try #require(luaError { () throws(LuaError) in try lua.load(source: source, chunkName: "nest.lua") })
        #expect(error.code == .syntax)
        #expect(error.file == "nest.lua")
        #expect(error.message == "C stack overflow")
    }

    @Test(arguments: [
        "setmetatable({}, { __gc = function() while true do end end })",
        "setmetatable({}, { __gc = true })",
    ])
    func finalizersAreRefused(source: String) throws {
        let lua = try makeState()
        let error = try #require(luaError { () throws(LuaError) in try lua.load(source: source, chunkName: "gc.lua") })
        #expect(error.code == .runtime)
        #expect(error.description == "gc.lua:1: __gc metamethods are not supported in the sandbox")
    }

    @Test func aGcFieldAddedLaterNeverRuns() throws {
        let log = PrintLog()
        do {
            let lua = try makeState { $0.print = { log.append($0) } }
            try lua.load(
                source: """
                    local mt = {}
                    keep = setmetatable({}, mt)
                    setmetatable({}, mt)
                    mt.__gc = function() print('finalized') while true do end end
                    """,
                chunkName: "gc.lua")
            lua.collectGarbage()
            #expect(try lua.load(source: "return getmetatable(keep) ~= nil", chunkName: "x.lua") == [true])
        }
        #expect(log.all.isEmpty)
    }

    @Test func setmetatableStillWorks() throws {
        let lua = try makeState()
        let results = try lua.load(
            source: """
                local t = setmetatable({}, { __index = function(_, k) return k .. '!' end })
                local locked = setmetatable({}, { __metatable = 'locked' })
                local ok, message = pcall(setmetatable, locked, {})
                local ok2, message2 = pcall(setmetatable, 1, {})
                return t.hi, getmetatable(locked), ok, message, setmetatable(t, nil) == t, ok2, message2
                """,
            chunkName: "mt.lua")
        #expect(
            results == [
                "hi!", "locked", false, "cannot change a protected metatable", true, false,
                "bad argument #1 to 'setmetatable' (table expected, got number)",
            ])
    }
}
