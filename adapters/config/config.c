/*
 * config.c - table-driven parsing of flags and TASKFLOW_* variables.
 *
 * One row per setting: flag, environment variable, kind, range, default and
 * help.  The same table drives parsing, `--help` and docs/configuration.md,
 * so the three cannot disagree.  Main thread only, before loops start.
 */
#include "adapters/config/config.h"

#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

typedef enum { OPT_STR, OPT_INT, OPT_LONG, OPT_LEVEL, OPT_FLAG } opt_kind_t;

typedef struct {
    const char *flag;
    const char *env;
    opt_kind_t kind;
    size_t offset;
    /* OPT_FLAG: the flag's presence sets the field to 0 instead of 1. */
    long min, max;
    const char *def;
    const char *help;
    int invert;
} opt_t;

#define OFF(f) offsetof(tf_config_t, f)

static const opt_t OPTS[] = {
    {"--host", "TASKFLOW_HOST", OPT_STR, OFF(host), 0, 0, "127.0.0.1", "address to listen on", 0},
    {"--port", "TASKFLOW_PORT", OPT_INT, OFF(port), 0, 65535, "8080",
     "TCP port to listen on (0 picks a free one)", 0},
    {"--threads", "TASKFLOW_THREADS", OPT_INT, OFF(threads), 0, 256, "0",
     "event-loop threads (0: one per core)", 0},
    {"--database-url", "TASKFLOW_DATABASE_URL", OPT_STR, OFF(database_url), 0, 0, NULL,
     "PostgreSQL connection URL or conninfo (required)", 0},
    {"--admin-token", "TASKFLOW_ADMIN_TOKEN", OPT_STR, OFF(admin_token), 0, 0, NULL,
     "operator token (prefer the environment variable: flags show in ps)", 0},
    {"--log-level", "TASKFLOW_LOG_LEVEL", OPT_LEVEL, OFF(log_level), 0, 0, "info",
     "debug, info, warn or error", 0},
    {"--max-header-bytes", "TASKFLOW_MAX_HEADER_BYTES", OPT_LONG, OFF(max_header_bytes), 1024,
     1048576, "16384", "request line + headers limit (431 above)", 0},
    {"--max-body-bytes", "TASKFLOW_MAX_BODY_BYTES", OPT_LONG, OFF(max_body_bytes), 1024, 1073741824,
     "1048576", "request body limit (413 above)", 0},
    {"--header-timeout-ms", "TASKFLOW_HEADER_TIMEOUT_MS", OPT_INT, OFF(header_timeout_ms), 100,
     3600000, "10000", "time to receive a request head", 0},
    {"--body-timeout-ms", "TASKFLOW_BODY_TIMEOUT_MS", OPT_INT, OFF(body_timeout_ms), 100, 3600000,
     "30000", "time to receive a request body", 0},
    {"--idle-timeout-ms", "TASKFLOW_IDLE_TIMEOUT_MS", OPT_INT, OFF(idle_timeout_ms), 100, 3600000,
     "60000", "keep-alive idle time before a connection is closed", 0},
    {"--max-connections", "TASKFLOW_MAX_CONNECTIONS", OPT_INT, OFF(max_connections), 1, 1000000,
     "10000", "open client connections per process", 0},
    {"--shutdown-grace-ms", "TASKFLOW_SHUTDOWN_GRACE_MS", OPT_INT, OFF(shutdown_grace_ms), 0,
     3600000, "10000", "time in-flight requests get to finish on SIGTERM", 0},
    {"--pg-pool-size", "TASKFLOW_PG_POOL_SIZE", OPT_INT, OFF(pg_pool_size), 1, 64, "2",
     "PostgreSQL connections per loop thread", 0},
    {"--no-migrate", "TASKFLOW_NO_MIGRATE", OPT_FLAG, OFF(migrate_on_start), 0, 1, NULL,
     "serve: do not apply pending migrations at start", 1},
    {"--role", "TASKFLOW_ROLE", OPT_STR, OFF(role), 0, 0, "api,worker",
     "what this node does: api, worker, or api,worker", 0},
    {"--worker-id", "TASKFLOW_WORKER_ID", OPT_STR, OFF(worker_id), 0, 0, NULL,
     "name of this node in leases and attempts [default: <hostname>-<pid>]", 0},
    {"--worker-concurrency", "TASKFLOW_WORKER_CONCURRENCY", OPT_INT, OFF(worker_concurrency), 1,
     100000, "64", "built-in executor runs (HTTP calls, Lua runs) in flight per node", 0},
    {"--lease-ms", "TASKFLOW_LEASE_MS", OPT_INT, OFF(lease_ms), 1000, 3600000, "30000",
     "lease of a built-in execution; renewed by heartbeats at a third of it", 0},
    {"--poll-interval-ms", "TASKFLOW_POLL_INTERVAL_MS", OPT_INT, OFF(poll_interval_ms), 10, 60000,
     "1000", "fallback poll for new work and period of lease rescue", 0},
    {"--http-allow-loopback", "TASKFLOW_HTTP_ALLOW_LOOPBACK", OPT_FLAG, OFF(http_allow_loopback), 0,
     1, NULL, "http executor: allow calls to loopback addresses", 0},
    {"--http-allow-private", "TASKFLOW_HTTP_ALLOW_PRIVATE", OPT_FLAG, OFF(http_allow_private), 0, 1,
     NULL, "http executor: allow calls to private and link-local addresses", 0},
    {"--http-max-response-bytes", "TASKFLOW_HTTP_MAX_RESPONSE_BYTES", OPT_LONG,
     OFF(http_max_response_bytes), 0, 67108864, "1048576",
     "http executor: response body kept as the result (the rest is cut)", 0},
    {"--lua-memory-bytes", "TASKFLOW_LUA_MEMORY_BYTES", OPT_LONG, OFF(lua_memory_bytes), 1048576,
     4294967296L, "67108864", "Lua: memory of one tenant's VM", 0},
    {"--lua-instructions", "TASKFLOW_LUA_INSTRUCTIONS", OPT_LONG, OFF(lua_instructions), 10000,
     100000000000L, "200000000", "Lua: instructions one run may execute", 0},
    {"--lua-timeout-ms", "TASKFLOW_LUA_TIMEOUT_MS", OPT_INT, OFF(lua_timeout_ms), 10, 86400000,
     "30000", "Lua: wall clock of one run (an executor or job may ask for less)", 0},
    {"--lua-output-bytes", "TASKFLOW_LUA_OUTPUT_BYTES", OPT_LONG, OFF(lua_output_bytes), 1024,
     67108864, "1048576", "Lua: a run's result as JSON", 0},
    {"--lua-log-bytes", "TASKFLOW_LUA_LOG_BYTES", OPT_LONG, OFF(lua_log_bytes), 1024, 67108864,
     "65536", "Lua: tf.log output of one run (lines beyond are dropped)", 0},
    {"--lua-slice-ms", "TASKFLOW_LUA_SLICE_MS", OPT_INT, OFF(lua_slice_ms), 1, 1000, "10",
     "Lua: time slice of a run before another tenant's run may go", 0},
    {"--lua-max-vms", "TASKFLOW_LUA_MAX_VMS", OPT_INT, OFF(lua_max_vms), 1, 1000000, "1000",
     "Lua: tenant VMs kept per loop thread (least recently used closed first)", 0},
    {"--lua-vm-idle-ms", "TASKFLOW_LUA_VM_IDLE_MS", OPT_INT, OFF(lua_vm_idle_ms), 1000, 86400000,
     "300000", "Lua: a tenant VM unused this long is closed", 0},
    {"--clock", "TASKFLOW_CLOCK", OPT_STR, OFF(clock), 0, 0, "system",
     "system, or test (tests only: needs TASKFLOW_ALLOW_TEST_CLOCK=1; the admin API moves it)", 0},
};

