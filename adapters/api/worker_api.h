/*
 * worker_api.h - the external-worker API (API.md "External workers"): any
 * program that speaks HTTP claims jobs of a queue, keeps their leases alive
 * and reports how each attempt ended, one job at a time or many in one ack.
 *
 *   POST /v1/queues/{queue}/claim   claim up to max_jobs (long-polls wait_ms)
 *   POST /v1/jobs/{id}/heartbeat    extend the lease
 *   POST /v1/jobs/{id}/complete     the attempt succeeded (with a result)
 *   POST /v1/jobs/{id}/fail         the attempt failed (retry policy decides)
 *   POST /v1/jobs/ack               many completions and failures at once
 *
 * A tenant key claims and finishes its own tenant's jobs; the admin token
 * does so for every tenant (or for one, with TaskFlow-Tenant).  Only jobs
 * without a built-in executor are handed out.  The state changes are the use
 * cases of adapters/usecases (claim.h, finish.h, lease.h), so a stale lease
 * token changes nothing (409) and another tenant's job is not found (404).
 *
 * Modules: worker_api.c (heartbeat, complete, fail, ack; registration) and
 * worker_claim.c (the claim and its long poll: the per-loop waitlist).
 * Handlers run on the loop thread of their request.
 */
#ifndef TF_ADAPTERS_API_WORKER_API_H
#define TF_ADAPTERS_API_WORKER_API_H

#include <jansson.h>

#include "adapters/api/api.h"
#include "adapters/jobspec/job_input.h"

#define TF_WORKER_ID_MAX 128 /* bytes */

/* ---- the waitlist: long-polling claims of one loop ----
 *
 * A claim with wait_ms > 0 that finds nothing waits here until work arrives
 * in its queue (tf_waitlist_wake(), from the loop's notifier), until a
 * periodic re-try (every second, since notifications can be lost) finds
 * some, or until its deadline (then it answers {"jobs": []}).  Each waiting
 * claim has at most one claim in flight; wakes that arrive meanwhile are
 * folded into one more try.  Without a waitlist (lp->waiters NULL) claims
 * answer at once.  Loop thread of `lp` only. */

/* Caller owns the result; release with tf_waitlist_close().  Returns 0 or
 * TF_ENOMEM. */
int tf_waitlist_create(tf_api_loop_t *lp, tf_waitlist_t **out);

/* Jobs became claimable in `queue` (a queue name, or the payload of a
 * taskflow_ready notification: "<queue>|builtin" wakes nobody, since only
 * built-in jobs became ready); NULL wakes every waiting claim (after the
 * notifier reconnected).  Each woken claim tries again now. */
void tf_waitlist_wake(tf_waitlist_t *w, const char *queue);

/* Stops the long polls (at the start of a graceful shutdown, so waiting
 * workers are not held until the grace period ends): every waiting claim is
 * answered with an empty list now, and later claims answer after one try. */
void tf_waitlist_drain(tf_waitlist_t *w);

/* Answers every waiting claim with an empty list (a claim in flight is
 * answered with what it gets), closes the timer, then calls `closed_cb` (may
 * be NULL, and may run before this returns when nothing is in flight) and
 * frees the waitlist.  The loop must not use `w` after `closed_cb` (set
 * lp->waiters to NULL); claims arriving meanwhile answer at once. */
void tf_waitlist_close(tf_waitlist_t *w, void (*closed_cb)(void *arg), void *arg);

/* ---- between worker_api.c and worker_claim.c ---- */

/* POST /v1/queues/{queue}/claim (worker_claim.c). */
void tf__worker_claim(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who);

/* The claim metrics' families (registered on first use; owned by
 * `metrics`).  Returns 0, or TF_ECONFLICT when a family of that name has
 * another shape. */
int tf__worker_claim_metrics(tf_metrics_t *metrics, tf_metric_family_t **claimed,
                             tf_metric_family_t **latency);

/* Body checks; each returns 0, or TF_EINVAL with `err` naming the field as
 * `prefix` + key.  Members of `obj` not in `allowed` (NULL-terminated) are
 * refused. */
int tf__worker_check_fields(const json_t *obj, const char *prefix, const char *const *allowed,
                            tf_verr_t *err);
/* An optional integer member from `min` to `max`; *out keeps its default
 * when the member is absent. */
int tf__worker_read_int(const json_t *obj, const char *prefix, const char *key, int min, int max,
                        int *out, tf_verr_t *err);
/* A worker id member: 1 to TF_WORKER_ID_MAX bytes without control
 * characters; "" when absent and not `required`. */
int tf__worker_read_id(const json_t *obj, const char *prefix, const char *key, int required,
                       char out[TF_WORKER_ID_MAX + 1], tf_verr_t *err);

#endif
