/*
 * serve.c - assembles and runs `taskflow serve` (see serve.h).
 *
 * Start-up and signal handling run on the main thread; every request runs on
 * one of the HTTP loop threads, each of which owns a loop_t with its own
 * Postgres store, use cases, key cache, UUID generator, job submitter,
 * LISTEN session and (worker role) runner and executors (shared-nothing).
 * What all loops share read-only is in tf_serve_t.
 */
#include "adapters/serve/serve.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "adapters/api/api.h"
#include "adapters/api/worker_api.h"
#include "adapters/clock/clock.h"
#include "adapters/clock/zones.h"
#include "adapters/http/server.h"
#include "adapters/luaexec/luaexec.h"
#include "adapters/pg/notifier.h"
#include "adapters/pg/store.h"
#include "adapters/serve/bootstrap.h"
#include "adapters/serve/gauges.h"
#include "adapters/usecases/submit.h"
#include "adapters/worker/automation.h"
#include "adapters/worker/http_port.h"
#include "adapters/worker/runner.h"
#include "engine/error.h"
#include "engine/executor.h"

struct tf_serve {
    const tf_config_t *cfg;
    tf_api_env_t env; /* what the HTTP API of every loop reads */
    tf_clock_t clock;
    tf_test_clock_t *test_clock; /* --clock=test */
    tf_zones_t *zones;           /* time zones of cron triggers, shared by the loops */
    tf_zone_source_t zone_source;
    char worker_id[256];     /* --worker-id, or "<hostname>-<pid>" */
    int loop_threads;        /* event-loop threads actually started */
    tf_metric_t *group_size; /* taskflow_submit_group_size */
    tf_router_t *router;
    tf_http_server_t *server;
};

/* One loop thread's node. */
typedef struct {
    tf_api_loop_t api; /* first: the server's loop context is the API's (api.h) */
    tf_serve_t *s;
    int index;
    tf_pg_store_t *store;
    tf_uc_t uc;
    tf_uuid_gen_t uuids;
    tf_notifier_t *notifier;  /* LISTEN/NOTIFY wake-ups */
    tf_http_executor_t *http; /* the `http` executor (worker role) */
    tf_luaexec_t *lua;        /* Lua executors and the checker of uploads */
    tf_executor_registry_t executors;
    tf_runner_t *runner;         /* built-in executions and maintenance (worker role) */
    tf_automation_t *automation; /* cron rules (worker role) */
    tf_queue_gauges_t *gauges;   /* queue and table gauges (loop 0 only) */
} loop_t;

/* ---- wake-ups ---- */

/* Wake-ups from LISTEN/NOTIFY: ready work goes to the long-polling claims
 * (jobs for external workers) or to the runner (built-in jobs); cancels to
 * the runner.  channel NULL: the listener reconnected, everybody polls. */
static void on_notify(const char *channel, const char *payload, void *arg) {
    loop_t *lp = arg;
    if (channel == NULL) {
        if (lp->api.waiters != NULL) {
            tf_waitlist_wake(lp->api.waiters, NULL);
        }
        if (lp->runner != NULL) {
            tf_runner_wake(lp->runner, NULL);
        }
    } else if (strcmp(channel, TF_CHANNEL_READY) == 0) {
        const char *bar = strchr(payload, '|');
        if (bar != NULL && strcmp(bar, "|builtin") == 0) {
            if (lp->runner != NULL) {
                tf_runner_wake(lp->runner, payload);
            }
        } else if (lp->api.waiters != NULL) {
            tf_waitlist_wake(lp->api.waiters, payload);
        }
    } else if (strcmp(channel, TF_CHANNEL_CANCEL) == 0 && lp->runner != NULL) {
        tf_runner_cancelled(lp->runner, payload);
    } else if (strcmp(channel, TF_CHANNEL_LUA) == 0 && lp->lua != NULL) {
        char tenant[TF_ID_LEN];
        const char *slash = strchr(payload, '/');
        if (slash != NULL && (size_t)(slash - payload) < sizeof(tenant)) {
            memcpy(tenant, payload, (size_t)(slash - payload));
            tenant[slash - payload] = '\0';
            tf_luaexec_forget(lp->lua, tenant, slash + 1);
        }
    }
    if (channel == NULL && lp->lua != NULL) {
        tf_luaexec_forget(lp->lua, NULL, NULL); /* changes may have been missed */
    }
}

static void on_group(void *ctx, size_t jobs) {
    tf_serve_t *s = ctx;
    if (s->group_size != NULL) {
        tf_metric_observe(s->group_size, (double)jobs);
    }
}

/* ---- start ---- */

