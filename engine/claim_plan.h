/*
 * claim_plan.h - the fair-share planner: how many jobs each tenant gets in
 * one claim from one queue (SCHEDULING.md, "Fair share").
 *
 * Weighted fair queueing with virtual times (stride scheduling).  Every
 * tenant of a queue carries a virtual time `vtime` that advances by
 * cost / weight for each job it is granted; the queue carries a virtual
 * clock V.  One plan:
 *
 *   headroom_i = min(backlog_i, cap_headroom_i, rate_headroom_i)
 *   start_i    = max(vtime_i, V)          (idle time is never banked)
 *   competitors: the K tenants with headroom > 0 and the smallest start tags
 *                (ties by tenant id, then by position in the input)
 *   water-fill:  give the budget one job at a time to the competitor whose
 *                next finish tag start_i + (k_i + 1) * cost_i / weight_i is
 *                smallest (same ties), skipping those whose headroom is used
 *   new vtime_i  = start_i + quota_i * cost_i / weight_i
 *   new V        = the smallest start tag among the competitors, or V when
 *                  nobody was served
 *
 * The new V deliberately never passes a competitor's start tag, also one
 * that got nothing in this claim: if V could move past a backlogged tenant
 * that lost on finish tags (say weight 1 against weight 1000 with a budget
 * of 1), the next plan would lift that tenant's start to V and it could wait
 * forever.  Tenants that are empty, capped or rate-limited may fall behind V
 * and are lifted to it when they come back: no banking while away.
 *
 * Invariants (tests/engine/test_claim_plan.c checks them on random input):
 *   - sum of quotas <= budget, and quota_i <= headroom_i;
 *   - work-conserving among competitors: if the budget is not used up, every
 *     competitor got its full headroom;
 *   - deterministic: the same input gives the same output, whatever the
 *     order of equal keys inside the heaps;
 *   - the last finish tag of every served tenant is at most the next finish
 *     tag of every competitor that still has headroom (so served tenants'
 *     virtual times stay within one job's cost / weight of each other);
 *   - no new vtime and no new V is below V; V never goes backwards.
 *
 * Cost: O(N log K + min(budget, sum of competitors' headroom) * log K) time
 * for N tenants, O(K) stack, no allocation.  Budgets are claim batch sizes
 * (hundreds; at most TF_PLAN_BUDGET_MAX); a budget that the competitors
 * cannot use up costs nothing extra (it is granted in one step).
 *
 * Virtual times are doubles; with costs in [1e-6, 1e9] they stay exact
 * enough as long as the adapter keeps them small, e.g. by storing them
 * relative to V and shifting all of a queue's values down together now and
 * then.  Pure; plain values; any thread.
 */
#ifndef TF_ENGINE_CLAIM_PLAN_H
#define TF_ENGINE_CLAIM_PLAN_H

#include <limits.h>
#include <stddef.h>

#include "engine/uuid.h"

/* Headroom of a tenant with no cap or no rate limit. */
#define TF_PLAN_UNLIMITED INT_MAX

/* K when tf_plan_input_t.max_tenants is 0, and the largest K accepted.
 * SCHEDULING.md: bound the distinct tenants per batch (16-32), because each
 * one costs a counter row lock in the claim transaction. */
#define TF_PLAN_DEFAULT_MAX_TENANTS 32
#define TF_PLAN_MAX_TENANTS_LIMIT 256

/* The largest budget accepted: a claim batch, not a backlog.  Bounds the
 * water-filling at a few million heap steps. */
#define TF_PLAN_BUDGET_MAX 1000000

/* Cost of one job when neither the tenant nor the input says, and the
 * largest cost accepted (keeps every virtual time finite). */
#define TF_PLAN_DEFAULT_COST 1.0
#define TF_PLAN_COST_MAX 1e9

