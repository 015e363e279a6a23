/*
 * claim_plan.c - the fair-share planner (see claim_plan.h).
 *
 * Role: decides the per-tenant quotas of one claim; the claim SQL applies
 * them.  Two binary heaps over one fixed-size array on the stack: first a
 * max-heap of size K that keeps the K eligible tenants with the smallest
 * start tags, then, reordered in place, a min-heap on the next finish tag
 * that hands out the budget one job at a time.
 * Invariant: every ordering is a strict total order (key, tenant id,
 * position in the input), so the plan does not depend on how the heaps
 * happen to arrange equal keys.  Every finish tag is computed by one
 * function, finish_tag(), so the heap keys and the returned virtual times
 * agree to the last bit.
 * Pure; no allocation; any thread.
 */
#include "engine/claim_plan.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "engine/error.h"

static const char *const plan_reason_names[TF_PLAN_REASON_COUNT] = {
    [TF_PLAN_SERVED] = "served",
    [TF_PLAN_EMPTY] = "empty",
    [TF_PLAN_CAPPED] = "capped",
    [TF_PLAN_RATE_LIMITED] = "rate_limited",
    [TF_PLAN_NOT_IN_TOP_K] = "not_in_top_k",
    [TF_PLAN_BUDGET_EXHAUSTED] = "budget_exhausted",
};

/* A tenant with headroom, as the heaps see it. */
typedef struct {
    const tf_uuid_t *tenant_id;
    size_t index; /* position in the input */
    double start; /* max(vtime, V) */
    double cost;  /* resolved cost of one of its jobs */
    double next;  /* finish tag of its next job (water-filling only) */
    int weight;
    int headroom; /* min(backlog, cap_headroom, rate_headroom), > 0 */
    int quota;
} plan_competitor_t;

/* Orders heap entries: true when `a` belongs nearer the root than `b`. */
typedef bool (*plan_prior_fn)(const plan_competitor_t *a, const plan_competitor_t *b);

/* ---- helpers ---- */

static bool plan_cost_valid(double cost) {
    /* Written so that NaN fails too. */
    return cost >= 0.0 && cost <= TF_PLAN_COST_MAX;
}

static int plan_min_int(int a, int b) {
    return a < b ? a : b;
}

static int plan_headroom(const tf_plan_tenant_t *t) {
    return plan_min_int(t->backlog, plan_min_int(t->cap_headroom, t->rate_headroom));
}

static double plan_start(const tf_plan_tenant_t *t, double vclock) {
    return t->vtime > vclock ? t->vtime : vclock;
}

static double plan_cost(const tf_plan_tenant_t *t, const tf_plan_input_t *in) {
    if (t->cost > 0.0) {
        return t->cost;
    }
    return in->cost > 0.0 ? in->cost : TF_PLAN_DEFAULT_COST;
}

/* The virtual time after `jobs` jobs from `start`: start + jobs * cost / weight. */
static double finish_tag(double start, int jobs, double cost, int weight) {
    return start + (double)jobs * cost / (double)weight;
}

/* Strict total order on (key, tenant id, input position): true when `a` comes first. */
static bool plan_key_before(double key_a, const plan_competitor_t *a, double key_b,
                            const plan_competitor_t *b) {
    if (key_a != key_b) {
        return key_a < key_b;
    }
    const int by_id = memcmp(a->tenant_id->bytes, b->tenant_id->bytes, sizeof a->tenant_id->bytes);
    if (by_id != 0) {
        return by_id < 0;
    }
    return a->index < b->index;
}

/* Max-heap on start tags: the competitor that would be dropped first sits at the root. */
static bool plan_later_start(const plan_competitor_t *a, const plan_competitor_t *b) {
    return plan_key_before(b->start, b, a->start, a);
}

/* Min-heap on next finish tags: the competitor served next sits at the root. */
static bool plan_earlier_finish(const plan_competitor_t *a, const plan_competitor_t *b) {
    return plan_key_before(a->next, a, b->next, b);
}

