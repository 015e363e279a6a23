/*
 * cron.h - cron rules firing: take the rules that are due, fire or skip
 * each of their due fire times (engine/cronplan.h), record every skipped
 * time with its reason, and move each rule to its next fire time.
 *
 * Exactly once per rule and fire time across nodes: a node takes due rules
 * under a lease (the store's cron_due), so two nodes do not work on one
 * rule at once, and the firing's run has the dedup key "cron:<fire time>",
 * so a node whose lease ran out while it fired cannot fire that time again
 * elsewhere.  A rule whose firing failed to reach the store stays leased
 * until the lease ends, then is taken again (its run, if it was recorded,
 * makes the second attempt a no-op).
 */
#ifndef TF_ADAPTERS_USECASES_CRON_H
#define TF_ADAPTERS_USECASES_CRON_H

#include <stddef.h>

#include "adapters/usecases/usecases.h"

/* How long a node holds a due rule it took: longer than any firing. */
#define TF_CRON_LEASE_MS 60000
/* A fire time at most this late fires even with catch_up "none". */
#define TF_CRON_ON_TIME_MS 60000

/* taken: the rules taken (limit: there may be more due); fired: fire
 * times fired; skipped: fire times recorded as skipped; status the first
 * failure (the others were still dealt with). */
typedef struct {
    size_t taken, fired, skipped, failed;
} tf_uc_cron_result_t;

typedef void (*tf_uc_cron_cb)(void *arg, int status, const tf_uc_cron_result_t *result);

/* Takes at most `limit` due cron rules for `node` (the lease holder's
 * name) and deals with them, at most `parallel` at a time. */
int tf_uc_cron_tick(tf_uc_t *uc, const char *node, int limit, int parallel, tf_uc_cron_cb cb,
                    void *arg);

/* The first fire time of a cron trigger after `after_ms`; TF_TIME_NONE
 * when it never fires or its zone is unknown. */
int64_t tf_uc_cron_next(const tf_uc_t *uc, const char *cron, const char *timezone,
                        int64_t after_ms);

#endif
