/*
 * lua_micro.c - micro-benchmarks of the Lua host, without PostgreSQL
 * (bench/README.md, bench/lua.sh):
 *
 *   runs      trivial runs per second in one tenant VM (the module cached,
 *             `function() return true end`), many in flight;
 *   job_runs  runs of an executor-like function that gets a job and a ctx
 *             as JSON and returns a small table: CPU microseconds per run
 *             (host, sandbox, conversion both ways);
 *   conditions  a rule's condition(ev, ctx) as the rule evaluator calls it
 *             (adapters/luaexec): a webhook's ev and a rule's ctx as JSON,
 *             the module cached per rule version, the sandbox's hooks
 *             armed; per second on one core;
 *   idle_vm   bytes of an idle tenant VM with the tf library loaded, after
 *             one run; stock Lua 5.4 with its five safe libraries for
 *             comparison;
 *   fairness  start-to-end delay of a benign tenant's trivial runs while
 *             10 other tenants run infinite loops: p50 and p99, in ms and
 *             in time slices.
 *
 *   tf_bench_lua [seconds per measure (3)] [runs|memory|fairness (all)]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "lua/host.h"
#include "stdlib/tf.h"

static uv_loop_t loop;
static tf_lua_host_t *host;
static tf_stdlib_t lib;
static long done_count, failed_count;

static int64_t clock_now(void *ctx) {
    (void)ctx;
    return (int64_t)(uv_hrtime() / 1000000u);
}

static const tf_clock_t CLOCK = {.now_ms = clock_now};

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void open_host(const tf_lua_limits_t *limits) {
    uv_loop_init(&loop);
    lib = (tf_stdlib_t){.loop = &loop};
    tf_lua_config_t cfg = {.clock = &CLOCK, .open_libs = tf_stdlib_open, .libs_ctx = &lib};
    if (limits != NULL) {
        cfg.limits = *limits;
    }
    if (tf_lua_host_create(&loop, &cfg, &host) != 0) {
        fprintf(stderr, "cannot create the host\n");
        exit(1);
    }
}

static void closed(void *arg) {
    *(int *)arg = 1;
}

static void close_host(void) {
    int c = 0;
    tf_lua_host_close(host, closed, &c);
    while (!c) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

/* ---- throughput ---- */

typedef struct {
    tf_lua_call_t call;
    long target, started;
} feeder_t;

static feeder_t feeder;

static void fed_done(void *arg, const tf_lua_outcome_t *o) {
    (void)arg;
    done_count++;
    if (o->status != TF_LUA_OK) {
        if (failed_count++ == 0) {
            fprintf(stderr, "run failed: %s: %s\n", o->error_type, o->error_message);
        }
    }
    if (feeder.started < feeder.target) {
        feeder.started++;
        tf_lua_start(host, &feeder.call, fed_done, NULL, NULL);
    }
}

/* Runs `call` `n` times, `inflight` at a time; returns seconds of wall
 * clock and CPU. */
static void measure(const tf_lua_call_t *call, long n, int inflight, double *wall, double *cpu) {
    feeder.call = *call;
    feeder.target = n;
    feeder.started = 0;
    done_count = failed_count = 0;
    double c0 = cpu_seconds();
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < inflight && feeder.started < n; i++) {
        feeder.started++;
        tf_lua_start(host, call, fed_done, NULL, NULL);
    }
    while (done_count < n) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    *wall = (double)(uv_hrtime() - t0) / 1e9;
    *cpu = cpu_seconds() - c0;
}

static const char TRIVIAL[] = "return {run = function() return true end}";

static const char EXECUTOR[] =
    "return {name = 'noop', handles = {'noop'},\n"
    "  run = function(job, ctx) return {ok = true, id = job.id, n = job.payload.i} end}\n";

static const char JOB[] = "{\"id\":\"01a24246-be9b-7000-8fe5-47fe8b1a90ad\",\"tenant_id\":"
                          "\"01a24246-bcb9-7000-8f04-c7b9c46f19aa\",\"queue\":\"bench\",\"type\":"
                          "\"noop\",\"payload\":{\"i\":42},\"attempt\":1,\"max_attempts\":3,"
                          "\"correlation_id\":\"01a24246-be9b-7000-acb2-89dfc5d1fd08\"}";
static const char CTX[] = "{\"executor\":{\"name\":\"noop\",\"version\":1}}";

/* A rule as users write them, its ev as a payment provider's webhook
 * delivers it, and the ctx the evaluator builds. */