/* ---- the heap ---- */

static void plan_swap(plan_competitor_t *a, plan_competitor_t *b) {
    const plan_competitor_t tmp = *a;
    *a = *b;
    *b = tmp;
}

static void plan_sift_up(plan_competitor_t *heap, size_t pos, plan_prior_fn prior) {
    while (pos > 0) {
        const size_t parent = (pos - 1) / 2;
        if (!prior(&heap[pos], &heap[parent])) {
            return;
        }
        plan_swap(&heap[pos], &heap[parent]);
        pos = parent;
    }
}

static void plan_sift_down(plan_competitor_t *heap, size_t count, size_t pos, plan_prior_fn prior) {
    for (;;) {
        const size_t left = 2 * pos + 1;
        const size_t right = left + 1;
        size_t top = pos;
        if (left < count && prior(&heap[left], &heap[top])) {
            top = left;
        }
        if (right < count && prior(&heap[right], &heap[top])) {
            top = right;
        }
        if (top == pos) {
            return;
        }
        plan_swap(&heap[pos], &heap[top]);
        pos = top;
    }
}

/* ---- validation ---- */

static bool plan_tenant_valid(const tf_plan_tenant_t *t) {
    return t->weight >= 1 && t->backlog >= 0 && t->cap_headroom >= 0 && t->rate_headroom >= 0 &&
           isfinite(t->vtime) && plan_cost_valid(t->cost);
}

static int plan_validate(const tf_plan_input_t *in, const tf_plan_tenant_t *tenants, size_t n,
                         const tf_plan_grant_t *grants, const tf_plan_result_t *result) {
    if (in == NULL || result == NULL || (n > 0 && (tenants == NULL || grants == NULL))) {
        return TF_EINVAL;
    }
    if (in->budget < 0 || in->budget > TF_PLAN_BUDGET_MAX || !isfinite(in->vclock) ||
        !plan_cost_valid(in->cost) || in->max_tenants < 0 ||
        in->max_tenants > TF_PLAN_MAX_TENANTS_LIMIT) {
        return TF_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!plan_tenant_valid(&tenants[i])) {
            return TF_EINVAL;
        }
    }
    return 0;
}

/* ---- planning ---- */

/* Why tenants[i] gets nothing before the top-K cut; TF_PLAN_NOT_IN_TOP_K when it has headroom. */
static tf_plan_reason_t plan_zero_reason(const tf_plan_tenant_t *t) {
    if (t->backlog == 0) {
        return TF_PLAN_EMPTY;
    }
    if (t->cap_headroom == 0) {
        return TF_PLAN_CAPPED;
    }
    if (t->rate_headroom == 0) {
        return TF_PLAN_RATE_LIMITED;
    }
    return TF_PLAN_NOT_IN_TOP_K;
}

/* Offers `cand` to the max-heap of the K smallest start tags. */
static void plan_offer(plan_competitor_t *heap, size_t *count, size_t k,
                       const plan_competitor_t *cand) {
    if (*count < k) {
        heap[*count] = *cand;
        plan_sift_up(heap, *count, plan_later_start);
        (*count)++;
    } else if (plan_later_start(&heap[0], cand)) {
        heap[0] = *cand;
        plan_sift_down(heap, *count, 0, plan_later_start);
    }
}

/* Fills the grants of every tenant as if it got nothing, and gathers the top K in `heap`. */
static size_t plan_select(const tf_plan_input_t *in, const tf_plan_tenant_t *tenants, size_t n,
                          size_t k, tf_plan_grant_t *grants, plan_competitor_t *heap) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        const tf_plan_tenant_t *t = &tenants[i];
        const double start = plan_start(t, in->vclock);
        grants[i] = (tf_plan_grant_t){.quota = 0, .reason = plan_zero_reason(t), .vtime = start};
        const int headroom = plan_headroom(t);
        if (headroom > 0) {
            const plan_competitor_t cand = {
                .tenant_id = &t->tenant_id,
                .index = i,
                .start = start,
                .cost = plan_cost(t, in),
                .weight = t->weight,
                .headroom = headroom,
            };
            plan_offer(heap, &count, k, &cand);
        }
    }
    return count;
}

