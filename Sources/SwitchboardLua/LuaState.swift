import CLua

/// A minimal sandboxed Lua 5.4 state: only base, string, table, math and utf8 are opened,
/// and loaders that could read files or bytecode are removed.
///
/// The rules engine (a later issue) grows this into the full host with instruction budgets and
/// memory caps; for now it proves the system library links and gives a place to grow from.
public final class LuaState {
    private let state: OpaquePointer

    /// The release string of the linked Lua library, e.g. "Lua 5.4.4".
    public static var release: String { String(cString: sb_lua_version_string()) }

    /// Creates a sandboxed state, or returns nil when Lua cannot allocate one.
    public init?() {
        guard let state = luaL_newstate() else { return nil }
        self.state = state
        let libraries: [(String, lua_CFunction)] = [
            ("_G", luaopen_base), ("string", luaopen_string), ("table", luaopen_table),
            ("math", luaopen_math), ("utf8", luaopen_utf8),
        ]
        for (name, open) in libraries {
            luaL_requiref(state, name, open, 1)
            sb_lua_pop(state, 1)
        }
        for name in ["dofile", "loadfile", "load", "require", "collectgarbage", "print"] {
            lua_pushnil(state)
            lua_setglobal(state, name)
        }
        lua_getglobal(state, "string")
        lua_pushnil(state)
        lua_setfield(state, -2, "dump")
        sb_lua_pop(state, 1)
    }

    deinit { lua_close(state) }

    /// Runs a text chunk (never bytecode) in a protected call and returns the error message, if any.
    public func run(_ source: String, chunkName: String) -> String? {
        let length = source.utf8.count
        let status = source.withCString { pointer in
            luaL_loadbufferx(state, pointer, length, "@" + chunkName, "t")
        }
        if status == LUA_OK, sb_lua_pcall(state, 0, 0) == LUA_OK { return nil }
        let message = sb_lua_tostring(state, -1).map { String(cString: $0) } ?? "unknown Lua error"
        sb_lua_pop(state, 1)
        return message
    }

    /// Reads a global as a string, if it is one.
    public func globalString(_ name: String) -> String? {
        lua_getglobal(state, name)
        defer { sb_lua_pop(state, 1) }
        guard lua_type(state, -1) == LUA_TSTRING, let value = sb_lua_tostring(state, -1) else { return nil }
        return String(cString: value)
    }
}
