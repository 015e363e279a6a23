/*
 * host.c - tenant VMs, runs and their scheduling (see host.h).
 *
 * A run is a coroutine of its tenant's VM whose main function is body():
 * it compiles the module (once per VM and key), then calls the module's
 * function with the run's arguments.  The host resumes runs from one
 * uv_idle callback, a time slice at a time, and never from a libuv
 * callback of an operation: those only mark the run ready (tf_lua_wake).
 *
 * The count hook fires every TF_LUA_HOOK_EVERY instructions: it charges
 * the budget, checks the deadline and the slice, and yields (preemption)
 * or kills.  A kill yields when the coroutine can yield (the run is then
 * abandoned, never resumed) and raises an error when it cannot (inside a
 * C function that called Lua: table.sort's comparator, a metamethod); the
 * safe pcall/xpcall of sandbox.c pass a kill on, the allocator refuses a
 * killed run memory, and the hook raises again at its next tick, so the
 * error reaches the run's top whatever the script does.
 *
 * Outcomes are handed to `done` from the idle callback too, outside any
 * Lua call, so a callback may start or cancel runs freely.
 * Loop thread only.
 */
#include "lua/host.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "adapters/json/jbuf.h"
#include "engine/error.h"
#include "engine/utf8.h"
#include "lua/convert.h"
#include "lua/host_internal.h"

const char tf__lua_snooze_mark = 's';

struct tf_lua_host {
    uv_loop_t *loop;
    tf_lua_config_t cfg;
    uv_idle_t idle;         /* the scheduler */
    uv_timer_t waits;       /* deadlines of waiting runs */
    uv_timer_t sweep;       /* closes idle VMs */
    tf_lua_vm_t *mru, *lru; /* every VM serving a tenant, most recently used first */
    int nvms;
    tf_lua_vm_t *retired;   /* tainted VMs waiting for their last run */
    tf_lua_vm_t *ready_vms; /* VMs with ready runs */
    tf_lua_run_t *finished_head, *finished_tail;
    tf_lua_run_t *waiting; /* runs parked in tf_lua_wait() */
    uint64_t seq;
    int reap_tainted; /* a tainted VM's last run ended: retire it at the next delivery */
    int closing, handles_open;
    void (*closed_cb)(void *arg);
    void *closed_arg;
    tf_metric_t *m_runs_ok, *m_runs_failed, *m_vms_created, *m_vms_evicted, *m_vm_resets;
    tf_metric_t *m_vms;
};

void tf_lua_limits_default(tf_lua_limits_t *l) {
    l->memory_bytes = TF_LUA_DEFAULT_MEMORY_BYTES;
    l->instructions = TF_LUA_DEFAULT_INSTRUCTIONS;
    l->timeout_ms = TF_LUA_DEFAULT_TIMEOUT_MS;
    l->output_bytes = TF_LUA_DEFAULT_OUTPUT_BYTES;
    l->log_bytes = TF_LUA_DEFAULT_LOG_BYTES;
    l->slice_ms = TF_LUA_DEFAULT_SLICE_MS;
    l->max_vms = TF_LUA_DEFAULT_MAX_VMS;
    l->vm_idle_ms = TF_LUA_DEFAULT_VM_IDLE_MS;
}

static void metric_inc(tf_metric_t *m) {
    if (m != NULL) {
        tf_metric_inc(m);
    }
}

/* ---- runs and kills ---- */

tf_lua_run_t *tf__lua_run_of(lua_State *L) {
    return *(tf_lua_run_t **)lua_getextraspace(L);
}

static void set_run_of(lua_State *L, tf_lua_run_t *run) {
    *(tf_lua_run_t **)lua_getextraspace(L) = run;
}

void tf__lua_kill(tf_lua_run_t *run, tf__kill_t why) {
    if (run->kill == TF__KILL_NONE) {
        run->kill = why;
    }
}

const char *tf__lua_kill_message(tf__kill_t why) {
    switch (why) {
    case TF__KILL_BUDGET:
        return "the run spent its instruction budget";
    case TF__KILL_DEADLINE:
        return "the run passed its time limit";
    case TF__KILL_MEMORY:
        return "the tenant's Lua memory limit was reached";
    case TF__KILL_OUTPUT:
        return "the run's output passed its limit";
    case TF__KILL_CANCEL:
        return "the run was cancelled";
    case TF__KILL_SHUTDOWN:
        return "the engine is shutting down";
    default:
        return "the run was stopped";
    }
}

static const char *kill_type(tf__kill_t why) {
    switch (why) {
    case TF__KILL_BUDGET:
        return "lua_budget";
    case TF__KILL_DEADLINE:
        return "lua_deadline";
    case TF__KILL_MEMORY:
        return "lua_memory";
    case TF__KILL_OUTPUT:
        return "lua_output";
    case TF__KILL_CANCEL:
        return "cancelled";
    default:
        return "shutdown";
    }
}

int tf__lua_raise_kill(lua_State *L, tf_lua_run_t *run) {
    if (lua_isyieldable(L)) {
        return lua_yield(L, 0); /* abandoned: never resumed */
    }
    return luaL_error(L, "%s", tf__lua_kill_message(run->kill));
}

static uint64_t ms_to_ns(int64_t ms) {
    return (uint64_t)ms * 1000000u;
}

