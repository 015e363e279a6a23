/*
 * main.c - the `taskflow` command: `serve`, `migrate` and `version`.
 *
 * Usage errors (unknown subcommand or flag, bad value) print the usage and
 * exit 2; runtime failures exit 1.  Runs on the main thread; `serve` hands
 * over to the app, which starts the loop threads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapters/config/config.h"
#include "adapters/log/log.h"
#include "adapters/metrics/metrics.h"
#include "adapters/pg/migrate.h"
#include "adapters/serve/serve.h"
#include "engine/error.h"

#ifndef TF_VERSION
#define TF_VERSION "0.1.0"
#endif

enum { EXIT_USAGE = 2 };

static const char *env_lookup(const char *name, void *arg) {
    (void)arg;
    return getenv(name);
}

static void usage(FILE *out) {
    fprintf(out, "Usage: taskflow <command> [options]\n\n"
                 "Commands:\n"
                 "  serve     run the HTTP API (applies pending migrations first)\n"
                 "  migrate   apply pending database migrations and exit\n"
                 "  version   print the version and exit\n\n"
                 "Run 'taskflow <command> --help' for the options of a command.\n");
}

static void command_usage(FILE *out, const char *command) {
    fprintf(out, "Usage: taskflow %s [options]\n\n", command);
    tf_config_usage(out);
    fprintf(out, "\nSee docs/configuration.md.\n");
}

/* Applies migrations; returns 0 or a TF_E* code, logging why. */
static int run_migrations(const tf_config_t *cfg, tf_log_t *log) {
    char err[512] = "";
    int applied = 0, version = 0;
    int rc = tf_migrate_apply(cfg->database_url, log, &applied, &version, err, sizeof(err));
    if (rc != 0) {
        tf_log_error(log, "migration failed", TF_LF_STR("error", err),
                     TF_LF_STR("code", tf_strerror(rc)));
        return rc;
    }
    tf_log_info(log, "schema up to date", TF_LF_INT("version", version),
                TF_LF_INT("applied", applied));
    return 0;
}

static int serve(const tf_config_t *cfg, tf_log_t *log) {
    if (cfg->migrate_on_start && run_migrations(cfg, log) != 0) {
        return EXIT_FAILURE;
    }
    tf_metrics_t *metrics = NULL;
    tf_serve_t *node = NULL;
    int rc = tf_metrics_create(&metrics);
    if (rc == 0) {
        rc = tf_serve_create(cfg, log, metrics, &node);
    }
    if (rc == 0) {
        rc = tf_serve_run(node);
    }
    tf_serve_destroy(node);
    tf_metrics_destroy(metrics);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int run_command(const char *command, const tf_config_t *cfg) {
    tf_log_t *log = NULL;
    if (tf_log_create(STDOUT_FILENO, cfg->log_level, &log) != 0) {
        fprintf(stderr, "taskflow: cannot create logger\n");
        return EXIT_FAILURE;
    }
    int status;
    if (strcmp(command, "serve") == 0) {
        status = serve(cfg, log);
    } else {
        status = run_migrations(cfg, log) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    }
    tf_log_destroy(log);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 ||
        strcmp(command, "help") == 0) {
        usage(stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0) {
        if (argc > 2 && strcmp(argv[2], "--help") == 0) {
            printf("Usage: taskflow version\n\nPrints the version of this binary and the newest "
                   "schema version it knows.\n");
            return EXIT_SUCCESS;
        }
        if (argc > 2) {
            fprintf(stderr, "taskflow: version takes no arguments\n");
            return EXIT_USAGE;
        }
        printf("taskflow %s (schema %d)\n", TF_VERSION, tf_migrate_latest());
        return EXIT_SUCCESS;
    }
    if (strcmp(command, "serve") != 0 && strcmp(command, "migrate") != 0) {
        fprintf(stderr, "taskflow: unknown command '%s'\n\n", command);
        usage(stderr);
        return EXIT_USAGE;
    }
    tf_config_t cfg;
    char err[512] = "";
    int status = EXIT_SUCCESS;
    if (tf_config_load(&cfg, argc - 2, argv + 2, env_lookup, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "taskflow %s: %s\n\n", command, err);
        command_usage(stderr, command);
        status = EXIT_USAGE;
    } else if (cfg.help) {
        command_usage(stdout, command);
    } else if (cfg.database_url == NULL || cfg.database_url[0] == '\0') {
        fprintf(stderr, "taskflow %s: no database: set TASKFLOW_DATABASE_URL or --database-url\n\n",
                command);
        command_usage(stderr, command);
        status = EXIT_USAGE;
    } else {
        status = run_command(command, &cfg);
    }
    tf_config_free(&cfg);
    return status;
}
