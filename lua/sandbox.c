/*
 * sandbox.c - making a tenant's VM safe (../shared/LUA-SANDBOX.md,
 * "Defences"):
 *
 * - The allocator caps the VM's memory, refuses a killed run any more
 *   memory (so pcall cannot spin on emergency collections) and checks the
 *   run's deadline every few hundred allocations and on every large one.
 * - Libraries are opened one by one: a trimmed base (no dofile, loadfile,
 *   load, print, warn, require; collectgarbage answers "count" only),
 *   string without dump and with budgeted patterns (pattern.c), table,
 *   math, utf8, and the `tf` table of stdlib/.  No io, os, package, debug,
 *   coroutine.
 * - pcall and xpcall re-raise a kill instead of returning it, and xpcall
 *   never runs the script's message handler for a kill (it would run with
 *   hooks off); setmetatable refuses __gc; rawset refuses the shared
 *   tables.
 * - Every library table a script sees is a read-only proxy (nested tables
 *   too), the string metatable is locked, and the base that every run's
 *   globals read through is reachable by no script.
 * - Modules share one _ENV table whose metamethods send reads and writes to
 *   the globals of the run executing, so each run has its own globals even
 *   when runs of one module interleave.
 * Loop thread of the host.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "engine/error.h"
#include "lua/convert.h"
#include "lua/host_internal.h"

/* What getmetatable() answers for every table TaskFlow locked. */
static const char LOCKED[] = "locked";

/* Registry key of the frozen set. */
static const char FROZEN_KEY = 'f';

/* ---- the allocator ---- */

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    tf_lua_vm_t *vm = ud;
    size_t old = ptr != NULL ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        vm->used -= old;
        return NULL;
    }
    if (nsize > old) {
        tf_lua_run_t *run = vm->current;
        size_t grow = nsize - old;
        if (run != NULL && run->kill != TF__KILL_NONE) {
            return NULL; /* a killed run gets nothing more */
        }
        if (vm->used + grow > vm->memory_limit) {
            if (run != NULL) {
                tf__lua_kill(run, TF__KILL_MEMORY);
            }
            vm->tainted = 1;
            return NULL;
        }
        if (run != NULL && (++vm->allocs % 256 == 0 || grow > 65536) &&
            uv_hrtime() > run->deadline_ns) {
            tf__lua_kill(run, TF__KILL_DEADLINE);
            return NULL;
        }
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL) {
        return nsize > old ? NULL : ptr; /* a failed shrink keeps the block */
    }
    vm->used = vm->used - old + nsize;
    return p;
}

/* ---- safe base functions ---- */

static int is_frozen(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &FROZEN_KEY);
    lua_pushvalue(L, idx);
    int frozen = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return frozen;
}