static void hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    tf_lua_run_t *run = tf__lua_run_of(L);
    if (run == NULL) {
        return;
    }
    run->instructions += TF_LUA_HOOK_EVERY;
    if (run->kill == TF__KILL_NONE) {
        if (run->instructions >= run->host->cfg.limits.instructions) {
            tf__lua_kill(run, TF__KILL_BUDGET);
        } else {
            uint64_t now = uv_hrtime();
            if (now >= run->deadline_ns) {
                tf__lua_kill(run, TF__KILL_DEADLINE);
            } else if (now >= run->slice_end_ns && lua_isyieldable(L)) {
                run->preempted = 1;
                lua_yield(L, 0);
                return;
            }
        }
    }
    if (run->kill != TF__KILL_NONE) {
        tf__lua_raise_kill(L, run);
    }
}

void tf_lua_check_limits(lua_State *L) {
    tf_lua_run_t *run = tf__lua_run_of(L);
    if (run == NULL) {
        return;
    }
    if (run->kill == TF__KILL_NONE && uv_hrtime() >= run->deadline_ns) {
        tf__lua_kill(run, TF__KILL_DEADLINE);
    }
    if (run->kill != TF__KILL_NONE) {
        tf__lua_raise_kill(L, run);
    }
}

/* ---- VMs ---- */

static void vm_unlink(tf_lua_host_t *h, tf_lua_vm_t *vm) {
    if (vm->prev != NULL) {
        vm->prev->next = vm->next;
    } else {
        h->mru = vm->next;
    }
    if (vm->next != NULL) {
        vm->next->prev = vm->prev;
    } else {
        h->lru = vm->prev;
    }
    vm->prev = vm->next = NULL;
    h->nvms--;
}

static void vm_push_front(tf_lua_host_t *h, tf_lua_vm_t *vm) {
    vm->prev = NULL;
    vm->next = h->mru;
    if (h->mru != NULL) {
        h->mru->prev = vm;
    } else {
        h->lru = vm;
    }
    h->mru = vm;
    h->nvms++;
}

static void vm_free(tf_lua_vm_t *vm) {
    if (vm->L != NULL) {
        lua_close(vm->L);
    }
    free(vm);
}

static void count_vms(tf_lua_host_t *h) {
    if (h->m_vms != NULL) {
        tf_metric_set(h->m_vms, h->nvms);
    }
}

static void vm_evict(tf_lua_host_t *h, tf_lua_vm_t *vm) {
    vm_unlink(h, vm);
    vm_free(vm);
    metric_inc(h->m_vms_evicted);
    count_vms(h);
}

/* A tainted VM serves no new run; it is closed after its last run. */
static void vm_retire(tf_lua_host_t *h, tf_lua_vm_t *vm) {
    vm_unlink(h, vm);
    metric_inc(h->m_vm_resets);
    count_vms(h);
    if (vm->nruns == 0) {
        vm_free(vm);
        return;
    }
    vm->next = h->retired;
    h->retired = vm;
}

static void retired_reap(tf_lua_host_t *h) {
    /* A tainted VM still serving its tenant is retired as soon as its last
     * run ended, not when the tenant's next run comes (its memory is near
     * the cap). */
    if (h->reap_tainted) {
        h->reap_tainted = 0;
        for (tf_lua_vm_t *vm = h->mru; vm != NULL;) {
            tf_lua_vm_t *next = vm->next;
            if (vm->tainted && vm->nruns == 0) {
                vm_retire(h, vm);
            }
            vm = next;
        }
    }
    for (tf_lua_vm_t **p = &h->retired; *p != NULL;) {
        tf_lua_vm_t *vm = *p;
        if (vm->nruns == 0) {
            *p = vm->next;
            vm_free(vm);
        } else {
            p = &vm->next;
        }
    }
}

static tf_lua_vm_t *vm_for(tf_lua_host_t *h, const char *tenant_id, int *rc) {
    for (tf_lua_vm_t *vm = h->mru; vm != NULL; vm = vm->next) {
        if (strcmp(vm->tenant_id, tenant_id) == 0) {
            if (vm->tainted) {
                vm_retire(h, vm);
                break;
            }
            vm_unlink(h, vm);
            vm_push_front(h, vm);
            return vm;
        }
    }
    /* Room for one more: the least recently used idle VMs go first. */
    for (tf_lua_vm_t *vm = h->lru; vm != NULL && h->nvms >= h->cfg.limits.max_vms;) {
        tf_lua_vm_t *prev = vm->prev;
        if (vm->nruns == 0) {
            vm_evict(h, vm);
        }
        vm = prev;
    }
    tf_lua_vm_t *vm = calloc(1, sizeof(*vm));
    if (vm == NULL) {
        *rc = TF_ENOMEM;
        return NULL;
    }
    vm->host = h;
    snprintf(vm->tenant_id, sizeof(vm->tenant_id), "%s", tenant_id);
    *rc = tf__lua_vm_open(vm, &h->cfg);
    if (*rc != 0) {
        free(vm);
        return NULL;
    }
    lua_sethook(vm->L, hook, LUA_MASKCOUNT, TF_LUA_HOOK_EVERY); /* coroutines inherit it */
    vm_push_front(h, vm);
    metric_inc(h->m_vms_created);
    count_vms(h);
    return vm;
}

static void sweep_cb(uv_timer_t *t) {
    tf_lua_host_t *h = t->data;
    int64_t now = (int64_t)uv_hrtime();
    for (tf_lua_vm_t *vm = h->lru; vm != NULL;) {
        tf_lua_vm_t *prev = vm->prev;
        if (vm->nruns == 0 &&
            now - vm->last_used_ns > (int64_t)ms_to_ns(h->cfg.limits.vm_idle_ms)) {
            vm_evict(h, vm);
        }
        vm = prev;
    }
}