#define NOPTS (sizeof(OPTS) / sizeof(OPTS[0]))

static int set_value(tf_config_t *cfg, const opt_t *o, const char *value, const char *source,
                     char *err, size_t errlen) {
    char *field = (char *)cfg + o->offset;
    if (o->kind == OPT_STR) {
        char *copy = strdup(value);
        if (copy == NULL) {
            return TF_ENOMEM;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    if (o->kind == OPT_LEVEL) {
        if (tf_log_level_parse(value, (tf_log_level_t *)field) != 0) {
            snprintf(err, errlen,
                     "invalid value for %s: '%s' (expected debug, info, warn or error)", source,
                     value);
            return TF_EINVAL;
        }
        return 0;
    }
    if (o->kind == OPT_FLAG) {
        if (strcmp(value, "1") != 0 && strcmp(value, "true") != 0 && strcmp(value, "0") != 0 &&
            strcmp(value, "false") != 0) {
            snprintf(err, errlen, "invalid value for %s: '%s' (expected true or false)", source,
                     value);
            return TF_EINVAL;
        }
        int set = strcmp(value, "1") == 0 || strcmp(value, "true") == 0;
        *(int *)field = o->invert ? !set : set;
        return 0;
    }
    errno = 0;
    char *end = NULL;
    long v = strtol(value, &end, 10);
    if (*value == '\0' || *end != '\0' || errno != 0 || v < o->min || v > o->max) {
        snprintf(err, errlen, "invalid value for %s: '%s' (expected an integer %ld-%ld)", source,
                 value, o->min, o->max);
        return TF_EINVAL;
    }
    if (o->kind == OPT_INT) {
        *(int *)field = (int)v;
    } else {
        *(long *)field = v;
    }
    return 0;
}

static int load_config(tf_config_t *cfg, int argc, char **argv, tf_getenv_fn getenv_fn,
                       void *env_arg, char *err, size_t errlen);

static const opt_t *find_flag(const char *arg, size_t len) {
    for (size_t i = 0; i < NOPTS; i++) {
        if (strlen(OPTS[i].flag) == len && strncmp(OPTS[i].flag, arg, len) == 0) {
            return &OPTS[i];
        }
    }
    return NULL;
}

static int load_defaults_and_env(tf_config_t *cfg, tf_getenv_fn getenv_fn, void *env_arg, char *err,
                                 size_t errlen) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->migrate_on_start = 1;
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_t *o = &OPTS[i];
        int rc;
        if (o->def != NULL && (rc = set_value(cfg, o, o->def, o->flag, err, errlen)) != 0) {
            return rc;
        }
        const char *v = getenv_fn != NULL ? getenv_fn(o->env, env_arg) : NULL;
        if (v != NULL && (rc = set_value(cfg, o, v, o->env, err, errlen)) != 0) {
            return rc;
        }
    }
    return 0;
}