/* Hands out `budget` jobs among the `count` competitors; returns the number granted. */
static int plan_water_fill(plan_competitor_t *heap, size_t count, int budget) {
    int64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        total += heap[i].headroom;
    }
    if (total <= budget) {
        for (size_t i = 0; i < count; i++) {
            heap[i].quota = heap[i].headroom;
        }
        return (int)total;
    }
    for (size_t i = 0; i < count; i++) {
        heap[i].next = finish_tag(heap[i].start, 1, heap[i].cost, heap[i].weight);
    }
    for (size_t i = count / 2; i-- > 0;) {
        plan_sift_down(heap, count, i, plan_earlier_finish);
    }
    /* total > budget, so the heap never runs empty before the budget does. */
    size_t live = count;
    for (int left = budget; left > 0; left--) {
        plan_competitor_t *c = &heap[0];
        c->quota++;
        if (c->quota == c->headroom) {
            /* Park the finished competitor behind the live part of the array. */
            plan_swap(&heap[0], &heap[live - 1]);
            live--;
        } else {
            c->next = finish_tag(c->start, c->quota + 1, c->cost, c->weight);
        }
        plan_sift_down(heap, live, 0, plan_earlier_finish);
    }
    return budget;
}

int tf_claim_plan(const tf_plan_input_t *in, const tf_plan_tenant_t *tenants, size_t n,
                  tf_plan_grant_t *grants, tf_plan_result_t *result) {
    const int rc = plan_validate(in, tenants, n, grants, result);
    if (rc != 0) {
        return rc;
    }
    const size_t k = in->max_tenants == 0 ? TF_PLAN_DEFAULT_MAX_TENANTS : (size_t)in->max_tenants;
    plan_competitor_t heap[TF_PLAN_MAX_TENANTS_LIMIT];
    const size_t count = plan_select(in, tenants, n, k, grants, heap);
    const int granted = plan_water_fill(heap, count, in->budget);

    /* The new V is the smallest competitor start tag (see claim_plan.h for why not the
     * smallest served one); every start tag is >= V, so V never moves back. */
    double min_start = INFINITY;
    size_t served = 0;
    for (size_t i = 0; i < count; i++) {
        const plan_competitor_t *c = &heap[i];
        tf_plan_grant_t *g = &grants[c->index];
        g->quota = c->quota;
        g->reason = c->quota > 0 ? TF_PLAN_SERVED : TF_PLAN_BUDGET_EXHAUSTED;
        g->vtime = finish_tag(c->start, c->quota, c->cost, c->weight);
        served += c->quota > 0 ? 1 : 0;
        min_start = c->start < min_start ? c->start : min_start;
    }
    const double vclock = granted > 0 ? min_start : in->vclock;
    *result = (tf_plan_result_t){
        .vclock = vclock, .granted = granted, .served = served, .competitors = count};
    return 0;
}

const char *tf_plan_reason_name(tf_plan_reason_t reason) {
    return (unsigned)reason < TF_PLAN_REASON_COUNT ? plan_reason_names[reason] : NULL;
}

int tf_plan_reason_parse(const char *name, tf_plan_reason_t *out) {
    if (name == NULL || out == NULL) {
        return TF_EINVAL;
    }
    for (int reason = 0; reason < TF_PLAN_REASON_COUNT; reason++) {
        if (strcmp(name, plan_reason_names[reason]) == 0) {
            *out = (tf_plan_reason_t)reason;
            return 0;
        }
    }
    return TF_EINVAL;
}