size_t tf_lua_vm_memory(tf_lua_host_t *h, const char *tenant_id) {
    for (tf_lua_vm_t *vm = h->mru; vm != NULL; vm = vm->next) {
        if (strcmp(vm->tenant_id, tenant_id) == 0) {
            return vm->used;
        }
    }
    return 0;
}

/* ---- the scheduler's lists ---- */

static void ready_vm_add(tf_lua_host_t *h, tf_lua_vm_t *vm) {
    if (vm->in_ready_list) {
        return;
    }
    /* A VM that joins is at most a slice behind the busiest ready one's
     * least: it cannot bank idle time into a long monopoly. */
    uint64_t min = UINT64_MAX;
    for (tf_lua_vm_t *v = h->ready_vms; v != NULL; v = v->ready_next) {
        if (v->cpu_ns < min) {
            min = v->cpu_ns;
        }
    }
    uint64_t slice = ms_to_ns(h->cfg.limits.slice_ms);
    if (min != UINT64_MAX && vm->cpu_ns + slice < min) {
        vm->cpu_ns = min - slice;
    }
    vm->ready_next = h->ready_vms;
    h->ready_vms = vm;
    vm->in_ready_list = 1;
}

static void ready_vm_remove(tf_lua_host_t *h, tf_lua_vm_t *vm) {
    for (tf_lua_vm_t **p = &h->ready_vms; *p != NULL; p = &(*p)->ready_next) {
        if (*p == vm) {
            *p = vm->ready_next;
            break;
        }
    }
    vm->ready_next = NULL;
    vm->in_ready_list = 0;
}

static void schedule(tf_lua_host_t *h);
static void waits_cb(uv_timer_t *t);

static void make_ready(tf_lua_run_t *run) {
    tf_lua_vm_t *vm = run->vm;
    run->state = TF__RUN_READY;
    run->next = NULL;
    if (vm->ready_tail != NULL) {
        vm->ready_tail->next = run;
    } else {
        vm->ready_head = run;
    }
    vm->ready_tail = run;
    ready_vm_add(run->host, vm);
    schedule(run->host);
}

static void ready_remove(tf_lua_run_t *run) {
    tf_lua_vm_t *vm = run->vm;
    tf_lua_run_t *prev = NULL;
    for (tf_lua_run_t *r = vm->ready_head; r != NULL; prev = r, r = r->next) {
        if (r == run) {
            if (prev != NULL) {
                prev->next = r->next;
            } else {
                vm->ready_head = r->next;
            }
            if (vm->ready_tail == r) {
                vm->ready_tail = prev;
            }
            break;
        }
    }
    run->next = NULL;
    if (vm->ready_head == NULL) {
        ready_vm_remove(run->host, vm);
    }
}

static void waiting_remove(tf_lua_host_t *h, tf_lua_run_t *run) {
    if (run->wprev != NULL) {
        run->wprev->wnext = run->wnext;
    } else if (h->waiting == run) {
        h->waiting = run->wnext;
    }
    if (run->wnext != NULL) {
        run->wnext->wprev = run->wprev;
    }
    run->wprev = run->wnext = NULL;
}

static void waits_arm(tf_lua_host_t *h) {
    uint64_t first = UINT64_MAX;
    for (tf_lua_run_t *r = h->waiting; r != NULL; r = r->wnext) {
        if (r->deadline_ns < first) {
            first = r->deadline_ns;
        }
    }
    if (first == UINT64_MAX) {
        uv_timer_stop(&h->waits);
        return;
    }
    uint64_t now = uv_hrtime();
    uint64_t ms = first > now ? (first - now + 999999u) / 1000000u : 0;
    uv_timer_start(&h->waits, waits_cb, ms, 0);
}

/* ---- ending runs ---- */

static void finished_push(tf_lua_host_t *h, tf_lua_run_t *run) {
    run->state = TF__RUN_DONE;
    run->next = NULL;
    if (h->finished_tail != NULL) {
        h->finished_tail->next = run;
    } else {
        h->finished_head = run;
    }
    h->finished_tail = run;
    schedule(h);
}

/* Copies `msg` as the outcome's message: at most the buffer, UTF-8 kept
 * valid (a bad byte becomes '?'), cut with "..." when longer. */
static void set_message(tf_lua_run_t *run, const char *msg, size_t len) {
    char *out = run->error_message;
    size_t cap = sizeof(run->error_message);
    size_t n = len < cap - 4 ? len : cap - 4;
    memcpy(out, msg, n);
    out[n] = '\0';
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)out[i];
        size_t step = c < 0x80 ? 1 : tf_utf8_seq_len((const unsigned char *)out + i, n - i);
        if (step == 0 || c == 0) {
            out[i] = '?';
            step = 1;
        }
        i += step;
    }
    if (n < len) {
        memcpy(out + n, "...", 4);
    }
}

static void fail_run(tf_lua_run_t *run, const char *type, const char *msg, int retryable) {
    run->out.status = TF_LUA_FAILED;
    snprintf(run->error_type, sizeof(run->error_type), "%s", type);
    set_message(run, msg, strlen(msg));
    run->out.retryable = retryable;
}

/* Drops the run's coroutine: kept for the next run when it ended cleanly,
 * else left to the collector (an abandoned coroutine's __close and
 * handlers never run). */