static const char RULE[] =
    "return {name = 'big-payments', trigger = tf.webhook(),\n"
    "  condition = function(ev, ctx)\n"
    "    return ev.body.type == 'payment.received' and ev.body.amount_cents >= 10000\n"
    "       and ctx.tenant.plan == 'pro'\n"
    "  end,\n"
    "  action = function(ev, ctx) tf.enqueue{type = 'Fulfil', payload = ev.body} end}\n";
static const char HOOK_EV[] =
    "{\"body\":{\"type\":\"payment.received\",\"order\":\"o-17\",\"amount_cents\":12000,"
    "\"currency\":\"EUR\"},\"headers\":{\"content-type\":\"application/json\","
    "\"user-agent\":\"provider/1.0\"},\"scheme\":\"taskflow\",\"id\":\"dlv-1\"}";
static const char RULE_CTX[] =
    "{\"rule\":{\"id\":\"01a24246-be9b-7000-8fe5-47fe8b1a90af\",\"name\":\"big-payments\","
    "\"version\":1},\"now\":1764921600000,\"tenant\":{\"id\":"
    "\"01a24246-bcb9-7000-8f04-c7b9c46f19aa\",\"name\":\"acme\",\"plan\":\"pro\","
    "\"attributes\":{\"usage\":1234}},\"state\":{}}";

static void bench_runs(double secs) {
    tf_lua_call_t call = {.tenant_id = "t1",
                          .module_key = "bench:trivial@1",
                          .source = TRIVIAL,
                          .source_len = sizeof(TRIVIAL) - 1,
                          .chunkname = "=trivial",
                          .function = "run"};
    double wall, cpu;
    measure(&call, 20000, 64, &wall, &cpu); /* warm up */
    long n = (long)(20000 / wall * secs);
    measure(&call, n, 64, &wall, &cpu);
    printf("runs: n=%ld seconds=%.2f runs_per_s=%.0f cpu_us_per_run=%.2f failed=%ld\n", n, wall,
           n / wall, cpu * 1e6 / n, failed_count);
    const char *args[2] = {JOB, CTX};
    call = (tf_lua_call_t){.tenant_id = "t1",
                           .module_key = "bench:noop@1",
                           .source = EXECUTOR,
                           .source_len = sizeof(EXECUTOR) - 1,
                           .chunkname = "=executor noop",
                           .function = "run",
                           .args_json = args,
                           .nargs = 2};
    measure(&call, 20000, 64, &wall, &cpu);
    n = (long)(20000 / wall * secs);
    measure(&call, n, 64, &wall, &cpu);
    printf("job_runs: n=%ld seconds=%.2f runs_per_s=%.0f cpu_us_per_run=%.2f failed=%ld\n", n, wall,
           n / wall, cpu * 1e6 / n, failed_count);
    const char *rule_args[2] = {HOOK_EV, RULE_CTX};
    call = (tf_lua_call_t){.tenant_id = "t1",
                           .module_key = "rule:01a24246-be9b-7000-8fe5-47fe8b1a90af@1",
                           .source = RULE,
                           .source_len = sizeof(RULE) - 1,
                           .chunkname = "=rule big-payments",
                           .function = "condition",
                           .args_json = rule_args,
                           .nargs = 2,
                           .rule_id = "01a24246-be9b-7000-8fe5-47fe8b1a90af"};
    measure(&call, 20000, 64, &wall, &cpu);
    n = (long)(20000 / wall * secs);
    measure(&call, n, 64, &wall, &cpu);
    printf("conditions: n=%ld seconds=%.2f per_s=%.0f per_cpu_s=%.0f cpu_us=%.2f failed=%ld\n", n,
           wall, n / wall, n / cpu, cpu * 1e6 / n, failed_count);
}

/* ---- memory ---- */

static size_t stock_bytes;

static void *stock_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    stock_bytes -= ptr != NULL ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    stock_bytes += nsize;
    return realloc(ptr, nsize);
}

static void bench_memory(void) {
    tf_lua_call_t call = {.tenant_id = "idle",
                          .module_key = "bench:trivial@1",
                          .source = TRIVIAL,
                          .source_len = sizeof(TRIVIAL) - 1,
                          .chunkname = "=trivial",
                          .function = "run"};
    double wall, cpu;
    size_t fresh = 0;
    call.module_key = NULL;
    call.function = NULL;
    call.source = "return 1";
    call.source_len = 8;
    measure(&call, 1, 1, &wall, &cpu);
    fresh = tf_lua_vm_memory(host, "idle");
    call.tenant_id = "idle2";
    call.module_key = "bench:noop@1";
    call.source = EXECUTOR;
    call.source_len = sizeof(EXECUTOR) - 1;
    call.function = "run";
    const char *args[2] = {JOB, CTX};
    call.args_json = args;
    call.nargs = 2;
    measure(&call, 100, 1, &wall, &cpu);
    size_t with_module = tf_lua_vm_memory(host, "idle2");
    lua_State *L = lua_newstate(stock_alloc, NULL);
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT);
    printf("idle_vm: bytes=%zu (after one run) with_executor_module=%zu "
           "stock_lua_5_libs=%zu tenants_in_640MiB=%zu\n",
           fresh, with_module, stock_bytes, ((size_t)640 << 20) / (fresh > 0 ? fresh : 1));
    lua_close(L);
}