/* The worker role of a loop: its executors and runner. */
static int start_worker(uv_loop_t *loop, loop_t *lp) {
    const tf_config_t *cfg = lp->s->cfg;
    tf_http_client_config_t http_cfg = {
        .allow_loopback = cfg->http_allow_loopback,
        .allow_private = cfg->http_allow_private,
        .max_response_bytes = (size_t)cfg->http_max_response_bytes,
    };
    int rc = tf_http_executor_create(loop, &http_cfg, &lp->http);
    if (rc == 0) {
        rc = tf_executor_register(&lp->executors, tf_http_executor_port(lp->http));
    }
    if (rc == 0) {
        rc = tf_executor_register(&lp->executors, tf_luaexec_port(lp->lua));
    }
    if (rc == 0) {
        int threads = lp->s->loop_threads > 0 ? lp->s->loop_threads : 1;
        tf_runner_config_t rcfg = {
            .concurrency = (cfg->worker_concurrency + threads - 1) / threads,
            .lease_ms = cfg->lease_ms,
            .poll_interval_ms = cfg->poll_interval_ms,
            .worker_id = lp->s->worker_id,
            .loop_index = lp->index,
        };
        rc = tf_runner_create(loop, &lp->uc, &lp->executors, &rcfg, lp->s->env.log,
                              lp->s->env.metrics, &lp->runner);
    }
    if (rc == 0) {
        char node[300];
        snprintf(node, sizeof(node), "%s/%d", lp->s->worker_id, lp->index);
        tf_automation_config_t acfg = {.interval_ms = cfg->poll_interval_ms, .node = node};
        rc = tf_automation_create(loop, &lp->uc, &acfg, lp->s->env.log, lp->s->env.metrics,
                                  &lp->automation);
    }
    return rc;
}

/* The parts of a loop after its store: submitter, wake-ups, long polls,
 * the worker role, gauges. */
static int start_parts(uv_loop_t *loop, loop_t *lp) {
    const tf_config_t *cfg = lp->s->cfg;
    tf_http_client_config_t http_cfg = {
        .allow_loopback = cfg->http_allow_loopback,
        .allow_private = cfg->http_allow_private,
        .max_response_bytes = (size_t)cfg->http_max_response_bytes,
    };
    tf_lua_limits_t limits = {.memory_bytes = (size_t)cfg->lua_memory_bytes,
                              .instructions = (uint64_t)cfg->lua_instructions,
                              .timeout_ms = cfg->lua_timeout_ms,
                              .output_bytes = (size_t)cfg->lua_output_bytes,
                              .log_bytes = (size_t)cfg->lua_log_bytes,
                              .slice_ms = cfg->lua_slice_ms,
                              .max_vms = cfg->lua_max_vms,
                              .vm_idle_ms = cfg->lua_vm_idle_ms};
    tf_luaexec_config_t lua_cfg = {.limits = limits,
                                   .uc = &lp->uc,
                                   .scripts = lp->uc.scripts,
                                   .http = &http_cfg,
                                   .log = lp->s->env.log,
                                   .metrics = lp->s->env.metrics};
    int rc = tf_luaexec_create(loop, &lua_cfg, &lp->lua);
    if (rc == 0) {
        lp->uc.checker = tf_luaexec_checker(lp->lua);
        lp->uc.evaluator = tf_luaexec_evaluator(lp->lua);
        rc = tf_submitter_create(&lp->uc, cfg->pg_pool_size, on_group, lp->s, &lp->api.submitter);
    }
    if (rc == 0) {
        rc = tf_notifier_create(loop, cfg->database_url, lp->s->env.log, &lp->notifier);
    }
    if (rc == 0 && cfg->role_api) {
        rc = tf_waitlist_create(&lp->api, &lp->api.waiters);
    }
    if (rc == 0 && cfg->role_worker) {
        rc = start_worker(loop, lp);
    }
    if (rc == 0 && lp->index == 0) {
        rc = tf_queue_gauges_create(loop, &lp->uc, lp->s->env.metrics, &lp->gauges);
    }
    return rc == 0 ? tf_notifier_subscribe(lp->notifier, on_notify, lp) : rc;
}

/* ---- stop: runner, long polls, listener, submitter, gauges, executors,
 * store, in that order ---- */

static void loop_free(void *arg) {
    loop_t *lp = arg;
    tf_auth_cache_destroy(lp->api.auth_cache);
    free(lp);
}

static void stop_store(void *arg) {
    loop_t *lp = arg;
    if (lp->store != NULL) {
        tf_pg_store_close(lp->store, loop_free, lp);
    } else {
        loop_free(lp);
    }
}

static void stop_http_executor(void *arg) {
    loop_t *lp = arg;
    if (lp->http != NULL) {
        tf_http_executor_t *http = lp->http;
        lp->http = NULL;
        tf_http_executor_close(http, stop_store, lp);
    } else {
        stop_store(lp);
    }
}