static void release_coroutine(tf_lua_run_t *run, int clean) {
    tf_lua_vm_t *vm = run->vm;
    if (run->env_ref != LUA_NOREF) {
        luaL_unref(vm->L, LUA_REGISTRYINDEX, run->env_ref);
        run->env_ref = LUA_NOREF;
    }
    if (run->co == NULL) {
        return;
    }
    set_run_of(run->co, NULL);
    if (clean && vm->npool < (int)(sizeof(vm->pool) / sizeof(vm->pool[0])) && !vm->tainted) {
        lua_settop(run->co, 0);
        vm->pool[vm->npool] = run->co;
        vm->pool_ref[vm->npool] = run->co_ref;
        vm->npool++;
    } else {
        luaL_unref(vm->L, LUA_REGISTRYINDEX, run->co_ref);
    }
    run->co = NULL;
    run->co_ref = LUA_NOREF;
}

/* The run is over (an outcome is set): off every list, its coroutine
 * released, queued for its callback. */
static void end_run(tf_lua_run_t *run, int clean) {
    tf_lua_host_t *h = run->host;
    if (run->state == TF__RUN_READY || run->state == TF__RUN_NEW) {
        if (run->vm != NULL) {
            ready_remove(run);
        }
    } else if (run->state == TF__RUN_WAITING) {
        waiting_remove(h, run);
        if (run->wait_cancel != NULL) {
            run->wait_cancel(run->wait_op);
        }
        run->wait_cancel = NULL;
        run->wait_op = NULL;
    }
    if (run->vm != NULL) {
        release_coroutine(run, clean);
        run->vm->nruns--;
        run->vm->last_used_ns = (int64_t)uv_hrtime();
        if (run->vm->tainted && run->vm->nruns == 0) {
            h->reap_tainted = 1;
        }
    }
    finished_push(h, run);
}

static void end_killed(tf_lua_run_t *run) {
    int retryable = run->kill != TF__KILL_SHUTDOWN;
    fail_run(run, kill_type(run->kill), tf__lua_kill_message(run->kill), retryable);
    end_run(run, 0);
}

/* Reads the error value at the top of `L` (raw access only). */
static void take_error(tf_lua_run_t *run, lua_State *L) {
    int idx = lua_gettop(L);
    const char *type = "lua_error";
    int retryable = 1;
    if (run->syntax_error) {
        type = "lua_syntax";
        retryable = 0;
    } else if (run->module_error) {
        type = "lua_module";
        retryable = 0;
    }
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
    case LUA_TNUMBER: {
        size_t len = 0;
        const char *s = lua_tolstring(L, idx, &len);
        fail_run(run, type, "", retryable);
        set_message(run, s, len);
        break;
    }
    case LUA_TTABLE: {
        /* error({type = "...", message = "...", fatal = true}) */
        char given[64] = "";
        lua_pushliteral(L, "type");
        if (lua_rawget(L, idx) == LUA_TSTRING) {
            size_t len = 0;
            const char *t = lua_tolstring(L, -1, &len);
            int ok = len > 0 && len < sizeof(given);
            for (size_t i = 0; ok && i < len; i++) {
                char c = t[i];
                ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '_' || c == '.' || c == '-';
            }
            if (ok) {
                memcpy(given, t, len + 1);
            }
        }
        lua_pop(L, 1);
        /* The host's own types are not the script's to give: a script
         * cannot pass its error off as a cancellation or a limit. */
        if (strncmp(given, "lua_", 4) == 0 || strcmp(given, "cancelled") == 0 ||
            strcmp(given, "shutdown") == 0) {
            given[0] = '\0';
        }
        fail_run(run, given[0] != '\0' ? given : type, "", retryable);
        lua_pushliteral(L, "message");
        if (lua_rawget(L, idx) == LUA_TSTRING) {
            size_t len = 0;
            const char *m = lua_tolstring(L, -1, &len);
            set_message(run, m, len);
        } else {
            set_message(run, "error object without a message", 30);
        }
        lua_pop(L, 1);
        lua_pushliteral(L, "fatal");
        run->out.fatal = lua_rawget(L, idx) == LUA_TBOOLEAN && lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_pushliteral(L, "retryable");
        if (lua_rawget(L, idx) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
            run->out.fatal = 1;
        }
        lua_pop(L, 1);
        break;
    }
    default: {
        char msg[80];
        snprintf(msg, sizeof(msg), "error object is a %s value", luaL_typename(L, idx));
        fail_run(run, type, msg, retryable);
        break;
    }
    }
}

/* The run's function returned: its value at the top of the coroutine. */
static void take_result(tf_lua_run_t *run) {
    lua_State *co = run->co;
    if (lua_type(co, -1) == LUA_TLIGHTUSERDATA &&
        lua_touserdata(co, -1) == (void *)&tf__lua_snooze_mark && run->snooze_ms > 0) {
        run->out.status = TF_LUA_OK;
        run->out.snooze_ms = run->snooze_ms;
        end_run(run, 1);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    char err[TF_LUA_ERR_LEN];
    tf_lua_json_limits_t lim = {.max_bytes = run->host->cfg.limits.output_bytes};
    int rc = tf_lua_to_json(co, -1, &lim, "result", &b, err);
    size_t len = 0;
    if (rc == 0) {
        rc = tf_jbuf_finish(&b, &run->result_json, &len);
    }
    tf_jbuf_free(&b);
    if (rc == TF_ETOOBIG) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the result is larger than the output limit of %zu bytes",
                 run->host->cfg.limits.output_bytes);
        fail_run(run, "lua_output", msg, 1);
    } else if (rc == TF_ENOMEM) {
        fail_run(run, "lua_memory", "out of memory converting the result", 1);
    } else if (rc != 0) {
        char msg[220];
        snprintf(msg, sizeof(msg), "the result cannot be JSON: %s", err);
        fail_run(run, "lua_result", msg, 1);
    } else {
        run->out.status = TF_LUA_OK;
        run->out.result_json = run->result_json;
    }
    end_run(run, 1);
}

