#ifndef SWITCHBOARD_CLUA_SHIM_H
#define SWITCHBOARD_CLUA_SHIM_H

/*
 * The C half of SwitchboardLua's host.
 *
 * Every Lua API call that can raise an error (allocation, metamethods, the instruction hook)
 * happens here, inside one protected call per operation (`sb_run`). Swift never calls a Lua
 * function that can longjmp: it hands values over as a flat "tape" of `sb_item`s, and gets
 * values back the same way. Errors raised for Swift host functions are raised by the C
 * trampoline after Swift has returned.
 */

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- Values on a tape -------------------------------------------------------------------- */

#define SB_NIL 0
#define SB_BOOLEAN 1
#define SB_INTEGER 2
#define SB_NUMBER 3
#define SB_STRING 4
#define SB_TABLE 5
#define SB_FUNCTION 6
#define SB_READONLY 7
#define SB_KEPT 8

/*
 * One value, in prefix order. A table item is followed by its `integer` array values (keys
 * 1...n), then `fields` pairs of (string key, value).
 *   SB_BOOLEAN  integer = 0 or 1
 *   SB_INTEGER  integer = the value
 *   SB_NUMBER   number = the value
 *   SB_STRING   length = byte count; bytes = the bytes (tapes read from Lua), or
 *               integer = byte offset into the tape's byte buffer (tapes pushed to Lua)
 *   SB_TABLE    integer = array length, fields = string-keyed field count
 *   SB_FUNCTION integer = reference number in the host's function table
 *   SB_READONLY (tapes pushed to Lua) integer = slot, or 0; the next item, a table, is pushed
 *               as a read-only table (its nested tables too) and, with a slot, kept in that
 *               slot of the host's kept tables
 *   SB_KEPT     (tapes pushed to Lua) integer = slot; pushes the read-only table kept there
 *               (the same table again: nothing can change it)
 */
typedef struct sb_item {
    int32_t kind;
    int32_t fields;
    int64_t integer;
    double number;
    const char *bytes;
    size_t length;
} sb_item;

/* ---- Operations -------------------------------------------------------------------------- */

#define SB_OP_OPEN 1
#define SB_OP_LOAD 2
#define SB_OP_CALL_GLOBAL 3
#define SB_OP_CALL_REF 4
#define SB_OP_GET_GLOBAL 5
#define SB_OP_SET_GLOBAL 6
#define SB_OP_REGISTER 7
#define SB_OP_RELEASE 8
#define SB_OP_COLLECT 9

/* The deepest table nesting a configuration may allow (bounds the C recursion). */
#define SB_DEPTH_CAP 200

/* Calls a Swift host function: 0 = results in `result_*`, otherwise message in `callback_error`. */
typedef int (*sb_invoke_fn)(void *context, int64_t function_id, const sb_item *arguments, size_t count);
/* Hands one `print` line to Swift. */
typedef void (*sb_print_fn)(void *context, const char *text, size_t length);

typedef struct sb_host {
    lua_State *L;

    /* Memory: every byte Lua holds goes through sb_alloc. */
    size_t used;
    size_t limit;
    int limit_lifted; /* host-initiated setup (register) is never refused */
    int limit_hit;    /* an allocation was refused during the current operation */

    /* Instructions. */
    int budget;
    int budget_exhausted;

    /* The watchdog (see "The budget's watchdog" below). `watched` = 0: the count hook is set
     * for every operation. Otherwise these fields are shared with the watchdog thread and
     * the signal handler, and only accessed with __atomic builtins or from this thread. */
    int watched;
    uint64_t call;          /* the running operation's number | SB_CALL_* flags; 0 when idle */
    uint64_t calls;         /* operations started (this state's thread only) */
    uint64_t seen;          /* the watchdog's: the operation it saw at its previous tick */
    pthread_t thread;       /* the thread running `call` */
    int armed;              /* the count hook is set for the running operation */
    struct sb_host *outer;  /* the state whose operation this thread was in when `call` began */
    struct sb_host *next_watched;

    /* Reading Lua values onto the read tape. */
    int max_depth;
    size_t max_elements;
    sb_item *items;
    size_t count;
    size_t capacity;
    int read_failed;
    char read_message[256];
    const void *path[SB_DEPTH_CAP + 1];
    int gc_stopped;

    /* The current operation's inputs. */
    int op;
    const char *name;
    const char *source;
    size_t source_length;
    const char *chunk_name;
    int64_t reference;
    int64_t answer_check; /* SB_OP_CALL_REF: a function reference, or 0 (see sb_call_pushed) */
    int64_t function_id;
    const sb_item *push_items;
    size_t push_count;
    const char *push_bytes;

    /* The current operation's outcome. */
    int load_status;
    int type_error;
    const char *error_text;
    size_t error_length;
    char error_buffer[256];

    /* Swift. `context` is cleared before the state closes. */
    void *context;
    sb_invoke_fn invoke;
    sb_print_fn print;
    const sb_item *result_items;
    size_t result_count;
    const char *result_bytes;
    const char *callback_error;
    size_t callback_error_length;

    /* Registry references of the function table (number -> function) and its inverse. */
    int functions;
    /* Registry reference of the kept tables (slot -> read-only table). */
    int kept;
    int function_numbers;
    int64_t next_function;
} sb_host;

static inline sb_host *sb_host_of(lua_State *L) { return *(sb_host **)lua_getextraspace(L); }

/* Whether the watchdog has armed the count hook for the running operation (tests wait for it). */
static inline int sb_host_armed(sb_host *h) { return __atomic_load_n(&h->armed, __ATOMIC_ACQUIRE); }