/* The queue side of one plan. */
typedef struct {
    int budget;      /* jobs wanted in this claim: min(max_jobs, queue headroom),
                        in [0, TF_PLAN_BUDGET_MAX] */
    double vclock;   /* the queue's virtual clock V; finite */
    double cost;     /* estimated cost of one job, in [0, TF_PLAN_COST_MAX]; 0 = default 1 */
    int max_tenants; /* K, in [0, TF_PLAN_MAX_TENANTS_LIMIT]; 0 = TF_PLAN_DEFAULT_MAX_TENANTS */
} tf_plan_input_t;

/* One tenant with (possibly) ready work in the queue.  A headroom of 0
 * means blocked, so set a headroom to TF_PLAN_UNLIMITED when there is no cap
 * or no rate limit (a zeroed struct is refused anyway: weight 0). */
typedef struct {
    tf_uuid_t tenant_id; /* ties are broken by id, bytewise (= PostgreSQL's uuid order) */
    int weight;          /* >= 1 */
    int backlog;         /* ready jobs, >= 0; an estimate is fine */
    int cap_headroom;    /* more jobs that may run under its caps, >= 0 */
    int rate_headroom;   /* more jobs that may start under its rate limits, >= 0 */
    double vtime;        /* its virtual time in this queue, finite; 0 when unknown */
    double cost;         /* its estimated cost per job, in [0, TF_PLAN_COST_MAX];
                            0 = the input's cost */
} tf_plan_tenant_t;

/* Why a tenant got what it got; names for metrics labels below. */
typedef enum {
    TF_PLAN_SERVED = 0,       /* quota > 0 */
    TF_PLAN_EMPTY,            /* backlog is 0 */
    TF_PLAN_CAPPED,           /* cap_headroom is 0 */
    TF_PLAN_RATE_LIMITED,     /* rate_headroom is 0 */
    TF_PLAN_NOT_IN_TOP_K,     /* had headroom, but K tenants had smaller start tags */
    TF_PLAN_BUDGET_EXHAUSTED, /* a competitor, but the budget ran out before its turn */
    TF_PLAN_REASON_COUNT
} tf_plan_reason_t;

/* The plan for one tenant. */
typedef struct {
    int quota;               /* jobs to claim for it, 0..headroom */
    tf_plan_reason_t reason; /* TF_PLAN_SERVED iff quota > 0; otherwise the first of
                                empty, capped, rate_limited, not_in_top_k,
                                budget_exhausted that applies */
    double vtime;            /* its new virtual time: start + quota * cost / weight.  Store it
                                for served tenants; for the others it is max(vtime, V), which
                                the next plan computes anyway. */
} tf_plan_grant_t;

/* The plan as a whole. */
typedef struct {
    double vclock;      /* the queue's new V (>= the input's V) */
    int granted;        /* sum of the quotas */
    size_t served;      /* tenants with quota > 0 */
    size_t competitors; /* tenants that took part in the water-filling (<= K) */
} tf_plan_result_t;

/* Plans one claim for the `n` tenants in `tenants`, writing grants[i] for
 * tenants[i] and the totals to `*result`.  Both arrays are the caller's
 * (`grants` has room for `n`); nothing is allocated.  Returns 0, or
 * TF_EINVAL when a pointer is NULL (`tenants` and `grants` may be NULL when
 * n is 0) or a number is out of the ranges given above (weight < 1, a
 * negative count, a budget out of range, a non-finite vtime or V, a cost that is
 * negative, too large or not a number, K out of range); on failure nothing
 * is written.  Tenant ids should be distinct; equal ids are ordered by
 * position. */
int tf_claim_plan(const tf_plan_input_t *in, const tf_plan_tenant_t *tenants, size_t n,
                  tf_plan_grant_t *grants, tf_plan_result_t *result);

/* The metrics name of `reason` ("served", "empty", "capped",
 * "rate_limited", "not_in_top_k", "budget_exhausted"), a static string;
 * NULL for an invalid value. */
const char *tf_plan_reason_name(tf_plan_reason_t reason);

/* Parses an exact name from tf_plan_reason_name().  Returns 0, or TF_EINVAL
 * for NULL or anything else. */
int tf_plan_reason_parse(const char *name, tf_plan_reason_t *out);

#endif
