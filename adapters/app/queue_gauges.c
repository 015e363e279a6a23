/*
 * queue_gauges.c - periodic gauges of queues and hot tables (see
 * queue_gauges.h).  One query every period; a queue that emptied is set
 * back to 0 rather than forgotten, so a stale value never lingers.
 */
#include "adapters/app/queue_gauges.h"

#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

/* queue, ready, running, oldest ready age (s); then the table rows with
 * queue NULL: name in column 4, dead tuples in column 1. */
#define GAUGES_SQL                                                                                 \
    "SELECT q.queue, coalesce(r.n, 0), coalesce(u.n, 0), r.age, NULL FROM"                         \
    " (SELECT queue FROM ready UNION SELECT queue FROM running) q"                                 \
    " LEFT JOIN (SELECT queue, count(*) AS n,"                                                     \
    "  extract(epoch FROM now() - min(run_at))::float8 AS age FROM ready GROUP BY queue) r"        \
    "  USING (queue)"                                                                              \
    " LEFT JOIN (SELECT queue, count(*) AS n FROM running GROUP BY queue) u USING (queue)"         \
    " UNION ALL SELECT NULL, n_dead_tup, 0, NULL, relname::text FROM pg_stat_user_tables"          \
    "  WHERE relname IN ('jobs', 'ready', 'running', 'scheduled')"                                 \
    " UNION ALL SELECT NULL, coalesce(max(age(backend_xmin)), 0), 0, NULL, '(xmin)'"               \
    "  FROM pg_stat_activity"

const tf_pg_prepared_t tf_queue_gauges_prepared[] = {{"queue_gauges", GAUGES_SQL}};
const size_t tf_queue_gauges_prepared_count = 1;

struct tf_queue_gauges {
    tf_app_loop_t *lp;
    uv_timer_t timer;
    int in_flight, closing;
    void (*closed_cb)(void *arg);
    void *closed_arg;
    tf_metric_family_t *ready, *running, *age, *dead, *xmin;
    char **queues; /* queues seen before, to zero the ones that emptied */
    size_t nqueues;
};

static void set(tf_metric_family_t *family, const char *label, double value) {
    const char *values[1] = {label};
    tf_metric_t *m = family != NULL ? tf_metric_get(family, label != NULL ? values : NULL) : NULL;
    tf_metric_set(m, value);
}

static void remember(tf_queue_gauges_t *g, const char *queue) {
    for (size_t i = 0; i < g->nqueues; i++) {
        if (strcmp(g->queues[i], queue) == 0) {
            return;
        }
    }
    char **grown = realloc(g->queues, (g->nqueues + 1) * sizeof(*grown));
    char *copy = strdup(queue);
    if (grown == NULL || copy == NULL) {
        free(copy);
        g->queues = grown != NULL ? grown : g->queues;
        return;
    }
    g->queues = grown;
    g->queues[g->nqueues++] = copy;
}

static void apply(tf_queue_gauges_t *g, const PGresult *res) {
    for (size_t i = 0; i < g->nqueues; i++) { /* emptied queues read 0 */
        set(g->ready, g->queues[i], 0);
        set(g->running, g->queues[i], 0);
        set(g->age, g->queues[i], 0);
    }
    for (int row = 0; row < PQntuples(res); row++) {
        double n = strtod(PQgetvalue(res, row, 1), NULL);
        if (PQgetisnull(res, row, 0)) {
            const char *table = PQgetvalue(res, row, 4);
            if (strcmp(table, "(xmin)") == 0) {
                set(g->xmin, NULL, n);
            } else {
                set(g->dead, table, n);
            }
            continue;
        }
        const char *queue = PQgetvalue(res, row, 0);
        remember(g, queue);
        set(g->ready, queue, n);
        set(g->running, queue, strtod(PQgetvalue(res, row, 2), NULL));
        set(g->age, queue, PQgetisnull(res, row, 3) ? 0 : strtod(PQgetvalue(res, row, 3), NULL));
    }
}

static void finish_close(tf_queue_gauges_t *g);

static void refreshed(const tf_pg_reply_t *reply, void *arg) {
    tf_queue_gauges_t *g = arg;
    g->in_flight = 0;
    if (reply->status == 0 && !g->closing) {
        apply(g, reply->results[0]);
    }
    if (g->closing) {
        finish_close(g);
    }
}

static void on_timer(uv_timer_t *timer) {
    tf_queue_gauges_t *g = timer->data;
    if (g->in_flight || g->closing) {
        return;
    }
    tf_pg_stmt_t stmt = {.prepared = "queue_gauges"};
    g->in_flight = tf_pg_submit(g->lp->pg, &stmt, 1, 0, refreshed, g) == 0;
}

static int family(tf_metrics_t *reg, const char *name, const char *help, const char *label,
                  tf_metric_family_t **out) {
    const char *labels[1] = {label};
    return tf_metrics_gauge(reg, name, help, label != NULL ? labels : NULL, label != NULL, out);
}

int tf_queue_gauges_create(uv_loop_t *loop, tf_app_loop_t *lp, tf_queue_gauges_t **out) {
    tf_queue_gauges_t *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return TF_ENOMEM;
    }
    g->lp = lp;
    tf_metrics_t *reg = lp->env->metrics;
    if (reg != NULL) {
        family(reg, "taskflow_queue_ready_jobs", "Jobs claimable now", "queue", &g->ready);
        family(reg, "taskflow_queue_running_jobs", "Jobs leased to a worker", "queue", &g->running);
        family(reg, "taskflow_queue_oldest_ready_age_seconds", "Age of the oldest claimable job",
               "queue", &g->age);
        family(reg, "taskflow_table_dead_tuples", "Dead tuples of the hot tables", "table",
               &g->dead);
        family(reg, "taskflow_oldest_xmin_age", "Age in transactions of the oldest snapshot", NULL,
               &g->xmin);
    }
    uv_timer_init(loop, &g->timer);
    g->timer.data = g;
    uv_timer_start(&g->timer, on_timer, 200, TF_QUEUE_GAUGES_PERIOD_MS);
    *out = g;
    return 0;
}

static void timer_closed(uv_handle_t *handle) {
    tf_queue_gauges_t *g = handle->data;
    for (size_t i = 0; i < g->nqueues; i++) {
        free(g->queues[i]);
    }
    free(g->queues);
    void (*cb)(void *) = g->closed_cb;
    void *arg = g->closed_arg;
    free(g);
    if (cb != NULL) {
        cb(arg);
    }
}

static void finish_close(tf_queue_gauges_t *g) {
    if (!g->in_flight) {
        uv_close((uv_handle_t *)&g->timer, timer_closed);
    }
}

void tf_queue_gauges_close(tf_queue_gauges_t *g, void (*closed_cb)(void *arg), void *arg) {
    g->closing = 1;
    g->closed_cb = closed_cb;
    g->closed_arg = arg;
    uv_timer_stop(&g->timer);
    finish_close(g);
}
