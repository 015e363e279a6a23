/*
 * test_claim_plan.c - tests for engine/claim_plan.c, the fair-share planner.
 *
 * Randomized cases (a seeded tf_rng_t, so every failure replays) check the
 * invariants of claim_plan.h on every plan and compare it with a naive
 * reference written here from the spec (sort for the top K, a linear scan
 * per job for the water-filling).  Scenario tests drive successive claims
 * with the returned virtual times fed back, the way the claim loop does, and
 * check the shares SCHEDULING.md promises.
 * One cmocka process; no shared state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdbool.h>

#include "engine/claim_plan.h"
#include "engine/error.h"
#include "engine/rng.h"

#define MAX_N 400
#define UNLIMITED TF_PLAN_UNLIMITED

/* ---- building input ---- */

/* An id whose byte order is the numeric order of `n`. */
static tf_uuid_t make_id(uint32_t n) {
    tf_uuid_t id = {{0}};
    id.bytes[12] = (uint8_t)(n >> 24);
    id.bytes[13] = (uint8_t)(n >> 16);
    id.bytes[14] = (uint8_t)(n >> 8);
    id.bytes[15] = (uint8_t)n;
    return id;
}

/* An uncapped tenant. */
static tf_plan_tenant_t make_tenant(uint32_t id, int weight, int backlog, double vtime) {
    return (tf_plan_tenant_t){
        .tenant_id = make_id(id),
        .weight = weight,
        .backlog = backlog,
        .cap_headroom = UNLIMITED,
        .rate_headroom = UNLIMITED,
        .vtime = vtime,
    };
}

static tf_plan_input_t make_input(int budget, double vclock) {
    return (tf_plan_input_t){.budget = budget, .vclock = vclock};
}

/* ---- the spec, written out naively ---- */

static int spec_headroom(const tf_plan_tenant_t *t) {
    int h = t->backlog;
    h = t->cap_headroom < h ? t->cap_headroom : h;
    return t->rate_headroom < h ? t->rate_headroom : h;
}

static double spec_start(const tf_plan_tenant_t *t, const tf_plan_input_t *in) {
    return t->vtime > in->vclock ? t->vtime : in->vclock;
}

static double spec_cost(const tf_plan_tenant_t *t, const tf_plan_input_t *in) {
    return t->cost > 0 ? t->cost : in->cost > 0 ? in->cost : 1.0;
}

static double spec_finish(const tf_plan_tenant_t *t, const tf_plan_input_t *in, int jobs) {
    return spec_start(t, in) + (double)jobs * spec_cost(t, in) / (double)t->weight;
}

/* True when (key_a, tenants[a]) comes before (key_b, tenants[b]): key, then id, then position. */
static bool spec_before(const tf_plan_tenant_t *tenants, double key_a, size_t a, double key_b,
                        size_t b) {
    if (key_a != key_b) {
        return key_a < key_b;
    }
    const int by_id = memcmp(&tenants[a].tenant_id, &tenants[b].tenant_id, sizeof(tf_uuid_t));
    return by_id != 0 ? by_id < 0 : a < b;
}

static size_t spec_k(const tf_plan_input_t *in) {
    return in->max_tenants == 0 ? TF_PLAN_DEFAULT_MAX_TENANTS : (size_t)in->max_tenants;
}