static void stop_executors(void *arg) {
    loop_t *lp = arg;
    if (lp->lua != NULL) {
        tf_luaexec_t *lua = lp->lua;
        lp->lua = NULL;
        lp->uc.checker = NULL;
        lp->uc.evaluator = NULL;
        tf_luaexec_close(lua, stop_http_executor, lp);
    } else {
        stop_http_executor(lp);
    }
}

static void stop_gauges(void *arg) {
    loop_t *lp = arg;
    if (lp->gauges != NULL) {
        tf_queue_gauges_close(lp->gauges, stop_executors, lp);
    } else {
        stop_executors(lp);
    }
}

static void stop_submitter(void *arg) {
    loop_t *lp = arg;
    if (lp->api.submitter != NULL) {
        tf_submitter_close(lp->api.submitter, stop_gauges, lp);
    } else {
        stop_gauges(lp);
    }
}

static void stop_notifier(void *arg) {
    loop_t *lp = arg;
    lp->api.waiters = NULL;
    if (lp->notifier != NULL) {
        tf_notifier_close(lp->notifier, stop_submitter, lp);
    } else {
        stop_submitter(lp);
    }
}

static void stop_waiters(void *arg) {
    loop_t *lp = arg;
    if (lp->api.waiters != NULL) {
        tf_waitlist_close(lp->api.waiters, stop_notifier, lp);
    } else {
        stop_notifier(lp);
    }
}

static void stop_automation(void *arg) {
    loop_t *lp = arg;
    lp->runner = NULL;
    tf_automation_t *a = lp->automation;
    lp->automation = NULL;
    tf_automation_close(a, stop_waiters, lp); /* NULL: calls on at once */
}

/* Shutdown begins: parked long polls answer now instead of holding the
 * grace period. */
static void loop_stopping(uv_loop_t *loop, void *loop_ctx, void *arg) {
    (void)loop;
    (void)arg;
    loop_t *lp = loop_ctx;
    if (lp->api.waiters != NULL) {
        tf_waitlist_drain(lp->api.waiters);
    }
}

static void loop_stop(uv_loop_t *loop, void *loop_ctx, void *arg) {
    (void)loop;
    tf_serve_t *s = arg;
    loop_t *lp = loop_ctx;
    if (lp == NULL) {
        return;
    }
    if (lp->runner != NULL) {
        tf_runner_stop(lp->runner, s->cfg->shutdown_grace_ms, stop_automation, lp);
    } else {
        stop_automation(lp);
    }
}

static int loop_start(uv_loop_t *loop, int index, void *arg, void **loop_ctx) {
    tf_serve_t *s = arg;
    loop_t *lp = calloc(1, sizeof(*lp));
    if (lp == NULL) {
        return TF_ENOMEM;
    }
    char pool_name[32];
    snprintf(pool_name, sizeof(pool_name), "loop-%d", index);
    tf_pg_store_config_t store_cfg = {
        .conninfo = s->cfg->database_url,
        .size = s->cfg->pg_pool_size,
        .pool_name = pool_name,
    };
    uint64_t seed = 0;
    lp->s = s;
    lp->index = index;
    int rc = RAND_bytes((unsigned char *)&seed, sizeof(seed)) == 1 ? 0 : TF_EIO;
    if (rc == 0) {
        rc = tf_auth_cache_create(&lp->api.auth_cache);
    }
    if (rc == 0) {
        rc = tf_pg_store_open(loop, &store_cfg, s->env.metrics, s->env.log, &lp->store);
    }
    if (rc == 0) {
        tf_uuid_gen_init(&lp->uuids, seed);
        lp->uc = (tf_uc_t){.store = tf_pg_store_jobs(lp->store),
                           .tenants = tf_pg_store_tenants(lp->store),
                           .clock = &s->clock,
                           .uuids = &lp->uuids,
                           .scripts = tf_pg_store_scripts(lp->store),
                           .rules = tf_pg_store_rules(lp->store),
                           .zones = &s->zone_source};
        lp->api.env = &s->env;
        lp->api.uc = &lp->uc;
        rc = start_parts(loop, lp);
    }
    if (rc != 0) {
        /* Everything made so far is closed through the normal stop path. */
        loop_stop(loop, lp, s);
        return rc;
    }
    *loop_ctx = lp;
    return 0;
}

/* ---- the node ---- */

static int register_metrics(tf_serve_t *s) {
    static const double bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000};
    tf_metric_family_t *family = NULL;
    if (s->env.metrics == NULL) {
        return 0;
    }
    int rc = tf_metrics_histogram(s->env.metrics, "taskflow_submit_group_size",
                                  "Jobs written by one group-commit statement", NULL, 0, bounds,
                                  sizeof(bounds) / sizeof(bounds[0]), &family);
    if (rc == 0) {
        s->group_size = tf_metric_get(family, NULL);
        rc = tf_api_init_metrics(s->env.metrics);
    }
    return rc;
}