static int safe_rawset(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (is_frozen(L, 1)) {
        return luaL_error(L, "rawset: this table is read-only");
    }
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

static int safe_setmetatable(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int t = lua_type(L, 2);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        int gc = lua_rawget(L, 2) != LUA_TNIL;
        lua_pop(L, 1);
        if (gc) {
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed");
        }
    }
    if (is_frozen(L, 1) || luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) {
        return luaL_error(L, "cannot change a protected metatable");
    }
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

static int safe_collectgarbage(lua_State *L) {
    const char *opt = luaL_optstring(L, 1, "count");
    if (strcmp(opt, "count") != 0) {
        return luaL_error(L, "collectgarbage: only \"count\" is allowed");
    }
    int kb = lua_gc(L, LUA_GCCOUNT);
    int b = lua_gc(L, LUA_GCCOUNTB);
    lua_pushnumber(L, (lua_Number)kb + ((lua_Number)b / 1024));
    return 1;
}

/* After a protected call: a kill goes on up; otherwise the results (true,
 * ...) or (false, error). */
static int finish_pcall(lua_State *L, int status, lua_KContext extra) {
    tf_lua_run_t *run = tf__lua_run_of(L);
    if (run != NULL && run->kill != TF__KILL_NONE) {
        return tf__lua_raise_kill(L, run);
    }
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

static int safe_pcall(lua_State *L) {
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1); /* the first result when nothing fails */
    lua_insert(L, 1);
    int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
    return finish_pcall(L, status, 0);
}

/* xpcall's message handler: the script's, unless the run was killed (the
 * handler would run with hooks off, so a looping one would never stop). */
static int guarded_handler(lua_State *L) {
    tf_lua_run_t *run = tf__lua_run_of(L);
    if (run != NULL && run->kill != TF__KILL_NONE) {
        lua_settop(L, 1);
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int safe_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, guarded_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1); /* the first result */
    lua_pushvalue(L, 1);   /* the function */
    lua_rotate(L, 3, 2);   /* below the function's arguments */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
    return finish_pcall(L, status, 2);
}

/* ---- read-only tables ---- */

static int read_only(lua_State *L) {
    if (lua_type(L, 2) == LUA_TSTRING) {
        return luaL_error(L, "'%s' belongs to a read-only library table", lua_tostring(L, 2));
    }
    return luaL_error(L, "a read-only library table cannot be changed");
}

static void mark_frozen(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &FROZEN_KEY);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* Replaces the value at the top of the stack (the proxy's __index) with
 * an empty, frozen table whose locked metatable reads through it and
 * sends writes to `newindex`.  [-1, +1, m] */
static void push_proxy(lua_State *L, lua_CFunction newindex) {
    lua_newtable(L);
    lua_createtable(L, 0, 3);
    lua_rotate(L, -3, -1); /* proxy, meta, index */
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushstring(L, LOCKED);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    mark_frozen(L, -1);
}

/* Replaces the table at the top of the stack with a read-only proxy of it
 * (its table fields proxied too).  [-1, +1, m] */
static void proxy_top(lua_State *L, int depth) {
    int real = lua_gettop(L);
    if (depth < 4) {
        lua_pushnil(L);
        while (lua_next(L, real) != 0) {
            if (lua_type(L, -1) == LUA_TTABLE && lua_type(L, -2) == LUA_TSTRING) {
                proxy_top(L, depth + 1);
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_rawset(L, real); /* the field now holds the proxy */
            } else {
                lua_pop(L, 1);
            }
        }
    }
    mark_frozen(L, real);
    lua_pushvalue(L, real);
    push_proxy(L, read_only);
    lua_replace(L, real);
}

/* ---- the modules' _ENV ---- */

/* Pushes the run's globals, made on first need: most runs never write a
 * global, and then they cost nothing.  [-0, +1, m] */
static void push_run_env(lua_State *L, tf_lua_run_t *run) {
    if (run->env_ref == LUA_NOREF) {
        tf__lua_push_run_env(run->vm, L);
        run->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, run->env_ref);
}

/* _ENV[k]: the running run's global, else the base's (upvalue 1). */
static int env_index(lua_State *L) {
    tf_lua_run_t *run = tf__lua_run_of(L);
    if (run == NULL) {
        lua_pushnil(L);
        return 1;
    }
    if (run->env_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, run->env_ref);
        lua_pushvalue(L, 2);
        if (lua_rawget(L, -2) != LUA_TNIL) {
            return 1;
        }
    } else if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "_G") == 0) {
        push_run_env(L, run);
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

/* _ENV[k] = v: into the running run's globals only. */
static int env_newindex(lua_State *L) {
    tf_lua_run_t *run = tf__lua_run_of(L);
    if (run == NULL) {
        return luaL_error(L, "no run to hold the global");
    }
    push_run_env(L, run);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_rawset(L, -3);
    return 0;
}

void tf__lua_push_run_env(tf_lua_vm_t *vm, lua_State *L) {
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->env_meta_ref);
    lua_setmetatable(L, -2);
}

/* ---- making the VM ---- */

static const char *const BASE_KEPT[] = {
    "assert", "error", "getmetatable", "ipairs",   "next", "pairs", "rawequal",
    "rawget", "rawlen", "select", "tonumber", "tostring", "type", "_VERSION",
    NULL,
};

static void open_lib(lua_State *L, const char *name, lua_CFunction open) {
    luaL_requiref(L, name, open, 1);
    lua_pop(L, 1);
}