/* ---- Allocator, hook, panic -------------------------------------------------------------- */

static inline void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    sb_host *h = (sb_host *)ud;
    if (ptr == NULL) osize = 0; /* osize then encodes the object kind */
    if (nsize == 0) {
        free(ptr);
        h->used -= osize;
        return NULL;
    }
    if (nsize > osize && !h->limit_lifted) {
        size_t growth = nsize - osize;
        if (growth > h->limit || h->used > h->limit - growth) {
            h->limit_hit = 1;
            return NULL;
        }
    }
    void *grown = realloc(ptr, nsize);
    if (grown == NULL) return NULL;
    h->used = h->used - osize + nsize;
    return grown;
}

/* Fires once the budget is spent; from then on it fires on every instruction, so a script
 * that catches the error with pcall cannot keep running. */
static inline void sb_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    sb_host *h = sb_host_of(L);
    h->budget_exhausted = 1;
    lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
    luaL_where(L, 0);
    lua_pushfstring(L, "instruction budget of %d exceeded", h->budget);
    lua_concat(L, 2);
    lua_error(L);
}

/*
 * ---- The budget's watchdog ---------------------------------------------------------------
 *
 * With a count hook set, Lua 5.4 traces every VM instruction (luaV_execute calls
 * luaG_traceexec on each one), which costs more than a short permission hook itself. So a
 * watched state runs its operations with no hook at all, and one watchdog thread per process
 * looks at every watched state once a tick (1 ms) while operations run. After two ticks in a
 * row without any, it parks on a condition variable and does not wake at all; the next
 * operation to begin wakes it (`sb_watch_parked`, checked with one atomic load per operation,
 * so only the first operation after a quiet spell pays for the wake-up). An operation it finds
 * running at two ticks in a row has run for at least a tick:
 * the watchdog flags it and sends SIGURG to the thread running it, and the handler, on that
 * thread, sets the count hook with the full budget (lua_sethook is meant to be called from
 * a signal handler on the state's thread; calling it from another thread would race with the
 * state's call stack). From then on the budget applies as before and ends the operation with
 * the same error. So an operation that runs fewer instructions than the budget is never
 * stopped, and a runaway one is stopped about one to two ticks plus the budget after it began.
 *
 * Races: the handler only arms states in this thread's chain of running operations
 * (`sb_current_host`, then `outer`), and only an operation that is still flagged; an operation
 * leaves the chain before it clears its hook, so a late signal can never arm a finished or
 * later operation. The watchdog sends only while the operation is running and holds it open
 * (SB_CALL_SENDING) until pthread_kill has returned, so the thread cannot have ended. A lost
 * signal (the thread was in another state's nested operation, say) is sent again next tick.
 * Parking: the watchdog sets `sb_watch_parked` and then looks at every state once more under
 * `sb_watch_lock` before it waits; an operation publishes its call and then reads the flag
 * (both sequentially consistent), so one of the two sees the other: either the watchdog finds
 * the call and keeps ticking, or the operation finds the flag and signals under the lock,
 * which cannot fall between the watchdog's last look and its wait.
 *
 * SIGURG is ignored by default and not used otherwise by the server; the handler is only
 * installed when SIGURG has no handler yet, and a state falls back to counting every
 * instruction when it cannot be (or the watchdog thread cannot start). Each thread unblocks
 * SIGURG before its first watched operation (libdispatch's worker threads block all signals).
 *
 * These statics exist once per object file that includes the functions below; only
 * LuaState.swift calls sb_host_create, sb_run and sb_host_destroy, so there is one of each.
 */
#define SB_CALL_FLAGGED ((uint64_t)1 << 62)
#define SB_CALL_SENDING ((uint64_t)1 << 63)
#define SB_CALL_NUMBER (SB_CALL_FLAGGED - 1)
#define SB_WATCH_SIGNAL SIGURG
#define SB_WATCH_TICK_NS 1000000L
#define SB_WATCH_IDLE_TICKS 2

static pthread_mutex_t sb_watch_lock = PTHREAD_MUTEX_INITIALIZER;
static sb_host *sb_watch_list = NULL;
static pthread_once_t sb_watch_once = PTHREAD_ONCE_INIT;
static pthread_cond_t sb_watch_wake = PTHREAD_COND_INITIALIZER;
static int sb_watch_parked = 0; /* the watchdog waits on sb_watch_wake (atomic) */
static int sb_watch_ready = 0;
static __thread sb_host *sb_current_host = NULL;
static __thread int sb_thread_unblocked = 0;

static inline void sb_watch_handler(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)info;
    (void)context;
    int saved = errno;
    for (sb_host *h = sb_current_host; h != NULL; h = h->outer) {
        if (!__atomic_load_n(&h->armed, __ATOMIC_RELAXED) &&
            (__atomic_load_n(&h->call, __ATOMIC_ACQUIRE) & SB_CALL_FLAGGED)) {
            __atomic_store_n(&h->armed, 1, __ATOMIC_RELEASE);
            lua_sethook(h->L, sb_hook, LUA_MASKCOUNT, h->budget);
        }
    }
    errno = saved;
}

