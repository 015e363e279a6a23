/*
 * serve.h - `taskflow serve`, the composition root: the only place that
 * knows every room and wires them together.
 *
 * tf_serve_create() builds the router and what every loop shares (the
 * clock, the API's environment); tf_serve_run() reads the secrets
 * (bootstrap.h), starts the HTTP loops, each with its own Postgres store,
 * use cases, HTTP API state, LISTEN session, and (worker role) runner with
 * its executor registry, then waits on the calling thread for SIGINT or
 * SIGTERM and shuts down gracefully.  Loops share nothing but what
 * tf_serve_t holds read-only (metrics, logs and the clock are
 * thread-safe).
 */
#ifndef TF_ADAPTERS_SERVE_SERVE_H
#define TF_ADAPTERS_SERVE_SERVE_H

#include "adapters/config/config.h"
#include "adapters/log/log.h"
#include "adapters/metrics/metrics.h"

typedef struct tf_serve tf_serve_t;

/* Builds the node from a loaded configuration (not copied: `cfg`, `log`
 * and `metrics` must outlive it).  Caller owns the result; free with
 * tf_serve_destroy(). */
int tf_serve_create(const tf_config_t *cfg, tf_log_t *log, tf_metrics_t *metrics, tf_serve_t **out);
void tf_serve_destroy(tf_serve_t *s);

/* Serves until SIGINT/SIGTERM, then stops gracefully.  Returns 0 on a clean
 * stop or a TF_E* code when the server could not start. */
int tf_serve_run(tf_serve_t *s);

#endif
