/*
 * maintenance.c - promotion of due jobs and rescue of expired attempts for
 * one worker loop (see maintenance.h).
 *
 * At most one promotion, one rescue and one "next due" query are in flight
 * at a time; a failing database is reported once per streak (warn) and once
 * when it recovers (info), not on every poll.  Loop thread only.
 */
#include "adapters/worker/maintenance.h"

#include <stdlib.h>
#include <string.h>

#include "adapters/usecases/finish.h"
#include "adapters/usecases/lease.h"
#include "engine/error.h"

enum {
    PROMOTE_LIMIT = 1000,
    RESCUE_LIMIT = 100,
    /* A job that is due but was not promoted (another node holds its row
     * right now): look again this soon rather than spinning. */
    OVERDUE_RETRY_MS = 100,
    /* Never arm the precise timer closer than this: bounds the promotions a
     * loop makes when due times are dense. */
    MIN_TIMER_MS = 10,
    /* The promotion compares run_at with its transaction's now(): fire a
     * little after the due time, not just before it. */
    DUE_MARGIN_MS = 2,
};

struct tf_maintenance {
    uv_loop_t *loop;
    tf_uc_t *uc;
    tf_log_t *log;
    int poll_interval_ms;
    tf_maintenance_work_fn on_work;
    void *on_work_arg;
    uv_timer_t tick;                 /* every poll interval */
    uv_timer_t promote;              /* one-shot: the next due time */
    int promoting, rescuing, asking; /* statements in flight */
    int recheck;                     /* a retry was scheduled while `asking` */
    int promote_failing, rescue_failing;
    int closing, open_handles;
    void (*closed_cb)(void *arg);
    void *closed_arg;
    tf_metric_t *rescued;
};

static void promote_now(tf_maintenance_t *m);
static void rescue_now(tf_maintenance_t *m);
static void ask_next_due(tf_maintenance_t *m);

static void handle_closed(uv_handle_t *h) {
    tf_maintenance_t *m = h->data;
    if (--m->open_handles == 0) {
        if (m->closed_cb != NULL) {
            m->closed_cb(m->closed_arg);
        }
        free(m);
    }
}

/* Closes the handles once nothing is in flight any more. */
static void maybe_finish(tf_maintenance_t *m) {
    if (!m->closing || m->promoting || m->rescuing || m->asking || m->open_handles != 2) {
        return;
    }
    uv_close((uv_handle_t *)&m->tick, handle_closed);
    uv_close((uv_handle_t *)&m->promote, handle_closed);
}

static void report(tf_maintenance_t *m, int *failing, const char *what, int status) {
    if (status != 0 && !*failing) {
        tf_log_warn(m->log, "maintenance failed", TF_LF_STR("task", what),
                    TF_LF_STR("error", tf_strerror(status)));
    } else if (status == 0 && *failing) {
        tf_log_info(m->log, "maintenance recovered", TF_LF_STR("task", what));
    }
    *failing = status != 0;
}

static void found_work(tf_maintenance_t *m) {
    if (m->on_work != NULL && !m->closing) {
        m->on_work(m->on_work_arg);
    }
}

static void on_promoted(void *arg, int status, int64_t count) {
    tf_maintenance_t *m = arg;
    m->promoting = 0;
    report(m, &m->promote_failing, "promote", status);
    if (status == 0 && count > 0) {
        found_work(m);
    }
    if (m->closing) {
        maybe_finish(m);
    } else if (status == 0 && count >= PROMOTE_LIMIT) {
        promote_now(m);
    } else if (status == 0) {
        ask_next_due(m);
    }
}

static void promote_now(tf_maintenance_t *m) {
    if (m->promoting || m->closing) {
        return;
    }
    int rc = tf_uc_promote(m->uc, PROMOTE_LIMIT, on_promoted, m);
    if (rc != 0) {
        report(m, &m->promote_failing, "promote", rc);
        return;
    }
    m->promoting = 1;
}

static void on_promote_timer(uv_timer_t *t) {
    promote_now(t->data);
}

/* Arms the one-shot promotion for a job due in `due_ms` when that comes
 * before the next poll. */
