/*
 * automation.c - cron and job-event rounds of one worker loop (see
 * automation.h).
 */
#include "adapters/worker/automation.h"

#include <stdio.h>
#include <stdlib.h>

#include "adapters/usecases/cron.h"
#include "adapters/usecases/jobevents.h"
#include "engine/error.h"

struct tf_automation {
    uv_loop_t *loop;
    tf_uc_t *uc;
    tf_log_t *log;
    tf_automation_config_t cfg;
    char node[256];
    uv_timer_t tick;
    int running, failing;               /* cron */
    int events_running, events_failing; /* job events */
    int closing;
    void (*closed_cb)(void *arg);
    void *closed_arg;
    tf_metric_t *fired, *skipped, *event_runs;
};

static void round_now(tf_automation_t *a);
static void events_now(tf_automation_t *a);

static void handle_closed(uv_handle_t *h) {
    tf_automation_t *a = h->data;
    if (a->closed_cb != NULL) {
        a->closed_cb(a->closed_arg);
    }
    free(a);
}

static void maybe_finish(tf_automation_t *a) {
    if (a->closing && !a->running && !a->events_running) {
        uv_close((uv_handle_t *)&a->tick, handle_closed);
    }
}

static void report(tf_automation_t *a, int *failing, const char *task, int status) {
    if (status != 0 && !*failing) {
        tf_log_warn(a->log, "rules failed", TF_LF_STR("task", task),
                    TF_LF_STR("error", tf_strerror(status)));
    } else if (status == 0 && *failing) {
        tf_log_info(a->log, "rules recovered", TF_LF_STR("task", task));
    }
    *failing = status != 0;
}

static void round_done(void *arg, int status, const tf_uc_cron_result_t *r) {
    tf_automation_t *a = arg;
    a->running = 0;
    report(a, &a->failing, "cron", status);
    if (a->fired != NULL) {
        tf_metric_add(a->fired, (double)r->fired);
    }
    if (a->skipped != NULL) {
        tf_metric_add(a->skipped, (double)r->skipped);
    }
    if (a->closing) {
        maybe_finish(a);
    } else if (status == 0 && r->taken >= (size_t)a->cfg.limit) {
        round_now(a); /* more are due */
    }
}

static void round_now(tf_automation_t *a) {
    if (a->running || a->closing) {
        return;
    }
    int rc = tf_uc_cron_tick(a->uc, a->node, a->cfg.limit, a->cfg.parallel, round_done, a);
    if (rc != 0) {
        report(a, &a->failing, "cron", rc);
        return;
    }
    a->running = 1;
}

static void events_done(void *arg, int status, const tf_uc_job_events_result_t *r) {
    tf_automation_t *a = arg;
    a->events_running = 0;
    report(a, &a->events_failing, "job events", status);
    if (a->event_runs != NULL) {
        tf_metric_add(a->event_runs, (double)r->runs);
    }
    if (a->closing) {
        maybe_finish(a);
    } else if (status == 0 && r->held && r->events >= (size_t)a->cfg.limit) {
        events_now(a); /* a full page: more are waiting */
    }
}

static void events_now(tf_automation_t *a) {
    if (a->events_running || a->closing) {
        return;
    }
    int rc = tf_uc_job_events_tick(a->uc, a->node, a->cfg.limit, a->cfg.parallel, events_done, a);
    if (rc != 0) {
        report(a, &a->events_failing, "job events", rc);
        return;
    }
    a->events_running = 1;
}

static void on_tick(uv_timer_t *t) {
    round_now(t->data);
    events_now(t->data);
}

int tf_automation_create(uv_loop_t *loop, tf_uc_t *uc, const tf_automation_config_t *cfg,
                         tf_log_t *log, tf_metrics_t *metrics, tf_automation_t **out) {
    if (loop == NULL || uc == NULL || cfg == NULL || cfg->node == NULL || out == NULL) {
        return TF_EINVAL;
    }
    tf_automation_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return TF_ENOMEM;
    }
    a->loop = loop;
    a->uc = uc;
    a->log = log;
    a->cfg = *cfg;
    a->cfg.interval_ms = cfg->interval_ms > 0 ? cfg->interval_ms : 1000;
    a->cfg.limit = cfg->limit > 0 ? cfg->limit : 200;
    a->cfg.parallel = cfg->parallel > 0 ? cfg->parallel : 16;
    snprintf(a->node, sizeof(a->node), "%s", cfg->node);
    a->cfg.node = a->node;
    if (metrics != NULL) {
        tf_metric_family_t *fam = NULL;
        if (tf_metrics_counter(metrics, "taskflow_cron_fired_total",
                               "Cron fire times fired (runs recorded by the rule's firing)", NULL,
                               0, &fam) == 0) {
            a->fired = tf_metric_get(fam, NULL);
        }
        if (tf_metrics_counter(metrics, "taskflow_cron_skipped_total",
                               "Cron fire times skipped (catch_up, disabled, overlap) and "
                               "recorded as skipped runs",
                               NULL, 0, &fam) == 0) {
            a->skipped = tf_metric_get(fam, NULL);
        }
        if (tf_metrics_counter(metrics, "taskflow_rule_job_event_runs_total",
                               "Rule firings by job events (job.succeeded, job.failed, ...)", NULL,
                               0, &fam) == 0) {
            a->event_runs = tf_metric_get(fam, NULL);
        }
    }
    uv_timer_init(loop, &a->tick);
    a->tick.data = a;
    uv_timer_start(&a->tick, on_tick, 0, (uint64_t)a->cfg.interval_ms);
    *out = a;
    return 0;
}

void tf_automation_close(tf_automation_t *a, void (*closed_cb)(void *arg), void *arg) {
    if (a == NULL) {
        if (closed_cb != NULL) {
            closed_cb(arg);
        }
        return;
    }
    a->closing = 1;
    a->closed_cb = closed_cb;
    a->closed_arg = arg;
    uv_timer_stop(&a->tick);
    maybe_finish(a);
}