/* Fills in_top_k[i]: the eligible tenants ordered by start tag, first K kept. */
static void spec_select(const tf_plan_input_t *in, const tf_plan_tenant_t *tenants, size_t n,
                        bool *in_top_k) {
    size_t order[MAX_N];
    size_t eligible = 0;
    for (size_t i = 0; i < n; i++) {
        in_top_k[i] = false;
        if (spec_headroom(&tenants[i]) > 0) {
            order[eligible++] = i;
        }
    }
    for (size_t i = 1; i < eligible; i++) { /* insertion sort: small n */
        const size_t cur = order[i];
        size_t j = i;
        while (j > 0 && spec_before(tenants, spec_start(&tenants[cur], in), cur,
                                    spec_start(&tenants[order[j - 1]], in), order[j - 1])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = cur;
    }
    for (size_t i = 0; i < eligible && i < spec_k(in); i++) {
        in_top_k[order[i]] = true;
    }
}

static void spec_plan(const tf_plan_input_t *in, const tf_plan_tenant_t *tenants, size_t n,
                      tf_plan_grant_t *grants, tf_plan_result_t *result) {
    bool in_top_k[MAX_N];
    spec_select(in, tenants, n, in_top_k);
    int quota[MAX_N] = {0};
    int granted = 0;
    for (; granted < in->budget; granted++) {
        size_t best = n;
        for (size_t i = 0; i < n; i++) {
            if (!in_top_k[i] || quota[i] == spec_headroom(&tenants[i])) {
                continue;
            }
            if (best == n || spec_before(tenants, spec_finish(&tenants[i], in, quota[i] + 1), i,
                                         spec_finish(&tenants[best], in, quota[best] + 1), best)) {
                best = i;
            }
        }
        if (best == n) {
            break;
        }
        quota[best]++;
    }
    *result = (tf_plan_result_t){.vclock = in->vclock, .granted = granted};
    double min_start = INFINITY;
    for (size_t i = 0; i < n; i++) {
        const tf_plan_tenant_t *t = &tenants[i];
        tf_plan_reason_t reason = TF_PLAN_NOT_IN_TOP_K;
        if (t->backlog == 0) {
            reason = TF_PLAN_EMPTY;
        } else if (t->cap_headroom == 0) {
            reason = TF_PLAN_CAPPED;
        } else if (t->rate_headroom == 0) {
            reason = TF_PLAN_RATE_LIMITED;
        } else if (in_top_k[i]) {
            reason = quota[i] > 0 ? TF_PLAN_SERVED : TF_PLAN_BUDGET_EXHAUSTED;
            result->competitors++;
            result->served += quota[i] > 0 ? 1 : 0;
            min_start = fmin(min_start, spec_start(t, in));
        }
        grants[i] = (tf_plan_grant_t){
            .quota = quota[i], .reason = reason, .vtime = spec_finish(t, in, quota[i])};
    }
    if (granted > 0) {
        result->vclock = min_start;
    }
}

/* ---- the invariants ---- */

static bool is_competitor(const tf_plan_grant_t *g) {
    return g->reason == TF_PLAN_SERVED || g->reason == TF_PLAN_BUDGET_EXHAUSTED;
}

/* Per tenant: quota within headroom, the reason fits, the new vtime is the formula and >= V. */
static void check_tenant(const tf_plan_input_t *in, const tf_plan_tenant_t *t,
                         const tf_plan_grant_t *g, const tf_plan_result_t *r) {
    const int headroom = spec_headroom(t);
    assert_in_range(g->quota, 0, headroom);
    assert_true((g->quota > 0) == (g->reason == TF_PLAN_SERVED));
    switch (g->reason) {
    case TF_PLAN_EMPTY:
        assert_int_equal(t->backlog, 0);
        break;
    case TF_PLAN_CAPPED:
        assert_true(t->backlog > 0 && t->cap_headroom == 0);
        break;
    case TF_PLAN_RATE_LIMITED:
        assert_true(t->backlog > 0 && t->cap_headroom > 0 && t->rate_headroom == 0);
        break;
    default:
        assert_true(headroom > 0);
        break;
    }
    assert_true(g->vtime == spec_finish(t, in, g->quota));
    assert_true(g->vtime >= in->vclock); /* nobody starts below V */
    assert_true(g->vtime >= t->vtime);   /* virtual time never goes back */
    if (headroom > 0) {
        assert_true(r->vclock <= spec_start(t, in)); /* V never passes a backlogged tenant */
    }
}

/* Across tenants: top K by start tag, and no served tenant's last finish tag is beyond the next
 * finish tag of a competitor that could still take a job. */
static void check_pairs(const tf_plan_input_t *in, const tf_plan_tenant_t *tenants, size_t n,
                        const tf_plan_grant_t *grants) {
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            const tf_plan_grant_t *gi = &grants[i];
            const tf_plan_grant_t *gj = &grants[j];
            if (is_competitor(gi) && gj->reason == TF_PLAN_NOT_IN_TOP_K) {
                assert_true(spec_before(tenants, spec_start(&tenants[i], in), i,
                                        spec_start(&tenants[j], in), j));
            }
            if (gi->quota > 0 && is_competitor(gj) && gj->quota < spec_headroom(&tenants[j])) {
                const double next_j = spec_finish(&tenants[j], in, gj->quota + 1);
                assert_true(gi->vtime <= next_j);
                if (gj->quota > 0 && gi->quota < spec_headroom(&tenants[i])) {
                    /* Both served and neither drained: within one job's cost/weight. */
                    const double step_i = spec_cost(&tenants[i], in) / tenants[i].weight;
                    const double step_j = spec_cost(&tenants[j], in) / tenants[j].weight;
                    assert_true(fabs(gi->vtime - gj->vtime) <= fmax(step_i, step_j) * (1 + 1e-12));
                }
            }
        }
    }
}