/* ---- the run's body ---- */

enum { STEP_LOADED = 1, STEP_READY, STEP_CALLED };

static int body_k(lua_State *L, int status, lua_KContext ctx);

static int body(lua_State *L) {
    tf_lua_run_t *run = tf__lua_run_of(L);
    tf_lua_vm_t *vm = run->vm;
    const tf_lua_call_t *c = &run->call;
    if (c->module_key != NULL) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->modules_ref);
        if (lua_getfield(L, -1, c->module_key) != LUA_TNIL) {
            lua_remove(L, -2);
            return body_k(L, LUA_OK, STEP_READY);
        }
        lua_pop(L, 2);
    }
    if (c->source_len >= 1 && c->source[0] == LUA_SIGNATURE[0]) {
        run->syntax_error = 1;
        return luaL_error(L, "binary chunks are not accepted: send Lua source text");
    }
    if (luaL_loadbufferx(L, c->source, c->source_len, c->chunkname, "t") != LUA_OK) {
        run->syntax_error = 1;
        return lua_error(L);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->proxy_env_ref);
    if (lua_setupvalue(L, -2, 1) == NULL) {
        lua_pop(L, 1);
    }
    lua_callk(L, 0, 1, STEP_LOADED, body_k);
    return body_k(L, LUA_OK, STEP_LOADED);
}

/* Continues body() after the module ran (STEP_LOADED), with the module
 * ready (STEP_READY), and after the function returned (STEP_CALLED). */
static int body_k(lua_State *L, int status, lua_KContext ctx) {
    (void)status; /* errors never reach a continuation of lua_callk */
    tf_lua_run_t *run = tf__lua_run_of(L);
    const tf_lua_call_t *c = &run->call;
    if (ctx == STEP_CALLED) {
        if (c->result_with_arg > 0) { /* [argument, value] -> {value = ..., arg = ...} */
            lua_createtable(L, 0, 2);
            lua_rotate(L, -3, 1);
            lua_setfield(L, -3, "value");
            lua_setfield(L, -2, "arg");
        }
        return 1;
    }
    if (ctx == STEP_LOADED) {
        if (c->check_module != NULL && c->check_module(L, lua_gettop(L), c->user, run->module_err,
                                                       sizeof(run->module_err)) != 0) {
            run->module_error = 1;
            return luaL_error(L, "%s", run->module_err);
        }
        if (c->module_key != NULL) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, run->vm->modules_ref);
            lua_pushvalue(L, -2);
            lua_setfield(L, -2, c->module_key);
            lua_pop(L, 1);
        }
    }
    if (c->function == NULL) {
        if (c->check_module != NULL) {
            lua_pushboolean(L, 1); /* checked: the module itself may not be JSON */
        }
        return 1;
    }
    if (lua_type(L, -1) != LUA_TTABLE) {
        run->module_error = 1;
        return luaL_error(L, "the script must return a table (it returned a %s)",
                          luaL_typename(L, -1));
    }
    lua_pushstring(L, c->function);
    if (lua_rawget(L, -2) != LUA_TFUNCTION) {
        run->module_error = 1;
        return luaL_error(L, "the script's table has no function '%s'", c->function);
    }
    lua_remove(L, -2);
    luaL_checkstack(L, (int)c->nargs + 4, "too many arguments");
    int fn = lua_gettop(L);
    for (size_t i = 0; i < c->nargs; i++) {
        char err[TF_LUA_ERR_LEN];
        if (c->args_json[i] == NULL) {
            lua_pushnil(L);
        } else if (tf_lua_push_json(L, c->args_json[i], strlen(c->args_json[i]), 0, err) != 0) {
            return luaL_error(L, "argument %d: %s", (int)i + 1, err);
        }
    }
    if (c->result_with_arg > 0) { /* keep the argument under the function */
        lua_pushvalue(L, fn + c->result_with_arg);
        lua_insert(L, fn);
    }
    lua_callk(L, (int)c->nargs, 1, STEP_CALLED, body_k);
    return body_k(L, LUA_OK, STEP_CALLED);
}

/* ---- stepping a run ---- */

/* Makes the run's coroutine (main thread, protected: a memory failure
 * here fails the run, it does not abort). */
static int make_coroutine(lua_State *L) {
    tf_lua_run_t *run = lua_touserdata(L, 1);
    lua_State *co = lua_newthread(L);
    run->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    run->co = co;
    return 0;
}

static int start_coroutine(tf_lua_run_t *run) {
    tf_lua_vm_t *vm = run->vm;
    if (vm->npool > 0) {
        vm->npool--;
        run->co = vm->pool[vm->npool];
        run->co_ref = vm->pool_ref[vm->npool];
    } else {
        lua_pushcfunction(vm->L, make_coroutine);
        lua_pushlightuserdata(vm->L, run);
        if (lua_pcall(vm->L, 1, 0, 0) != LUA_OK) {
            lua_pop(vm->L, 1);
            return TF_ENOMEM;
        }
    }
    set_run_of(run->co, run);
    lua_pushcfunction(run->co, body);
    return 0;
}