/* Builds the base every run reads through to.  [-0, +1, m] */
static void push_base(lua_State *L, const tf_lua_config_t *cfg) {
    lua_pushglobaltable(L);
    int globals = lua_gettop(L);
    lua_createtable(L, 0, 24);
    int base = lua_gettop(L);
    for (size_t i = 0; BASE_KEPT[i] != NULL; i++) {
        lua_getfield(L, globals, BASE_KEPT[i]);
        lua_setfield(L, base, BASE_KEPT[i]);
    }
    static const luaL_Reg safe[] = {{"pcall", safe_pcall},
                                    {"xpcall", safe_xpcall},
                                    {"rawset", safe_rawset},
                                    {"setmetatable", safe_setmetatable},
                                    {"collectgarbage", safe_collectgarbage},
                                    {NULL, NULL}};
    luaL_setfuncs(L, safe, 0);
    /* The string library: no dump, budgeted patterns, a locked metatable
     * (whose __index is this very table, which no script can reach). */
    lua_getfield(L, globals, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    tf__lua_patterns_install(L, lua_gettop(L));
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushstring(L, LOCKED);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    proxy_top(L, 0);
    lua_setfield(L, base, LUA_STRLIBNAME);
    static const char *const libs[] = {LUA_TABLIBNAME, LUA_MATHLIBNAME, LUA_UTF8LIBNAME};
    for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
        lua_getfield(L, globals, libs[i]);
        proxy_top(L, 0);
        lua_setfield(L, base, libs[i]);
    }
    lua_newtable(L); /* tf */
    if (cfg->open_libs != NULL) {
        cfg->open_libs(L, cfg->libs_ctx);
    }
    proxy_top(L, 0);
    lua_setfield(L, base, "tf");
    mark_frozen(L, base);
    /* Nothing is left in the real globals: every chunk runs with the
     * modules' _ENV. */
    lua_newtable(L);
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_remove(L, globals);
}

static int vm_setup(lua_State *L) {
    tf_lua_vm_t *vm = lua_touserdata(L, 1);
    const tf_lua_config_t *cfg = lua_touserdata(L, 2);
    lua_newtable(L); /* the frozen set, weak keys */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &FROZEN_KEY);
    vm->frozen_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    open_lib(L, LUA_GNAME, luaopen_base);
    open_lib(L, LUA_STRLIBNAME, luaopen_string);
    open_lib(L, LUA_TABLIBNAME, luaopen_table);
    open_lib(L, LUA_MATHLIBNAME, luaopen_math);
    open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);
    tf_lua_json_init(L);
    push_base(L, cfg);
    lua_pushvalue(L, -1);
    vm->base_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* A run's globals read through to the base; their metatable is locked. */
    lua_createtable(L, 0, 2);
    lua_insert(L, -2);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, LOCKED);
    lua_setfield(L, -2, "__metatable");
    vm->env_meta_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* The modules' _ENV. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->base_ref);
    lua_pushcclosure(L, env_index, 1);
    push_proxy(L, env_newindex);
    vm->proxy_env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    vm->modules_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static int vm_panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "taskflow: unprotected Lua error (a bug): %s\n", msg != NULL ? msg : "?");
    abort();
}

int tf__lua_vm_open(tf_lua_vm_t *vm, const tf_lua_config_t *cfg) {
    vm->memory_limit = cfg->limits.memory_bytes;
    vm->L = lua_newstate(vm_alloc, vm);
    if (vm->L == NULL) {
        return TF_ENOMEM;
    }
    lua_atpanic(vm->L, vm_panic);
    lua_pushcfunction(vm->L, vm_setup);
    lua_pushlightuserdata(vm->L, vm);
    lua_pushlightuserdata(vm->L, (void *)cfg);
    int status = lua_pcall(vm->L, 2, 0, 0);
    if (status != LUA_OK) {
        lua_close(vm->L);
        vm->L = NULL;
        return status == LUA_ERRMEM ? TF_ENOMEM : TF_EIO;
    }
    lua_gc(vm->L, LUA_GCGEN, 0, 0); /* most objects of a run die young */
    return 0;
}