static void check_invariants(const tf_plan_input_t *in, const tf_plan_tenant_t *tenants, size_t n,
                             const tf_plan_grant_t *grants, const tf_plan_result_t *r) {
    int sum = 0;
    size_t served = 0;
    size_t competitors = 0;
    size_t eligible = 0;
    bool drained_all = true;
    for (size_t i = 0; i < n; i++) {
        check_tenant(in, &tenants[i], &grants[i], r);
        sum += grants[i].quota;
        served += grants[i].quota > 0 ? 1 : 0;
        competitors += is_competitor(&grants[i]) ? 1 : 0;
        eligible += spec_headroom(&tenants[i]) > 0 ? 1 : 0;
        if (is_competitor(&grants[i]) && grants[i].quota < spec_headroom(&tenants[i])) {
            drained_all = false;
        }
    }
    assert_int_equal(sum, r->granted);
    assert_true(sum <= in->budget);
    assert_int_equal(served, r->served);
    assert_int_equal(competitors, r->competitors);
    assert_int_equal(competitors, eligible < spec_k(in) ? eligible : spec_k(in));
    if (sum < in->budget) {
        assert_true(drained_all); /* work-conserving within the top K */
    }
    assert_true(r->vclock >= in->vclock);
    if (sum == 0) {
        assert_true(r->vclock == in->vclock);
    }
    check_pairs(in, tenants, n, grants);
}

/* ---- helpers for running plans ---- */

static void plan_ok(const tf_plan_input_t *in, const tf_plan_tenant_t *tenants, size_t n,
                    tf_plan_grant_t *grants, tf_plan_result_t *result) {
    assert_int_equal(tf_claim_plan(in, tenants, n, grants, result), 0);
    check_invariants(in, tenants, n, grants, result);
}

/* One claim of a claim loop: plan, charge the backlogs, store vtimes and V back. */
static void claim_round(tf_plan_input_t *in, tf_plan_tenant_t *tenants, size_t n,
                        long long *total) {
    tf_plan_grant_t grants[MAX_N];
    tf_plan_result_t result;
    plan_ok(in, tenants, n, grants, &result);
    for (size_t i = 0; i < n; i++) {
        tenants[i].backlog -= grants[i].quota;
        tenants[i].vtime = grants[i].vtime;
        total[i] += grants[i].quota;
    }
    in->vclock = result.vclock;
}

static int pick(tf_rng_t *rng, int lo, int hi) {
    return lo + (int)tf_rng_uniform(rng, (uint64_t)(hi - lo));
}

static bool chance(tf_rng_t *rng, int one_in) {
    return tf_rng_uniform(rng, (uint64_t)one_in - 1) == 0;
}

/* ---- randomized ---- */

static int random_headroom(tf_rng_t *rng, int zero_one_in) {
    if (chance(rng, zero_one_in)) {
        return 0;
    }
    return chance(rng, 2) ? UNLIMITED : pick(rng, 1, 30);
}

/* With `spread`, start tags are spread out above V instead of piling up at V, so the tenant
 * with the smallest start tag often loses on finish tags (a heavy job or a small weight). */
static tf_plan_tenant_t random_tenant(tf_rng_t *rng, double vclock, bool spread, uint32_t id) {
    tf_plan_tenant_t t = {.tenant_id = make_id(id)};
    t.weight = chance(rng, 8) ? pick(rng, 1, 1000) : pick(rng, 1, 10);
    t.backlog = chance(rng, 6) ? 0 : chance(rng, 10) ? 1000000 : pick(rng, 1, 50);
    t.cap_headroom = random_headroom(rng, 8);
    t.rate_headroom = random_headroom(rng, 10);
    /* Quarter steps make equal start and finish tags (ties) common. */
    t.vtime = chance(rng, 4) ? 0.0 : vclock + (double)pick(rng, -80, 80) / 4.0;
    if (spread) {
        t.vtime = vclock + (double)pick(rng, 0, 80) / 4.0;
    }
    t.cost = chance(rng, 3) ? (double)pick(rng, 1, 40) / 8.0 : 0.0;
    return t;
}

static void random_case(tf_rng_t *rng, tf_plan_input_t *in, tf_plan_tenant_t *tenants, size_t *n) {
    /* Small budgets make competitors lose on finish tags; large ones drain them. */
    const int budget = chance(rng, 3) ? pick(rng, 0, 5) : pick(rng, 0, 200);
    *in = make_input(budget, (double)pick(rng, 0, 400) / 4.0);
    in->cost = chance(rng, 2) ? 0.0 : (double)pick(rng, 1, 16) / 4.0;
    in->max_tenants = chance(rng, 4) ? 0 : pick(rng, 1, 40);
    *n = chance(rng, 5) ? (size_t)pick(rng, 0, MAX_N) : (size_t)pick(rng, 0, 60);
    const bool spread = chance(rng, 3);
    if (*n <= 60 && chance(rng, 10)) {
        in->budget = pick(rng, 0, 5000); /* the naive spec is O(budget * n) */
    }
    for (size_t i = 0; i < *n; i++) {
        /* Ids are distinct but not in input order. */
        tenants[i] = random_tenant(rng, in->vclock, spread, (uint32_t)((i * 7919u) % 65521u));
    }
}

/* What the random cases covered, so a change to the generator cannot quietly stop testing a
 * branch. */