static inline void *sb_watch_main(void *unused) {
    (void)unused;
    int idle = 0;
    for (;;) {
        struct timespec tick = {0, SB_WATCH_TICK_NS};
        nanosleep(&tick, NULL);
        int busy = 0;
        pthread_mutex_lock(&sb_watch_lock);
        if (idle >= SB_WATCH_IDLE_TICKS) {
            /* Quiet: park until an operation begins (see "Parking" above). */
            __atomic_store_n(&sb_watch_parked, 1, __ATOMIC_SEQ_CST);
            for (;;) {
                int running = 0;
                for (sb_host *h = sb_watch_list; h != NULL; h = h->next_watched) {
                    if (__atomic_load_n(&h->call, __ATOMIC_SEQ_CST) & SB_CALL_NUMBER) running = 1;
                }
                if (running) break;
                pthread_cond_wait(&sb_watch_wake, &sb_watch_lock);
            }
            __atomic_store_n(&sb_watch_parked, 0, __ATOMIC_SEQ_CST);
            idle = 0;
        }
        for (sb_host *h = sb_watch_list; h != NULL; h = h->next_watched) {
            uint64_t call = __atomic_load_n(&h->call, __ATOMIC_ACQUIRE);
            uint64_t number = call & SB_CALL_NUMBER;
            if (number == 0) {
                h->seen = 0;
                continue;
            }
            busy = 1;
            if (number != h->seen) {
                h->seen = number;
                continue;
            }
            if (__atomic_load_n(&h->armed, __ATOMIC_ACQUIRE)) continue;
            /* Running since the previous tick and not armed yet: flag it and signal its thread. */
            if (__atomic_compare_exchange_n(&h->call, &call, call | SB_CALL_FLAGGED | SB_CALL_SENDING, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                pthread_kill(h->thread, SB_WATCH_SIGNAL);
                __atomic_fetch_and(&h->call, ~SB_CALL_SENDING, __ATOMIC_RELEASE);
            }
        }
        pthread_mutex_unlock(&sb_watch_lock);
        idle = busy ? 0 : (idle < SB_WATCH_IDLE_TICKS ? idle + 1 : idle);
    }
    return NULL;
}

static inline void sb_watch_start(void) {
    struct sigaction current;
    if (sigaction(SB_WATCH_SIGNAL, NULL, &current) != 0) return;
    int free_signal = !(current.sa_flags & SA_SIGINFO) && (current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN);
    if (!free_signal) return;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = sb_watch_handler;
    action.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    if (sigaction(SB_WATCH_SIGNAL, &action, NULL) != 0) return;

    /* The watchdog thread blocks every signal, so that none meant for the process lands on it. */
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &previous);
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 64 * 1024);
    pthread_t thread;
    int started = pthread_create(&thread, &attributes, sb_watch_main, NULL) == 0;
    pthread_attr_destroy(&attributes);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (started) sb_watch_ready = 1;
}

/* Before an operation of a watched state: join this thread's chain and publish the call. */
static inline void sb_watch_enter(sb_host *h) {
    if (!sb_thread_unblocked) {
        sigset_t urgent;
        sigemptyset(&urgent);
        sigaddset(&urgent, SB_WATCH_SIGNAL);
        pthread_sigmask(SIG_UNBLOCK, &urgent, NULL);
        sb_thread_unblocked = 1;
    }
    h->outer = sb_current_host;
    h->thread = pthread_self();
    __atomic_store_n(&h->armed, 0, __ATOMIC_RELAXED);
    sb_current_host = h;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    h->calls = (h->calls + 1) & SB_CALL_NUMBER;
    if (h->calls == 0) h->calls = 1;
    __atomic_store_n(&h->call, h->calls, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&sb_watch_parked, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&sb_watch_lock);
        pthread_cond_signal(&sb_watch_wake);
        pthread_mutex_unlock(&sb_watch_lock);
    }
}

/* After it: leave the chain (so no signal arms this state any more), wait out a send in
 * progress, then clear the hook if the watchdog had it set. */
static inline void sb_watch_leave(sb_host *h) {
    sb_current_host = h->outer;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    for (;;) {
        uint64_t call = __atomic_load_n(&h->call, __ATOMIC_ACQUIRE);
        if (call & SB_CALL_SENDING) {
            sched_yield();
            continue;
        }
        if (__atomic_compare_exchange_n(&h->call, &call, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) break;
    }
    if (__atomic_load_n(&h->armed, __ATOMIC_ACQUIRE)) {
        lua_sethook(h->L, NULL, 0, 0);
        __atomic_store_n(&h->armed, 0, __ATOMIC_RELEASE);
    }
}

static inline int sb_panic(lua_State *L) {
    const char *message = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(no message)";
    fprintf(stderr, "switchboard: unprotected Lua error: %s\n", message);
    fflush(stderr);
    return 0; /* Lua aborts */
}

/* ---- Reading Lua values onto the read tape ----------------------------------------------- */

static inline int sb_read_fail(sb_host *h, const char *message) {
    snprintf(h->read_message, sizeof h->read_message, "%s", message);
    return 1;
}

static inline int sb_append(sb_host *h, sb_item item) {
    if (h->count >= h->max_elements) {
        snprintf(h->read_message, sizeof h->read_message,
                 "the value has more than %zu elements (values and keys)", h->max_elements);
        return 1;
    }
    if (h->count == h->capacity) {
        size_t capacity = h->capacity ? h->capacity * 2 : 64;
        if (capacity > h->max_elements) capacity = h->max_elements;
        sb_item *grown = (sb_item *)realloc(h->items, capacity * sizeof(sb_item));
        if (grown == NULL) return sb_read_fail(h, "not enough memory to convert the value");
        h->items = grown;
        h->capacity = capacity;
    }
    h->items[h->count++] = item;
    return 0;
}

static inline int sb_read(lua_State *L, sb_host *h, int idx, int depth);

static inline int sb_read_function(lua_State *L, sb_host *h, int idx) {
    /* No GC step (and so no finalizer) may run while the tape points into Lua strings. */
    if (!h->gc_stopped && lua_gc(L, LUA_GCSTOP) != -1) h->gc_stopped = 1;
    luaL_checkstack(L, 4, "reading a function");
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->function_numbers);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    int64_t number;
    if (lua_isinteger(L, -1)) {
        number = (int64_t)lua_tointeger(L, -1);
        lua_pop(L, 2);
    } else {
        lua_pop(L, 1);
        number = h->next_function++; /* never reused, so a stale reference can't hit a new function */
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->functions);
        lua_pushvalue(L, idx);
        lua_rawseti(L, -2, (lua_Integer)number);
        lua_pop(L, 1);
        lua_pushvalue(L, idx);
        lua_pushinteger(L, (lua_Integer)number);
        lua_rawset(L, -3);
        lua_pop(L, 1);
    }
    sb_item item = {SB_FUNCTION, 0, number, 0, NULL, 0};
    return sb_append(h, item);
}

