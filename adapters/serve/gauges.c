/*
 * gauges.c - periodic gauges of queues and hot tables (see gauges.h).  One
 * store call every period.
 */
#include "adapters/serve/gauges.h"

#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

struct tf_queue_gauges {
    tf_uc_t *uc;
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

static void apply(tf_queue_gauges_t *g, const tf_queue_gauge_t *queues, size_t nqueues,
                  const tf_table_gauge_t *tables, size_t ntables, int64_t xmin) {
    for (size_t i = 0; i < g->nqueues; i++) { /* emptied queues read 0 */
        set(g->ready, g->queues[i], 0);
        set(g->running, g->queues[i], 0);
        set(g->age, g->queues[i], 0);
    }
    for (size_t i = 0; i < nqueues; i++) {
        remember(g, queues[i].queue);
        set(g->ready, queues[i].queue, (double)queues[i].ready);
        set(g->running, queues[i].queue, (double)queues[i].running);
        set(g->age, queues[i].queue, queues[i].oldest_ready_age_s);
    }
    for (size_t i = 0; i < ntables; i++) {
        set(g->dead, tables[i].table, (double)tables[i].dead_tuples);
    }
    set(g->xmin, NULL, (double)xmin);
}

static void finish_close(tf_queue_gauges_t *g);

static void refreshed(void *arg, int status, const tf_queue_gauge_t *queues, size_t nqueues,
                      const tf_table_gauge_t *tables, size_t ntables, int64_t xmin) {
    tf_queue_gauges_t *g = arg;
    g->in_flight = 0;
    if (status == 0 && !g->closing) {
        apply(g, queues, nqueues, tables, ntables, xmin);
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
    const tf_job_store_t *store = g->uc->store;
    g->in_flight = store->gauges(store->ctx, tf_uc_now(g->uc), refreshed, g) == 0;
}

static int family(tf_metrics_t *reg, const char *name, const char *help, const char *label,
                  tf_metric_family_t **out) {
    const char *labels[1] = {label};
    return tf_metrics_gauge(reg, name, help, label != NULL ? labels : NULL, label != NULL, out);
}

int tf_queue_gauges_create(uv_loop_t *loop, tf_uc_t *uc, tf_metrics_t *metrics,
                           tf_queue_gauges_t **out) {
    tf_queue_gauges_t *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return TF_ENOMEM;
    }
    g->uc = uc;
    tf_metrics_t *reg = metrics;
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