/* ---- fairness ---- */

static uint64_t delays[4096];
static size_t ndelays;

typedef struct {
    uint64_t started;
} probe_t;

static void probe_done(void *arg, const tf_lua_outcome_t *o) {
    probe_t *p = arg;
    if (o->status == TF_LUA_OK && ndelays < sizeof(delays) / sizeof(delays[0])) {
        delays[ndelays++] = uv_hrtime() - p->started;
    }
    free(p);
}

static void spin_done(void *arg, const tf_lua_outcome_t *o) {
    (void)o;
    int *live = arg;
    (*live)--;
}

#define PROBE_EVERY_NS UINT64_C(7000000)

static uint64_t next_due;

static const char PROBE_SRC[] = "return {run = function() return true end}";

static void probe_fire(uv_timer_t *t) {
    (void)t;
    while (next_due <= uv_hrtime()) { /* one probe per period that came due */
        probe_t *p = malloc(sizeof(*p));
        p->started = next_due;
        next_due += PROBE_EVERY_NS;
        tf_lua_call_t probe = {.tenant_id = "benign",
                               .module_key = "bench:trivial@1",
                               .source = PROBE_SRC,
                               .source_len = sizeof(PROBE_SRC) - 1,
                               .chunkname = "=trivial",
                               .function = "run"};
        tf_lua_start(host, &probe, probe_done, p, NULL);
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void bench_fairness(double secs, int slice_ms) {
    int live = 0;
    static const char SPIN[] = "while true do end";
    for (int i = 0; i < 10; i++) {
        char tenant[16];
        snprintf(tenant, sizeof(tenant), "spin%d", i);
        tf_lua_call_t spin = {.tenant_id = tenant,
                              .source = SPIN,
                              .source_len = sizeof(SPIN) - 1,
                              .chunkname = "=spin"};
        if (tf_lua_start(host, &spin, spin_done, &live, NULL) == 0) {
            live++;
        }
    }
    /* The spinners' first round: a tenant that never ran is owed a slice
     * (it has used no CPU yet), so probes measure from the steady state. */
    uint64_t warm = uv_hrtime() + (uint64_t)slice_ms * 1000000u * 12;
    while (uv_hrtime() < warm) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    /* A benign run is due every 7 ms (out of step with the slices), from a
     * timer as a claim's answer would start one: its delay counts from when
     * it was due, so the slice in progress when it came due is in it. */
    ndelays = 0;
    uv_timer_t timer;
    uv_timer_init(&loop, &timer);
    next_due = uv_hrtime() + PROBE_EVERY_NS;
    uv_timer_start(&timer, probe_fire, PROBE_EVERY_NS / 1000000u, PROBE_EVERY_NS / 1000000u);
    uint64_t end = uv_hrtime() + (uint64_t)(secs * 1e9);
    while (uv_hrtime() < end && live > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&timer);
    uv_close((uv_handle_t *)&timer, NULL);
    size_t n = ndelays;
    qsort(delays, n, sizeof(delays[0]), cmp_u64);
    double p50 = n > 0 ? (double)delays[n / 2] / 1e6 : 0;
    double p99 = n > 0 ? (double)delays[n * 99 / 100] / 1e6 : 0;
    double max = n > 0 ? (double)delays[n - 1] / 1e6 : 0;
    printf("fairness: spinning_tenants=10 still_spinning=%d probes=%zu p50_ms=%.2f p99_ms=%.2f "
           "max_ms=%.2f slice_ms=%d p99_slices=%.2f\n",
           live, n, p50, p99, max, slice_ms, p99 / slice_ms);
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    const char *only =
        argc > 2 ? argv[2] : NULL; /* "runs" (with conditions), "memory", "fairness" */
    tf_lua_limits_t limits = {.instructions = (uint64_t)1 << 62, .timeout_ms = 3600000};
    open_host(&limits);
    if (only == NULL || strcmp(only, "runs") == 0) {
        bench_runs(secs);
    }
    if (only == NULL || strcmp(only, "memory") == 0) {
        bench_memory();
    }
    if (only == NULL || strcmp(only, "fairness") == 0) {
        bench_fairness(secs, TF_LUA_DEFAULT_SLICE_MS);
    }
    close_host();
    return 0;
}