/* Runs one slice of `run`: until it returns, fails, waits, or is preempted. */
static void step(tf_lua_run_t *run) {
    tf_lua_host_t *h = run->host;
    tf_lua_vm_t *vm = run->vm;
    uint64_t t0 = uv_hrtime();
    ready_remove(run);
    if (run->kill == TF__KILL_NONE && t0 >= run->deadline_ns) {
        tf__lua_kill(run, TF__KILL_DEADLINE);
    }
    if (run->kill != TF__KILL_NONE) {
        end_killed(run);
        return;
    }
    vm->current = run;
    if (!run->started) {
        if (start_coroutine(run) != 0) {
            vm->current = NULL;
            tf__lua_kill(run, TF__KILL_MEMORY);
            end_killed(run);
            return;
        }
        run->started = 1;
    }
    run->state = TF__RUN_RUNNING;
    run->preempted = 0;
    run->woken = 0;
    run->slice_end_ns = t0 + ms_to_ns(h->cfg.limits.slice_ms);
    int nres = 0;
    int status = lua_resume(run->co, NULL, 0, &nres);
    vm->current = NULL;
    vm->cpu_ns += uv_hrtime() - t0;
    vm->last_used_ns = (int64_t)uv_hrtime();
    if (run->kill != TF__KILL_NONE) {
        end_killed(run);
    } else if (status == LUA_OK) {
        take_result(run);
    } else if (status == LUA_YIELD) {
        lua_pop(run->co, nres);
        if (run->preempted || run->woken) {
            make_ready(run);
        } else if (run->wait_cancel != NULL || run->wait_op != NULL) {
            run->state = TF__RUN_WAITING;
            run->wnext = h->waiting;
            run->wprev = NULL;
            if (h->waiting != NULL) {
                h->waiting->wprev = run;
            }
            h->waiting = run;
            waits_arm(h);
        } else {
            fail_run(run, "lua_error", "the script yielded outside of a TaskFlow call", 1);
            end_run(run, 0);
        }
    } else {
        if (status == LUA_ERRMEM) {
            tf__lua_kill(run, TF__KILL_MEMORY);
            end_killed(run);
            return;
        }
        take_error(run, run->co);
        end_run(run, 0);
    }
}

static void waits_cb(uv_timer_t *t) {
    tf_lua_host_t *h = t->data;
    uint64_t now = uv_hrtime();
    for (tf_lua_run_t *r = h->waiting; r != NULL;) {
        tf_lua_run_t *next = r->wnext;
        if (r->deadline_ns <= now) {
            tf__lua_kill(r, TF__KILL_DEADLINE);
            end_killed(r);
        }
        r = next;
    }
    waits_arm(h);
}

/* ---- the scheduler ---- */

static void deliver(tf_lua_host_t *h) {
    while (h->finished_head != NULL) {
        tf_lua_run_t *run = h->finished_head;
        h->finished_head = run->next;
        if (h->finished_head == NULL) {
            h->finished_tail = NULL;
        }
        run->out.error_type = run->out.status == TF_LUA_FAILED ? run->error_type : NULL;
        run->out.error_message = run->out.status == TF_LUA_FAILED ? run->error_message : NULL;
        run->out.instructions = run->instructions;
        if (run->out.status == TF_LUA_OK) {
            metric_inc(h->m_runs_ok);
        } else {
            metric_inc(h->m_runs_failed);
        }
        run->done(run->done_arg, &run->out);
        free(run->result_json);
        free(run->strings);
        free(run);
    }
    retired_reap(h);
}

static tf_lua_vm_t *pick(tf_lua_host_t *h) {
    tf_lua_vm_t *best = NULL;
    for (tf_lua_vm_t *vm = h->ready_vms; vm != NULL; vm = vm->ready_next) {
        if (best == NULL || vm->cpu_ns < best->cpu_ns) {
            best = vm;
        }
    }
    return best;
}

static void idle_cb(uv_idle_t *idle) {
    tf_lua_host_t *h = idle->data;
    uint64_t t0 = uv_hrtime();
    uint64_t slice = ms_to_ns(h->cfg.limits.slice_ms);
    deliver(h);
    tf_lua_vm_t *vm;
    while ((vm = pick(h)) != NULL) {
        step(vm->ready_head);
        if (uv_hrtime() - t0 >= slice) {
            break;
        }
        deliver(h); /* an outcome does not wait for the next run's slice */
    }
    deliver(h);
    if (h->ready_vms == NULL && h->finished_head == NULL) {
        uv_idle_stop(&h->idle);
    }
}

static void schedule(tf_lua_host_t *h) {
    if (!h->closing && !uv_is_active((uv_handle_t *)&h->idle)) {
        uv_idle_start(&h->idle, idle_cb);
    }
}

/* ---- the public calls ---- */

