/*
 * config.h - TaskFlow's configuration: command-line flags over TASKFLOW_*
 * environment variables over built-in defaults.
 *
 * Every setting has one flag and one environment variable (see
 * docs/configuration.md, kept in step with the table in config.c).  Parsing
 * is strict: an unknown flag, a missing value or a value out of range is an
 * error with a message naming the setting, and the CLI exits 2.  Secrets
 * (the database URL's password, the admin token) are never printed.
 * Plain values; parsed once on the main thread before any loop starts.
 */
#ifndef TF_ADAPTERS_CONFIG_CONFIG_H
#define TF_ADAPTERS_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "adapters/log/log.h"

typedef struct {
    char *host;
    int port;
    int threads; /* 0: one per core */
    char *database_url;
    char *admin_token;
    tf_log_level_t log_level;
    long max_header_bytes;
    long max_body_bytes;
    int header_timeout_ms;
    int body_timeout_ms;
    int idle_timeout_ms;
    int max_connections;
    int shutdown_grace_ms;
    int pg_pool_size; /* connections per loop thread */
    int migrate_on_start;
    char *role;                /* "api", "worker" or "api,worker" */
    int role_api, role_worker; /* parsed from role */
    char *worker_id;           /* NULL: "<hostname>-<pid>" */
    int worker_concurrency;    /* built-in executions in flight per process */
    int lease_ms;              /* lease of a built-in execution */
    int poll_interval_ms;      /* fallback poll and maintenance period */
    int http_allow_loopback;
    int http_allow_private;
    long http_max_response_bytes;
    long lua_memory_bytes;   /* per tenant VM */
    long lua_instructions;   /* per run */
    int lua_timeout_ms;      /* per run (an executor or job may ask for less) */
    long lua_output_bytes;   /* a run's result as JSON */
    long lua_log_bytes;      /* tf.log volume per run */
    int lua_slice_ms;        /* time slice before a run yields the loop */
    int lua_max_vms;         /* tenant VMs kept per loop thread */
    int lua_vm_idle_ms;      /* an unused VM is closed after this */
    char *clock;        /* "system" or "test" */
    int clock_test;     /* parsed from clock: the test clock was asked for and allowed */
    int help; /* --help was given */
} tf_config_t;

/* Looks up an environment variable; tests pass their own. */
typedef const char *(*tf_getenv_fn)(const char *name, void *arg);

/* The environment variable that must be "1" for --clock=test. */
#define TF_CONFIG_ALLOW_TEST_CLOCK "TASKFLOW_ALLOW_TEST_CLOCK"

/* Fills `cfg` with defaults, then the environment, then `argv` (argc
 * entries, flags only: the subcommand is already consumed).  On error
 * returns TF_EINVAL with a one-line message in `err`; `cfg` must still be
 * released with tf_config_free().  Caller owns the strings in `cfg`. */
int tf_config_load(tf_config_t *cfg, int argc, char **argv, tf_getenv_fn getenv_fn, void *env_arg,
                   char *err, size_t errlen);
void tf_config_free(tf_config_t *cfg);

/* Writes the flag/environment table for `--help`. */
void tf_config_usage(FILE *out);

#endif