typedef struct {
    int reasons[TF_PLAN_REASON_COUNT];
    int budget_left;    /* plans that could not use up the budget */
    int budget_used;    /* plans that used it up */
    int lost_on_finish; /* an unserved competitor had a smaller start tag than all served */
} coverage_t;

static void tally(coverage_t *cov, const tf_plan_input_t *in, const tf_plan_tenant_t *tenants,
                  size_t n, const tf_plan_grant_t *grants, const tf_plan_result_t *result) {
    double min_served = INFINITY;
    double min_unserved = INFINITY;
    for (size_t i = 0; i < n; i++) {
        cov->reasons[grants[i].reason]++;
        const double start = spec_start(&tenants[i], in);
        if (grants[i].reason == TF_PLAN_SERVED) {
            min_served = fmin(min_served, start);
        } else if (grants[i].reason == TF_PLAN_BUDGET_EXHAUSTED) {
            min_unserved = fmin(min_unserved, start);
        }
    }
    cov->lost_on_finish += min_unserved < min_served && isfinite(min_served) ? 1 : 0;
    cov->budget_left += result->granted < in->budget ? 1 : 0;
    cov->budget_used += result->granted == in->budget ? 1 : 0;
}

static void test_claim_plan__random_cases_keep_the_invariants_and_match_the_spec(void **state) {
    (void)state;
    tf_rng_t rng;
    tf_rng_seed(&rng, 20240611);
    static tf_plan_tenant_t tenants[MAX_N];
    static tf_plan_grant_t grants[MAX_N];
    static tf_plan_grant_t expected[MAX_N];
    coverage_t cov = {0};
    for (int round = 0; round < 1000; round++) {
        tf_plan_input_t in;
        size_t n;
        random_case(&rng, &in, tenants, &n);
        tf_plan_result_t result;
        tf_plan_result_t expected_result;
        plan_ok(&in, tenants, n, grants, &result);
        spec_plan(&in, tenants, n, expected, &expected_result);
        for (size_t i = 0; i < n; i++) {
            if (grants[i].quota != expected[i].quota || grants[i].reason != expected[i].reason ||
                grants[i].vtime != expected[i].vtime) {
                fail_msg("round %d tenant %zu: got %d (%s), spec says %d (%s)", round, i,
                         grants[i].quota, tf_plan_reason_name(grants[i].reason), expected[i].quota,
                         tf_plan_reason_name(expected[i].reason));
            }
        }
        assert_true(result.vclock == expected_result.vclock);
        assert_int_equal(result.granted, expected_result.granted);
        assert_int_equal(result.served, expected_result.served);
        assert_int_equal(result.competitors, expected_result.competitors);
        tally(&cov, &in, tenants, n, grants, &result);
    }
    for (int r = 0; r < TF_PLAN_REASON_COUNT; r++) {
        assert_true(cov.reasons[r] > 0);
    }
    assert_true(cov.budget_left > 0 && cov.budget_used > 0 && cov.lost_on_finish > 0);
}

/* Fisher-Yates with the test's generator. */
static void shuffle(tf_rng_t *rng, size_t *order, size_t n) {
    for (size_t i = 0; i < n; i++) {
        order[i] = i;
    }
    for (size_t i = n; i > 1; i--) {
        const size_t j = (size_t)tf_rng_uniform(rng, i - 1);
        const size_t tmp = order[i - 1];
        order[i - 1] = order[j];
        order[j] = tmp;
    }
}

/* Field by field: the structs have padding. */
static void assert_same_result(const tf_plan_result_t *a, const tf_plan_result_t *b) {
    assert_true(a->vclock == b->vclock);
    assert_int_equal(a->granted, b->granted);
    assert_int_equal(a->served, b->served);
    assert_int_equal(a->competitors, b->competitors);
}

static void assert_same_grant(const tf_plan_grant_t *a, const tf_plan_grant_t *b) {
    assert_int_equal(a->quota, b->quota);
    assert_int_equal(a->reason, b->reason);
    assert_true(a->vtime == b->vtime);
}

static void test_claim_plan__same_input_same_plan_in_any_order(void **state) {
    (void)state;
    tf_rng_t rng;
    tf_rng_seed(&rng, 7);
    static tf_plan_tenant_t tenants[MAX_N];
    static tf_plan_tenant_t shuffled[MAX_N];
    static tf_plan_grant_t first[MAX_N];
    static tf_plan_grant_t again[MAX_N];
    static tf_plan_grant_t permuted[MAX_N];
    size_t order[MAX_N];
    for (int round = 0; round < 300; round++) {
        tf_plan_input_t in;
        size_t n;
        random_case(&rng, &in, tenants, &n);
        tf_plan_result_t r1;
        tf_plan_result_t r2;
        tf_plan_result_t r3;
        plan_ok(&in, tenants, n, first, &r1);
        plan_ok(&in, tenants, n, again, &r2);
        assert_same_result(&r1, &r2);
        for (size_t i = 0; i < n; i++) {
            assert_same_grant(&first[i], &again[i]);
        }
        /* With distinct ids the position in the input does not matter. */
        shuffle(&rng, order, n);
        for (size_t i = 0; i < n; i++) {
            shuffled[i] = tenants[order[i]];
        }
        plan_ok(&in, shuffled, n, permuted, &r3);
        assert_same_result(&r1, &r3);
        for (size_t i = 0; i < n; i++) {
            assert_same_grant(&permuted[i], &first[order[i]]);
        }
    }
}