static inline int sb_is_meta_key(lua_State *L, int idx);
static inline int sb_ro_values(lua_State *L, int idx, int *own);

/* Appends the table at absolute index `idx`; `skip_meta`: leave out "__" keys (the values'
 * table of a read-only proxy that is its own metatable). */
static inline int sb_read_table(lua_State *L, sb_host *h, int idx, int depth, int skip_meta) {
    if (depth >= h->max_depth) {
        snprintf(h->read_message, sizeof h->read_message, "tables nest deeper than %d levels", h->max_depth);
        return 1;
    }
    const void *identity = lua_topointer(L, idx);
    for (int d = 0; d < depth; d++) {
        if (h->path[d] == identity) return sb_read_fail(h, "a table contains itself (a cycle)");
    }
    h->path[depth] = identity;
    luaL_checkstack(L, 4, "reading a nested table");

    lua_Integer largest = 0, integers = 0;
    int64_t strings = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int type = lua_type(L, -2);
        if (type == LUA_TSTRING) {
            if (!skip_meta || !sb_is_meta_key(L, -2)) strings++;
        } else if (type == LUA_TNUMBER && lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
            lua_Integer key = lua_tointeger(L, -2);
            integers++;
            if (key > largest) largest = key;
        } else {
            if (type == LUA_TNUMBER && lua_isinteger(L, -2)) {
                snprintf(h->read_message, sizeof h->read_message,
                         "table key %lld is neither a string nor a positive integer", (long long)lua_tointeger(L, -2));
            } else if (type == LUA_TNUMBER) {
                snprintf(h->read_message, sizeof h->read_message,
                         "table key %g is neither a string nor a positive integer", (double)lua_tonumber(L, -2));
            } else {
                snprintf(h->read_message, sizeof h->read_message,
                         "a table key of type %s is not supported (only strings and 1...n)", luaL_typename(L, -2));
            }
            lua_pop(L, 2);
            return 1;
        }
        lua_pop(L, 1);
    }
    if (largest > 2 * integers) {
        snprintf(h->read_message, sizeof h->read_message,
                 "a table is too sparse to read as a list (largest index %lld, %lld present)",
                 (long long)largest, (long long)integers);
        return 1;
    }
    if (strings > INT32_MAX) return sb_read_fail(h, "a table has too many fields");

    sb_item item = {SB_TABLE, (int32_t)strings, (int64_t)largest, 0, NULL, 0};
    if (sb_append(h, item)) return 1;
    for (lua_Integer i = 1; i <= largest; i++) {
        lua_rawgeti(L, idx, i);
        int failed = sb_read(L, h, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (failed) return 1;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TSTRING && !(skip_meta && sb_is_meta_key(L, -2))) {
            size_t length = 0;
            const char *bytes = lua_tolstring(L, -2, &length); /* a string already: no conversion */
            sb_item key = {SB_STRING, 0, 0, 0, bytes, length};
            if (sb_append(h, key) || sb_read(L, h, lua_gettop(L), depth + 1)) {
                lua_pop(L, 2);
                return 1;
            }
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* Appends the value at absolute index `idx` to the read tape; 0 on success, else read_message. */
static inline int sb_read(lua_State *L, sb_host *h, int idx, int depth) {
    switch (lua_type(L, idx)) {
    case LUA_TNIL: {
        sb_item item = {SB_NIL, 0, 0, 0, NULL, 0};
        return sb_append(h, item);
    }
    case LUA_TBOOLEAN: {
        sb_item item = {SB_BOOLEAN, 0, lua_toboolean(L, idx) ? 1 : 0, 0, NULL, 0};
        return sb_append(h, item);
    }
    case LUA_TNUMBER: {
        if (lua_isinteger(L, idx)) {
            sb_item item = {SB_INTEGER, 0, (int64_t)lua_tointeger(L, idx), 0, NULL, 0};
            return sb_append(h, item);
        }
        sb_item item = {SB_NUMBER, 0, 0, (double)lua_tonumber(L, idx), NULL, 0};
        return sb_append(h, item);
    }
    case LUA_TSTRING: {
        size_t length = 0;
        const char *bytes = lua_tolstring(L, idx, &length);
        sb_item item = {SB_STRING, 0, 0, 0, bytes, length};
        return sb_append(h, item);
    }
    case LUA_TTABLE: {
        int own = 0;
        luaL_checkstack(L, 3, "reading a table");
        if (sb_ro_values(L, idx, &own)) { /* a read-only table reads as its values */
            int failed = sb_read_table(L, h, lua_gettop(L), depth, own);
            lua_pop(L, 1); /* the proxy on the stack keeps the values (and their strings) alive */
            return failed;
        }
        return sb_read_table(L, h, idx, depth, 0);
    }
    case LUA_TFUNCTION:
        return sb_read_function(L, h, idx);
    default:
        snprintf(h->read_message, sizeof h->read_message, "a %s value cannot be converted", luaL_typename(L, idx));
        return 1;
    }
}

/* ---- Pushing a tape's values ------------------------------------------------------------- */

/*
 * A read-only table is an empty proxy whose metatable's __index is the table that holds the
 * values. Writes reach __newindex and fail, the sandbox's rawset refuses proxies, and the
 * metatable is protected (__metatable), so a script can neither reach the values' table nor
 * replace the metatable: the same proxy can be handed to any number of calls. When no key of
 * the values starts with "__", the values' table is its own metatable (one table fewer; no
 * metamethod name can clash with a key); otherwise a separate table holds the metafields.
 */
static inline int sb_ro_newindex(lua_State *L) {
    return luaL_error(L, "attempt to modify a read-only table");
}

/* If the table at `idx` is a read-only proxy, pushes its values' table and returns 1 (`own` =
 * the values' table is its own metatable, so its "__" keys are metafields); else returns 0. */
static inline int sb_ro_values(lua_State *L, int idx, int *own) {
    /* The metatable has no metatable of its own, so lua_getfield is a raw read here. */
    if (!lua_getmetatable(L, idx)) return 0;
    int proxy = lua_getfield(L, -1, "__newindex") == LUA_TFUNCTION && lua_tocfunction(L, -1) == sb_ro_newindex;
    lua_pop(L, 1);
    if (!proxy) {
        lua_pop(L, 1);
        return 0;
    }
    lua_getfield(L, -1, "__index");
    *own = lua_rawequal(L, -1, -2);
    lua_remove(L, -2);
    return 1;
}

static inline int sb_is_meta_key(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TSTRING) return 0;
    size_t length = 0;
    const char *key = lua_tolstring(L, idx, &length);
    return length >= 2 && key[0] == '_' && key[1] == '_';
}

/* The iterator `pairs` returns for a read-only table: next(values, key), metafields skipped. */
static inline int sb_ro_next(lua_State *L) {
    int own = 0;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (!sb_ro_values(L, 1, &own)) return luaL_error(L, "bad argument #1 to 'next' (read-only table expected)");
    lua_pushvalue(L, 2);
    while (lua_next(L, 3)) {
        if (!own || !sb_is_meta_key(L, -2)) return 2;
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    return 1;
}

static inline int sb_ro_pairs(lua_State *L) {
    lua_pushcclosure(L, sb_ro_next, 0);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static inline int sb_ro_len(lua_State *L) {
    int own = 0;
    if (!sb_ro_values(L, 1, &own)) return luaL_error(L, "not a read-only table");
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

/* Replaces the values' table on top of the stack with a read-only proxy of it. `list`: the
 * values have list elements (only then does `#` need __len: the proxy's own length is 0). */
static inline void sb_make_readonly(lua_State *L, int own, int list) {
    luaL_checkstack(L, 6, "making a table read-only");
    int values = lua_gettop(L);
    if (own) lua_pushvalue(L, values);
    else lua_createtable(L, 0, 5);
    int meta = values + 1;
    /* Raw sets: the metatable has no metatable, and lua_setfield would look for one. */
    lua_pushliteral(L, "__index");
    lua_pushvalue(L, values);
    lua_rawset(L, meta);
    lua_pushliteral(L, "__newindex");
    lua_pushcclosure(L, sb_ro_newindex, 0);
    lua_rawset(L, meta);
    if (list) {
        lua_pushliteral(L, "__len");
        lua_pushcclosure(L, sb_ro_len, 0);
        lua_rawset(L, meta);
    }
    lua_pushliteral(L, "__pairs");
    lua_pushcclosure(L, sb_ro_pairs, 0);
    lua_rawset(L, meta);
    lua_pushliteral(L, "__metatable");
    lua_pushliteral(L, "read-only");
    lua_rawset(L, meta);
    lua_createtable(L, 0, 0);
    lua_pushvalue(L, meta);
    lua_setmetatable(L, -2);
    lua_replace(L, values);
    lua_settop(L, values);
}

static inline size_t sb_push(lua_State *L, sb_host *h, const sb_item *items, size_t count, size_t i,
                             const char *bytes, int depth, int readonly);

/* Pushes the table item at items[i] and its contents (read-only, nested tables too, when
 * `readonly`). Returns the index after the table. */
static inline size_t sb_push_table(lua_State *L, sb_host *h, const sb_item *items, size_t count, size_t i,
                                   const char *bytes, int depth, int readonly) {
    const sb_item *item = &items[i];
    int array = item->integer > INT32_MAX ? INT32_MAX : (int)item->integer;
    int fields = item->fields > INT32_MAX - 5 ? INT32_MAX : item->fields + (readonly ? (item->integer > 0 ? 5 : 4) : 0);
    lua_createtable(L, array, fields);
    int own = 1;
    size_t next = i + 1;
    for (int64_t k = 1; k <= item->integer; k++) {
        next = sb_push(L, h, items, count, next, bytes, depth + 1, readonly);
        lua_rawseti(L, -2, (lua_Integer)k);
    }
    for (int32_t f = 0; f < item->fields; f++) {
        if (next >= count || items[next].kind != SB_STRING) {
            luaL_error(L, "malformed value tape");
            return count;
        }
        if (readonly && items[next].length >= 2 && bytes[items[next].integer] == '_' && bytes[items[next].integer + 1] == '_') {
            own = 0;
        }
        next = sb_push(L, h, items, count, next, bytes, depth + 1, 0);
        next = sb_push(L, h, items, count, next, bytes, depth + 1, readonly);
        lua_rawset(L, -3);
    }
    if (readonly) sb_make_readonly(L, own, item->integer > 0);
    return next;
}

/* Pushes the value starting at items[i]; returns the index after it. Raises on failure. */
static inline size_t sb_push(lua_State *L, sb_host *h, const sb_item *items, size_t count, size_t i,
                             const char *bytes, int depth, int readonly) {
    if (i >= count || depth > SB_DEPTH_CAP) {
        luaL_error(L, "malformed value tape");
        return count;
    }
    luaL_checkstack(L, 4, "pushing a nested value");
    const sb_item *item = &items[i];
    switch (item->kind) {
    case SB_BOOLEAN:
        lua_pushboolean(L, item->integer != 0);
        return i + 1;
    case SB_INTEGER:
        lua_pushinteger(L, (lua_Integer)item->integer);
        return i + 1;
    case SB_NUMBER:
        lua_pushnumber(L, (lua_Number)item->number);
        return i + 1;
    case SB_STRING:
        lua_pushlstring(L, item->length ? bytes + item->integer : "", item->length);
        return i + 1;
    case SB_FUNCTION:
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->functions);
        lua_rawgeti(L, -1, (lua_Integer)item->integer);
        lua_remove(L, -2);
        if (lua_type(L, -1) != LUA_TFUNCTION) {
            h->type_error = 1;
            luaL_error(L, "function reference %lld was released", (long long)item->integer);
            return count;
        }
        return i + 1;
    case SB_READONLY: {
        if (i + 1 >= count || items[i + 1].kind != SB_TABLE) {
            luaL_error(L, "malformed value tape");
            return count;
        }
        size_t next = sb_push_table(L, h, items, count, i + 1, bytes, depth, 1);
        if (item->integer > 0) {
            /* Kept only once it is complete, so a failed push leaves no half-built table. */
            lua_rawgeti(L, LUA_REGISTRYINDEX, h->kept);
            lua_pushvalue(L, -2);
            lua_rawseti(L, -2, (lua_Integer)item->integer);
            lua_pop(L, 1);
        }
        return next;
    }
    case SB_KEPT:
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->kept);
        if (lua_rawgeti(L, -1, (lua_Integer)item->integer) != LUA_TTABLE) {
            luaL_error(L, "no table is kept in slot %lld", (long long)item->integer);
            return count;
        }
        lua_remove(L, -2);
        return i + 1;
    case SB_TABLE:
        return sb_push_table(L, h, items, count, i, bytes, depth, readonly);
    default:
        lua_pushnil(L);
        return i + 1;
    }
}

/* ---- Lua functions the host installs ----------------------------------------------------- */

/* `print`: tab-separated `tostring`s of the arguments, handed to Swift (or dropped). */
static inline int sb_print(lua_State *L) {
    sb_host *h = sb_host_of(L);
    if (h->print == NULL || h->context == NULL) return 0;
    int n = lua_gettop(L);
    luaL_Buffer buffer;
    luaL_buffinit(L, &buffer);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&buffer, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&buffer);
    }
    luaL_pushresult(&buffer);
    size_t length = 0;
    const char *text = lua_tolstring(L, -1, &length);
    h->print(h->context, text, length);
    return 0;
}

