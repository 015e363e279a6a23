/*
 * maintenance.c - promotion of due jobs and rescue of expired attempts for
 * one worker loop (see maintenance.h).
 *
 * At most one promotion, one rescue and one "next due" query are in flight
 * at a time; a failing database is reported once per streak (warn) and once
 * when it recovers (info), not on every poll.  Loop thread only.
 */
#include "adapters/app/maintenance.h"

#include <stdlib.h>
#include <string.h>

#include "adapters/app/work.h"
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

/* Milliseconds until the earliest SCHEDULED job is due (NULL: none).  An
 * index probe on scheduled_due_idx. */
static const char NEXT_DUE_SQL[] =
    "SELECT ceil(extract(epoch FROM (min(run_at) - clock_timestamp())) * 1000)::bigint"
    " FROM scheduled";

struct tf_maintenance {
    uv_loop_t *loop;
    tf_app_loop_t *lp;
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
        tf_log_warn(m->lp->env->log, "maintenance failed", TF_LF_STR("task", what),
                    TF_LF_STR("error", tf_strerror(status)));
    } else if (status == 0 && *failing) {
        tf_log_info(m->lp->env->log, "maintenance recovered", TF_LF_STR("task", what));
    }
    *failing = status != 0;
}

static void found_work(tf_maintenance_t *m) {
    if (m->on_work != NULL && !m->closing) {
        m->on_work(m->on_work_arg);
    }
}

static void on_promoted(int status, int count, void *arg) {
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
    int rc = tf_work_promote(m->lp, PROMOTE_LIMIT, on_promoted, m);
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
    const tf_config_t *cfg = m->lp->env->cfg;
    long long delay = due_ms <= 0 ? OVERDUE_RETRY_MS : due_ms + DUE_MARGIN_MS;
    if (delay < MIN_TIMER_MS) {
        delay = MIN_TIMER_MS;
    }
    uint64_t next_tick = uv_timer_get_due_in(&m->tick);
    if ((uint64_t)delay >= next_tick || delay >= cfg->poll_interval_ms) {
        return; /* the poll comes first */
    }
    uint64_t armed = uv_timer_get_due_in(&m->promote);
    if (uv_is_active((uv_handle_t *)&m->promote) && armed <= (uint64_t)delay) {
        return; /* already armed for sooner */
    }
    uv_timer_start(&m->promote, on_promote_timer, (uint64_t)delay, 0);
}

static void on_next_due(const tf_pg_reply_t *reply, void *arg) {
    tf_maintenance_t *m = arg;
    m->asking = 0;
    if (m->closing) {
        maybe_finish(m);
        return;
    }
    if (reply->status == 0 && reply->nresults == 1 && PQntuples(reply->results[0]) == 1 &&
        !PQgetisnull(reply->results[0], 0, 0)) {
        arm_for(m, strtoll(PQgetvalue(reply->results[0], 0, 0), NULL, 10));
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
    tf_pg_stmt_t stmt = {.sql = NEXT_DUE_SQL};
    if (tf_pg_submit(m->lp->pg, &stmt, 1, 0, on_next_due, m) == 0) {
        m->asking = 1;
    }
}

static void on_rescued(int status, int count, void *arg) {
    tf_maintenance_t *m = arg;
    m->rescuing = 0;
    report(m, &m->rescue_failing, "rescue", status);
    if (status == 0 && count > 0) {
        if (m->rescued != NULL) {
            tf_metric_add(m->rescued, (double)count);
        }
        tf_log_info(m->lp->env->log, "rescued attempts", TF_LF_INT("count", count));
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
    int rc = tf_work_rescue(m->lp, RESCUE_LIMIT, on_rescued, m);
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

int tf_maintenance_create(uv_loop_t *loop, tf_app_loop_t *lp, tf_maintenance_work_fn on_work,
                          void *arg, tf_maintenance_t **out) {
    if (loop == NULL || lp == NULL || lp->env == NULL || lp->env->cfg == NULL || out == NULL) {
        return TF_EINVAL;
    }
    tf_maintenance_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return TF_ENOMEM;
    }
    m->loop = loop;
    m->lp = lp;
    m->on_work = on_work;
    m->on_work_arg = arg;
    if (lp->env->metrics != NULL) {
        tf_metric_family_t *fam = NULL;
        if (tf_metrics_counter(lp->env->metrics, "taskflow_jobs_rescued_total",
                               "Attempts failed by the lease rescuer (lease expired or timed out)",
                               NULL, 0, &fam) == 0) {
            m->rescued = tf_metric_get(fam, NULL);
        }
    }
    uv_timer_init(loop, &m->tick);
    uv_timer_init(loop, &m->promote);
    m->tick.data = m->promote.data = m;
    m->open_handles = 2;
    int period = lp->env->cfg->poll_interval_ms > 0 ? lp->env->cfg->poll_interval_ms : 1000;
    uv_timer_start(&m->tick, on_tick, 0, (uint64_t)period);
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