/* ---- shares over successive claims ---- */

static void assert_share(long long got, long long total, double expected) {
    const double share = (double)got / (double)total;
    if (fabs(share - expected) > 0.03 * expected) {
        fail_msg("share %.4f, expected %.4f +- 3%%", share, expected);
    }
}

static void test_claim_plan__weights_1_1_2_get_25_25_50_percent(void **state) {
    (void)state;
    tf_plan_tenant_t tenants[3] = {
        make_tenant(3, 1, 10000000, 0.0),
        make_tenant(1, 1, 10000000, 0.0),
        make_tenant(2, 2, 10000000, 0.0),
    };
    tf_plan_input_t in = make_input(7, 0.0); /* odd, so no claim splits evenly */
    long long total[3] = {0};
    for (int claim = 1; claim <= 2000; claim++) {
        claim_round(&in, tenants, 3, total);
        if (claim % 100 == 0) { /* every window, not just the end */
            const long long all = total[0] + total[1] + total[2];
            assert_int_equal(all, 7LL * claim);
            assert_share(total[0], all, 0.25);
            assert_share(total[1], all, 0.25);
            assert_share(total[2], all, 0.50);
        }
    }
}

static void test_claim_plan__charging_cost_equalizes_slot_time(void **state) {
    (void)state;
    /* Tenant 1's jobs run ten times longer: it gets a tenth of the jobs, half the time. */
    tf_plan_tenant_t tenants[2] = {
        make_tenant(1, 1, 10000000, 0.0),
        make_tenant(2, 1, 10000000, 0.0),
    };
    tenants[0].cost = 10.0;
    tf_plan_input_t in = make_input(20, 0.0);
    long long total[2] = {0};
    for (int claim = 0; claim < 1000; claim++) {
        claim_round(&in, tenants, 2, total);
    }
    const long long slot_time = total[0] * 10 + total[1];
    assert_share(total[0] * 10, slot_time, 0.5);
    assert_share(total[1], slot_time, 0.5);
}

static void test_claim_plan__ten_jobs_behind_a_million_are_served_in_the_first_claim(void **state) {
    (void)state;
    /* The big tenant has been served for a long time; the small one just arrived. */
    tf_plan_tenant_t tenants[2] = {
        make_tenant(1, 1, 1000000, 5000.0),
        make_tenant(2, 1, 10, 0.0),
    };
    tf_plan_input_t in = make_input(500, 4999.0);
    tf_plan_grant_t grants[2];
    tf_plan_result_t result;
    plan_ok(&in, tenants, 2, grants, &result);
    assert_int_equal(grants[1].quota, 10);
    assert_int_equal(grants[0].quota, 490);

    /* Even a small claim is shared rather than spent on the big backlog: the newcomer
     * starts at V (4999), one job ahead of the big tenant (5000); ties go to id 1. */
    in.budget = 4;
    plan_ok(&in, tenants, 2, grants, &result);
    assert_int_equal(grants[1].quota, 2);
    assert_int_equal(grants[0].quota, 2);
    in.budget = 1;
    plan_ok(&in, tenants, 2, grants, &result);
    assert_int_equal(grants[1].quota, 1);
}

static void test_claim_plan__many_noisy_tenants_do_not_starve_a_small_one(void **state) {
    (void)state;
    /* 100 tenants with a million jobs each and one with ten, K = 32, budget 50: the small
     * one arrives later than everyone (vtime 0 < V) and must be in the very next claim. */
    static tf_plan_tenant_t tenants[101];
    for (uint32_t i = 0; i < 100; i++) {
        tenants[i] = make_tenant(i + 1, 1, 1000000, 0.0);
    }
    tf_plan_input_t in = make_input(50, 0.0);
    long long total[101] = {0};
    for (int claim = 0; claim < 40; claim++) {
        claim_round(&in, tenants, 100, total);
    }
    tenants[100] = make_tenant(1000, 1, 10, 0.0);
    claim_round(&in, tenants, 101, total);
    assert_true(total[100] > 0);
    for (int claim = 0; claim < 20 && tenants[100].backlog > 0; claim++) {
        claim_round(&in, tenants, 101, total);
    }
    assert_int_equal(tenants[100].backlog, 0);
}

