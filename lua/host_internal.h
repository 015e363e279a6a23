/*
 * host_internal.h - what the files of the Lua host share (host.c: VMs,
 * runs and the scheduler; sandbox.c: making a VM and its safe library;
 * pattern.c: the budgeted string patterns).  Not a public contract.
 * Loop thread of the host.
 */
#ifndef TF_LUA_HOST_INTERNAL_H
#define TF_LUA_HOST_INTERNAL_H

#include <stdint.h>

#include <lua.h>

#include "lua/host.h"

#define TF_LUA_HOOK_EVERY 1000 /* instructions between two calls of the count hook */

typedef enum {
    TF__KILL_NONE = 0,
    TF__KILL_BUDGET,
    TF__KILL_DEADLINE,
    TF__KILL_MEMORY,
    TF__KILL_OUTPUT,
    TF__KILL_CANCEL,
    TF__KILL_SHUTDOWN,
} tf__kill_t;

typedef enum {
    TF__RUN_NEW = 0, /* not started */
    TF__RUN_READY,   /* in its VM's ready list */
    TF__RUN_RUNNING,
    TF__RUN_WAITING, /* parked in tf_lua_wait() */
    TF__RUN_DONE,
} tf__run_state_t;

typedef struct tf_lua_vm tf_lua_vm_t;

struct tf_lua_run {
    tf_lua_host_t *host;
    tf_lua_vm_t *vm; /* NULL until started */
    tf_lua_call_t call; /* strings point into `strings` */
    char *strings;      /* one block: every string of the call, copied */
    char id[24];
    lua_State *co; /* the run's coroutine */
    int co_ref;    /* its anchor in the registry */
    int env_ref;   /* the run's globals */
    tf__run_state_t state;
    tf__kill_t kill;
    int preempted;     /* the last yield was the end of a time slice */
    int started;       /* the coroutine was resumed once */
    int syntax_error;  /* the module did not compile */
    int module_error;  /* the module's check refused it */
    char module_err[160];
    uint64_t instructions;
    uint64_t deadline_ns, slice_end_ns; /* uv_hrtime() */
    tf_lua_cancel_fn wait_cancel;
    void *wait_op;
    size_t log_bytes;
    int log_dropped;
    int64_t snooze_ms;
    tf_lua_done_fn done;
    void *done_arg;
    int woken;         /* tf_lua_wake() came before the yield */
    tf_lua_run_t *next; /* ready list of its VM, or the host's finishing list */
    tf_lua_run_t *wprev, *wnext; /* the host's list of waiting runs */
    /* The outcome, kept until `done` was called. */
    tf_lua_outcome_t out;
    char *result_json;
    char error_type[64];
    char error_message[1024];
};

struct tf_lua_vm {
    tf_lua_host_t *host;
    char tenant_id[64];
    lua_State *L;
    size_t used;             /* bytes allocated by this VM */
    tf_lua_run_t *current;   /* the run executing (for the allocator) */
    uint32_t allocs;         /* allocations since the last deadline check */
    int proxy_env_ref;       /* the _ENV of every module: dispatches to the run's globals */
    int env_meta_ref;        /* metatable of a run's globals: reads fall back to the base */
    int modules_ref;         /* table: module key -> module value */
    int frozen_ref;          /* weak set of tables rawset must not touch */
    tf_lua_vm_t *prev, *next; /* the host's list, most recently used first */
    int64_t last_used_ns;
    uint64_t cpu_ns; /* CPU the VM's runs used (scheduling) */
    tf_lua_run_t *ready_head, *ready_tail;
    int nruns;   /* runs that are not done */
    int tainted; /* a run hit the memory cap: retired once its runs ended */
    size_t memory_limit;
    int base_ref; /* the frozen base every run's globals read through to */
    lua_State *pool[4]; /* finished coroutines kept for the next runs */
    int pool_ref[4];
    int npool;
    tf_lua_vm_t *ready_next; /* the host's list of VMs with ready runs */
    int in_ready_list;
};

/* sandbox.c */
/* Makes the VM's state: the capped allocator, the safe libraries, the
 * frozen base, the module _ENV.  Returns 0, TF_ENOMEM or TF_EIO. */
int tf__lua_vm_open(tf_lua_vm_t *vm, const tf_lua_config_t *cfg);
/* A new run's globals: an empty table that reads through to the frozen
 * base, with _G itself.  [-0, +1, m] */
void tf__lua_push_run_env(tf_lua_vm_t *vm, lua_State *L);

/* host.c */
/* The run of coroutine L, or NULL. */
tf_lua_run_t *tf__lua_run_of(lua_State *L);
/* Marks the run killed (the first reason wins). */
void tf__lua_kill(tf_lua_run_t *run, tf__kill_t why);
/* The message of a kill. */
const char *tf__lua_kill_message(tf__kill_t why);
/* Raises the run's kill as a Lua error, or yields when the coroutine may
 * (yield-and-abandon).  Call only when run->kill is set.  [-0, +0, v] */
int tf__lua_raise_kill(lua_State *L, tf_lua_run_t *run);

/* The value tf.snooze() returns (a light userdata of this address). */
extern const char tf__lua_snooze_mark;

/* pattern.c */
/* Replaces string.find, match, gmatch and gsub of the string library table
 * at `idx` with versions that check the run's limits while matching.
 * [-0, +0, m] */
void tf__lua_patterns_install(lua_State *L, int idx);

#endif