/* A Swift host function. Upvalues: its number, its name. */
static inline int sb_trampoline(lua_State *L) {
    sb_host *h = sb_host_of(L);
    const char *name = lua_tostring(L, lua_upvalueindex(2));
    if (h->context == NULL || h->invoke == NULL) {
        return luaL_error(L, "%s: host functions are unavailable while the state closes", name);
    }
    int n = lua_gettop(L);
    h->count = 0;
    for (int i = 1; i <= n; i++) {
        if (sb_read(L, h, i, 0)) return luaL_error(L, "%s: argument %d: %s", name, i, h->read_message);
    }
    h->result_items = NULL;
    h->result_count = 0;
    h->result_bytes = NULL;
    h->callback_error = NULL;
    h->callback_error_length = 0;
    int status = h->invoke(h->context, (int64_t)lua_tointeger(L, lua_upvalueindex(1)), h->items, h->count);
    h->count = 0;
    if (h->gc_stopped) { /* Swift has decoded the arguments: the collector may run again */
        lua_gc(L, LUA_GCRESTART);
        h->gc_stopped = 0;
    }
    if (status != 0) {
        luaL_where(L, 1);
        lua_pushlstring(L, h->callback_error ? h->callback_error : "", h->callback_error_length);
        lua_concat(L, 2);
        return lua_error(L);
    }
    int pushed = 0;
    for (size_t i = 0; i < h->result_count; pushed++) {
        luaL_checkstack(L, 2, "too many results from a host function");
        i = sb_push(L, h, h->result_items, h->result_count, i, h->result_bytes, 0, 0);
    }
    return pushed;
}