static void test_claim_plan__low_weight_tenant_is_not_starved_by_a_budget_of_one(void **state) {
    (void)state;
    /* Weight 1 against 1000, one job per claim: it must get 1 claim in 1001.  If V could pass
     * its start tag while it waits, it would never get one. */
    tf_plan_tenant_t tenants[2] = {
        make_tenant(1, 1, 1000000, 0.0),
        make_tenant(2, 1000, 1000000, 0.0),
    };
    tf_plan_input_t in = make_input(1, 0.0);
    long long total[2] = {0};
    int first_served = 0;
    for (int claim = 1; claim <= 10010; claim++) {
        claim_round(&in, tenants, 2, total);
        if (first_served == 0 && total[0] > 0) {
            first_served = claim;
        }
    }
    assert_in_range(first_served, 1, 1001);
    assert_in_range(total[0], 9, 11);
}

/* ---- single plans ---- */

static void test_claim_plan__zero_reasons_say_why(void **state) {
    (void)state;
    tf_plan_tenant_t tenants[5] = {
        make_tenant(1, 1, 0, 0.0),    /* empty */
        make_tenant(2, 1, 100, 0.0),  /* capped */
        make_tenant(3, 1, 100, 0.0),  /* rate-limited */
        make_tenant(4, 1, 0, 0.0),    /* empty beats capped */
        make_tenant(5, 1, 100, 50.0), /* fine */
    };
    tenants[1].cap_headroom = 0;
    tenants[2].rate_headroom = 0;
    tenants[3].cap_headroom = 0;
    tenants[3].rate_headroom = 0;
    const tf_plan_input_t in = make_input(10, 20.0);
    tf_plan_grant_t grants[5];
    tf_plan_result_t result;
    plan_ok(&in, tenants, 5, grants, &result);
    const tf_plan_reason_t expected[5] = {TF_PLAN_EMPTY, TF_PLAN_CAPPED, TF_PLAN_RATE_LIMITED,
                                          TF_PLAN_EMPTY, TF_PLAN_SERVED};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(grants[i].reason, expected[i]);
    }
    assert_int_equal(grants[1].quota, 0);
    assert_true(grants[1].vtime == 20.0); /* lifted to V: nothing banked while capped */
    assert_int_equal(grants[4].quota, 10);
    assert_true(grants[4].vtime == 60.0);
    assert_true(result.vclock == 50.0);
    assert_int_equal(result.served, 1);
    assert_int_equal(result.competitors, 1);
}

static void test_claim_plan__quota_stops_at_the_smallest_headroom(void **state) {
    (void)state;
    tf_plan_tenant_t tenants[3] = {
        make_tenant(1, 1, 100, 0.0),
        make_tenant(2, 1, 4, 0.0), /* backlog bounds it */
        make_tenant(3, 1, 100, 0.0),
    };
    tenants[0].cap_headroom = 2;
    tenants[2].rate_headroom = 3;
    const tf_plan_input_t in = make_input(500, 0.0);
    tf_plan_grant_t grants[3];
    tf_plan_result_t result;
    plan_ok(&in, tenants, 3, grants, &result);
    assert_int_equal(grants[0].quota, 2);
    assert_int_equal(grants[1].quota, 4);
    assert_int_equal(grants[2].quota, 3);
    assert_int_equal(result.granted, 9);
}

static void test_claim_plan__only_the_k_smallest_start_tags_compete(void **state) {
    (void)state;
    tf_plan_tenant_t tenants[40];
    for (uint32_t i = 0; i < 40; i++) {
        /* Start tags 39, 38, ..., 0: the last 32 tenants have the smallest. */
        tenants[i] = make_tenant(i, 1, 1000, (double)(39 - i));
    }
    tf_plan_input_t in = make_input(1000000, 0.0);
    tf_plan_grant_t grants[40];
    tf_plan_result_t result;
    plan_ok(&in, tenants, 40, grants, &result); /* K defaults to 32 */
    for (int i = 0; i < 40; i++) {
        assert_int_equal(grants[i].reason, i < 8 ? TF_PLAN_NOT_IN_TOP_K : TF_PLAN_SERVED);
        assert_int_equal(grants[i].quota, i < 8 ? 0 : 1000);
    }
    assert_int_equal(result.competitors, 32);
    assert_int_equal(result.granted, 32000); /* budget left over: K bounds the claim */

    in.max_tenants = 1;
    plan_ok(&in, tenants, 40, grants, &result);
    assert_int_equal(result.competitors, 1);
    assert_int_equal(grants[39].quota, 1000);
}