int tf_serve_create(const tf_config_t *cfg, tf_log_t *log, tf_metrics_t *metrics,
                    tf_serve_t **out) {
    tf_serve_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return TF_ENOMEM;
    }
    s->cfg = cfg;
    s->env.log = log;
    s->env.metrics = metrics;
    s->loop_threads = cfg->threads > 0 ? cfg->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cfg->worker_id != NULL && cfg->worker_id[0] != '\0') {
        snprintf(s->worker_id, sizeof(s->worker_id), "%s", cfg->worker_id);
    } else {
        char host[200] = "taskflow";
        gethostname(host, sizeof(host) - 1);
        snprintf(s->worker_id, sizeof(s->worker_id), "%s-%ld", host, (long)getpid());
    }
    int rc = 0;
    if (cfg->clock_test) {
        rc = tf_test_clock_create(tf_clock_real_ms(), &s->test_clock);
        if (rc == 0) {
            s->clock = tf_test_clock_port(s->test_clock);
            tf_log_warn(log, "the test clock is on: the engine's time moves only through the API",
                        TF_LF_STR("route", "POST /v1/admin/clock"));
        }
    } else {
        s->clock = tf_clock_system();
    }
    s->env.clock = &s->clock;
    if (rc == 0) {
        rc = tf_zones_create(NULL, &s->zones);
    }
    if (rc == 0) {
        s->zone_source = tf_zones_source(s->zones);
        rc = register_metrics(s);
    }
    if (rc == 0) {
        rc = tf_router_create(&s->router);
    }
    if (rc == 0) {
        rc = tf_api_register(s->router, cfg->role_api);
    }
    if (rc != 0) {
        tf_serve_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}

void tf_serve_destroy(tf_serve_t *s) {
    if (s == NULL) {
        return;
    }
    tf_router_destroy(s->router);
    tf_test_clock_destroy(s->test_clock);
    tf_zones_destroy(s->zones);
    free(s);
}

static void on_signal(uv_signal_t *sig, int signum) {
    tf_serve_t *s = sig->data;
    tf_log_info(s->env.log, "shutting down",
                TF_LF_STR("signal", signum == SIGINT ? "SIGINT" : "SIGTERM"));
    tf_http_server_stop(s->server);
    uv_stop(sig->loop);
}

static int wait_for_signal(tf_serve_t *s) {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    if (uv_loop_init(&loop) != 0) {
        return TF_EIO;
    }
    uv_signal_init(&loop, &sigint);
    uv_signal_init(&loop, &sigterm);
    sigint.data = sigterm.data = s;
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}

static void http_config(const tf_serve_t *s, tf_http_config_t *http) {
    const tf_config_t *cfg = s->cfg;
    *http = (tf_http_config_t){
        .host = cfg->host,
        .port = cfg->port,
        .threads = cfg->threads,
        .max_header_bytes = (size_t)cfg->max_header_bytes,
        .max_body_bytes = (size_t)cfg->max_body_bytes,
        .header_timeout_ms = cfg->header_timeout_ms,
        .body_timeout_ms = cfg->body_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .max_connections = cfg->max_connections,
        .shutdown_grace_ms = cfg->shutdown_grace_ms,
        .loop_start = loop_start,
        .loop_stop = loop_stop,
        .loop_stopping = loop_stopping,
    };
}

int tf_serve_run(tf_serve_t *s) {
    const tf_config_t *cfg = s->cfg;
    signal(SIGPIPE, SIG_IGN);
    int rc = tf_bootstrap_secrets(cfg->database_url, cfg->admin_token, &s->env.auth,
                                  s->env.cursor_key, stderr, s->env.log);
    if (rc != 0) {
        return rc;
    }
    tf_http_config_t http_cfg;
    http_config(s, &http_cfg);
    http_cfg.app = s;
    rc = tf_http_server_start(&http_cfg, s->router, s->env.metrics, s->env.log, &s->server);
    if (rc != 0) {
        tf_log_error(s->env.log, "cannot start HTTP server", TF_LF_STR("host", cfg->host),
                     TF_LF_INT("port", cfg->port), TF_LF_STR("error", tf_strerror(rc)));
        return rc;
    }
    char url[300];
    snprintf(url, sizeof(url), "http://%s:%d", cfg->host, tf_http_server_port(s->server));
    tf_log_info(s->env.log, "listening", TF_LF_STR("url", url));
    rc = wait_for_signal(s);
    tf_http_server_destroy(s->server);
    s->server = NULL;
    tf_log_info(s->env.log, "stopped", TF_LF_STR("url", url));
    return rc;
}
