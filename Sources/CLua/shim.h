#ifndef SWITCHBOARD_CLUA_SHIM_H
#define SWITCHBOARD_CLUA_SHIM_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* Lua's C macros and variadic functions are not importable into Swift; these wrap them. */

static inline int sb_lua_pcall(lua_State *L, int nargs, int nresults) {
    return lua_pcallk(L, nargs, nresults, 0, 0, NULL);
}

static inline void sb_lua_pop(lua_State *L, int n) { lua_settop(L, -(n) - 1); }

static inline const char *sb_lua_tostring(lua_State *L, int index) {
    return lua_tolstring(L, index, NULL);
}

static inline int sb_lua_registryindex(void) { return LUA_REGISTRYINDEX; }

static inline int sb_lua_gc_collect(lua_State *L) { return lua_gc(L, LUA_GCCOLLECT); }

static inline int sb_lua_gc_count_kb(lua_State *L) { return lua_gc(L, LUA_GCCOUNT); }

static inline const char *sb_lua_version_string(void) { return LUA_RELEASE; }

#endif