static void test_claim_plan__ties_go_to_the_smaller_id(void **state) {
    (void)state;
    tf_plan_tenant_t tenants[3] = {
        make_tenant(9, 1, 10, 0.0),
        make_tenant(4, 1, 10, 0.0),
        make_tenant(6, 1, 10, 0.0),
    };
    tf_plan_input_t in = make_input(1, 0.0);
    tf_plan_grant_t grants[3];
    tf_plan_result_t result;
    plan_ok(&in, tenants, 3, grants, &result);
    assert_int_equal(grants[1].quota, 1);
    assert_int_equal(grants[0].reason, TF_PLAN_BUDGET_EXHAUSTED);
    assert_int_equal(grants[2].reason, TF_PLAN_BUDGET_EXHAUSTED);

    in.budget = 5; /* round robin in id order: 4, 6, 9, 4, 6 */
    plan_ok(&in, tenants, 3, grants, &result);
    assert_int_equal(grants[1].quota, 2);
    assert_int_equal(grants[2].quota, 2);
    assert_int_equal(grants[0].quota, 1);
}

static void test_claim_plan__idle_time_is_not_banked(void **state) {
    (void)state;
    /* Tenant 1 was idle (vtime far below V); it shares evenly instead of taking everything. */
    tf_plan_tenant_t tenants[2] = {
        make_tenant(1, 1, 1000, 3.0),
        make_tenant(2, 1, 1000, 100.0),
    };
    const tf_plan_input_t in = make_input(10, 100.0);
    tf_plan_grant_t grants[2];
    tf_plan_result_t result;
    plan_ok(&in, tenants, 2, grants, &result);
    assert_int_equal(grants[0].quota, 5);
    assert_int_equal(grants[1].quota, 5);
    assert_true(grants[0].vtime == 105.0);
    assert_true(result.vclock == 100.0);
}

static void test_claim_plan__largest_budget_is_handed_out(void **state) {
    (void)state;
    tf_plan_tenant_t tenants[3] = {
        make_tenant(1, 3, INT_MAX, 0.0),
        make_tenant(2, 1, INT_MAX, 0.0),
        make_tenant(3, 1, 5, 0.0),
    };
    tenants[0].cap_headroom = INT_MAX - 1;
    tf_plan_input_t in = make_input(TF_PLAN_BUDGET_MAX, 0.0);
    tf_plan_grant_t grants[3];
    tf_plan_result_t result;
    plan_ok(&in, tenants, 3, grants, &result);
    assert_int_equal(result.granted, TF_PLAN_BUDGET_MAX);
    assert_int_equal(grants[2].quota, 5);
    assert_in_range(grants[0].quota, 3 * grants[1].quota - 3, 3 * grants[1].quota + 3);

    /* A budget nobody can use up is granted in one step, however large. */
    tenants[0].cap_headroom = 7;
    tenants[1].rate_headroom = 9;
    plan_ok(&in, tenants, 3, grants, &result);
    assert_int_equal(result.granted, 21);
}

static void test_claim_plan__no_tenants_or_no_budget_changes_nothing(void **state) {
    (void)state;
    tf_plan_input_t in = make_input(100, 42.0);
    tf_plan_result_t result;
    assert_int_equal(tf_claim_plan(&in, NULL, 0, NULL, &result), 0);
    assert_int_equal(result.granted, 0);
    assert_true(result.vclock == 42.0);

    tf_plan_tenant_t tenants[1] = {make_tenant(1, 1, 10, 50.0)};
    tf_plan_grant_t grants[1];
    in.budget = 0;
    plan_ok(&in, tenants, 1, grants, &result);
    assert_int_equal(grants[0].reason, TF_PLAN_BUDGET_EXHAUSTED);
    assert_true(grants[0].vtime == 50.0);
    assert_true(result.vclock == 42.0);
}

/* ---- bad input ---- */

static void assert_refused(const tf_plan_input_t *in, const tf_plan_tenant_t *tenants, size_t n) {
    tf_plan_grant_t grants[2];
    tf_plan_result_t result;
    memset(grants, 0xA5, sizeof grants);
    memset(&result, 0xA5, sizeof result);
    assert_int_equal(tf_claim_plan(in, tenants, n, grants, &result), TF_EINVAL);
    for (size_t i = 0; i < sizeof grants; i++) {
        assert_int_equal(((const unsigned char *)grants)[i], 0xA5); /* nothing written */
    }
    for (size_t i = 0; i < sizeof result; i++) {
        assert_int_equal(((const unsigned char *)&result)[i], 0xA5);
    }
}

static void test_claim_plan__bad_tenants_are_refused(void **state) {
    (void)state;
    const tf_plan_input_t in = make_input(10, 0.0);
    const tf_plan_tenant_t good = make_tenant(1, 1, 10, 0.0);
    tf_plan_tenant_t bad[10];
    const size_t count = sizeof bad / sizeof bad[0];
    for (size_t i = 0; i < count; i++) {
        bad[i] = good;
    }
    bad[0].weight = 0;
    bad[1].weight = -3;
    bad[2].backlog = -1;
    bad[3].cap_headroom = -1;
    bad[4].rate_headroom = INT_MIN;
    bad[5].vtime = NAN;
    bad[6].vtime = INFINITY;
    bad[7].cost = -1.0;
    bad[8].cost = NAN;
    bad[9].cost = TF_PLAN_COST_MAX * 2;
    for (size_t i = 0; i < count; i++) {
        const tf_plan_tenant_t pair[2] = {good, bad[i]}; /* the bad one second */
        assert_refused(&in, pair, 2);
    }
}