int tf_lua_host_create(uv_loop_t *loop, const tf_lua_config_t *cfg, tf_lua_host_t **out) {
    tf_lua_host_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return TF_ENOMEM;
    }
    h->loop = loop;
    h->cfg = *cfg;
    tf_lua_limits_t def;
    tf_lua_limits_default(&def);
    tf_lua_limits_t *l = &h->cfg.limits;
    l->memory_bytes = l->memory_bytes > 0 ? l->memory_bytes : def.memory_bytes;
    l->instructions = l->instructions > 0 ? l->instructions : def.instructions;
    l->timeout_ms = l->timeout_ms > 0 ? l->timeout_ms : def.timeout_ms;
    l->output_bytes = l->output_bytes > 0 ? l->output_bytes : def.output_bytes;
    l->log_bytes = l->log_bytes > 0 ? l->log_bytes : def.log_bytes;
    l->slice_ms = l->slice_ms > 0 ? l->slice_ms : def.slice_ms;
    l->max_vms = l->max_vms > 0 ? l->max_vms : def.max_vms;
    l->vm_idle_ms = l->vm_idle_ms > 0 ? l->vm_idle_ms : def.vm_idle_ms;
    uv_idle_init(loop, &h->idle);
    uv_timer_init(loop, &h->waits);
    uv_timer_init(loop, &h->sweep);
    h->idle.data = h->waits.data = h->sweep.data = h;
    h->handles_open = 3;
    int64_t every = l->vm_idle_ms / 4 > 1000 ? l->vm_idle_ms / 4 : 1000;
    uv_timer_start(&h->sweep, sweep_cb, (uint64_t)every, (uint64_t)every);
    uv_unref((uv_handle_t *)&h->sweep);
    uv_unref((uv_handle_t *)&h->waits);
    if (cfg->metrics != NULL) {
        tf_metric_family_t *f = NULL;
        if (tf_metrics_counter(cfg->metrics, "taskflow_lua_runs_total",
                               "Lua runs ended, by outcome.", (const char *const[]){"outcome"}, 1,
                               &f) == 0) {
            h->m_runs_ok = tf_metric_get(f, (const char *const[]){"ok"});
            h->m_runs_failed = tf_metric_get(f, (const char *const[]){"failed"});
        }
        if (tf_metrics_counter(cfg->metrics, "taskflow_lua_vms_created_total",
                               "Tenant Lua VMs created.", NULL, 0, &f) == 0) {
            h->m_vms_created = tf_metric_get(f, NULL);
        }
        if (tf_metrics_counter(cfg->metrics, "taskflow_lua_vms_evicted_total",
                               "Tenant Lua VMs closed for being idle or least recently used.", NULL,
                               0, &f) == 0) {
            h->m_vms_evicted = tf_metric_get(f, NULL);
        }
        if (tf_metrics_counter(cfg->metrics, "taskflow_lua_vm_resets_total",
                               "Tenant Lua VMs closed and made anew after a run hit the memory "
                               "limit.",
                               NULL, 0, &f) == 0) {
            h->m_vm_resets = tf_metric_get(f, NULL);
        }
        if (tf_metrics_gauge(cfg->metrics, "taskflow_lua_vms", "Tenant Lua VMs open.", NULL, 0,
                             &f) == 0) {
            h->m_vms = tf_metric_get(f, NULL);
        }
    }
    *out = h;
    return 0;
}

static void handle_closed(uv_handle_t *handle) {
    tf_lua_host_t *h = handle->data;
    if (--h->handles_open == 0) {
        if (h->closed_cb != NULL) {
            h->closed_cb(h->closed_arg);
        }
        free(h);
    }
}

void tf_lua_host_close(tf_lua_host_t *h, void (*closed_cb)(void *arg), void *arg) {
    h->closed_cb = closed_cb;
    h->closed_arg = arg;
    /* Every run that is not over is abandoned, those of retired VMs too. */
    tf_lua_vm_t *lists[] = {h->mru, h->retired};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        for (tf_lua_vm_t *vm = lists[i]; vm != NULL; vm = vm->next) {
            while (vm->ready_head != NULL) {
                tf__lua_kill(vm->ready_head, TF__KILL_SHUTDOWN);
                end_killed(vm->ready_head);
            }
        }
    }
    while (h->waiting != NULL) {
        tf__lua_kill(h->waiting, TF__KILL_SHUTDOWN);
        end_killed(h->waiting);
    }
    h->closing = 1;
    deliver(h);
    while (h->mru != NULL) {
        tf_lua_vm_t *vm = h->mru;
        vm_unlink(h, vm);
        vm_free(vm);
    }
    while (h->retired != NULL) {
        tf_lua_vm_t *vm = h->retired;
        h->retired = vm->next;
        vm_free(vm);
    }
    uv_close((uv_handle_t *)&h->idle, handle_closed);
    uv_close((uv_handle_t *)&h->waits, handle_closed);
    uv_close((uv_handle_t *)&h->sweep, handle_closed);
}

/* Copies the call's strings into one block. */
static int copy_call(tf_lua_run_t *run, const tf_lua_call_t *c) {
    const char *strs[] = {c->tenant_id, c->module_key, c->chunkname,     c->function,
                          c->job_id,    c->rule_id,    c->correlation_id};
    size_t n = sizeof(strs) / sizeof(strs[0]);
    size_t total = c->source_len + 1 + c->nargs * sizeof(char *);
    for (size_t i = 0; i < n; i++) {
        total += strs[i] != NULL ? strlen(strs[i]) + 1 : 0;
    }
    for (size_t i = 0; i < c->nargs; i++) {
        total += c->args_json[i] != NULL ? strlen(c->args_json[i]) + 1 : 0;
    }
    char *block = malloc(total);
    if (block == NULL) {
        return TF_ENOMEM;
    }
    run->strings = block;
    run->call = *c;
    const char **args = (const char **)(void *)block;
    char *p = block + c->nargs * sizeof(char *);
    const char **dst[] = {&run->call.tenant_id,     &run->call.module_key, &run->call.chunkname,
                          &run->call.function,      &run->call.job_id,     &run->call.rule_id,
                          &run->call.correlation_id};
    for (size_t i = 0; i < n; i++) {
        if (strs[i] != NULL) {
            size_t len = strlen(strs[i]) + 1;
            memcpy(p, strs[i], len);
            *dst[i] = p;
            p += len;
        }
    }
    for (size_t i = 0; i < c->nargs; i++) {
        args[i] = NULL;
        if (c->args_json[i] != NULL) {
            size_t len = strlen(c->args_json[i]) + 1;
            memcpy(p, c->args_json[i], len);
            args[i] = p;
            p += len;
        }
    }
    if (c->source_len > 0) {
        memcpy(p, c->source, c->source_len);
    }
    p[c->source_len] = '\0';
    run->call.source = p;
    run->call.args_json = args;
    return 0;
}