static void arm_for(tf_maintenance_t *m, long long due_ms) {
    long long delay = due_ms <= 0 ? OVERDUE_RETRY_MS : due_ms + DUE_MARGIN_MS;
    if (delay < MIN_TIMER_MS) {
        delay = MIN_TIMER_MS;
    }
    uint64_t next_tick = uv_timer_get_due_in(&m->tick);
    if ((uint64_t)delay >= next_tick || delay >= m->poll_interval_ms) {
        return; /* the poll comes first */
    }
    uint64_t armed = uv_timer_get_due_in(&m->promote);
    if (uv_is_active((uv_handle_t *)&m->promote) && armed <= (uint64_t)delay) {
        return; /* already armed for sooner */
    }
    uv_timer_start(&m->promote, on_promote_timer, (uint64_t)delay, 0);
}

static void on_next_due(void *arg, int status, int any, int64_t due_in_ms) {
    tf_maintenance_t *m = arg;
    m->asking = 0;
    if (m->closing) {
        maybe_finish(m);
        return;
    }
    if (status == 0 && any) {
        arm_for(m, due_in_ms);
    }
    if (m->recheck) {
        m->recheck = 0;
        ask_next_due(m);
    }
}

static void ask_next_due(tf_maintenance_t *m) {
    if (m->asking || m->closing) {
        m->recheck = m->asking;
        return;
    }
    if (tf_uc_next_due(m->uc, on_next_due, m) == 0) {
        m->asking = 1;
    }
}

static void on_rescued(void *arg, int status, int64_t count) {
    tf_maintenance_t *m = arg;
    m->rescuing = 0;
    report(m, &m->rescue_failing, "rescue", status);
    if (status == 0 && count > 0) {
        if (m->rescued != NULL) {
            tf_metric_add(m->rescued, (double)count);
        }
        tf_log_info(m->log, "rescued attempts", TF_LF_INT("count", (long long)count));
        found_work(m);
        ask_next_due(m); /* a rescued job may now wait out a retry delay */
    }
    if (m->closing) {
        maybe_finish(m);
    } else if (status == 0 && count >= RESCUE_LIMIT) {
        rescue_now(m);
    }
}

static void rescue_now(tf_maintenance_t *m) {
    if (m->rescuing || m->closing) {
        return;
    }
    int rc = tf_uc_rescue(m->uc, RESCUE_LIMIT, on_rescued, m);
    if (rc != 0) {
        report(m, &m->rescue_failing, "rescue", rc);
        return;
    }
    m->rescuing = 1;
}

static void on_tick(uv_timer_t *t) {
    tf_maintenance_t *m = t->data;
    promote_now(m);
    rescue_now(m);
}

int tf_maintenance_create(uv_loop_t *loop, tf_uc_t *uc, const tf_maintenance_config_t *cfg,
                          tf_log_t *log, tf_metrics_t *metrics, tf_maintenance_work_fn on_work,
                          void *arg, tf_maintenance_t **out) {
    if (loop == NULL || uc == NULL || cfg == NULL || out == NULL) {
        return TF_EINVAL;
    }
    tf_maintenance_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return TF_ENOMEM;
    }
    m->loop = loop;
    m->uc = uc;
    m->log = log;
    m->poll_interval_ms = cfg->poll_interval_ms > 0 ? cfg->poll_interval_ms : 1000;
    m->on_work = on_work;
    m->on_work_arg = arg;
    if (metrics != NULL) {
        tf_metric_family_t *fam = NULL;
        if (tf_metrics_counter(metrics, "taskflow_jobs_rescued_total",
                               "Attempts failed by the lease rescuer (lease expired or timed out)",
                               NULL, 0, &fam) == 0) {
            m->rescued = tf_metric_get(fam, NULL);
        }
    }
    uv_timer_init(loop, &m->tick);
    uv_timer_init(loop, &m->promote);
    m->tick.data = m->promote.data = m;
    m->open_handles = 2;
    uv_timer_start(&m->tick, on_tick, 0, (uint64_t)m->poll_interval_ms);
    *out = m;
    return 0;
}

void tf_maintenance_scheduled(tf_maintenance_t *m) {
    if (m != NULL && !m->promoting) {
        ask_next_due(m);
    }
}

void tf_maintenance_close(tf_maintenance_t *m, void (*closed_cb)(void *arg), void *arg) {
    if (m == NULL) {
        if (closed_cb != NULL) {
            closed_cb(arg);
        }
        return;
    }
    m->closing = 1;
    m->closed_cb = closed_cb;
    m->closed_arg = arg;
    uv_timer_stop(&m->tick);
    uv_timer_stop(&m->promote);
    maybe_finish(m);
}