static void test_claim_plan__bad_input_is_refused(void **state) {
    (void)state;
    const tf_plan_tenant_t tenants[1] = {make_tenant(1, 1, 10, 0.0)};
    const tf_plan_input_t good = make_input(10, 0.0);
    tf_plan_input_t bad[8];
    const size_t count = sizeof bad / sizeof bad[0];
    for (size_t i = 0; i < count; i++) {
        bad[i] = good;
    }
    bad[0].budget = -1;
    bad[7].budget = TF_PLAN_BUDGET_MAX + 1;
    bad[1].vclock = NAN;
    bad[2].vclock = -INFINITY;
    bad[3].cost = -0.5;
    bad[4].cost = INFINITY;
    bad[5].max_tenants = -1;
    bad[6].max_tenants = TF_PLAN_MAX_TENANTS_LIMIT + 1;
    for (size_t i = 0; i < count; i++) {
        assert_refused(&bad[i], tenants, 1);
    }
    assert_refused(NULL, tenants, 1);
    assert_refused(&good, NULL, 1);

    tf_plan_grant_t grants[1];
    tf_plan_result_t result;
    assert_int_equal(tf_claim_plan(&good, tenants, 1, NULL, &result), TF_EINVAL);
    assert_int_equal(tf_claim_plan(&good, tenants, 1, grants, NULL), TF_EINVAL);

    tf_plan_input_t widest = good;
    widest.max_tenants = TF_PLAN_MAX_TENANTS_LIMIT;
    assert_int_equal(tf_claim_plan(&widest, tenants, 1, grants, &result), 0);
}

static void test_claim_plan__reason_names_round_trip(void **state) {
    (void)state;
    const char *const names[TF_PLAN_REASON_COUNT] = {
        "served", "empty", "capped", "rate_limited", "not_in_top_k", "budget_exhausted",
    };
    for (int r = 0; r < TF_PLAN_REASON_COUNT; r++) {
        assert_string_equal(tf_plan_reason_name((tf_plan_reason_t)r), names[r]);
        tf_plan_reason_t parsed = TF_PLAN_REASON_COUNT;
        assert_int_equal(tf_plan_reason_parse(names[r], &parsed), 0);
        assert_int_equal(parsed, r);
    }
    assert_null(tf_plan_reason_name(TF_PLAN_REASON_COUNT));
    assert_null(tf_plan_reason_name((tf_plan_reason_t)-1));
    tf_plan_reason_t parsed = TF_PLAN_REASON_COUNT;
    assert_int_equal(tf_plan_reason_parse("Capped", &parsed), TF_EINVAL);
    assert_int_equal(tf_plan_reason_parse("", &parsed), TF_EINVAL);
    assert_int_equal(tf_plan_reason_parse(NULL, &parsed), TF_EINVAL);
    assert_int_equal(tf_plan_reason_parse("capped", NULL), TF_EINVAL);
    assert_int_equal(parsed, TF_PLAN_REASON_COUNT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_plan__random_cases_keep_the_invariants_and_match_the_spec),
        cmocka_unit_test(test_claim_plan__same_input_same_plan_in_any_order),
        cmocka_unit_test(test_claim_plan__weights_1_1_2_get_25_25_50_percent),
        cmocka_unit_test(test_claim_plan__charging_cost_equalizes_slot_time),
        cmocka_unit_test(test_claim_plan__ten_jobs_behind_a_million_are_served_in_the_first_claim),
        cmocka_unit_test(test_claim_plan__many_noisy_tenants_do_not_starve_a_small_one),
        cmocka_unit_test(test_claim_plan__low_weight_tenant_is_not_starved_by_a_budget_of_one),
        cmocka_unit_test(test_claim_plan__zero_reasons_say_why),
        cmocka_unit_test(test_claim_plan__quota_stops_at_the_smallest_headroom),
        cmocka_unit_test(test_claim_plan__only_the_k_smallest_start_tags_compete),
        cmocka_unit_test(test_claim_plan__ties_go_to_the_smaller_id),
        cmocka_unit_test(test_claim_plan__idle_time_is_not_banked),
        cmocka_unit_test(test_claim_plan__largest_budget_is_handed_out),
        cmocka_unit_test(test_claim_plan__no_tenants_or_no_budget_changes_nothing),
        cmocka_unit_test(test_claim_plan__bad_tenants_are_refused),
        cmocka_unit_test(test_claim_plan__bad_input_is_refused),
        cmocka_unit_test(test_claim_plan__reason_names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