int tf_lua_start(tf_lua_host_t *h, const tf_lua_call_t *call, tf_lua_done_fn done, void *arg,
                 tf_lua_run_t **out) {
    if (h->closing) {
        return TF_ESHUTDOWN;
    }
    if (call->tenant_id == NULL || call->tenant_id[0] == '\0' || strlen(call->tenant_id) >= 64 ||
        call->source == NULL || (call->nargs > 0 && call->args_json == NULL) || call->nargs > 16 ||
        call->result_with_arg < 0 || (size_t)call->result_with_arg > call->nargs) {
        return TF_EINVAL;
    }
    tf_lua_run_t *run = calloc(1, sizeof(*run));
    if (run == NULL) {
        return TF_ENOMEM;
    }
    if (copy_call(run, call) != 0) {
        free(run);
        return TF_ENOMEM;
    }
    int rc = 0;
    tf_lua_vm_t *vm = vm_for(h, run->call.tenant_id, &rc);
    if (vm == NULL) {
        free(run->strings);
        free(run);
        return rc;
    }
    run->host = h;
    run->vm = vm;
    run->co_ref = LUA_NOREF;
    run->env_ref = LUA_NOREF;
    run->done = done;
    run->done_arg = arg;
    snprintf(run->id, sizeof(run->id), "r%" PRIu64, ++h->seq);
    int64_t timeout = call->timeout_ms > 0 && call->timeout_ms < h->cfg.limits.timeout_ms
                          ? call->timeout_ms
                          : h->cfg.limits.timeout_ms;
    run->deadline_ns = uv_hrtime() + ms_to_ns(timeout);
    vm->nruns++;
    make_ready(run);
    if (out != NULL) {
        *out = run;
    }
    return 0;
}

void tf_lua_cancel(tf_lua_run_t *run) {
    if (run->state == TF__RUN_DONE) {
        return;
    }
    tf__lua_kill(run, TF__KILL_CANCEL);
    if (run->state != TF__RUN_RUNNING) {
        end_killed(run); /* RUNNING: the hook ends it */
    }
}

/* ---- for library functions ---- */

tf_lua_run_t *tf_lua_current(lua_State *L) {
    tf_lua_run_t *run = tf__lua_run_of(L);
    if (run == NULL) {
        luaL_error(L, "TaskFlow functions can only be called inside a run");
    }
    return run;
}

void *tf_lua_libs_ctx(const tf_lua_run_t *run) {
    return run->host->cfg.libs_ctx;
}

const tf_lua_call_t *tf_lua_run_call(const tf_lua_run_t *run) {
    return &run->call;
}

const char *tf_lua_run_id(const tf_lua_run_t *run) {
    return run->id;
}

tf_log_t *tf_lua_run_log(const tf_lua_run_t *run) {
    return run->host->cfg.log;
}

const tf_clock_t *tf_lua_run_clock(const tf_lua_run_t *run) {
    return run->host->cfg.clock;
}

const tf_lua_limits_t *tf_lua_run_limits(const tf_lua_run_t *run) {
    return &run->host->cfg.limits;
}

int tf_lua_run_charge_log(tf_lua_run_t *run, size_t bytes) {
    if (run->log_bytes + bytes > run->host->cfg.limits.log_bytes) {
        run->log_dropped++;
        return 1;
    }
    run->log_bytes += bytes;
    return 0;
}

int tf_lua_run_log_dropped(const tf_lua_run_t *run) {
    return run->log_dropped;
}

void tf_lua_push_snooze(lua_State *L, int64_t ms) {
    tf_lua_run_t *run = tf_lua_current(L);
    run->snooze_ms = ms;
    lua_pushlightuserdata(L, (void *)&tf__lua_snooze_mark);
}

void tf_lua_check_can_wait(lua_State *L, const char *fn) {
    tf_lua_run_t *run = tf_lua_current(L);
    if (run->co != L) {
        luaL_error(L, "%s: may only be called by the run itself", fn);
    }
    if (!lua_isyieldable(L)) {
        luaL_error(L,
                   "%s: not allowed here (inside a callback from C such as table.sort's "
                   "comparator, a metamethod or string.gsub's replacement)",
                   fn);
    }
}

int tf_lua_wait(lua_State *L, tf_lua_cancel_fn cancel, void *op, lua_KFunction k,
                lua_KContext kctx) {
    tf_lua_run_t *run = tf_lua_current(L);
    run->wait_cancel = cancel;
    run->wait_op = op != NULL ? op : (void *)run;
    return lua_yieldk(L, 0, kctx, k);
}

void tf_lua_wake(tf_lua_run_t *run) {
    if (run->state == TF__RUN_RUNNING) {
        run->woken = 1; /* before the yield took effect */
        return;
    }
    if (run->state != TF__RUN_WAITING) {
        return;
    }
    waiting_remove(run->host, run);
    run->wait_cancel = NULL;
    run->wait_op = NULL;
    make_ready(run);
}
