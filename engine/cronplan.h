/*
 * cronplan.h - what a cron rule does with the fire times that came due.
 *
 * A cron rule stores the next fire time it has not dealt with (`due`).
 * When a node takes the rule at `now` >= due, every fire time in
 * [due, now] is either fired or skipped, never dropped:
 *   - a disabled rule skips them all (reason "disabled");
 *   - otherwise the latest fires when it is on time (at most `on_time`
 *     seconds late) or the rule catches up (catch_up "latest"); every other
 *     one is skipped (reason "catch_up": the rule's node was down, or busy).
 * After a firing that ended at `end`, the fire times that came and went
 * while it ran, (fired, end], are skipped with reason "overlap".
 *
 * One plan deals with at most TF_CRON_PLAN_MAX fire times: after a longer
 * downtime the first TF_CRON_PLAN_MAX are skipped and `next` is the one
 * after them, still due, so that the next plan goes on from there; every
 * time is recorded, none is dropped, and no plan takes long.  Pure, no
 * allocation; any thread.
 */
#ifndef TF_ENGINE_CRONPLAN_H
#define TF_ENGINE_CRONPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/cron.h"
#include "engine/trigger.h"

#define TF_CRON_PLAN_MAX 1000 /* fire times one plan deals with, at most */
#define TF_CRON_NEVER INT64_MIN

typedef enum {
    TF_CRON_SKIP_CATCH_UP = 0,
    TF_CRON_SKIP_DISABLED,
    TF_CRON_SKIP_OVERLAP,
} tf_cron_skip_t;

typedef struct {
    int64_t fire;                      /* the fire time to run (seconds); TF_CRON_NEVER: none */
    tf_cron_skip_t why;                /* of every skipped time */
    int64_t skipped[TF_CRON_PLAN_MAX]; /* ascending */
    size_t nskipped;
    int64_t next; /* the first fire time after the ones dealt with; TF_CRON_NEVER */
} tf_cron_plan_t;

/* The plan for the fire times in [due, now] (Unix seconds). */
void tf_cron_plan_due(const tf_cron_t *cron, const tf_cron_zone_t *zone, int64_t due, int64_t now,
                      int enabled, tf_catch_up_t catch_up, int64_t on_time, tf_cron_plan_t *out);

/* The plan after a firing of `fired` that ended at `end`: every fire time
 * in (fired, end] skipped as "overlap"; `next` the first after `end`. */
void tf_cron_plan_overlap(const tf_cron_t *cron, const tf_cron_zone_t *zone, int64_t fired,
                          int64_t end, tf_cron_plan_t *out);

/* "catch_up", "disabled", "overlap". */
const char *tf_cron_skip_name(tf_cron_skip_t why);

#endif