/*
 * The sandbox's `setmetatable`: the base library's contract, except that a metatable with a
 * `__gc` field is refused. Lua 5.4 runs finalizers with hooks off, so a finalizer could loop
 * forever out of the budget's reach (even inside lua_close); an object is only ever finalized
 * if its metatable had `__gc` when it was set, so refusing it here means no script finalizer
 * ever runs.
 */
static inline int sb_setmetatable(lua_State *L) {
    int type = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, type == LUA_TNIL || type == LUA_TTABLE, 2, "nil or table");
    if (type == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL) {
            return luaL_error(L, "__gc metamethods are not supported in the sandbox");
        }
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) {
        return luaL_error(L, "cannot change a protected metatable");
    }
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* The sandbox's `rawset`: the base library's, except that read-only tables are refused. */
static inline int sb_rawset(lua_State *L) {
    int own = 0;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    lua_settop(L, 3);
    if (sb_ro_values(L, 1, &own)) return luaL_error(L, "attempt to modify a read-only table");
    lua_rawset(L, 1);
    return 1;
}

/* Turns a non-string error object into a message; strings pass through untouched. */
static inline int sb_message_handler(lua_State *L) {
    if (lua_type(L, 1) == LUA_TSTRING) return 1;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        luaL_tolstring(L, 1, NULL);
        return 1;
    }
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    luaL_where(L, 2);
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    lua_concat(L, 2);
    return 1;
}

