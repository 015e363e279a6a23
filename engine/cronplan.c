/*
 * cronplan.c - fire or skip the due times of a cron rule (see cronplan.h).
 */
#include "engine/cronplan.h"

/* The next fire time strictly after `t`, or TF_CRON_NEVER. */
static int64_t after(const tf_cron_t *cron, const tf_cron_zone_t *zone, int64_t t) {
    int64_t next = 0;
    return tf_cron_next(cron, zone, t, &next) == 0 ? next : TF_CRON_NEVER;
}

static void plan_init(tf_cron_plan_t *p, tf_cron_skip_t why) {
    p->fire = TF_CRON_NEVER;
    p->why = why;
    p->nskipped = 0;
    p->next = TF_CRON_NEVER;
}

void tf_cron_plan_due(const tf_cron_t *cron, const tf_cron_zone_t *zone, int64_t due, int64_t now,
                      int enabled, tf_catch_up_t catch_up, int64_t on_time, tf_cron_plan_t *out) {
    plan_init(out, enabled ? TF_CRON_SKIP_CATCH_UP : TF_CRON_SKIP_DISABLED);
    if (due > now) {
        out->next = due;
        return;
    }
    /* Every time in [due, now] (at most TF_CRON_PLAN_MAX): the last is
     * `latest`, the others skipped. */
    int64_t latest = due, t = due;
    while ((t = after(cron, zone, latest)) != TF_CRON_NEVER && t <= now) {
        out->skipped[out->nskipped++] = latest;
        latest = t;
        if (out->nskipped == TF_CRON_PLAN_MAX) {
            out->next = latest; /* due still: the next plan goes on */
            return;
        }
    }
    out->next = t;
    if (enabled && (now - latest <= on_time || catch_up == TF_CATCH_UP_LATEST)) {
        out->fire = latest;
    } else {
        out->skipped[out->nskipped++] = latest;
    }
}

void tf_cron_plan_overlap(const tf_cron_t *cron, const tf_cron_zone_t *zone, int64_t fired,
                          int64_t end, tf_cron_plan_t *out) {
    plan_init(out, TF_CRON_SKIP_OVERLAP);
    int64_t t = fired;
    while ((t = after(cron, zone, t)) != TF_CRON_NEVER && t <= end &&
           out->nskipped < TF_CRON_PLAN_MAX) {
        out->skipped[out->nskipped++] = t;
    }
    out->next = t; /* may be due still: the next plan skips it as catch_up */
}

const char *tf_cron_skip_name(tf_cron_skip_t why) {
    switch (why) {
    case TF_CRON_SKIP_CATCH_UP:
        return "catch_up";
    case TF_CRON_SKIP_DISABLED:
        return "disabled";
    case TF_CRON_SKIP_OVERLAP:
        return "overlap";
    }
    return "unknown";
}