/* Splits cfg->role into role_api / role_worker. */
static int parse_role(tf_config_t *cfg, char *err, size_t errlen) {
    cfg->role_api = cfg->role_worker = 0;
    const char *p = cfg->role;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        if (len == 3 && strncmp(p, "api", 3) == 0) {
            cfg->role_api = 1;
        } else if (len == 6 && strncmp(p, "worker", 6) == 0) {
            cfg->role_worker = 1;
        } else {
            snprintf(err, errlen,
                     "invalid value for --role: '%s' (expected api, worker or "
                     "api,worker)",
                     cfg->role);
            return TF_EINVAL;
        }
        p += len + (p[len] == ',');
    }
    if (!cfg->role_api && !cfg->role_worker) {
        snprintf(err, errlen, "invalid value for --role: '%s' (expected api, worker or api,worker)",
                 cfg->role);
        return TF_EINVAL;
    }
    return 0;
}

/* --clock: the test clock only where the environment allows it, so that
 * no production node can be started with a clock someone else moves. */
static int parse_clock(tf_config_t *cfg, tf_getenv_fn getenv_fn, void *env_arg, char *err,
                       size_t errlen) {
    cfg->clock_test = 0;
    if (strcmp(cfg->clock, "system") == 0) {
        return 0;
    }
    if (strcmp(cfg->clock, "test") != 0) {
        snprintf(err, errlen, "invalid value for --clock: '%s' (expected system or test)",
                 cfg->clock);
        return TF_EINVAL;
    }
    const char *allow = getenv_fn != NULL ? getenv_fn(TF_CONFIG_ALLOW_TEST_CLOCK, env_arg) : NULL;
    if (allow == NULL || strcmp(allow, "1") != 0) {
        snprintf(err, errlen, "--clock=test is refused unless %s=1 is set (it is for tests only)",
                 TF_CONFIG_ALLOW_TEST_CLOCK);
        return TF_EINVAL;
    }
    cfg->clock_test = 1;
    return 0;
}

int tf_config_load(tf_config_t *cfg, int argc, char **argv, tf_getenv_fn getenv_fn, void *env_arg,
                   char *err, size_t errlen) {
    int rc = load_config(cfg, argc, argv, getenv_fn, env_arg, err, errlen);
    if (rc == 0) {
        rc = parse_role(cfg, err, errlen);
    }
    return rc != 0 ? rc : parse_clock(cfg, getenv_fn, env_arg, err, errlen);
}

static int load_config(tf_config_t *cfg, int argc, char **argv, tf_getenv_fn getenv_fn,
                       void *env_arg, char *err, size_t errlen) {
    int rc = load_defaults_and_env(cfg, getenv_fn, env_arg, err, errlen);
    for (int i = 0; rc == 0 && i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cfg->help = 1;
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        const opt_t *o = strncmp(arg, "--", 2) == 0 ? find_flag(arg, name_len) : NULL;
        if (o == NULL) {
            snprintf(err, errlen, "unknown argument '%.*s'", (int)name_len, arg);
            return TF_EINVAL;
        }
        const char *value = NULL;
        if (o->kind == OPT_FLAG) {
            value = eq != NULL ? eq + 1 : "true";
        } else if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "missing value for %s", o->flag);
            return TF_EINVAL;
        }
        rc = set_value(cfg, o, value, o->flag, err, errlen);
    }
    return rc;
}

void tf_config_free(tf_config_t *cfg) {
    for (size_t i = 0; i < NOPTS; i++) {
        if (OPTS[i].kind == OPT_STR) {
            char **field = (char **)((char *)cfg + OPTS[i].offset);
            free(*field);
            *field = NULL;
        }
    }
}

void tf_config_usage(FILE *out) {
    fprintf(out, "Options (each also read from its environment variable):\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_t *o = &OPTS[i];
        fprintf(out, "  %-22s %-28s %s", o->flag, o->env, o->help);
        if (o->def != NULL) {
            fprintf(out, " [default: %s]", o->def);
        }
        fputc('\n', out);
    }
}