/* ---- The protected operation ------------------------------------------------------------- */

static inline int sb_read_results(lua_State *L, sb_host *h, int first) {
    int top = lua_gettop(L);
    h->count = 0;
    for (int i = first; i <= top; i++) {
        if (sb_read(L, h, i, 0)) {
            h->read_failed = 1;
            return 0;
        }
    }
    return top - first + 1; /* kept on the stack so the tape's string pointers stay valid */
}

/* Calls the function at index 1 with the push tape's values as arguments. */
static inline int sb_call_pushed(lua_State *L, sb_host *h) {
    int arguments = 0;
    for (size_t i = 0; i < h->push_count; arguments++) {
        luaL_checkstack(L, 2, "too many arguments");
        i = sb_push(L, h, h->push_items, h->push_count, i, h->push_bytes, 0, 0);
    }
    lua_callk(L, arguments, LUA_MULTRET, 0, NULL);
    if (h->answer_check) {
        /* A plain answer -- true, or false/nil and a string or nil -- is kept as its first two
         * results; anything else goes to the checking function, whose results are the answer. */
        lua_settop(L, 2);
        int allowed = lua_type(L, 1), reason = lua_type(L, 2);
        int plain = (allowed == LUA_TBOOLEAN && lua_toboolean(L, 1)) ||
                    ((allowed == LUA_TNIL || allowed == LUA_TBOOLEAN) && (reason == LUA_TNIL || reason == LUA_TSTRING));
        if (!plain) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, h->functions);
            lua_rawgeti(L, -1, (lua_Integer)h->answer_check);
            lua_remove(L, -2);
            if (lua_type(L, -1) != LUA_TFUNCTION) {
                h->type_error = 1;
                return luaL_error(L, "function reference %lld was released", (long long)h->answer_check);
            }
            lua_insert(L, 1);
            lua_callk(L, 2, LUA_MULTRET, 0, NULL);
        }
    }
    return sb_read_results(L, h, 1);
}

/* Pushes the globals table and the current name; lookups are raw, so no script metamethod runs. */
static inline void sb_push_global_slot(lua_State *L, sb_host *h) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pushstring(L, h->name);
}

static inline int sb_open(lua_State *L, sb_host *h) {
    static const luaL_Reg libraries[] = {
        {LUA_GNAME, luaopen_base},      {LUA_STRLIBNAME, luaopen_string}, {LUA_TABLIBNAME, luaopen_table},
        {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8},  {NULL, NULL},
    };
    for (const luaL_Reg *library = libraries; library->func; library++) {
        luaL_requiref(L, library->name, library->func, 1);
        lua_pop(L, 1);
    }
    static const char *const removed[] = {"dofile", "loadfile", "load", "require", "collectgarbage", NULL};
    for (const char *const *name = removed; *name; name++) {
        lua_pushnil(L);
        lua_setglobal(L, *name);
    }
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    lua_pushcclosure(L, sb_print, 0);
    lua_setglobal(L, "print");
    lua_pushcclosure(L, sb_setmetatable, 0);
    lua_setglobal(L, "setmetatable");
    lua_pushcclosure(L, sb_rawset, 0);
    lua_setglobal(L, "rawset");
    lua_createtable(L, 0, 0);
    h->functions = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 0, 0);
    h->function_numbers = luaL_ref(L, LUA_REGISTRYINDEX);
    h->next_function = 1;
    lua_createtable(L, 4, 0);
    h->kept = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static inline int sb_operation(lua_State *L) {
    sb_host *h = sb_host_of(L);
    switch (h->op) {
    case SB_OP_OPEN:
        return sb_open(L, h);
    case SB_OP_LOAD: {
        int status = luaL_loadbufferx(L, h->source, h->source_length, h->chunk_name, "t");
        if (status != LUA_OK) {
            h->load_status = status;
            return 1; /* the message */
        }
        lua_callk(L, 0, LUA_MULTRET, 0, NULL);
        return sb_read_results(L, h, 1);
    }
    case SB_OP_CALL_GLOBAL:
        sb_push_global_slot(L, h);
        lua_rawget(L, -2);
        lua_remove(L, -2);
        if (lua_type(L, 1) != LUA_TFUNCTION) {
            h->type_error = 1;
            return luaL_error(L, "global '%s' is not a function (it is %s)", h->name, luaL_typename(L, 1));
        }
        return sb_call_pushed(L, h);
    case SB_OP_CALL_REF:
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->functions);
        lua_rawgeti(L, -1, (lua_Integer)h->reference);
        lua_remove(L, -2);
        if (lua_type(L, 1) != LUA_TFUNCTION) {
            h->type_error = 1;
            return luaL_error(L, "function reference %lld was released", (long long)h->reference);
        }
        return sb_call_pushed(L, h);
    case SB_OP_GET_GLOBAL:
        sb_push_global_slot(L, h);
        lua_rawget(L, -2);
        lua_remove(L, -2);
        return sb_read_results(L, h, 1);
    case SB_OP_SET_GLOBAL:
        sb_push_global_slot(L, h);
        if (h->push_count > 0) sb_push(L, h, h->push_items, h->push_count, 0, h->push_bytes, 0, 0);
        else lua_pushnil(L);
        lua_rawset(L, -3);
        return 0;
    case SB_OP_REGISTER:
        sb_push_global_slot(L, h);
        lua_pushinteger(L, (lua_Integer)h->function_id);
        lua_pushstring(L, h->name);
        lua_pushcclosure(L, sb_trampoline, 2);
        lua_rawset(L, -3);
        return 0;
    case SB_OP_RELEASE:
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->function_numbers); /* 1 */
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->functions);        /* 2 */
        lua_rawgeti(L, 2, (lua_Integer)h->reference);           /* 3: the function, or nil */
        if (lua_type(L, 3) == LUA_TFUNCTION) {
            lua_pushnil(L);
            lua_rawset(L, 1);
        }
        lua_pushnil(L);
        lua_rawseti(L, 2, (lua_Integer)h->reference);
        return 0;
    case SB_OP_COLLECT:
        lua_gc(L, LUA_GCCOLLECT);
        return 0;
    default:
        return luaL_error(L, "unknown host operation %d", h->op);
    }
}

static inline void sb_capture_error(sb_host *h) {
    lua_State *L = h->L;
    if (lua_type(L, -1) == LUA_TSTRING) {
        h->error_text = lua_tolstring(L, -1, &h->error_length);
        return;
    }
    snprintf(h->error_buffer, sizeof h->error_buffer, "(error object is a %s value)", luaL_typename(L, -1));
    h->error_text = h->error_buffer;
    h->error_length = strlen(h->error_buffer);
}

/*
 * Runs one operation in a protected call with a fresh instruction budget and returns Lua's
 * status. On failure `error_text`/`error_length` describe it; on success the read tape holds
 * the results, valid until `sb_clear`.
 */
static inline int sb_run(sb_host *h, int op) {
    lua_State *L = h->L;
    h->op = op;
    if (op != SB_OP_CALL_REF) h->answer_check = 0;
    h->load_status = LUA_OK;
    h->type_error = 0;
    h->read_failed = 0;
    h->budget_exhausted = 0;
    h->limit_hit = 0;
    h->count = 0;
    h->error_text = NULL;
    h->error_length = 0;
    lua_settop(L, 0);
    if (h->watched) sb_watch_enter(h);
    else lua_sethook(L, sb_hook, LUA_MASKCOUNT, h->budget);
    lua_pushcclosure(L, sb_message_handler, 0);
    lua_pushcclosure(L, sb_operation, 0);
    int status = lua_pcallk(L, 0, LUA_MULTRET, 1, 0, NULL);
    if (h->watched) sb_watch_leave(h);
    if (h->gc_stopped) {
        lua_gc(L, LUA_GCRESTART);
        h->gc_stopped = 0;
    }
    if (status != LUA_OK || h->load_status != LUA_OK) {
        sb_capture_error(h);
    } else if (h->read_failed) {
        h->error_text = h->read_message;
        h->error_length = strlen(h->read_message);
    }
    return status;
}

/* Drops the last operation's results (and so the strings the read tape points into). */
static inline void sb_clear(sb_host *h) {
    lua_settop(h->L, 0);
    h->count = 0;
}

/* ---- Lifetime ---------------------------------------------------------------------------- */

/* `watched`: leave the budget to the watchdog (falls back to counting every instruction when
 * the watchdog is unavailable; `watched` in the result says which). */
static inline sb_host *sb_host_create(size_t limit, int budget, int max_depth, size_t max_elements, int watched) {
    sb_host *h = (sb_host *)calloc(1, sizeof(sb_host));
    if (h == NULL) return NULL;
    h->limit = limit;
    h->budget = budget;
    h->max_depth = max_depth > SB_DEPTH_CAP ? SB_DEPTH_CAP : max_depth;
    h->max_elements = max_elements;
    lua_State *L = lua_newstate(sb_alloc, h);
    if (L == NULL) {
        free(h);
        return NULL;
    }
    *(sb_host **)lua_getextraspace(L) = h;
    h->L = L;
    lua_atpanic(L, sb_panic);
    if (watched) {
        pthread_once(&sb_watch_once, sb_watch_start);
        if (sb_watch_ready) {
            pthread_mutex_lock(&sb_watch_lock);
            h->watched = 1;
            h->next_watched = sb_watch_list;
            sb_watch_list = h;
            pthread_mutex_unlock(&sb_watch_lock);
        }
    }
    return h;
}

/* Closes the state. Finalizers still run, under the budget, with Swift unreachable. */
static inline void sb_host_destroy(sb_host *h) {
    if (h->watched) {
        pthread_mutex_lock(&sb_watch_lock);
        for (sb_host **link = &sb_watch_list; *link != NULL; link = &(*link)->next_watched) {
            if (*link == h) {
                *link = h->next_watched;
                break;
            }
        }
        pthread_mutex_unlock(&sb_watch_lock);
        h->watched = 0;
    }
    h->context = NULL;
    h->invoke = NULL;
    h->print = NULL;
    h->limit_lifted = 0;
    lua_settop(h->L, 0);
    lua_sethook(h->L, sb_hook, LUA_MASKCOUNT, h->budget);
    lua_close(h->L);
    free(h->items);
    free(h);
}

static inline const char *sb_lua_release(void) { return LUA_RELEASE; }

#endif
