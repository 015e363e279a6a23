/*
 * test_cron.c - cron rules firing (adapters/usecases/cron.c) on a fake rule
 * store, evaluator and tenant store: which due rules fire, with what event,
 * dedup key and ctx.tenant; which fire times are recorded as skipped and
 * why; the one release statement of a round; platform rules fired once per
 * tenant, page by page; failures that leave the lease to run out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/usecases/cron.h"
#include "engine/error.h"
#include "engine/store.h"
#include "fake_store.h"

#define TENANT "0190a0b0-0000-7000-8000-000000000001"
#define MIN INT64_C(60000)

/* ---- fakes ---- */

typedef struct {
    char rule_id[40], tenant_id[40], trigger[32], dedup[64], state[64];
    int64_t state_version;
    char ctx[512], event[512];
} fired_t;

typedef struct {
    char rule_id[40], tenant_id[40];
    int64_t due_ms, next_ms;
    size_t nskipped;
    int64_t skipped_ms[8];
    char reasons[8][16], keys[8][40];
} released_t;

typedef struct {
    fake_env_t *env;
    tf_rule_store_t rules;
    tf_rule_evaluator_t evaluator;
    tf_tenant_store_t tenants;
    /* cron_due answers with these */
    tf_rule_t due[4];
    size_t ndue;
    int due_status;
    char due_node[64];
    /* the evaluator: answers at once unless `eval_fail` */
    int eval_fail, evaluations;
    fired_t fired[16];
    size_t nfired;
    int record_status;
    /* released */
    int done_calls;
    char done_node[64];
    released_t released[4];
    size_t nreleased;
    /* tenants: pages of two */
    const char *tenant_ids[5];
    size_t ntenants;
    int list_calls, state_calls;
    /* the tick's answer */
    int calls, status;
    tf_uc_cron_result_t result;
} fixture_t;

static int fake_cron_due(void *ctx, const char *node, int64_t now_ms, int64_t lease_ms, int limit,
                         tf_rule_list_cb cb, void *arg) {
    fixture_t *f = ctx;
    (void)now_ms;
    assert_int_equal(lease_ms, TF_CRON_LEASE_MS);
    assert_true(limit > 0);
    snprintf(f->due_node, sizeof(f->due_node), "%s", node);
    cb(arg, f->due_status, f->due_status == 0 ? f->due : NULL, f->due_status == 0 ? f->ndue : 0);
    return 0;
}

static int fake_cron_done(void *ctx, const char *node, const tf_rule_cron_done_t *done, size_t n,
                          tf_rule_cron_done_cb cb, void *arg) {
    fixture_t *f = ctx;
    f->done_calls++;
    snprintf(f->done_node, sizeof(f->done_node), "%s", node);
    for (size_t i = 0; i < n; i++) {
        released_t *r = &f->released[f->nreleased++];
        snprintf(r->rule_id, sizeof(r->rule_id), "%s", done[i].rule_id);
        snprintf(r->tenant_id, sizeof(r->tenant_id), "%s",
                 done[i].tenant_id != NULL ? done[i].tenant_id : "(platform)");
        r->due_ms = done[i].due_ms;
        r->next_ms = done[i].next_ms;
        r->nskipped = done[i].nskipped;
        for (size_t k = 0; k < done[i].nskipped && k < 8; k++) {
            r->skipped_ms[k] = done[i].skipped_ms[k];
            snprintf(r->reasons[k], sizeof(r->reasons[k]), "%s", done[i].reasons[k]);
            snprintf(r->keys[k], sizeof(r->keys[k]), "%s", done[i].dedup_keys[k]);
            assert_int_equal(strlen(done[i].run_ids[k]), 36);
            assert_non_null(done[i].messages[k]);
        }
    }
    cb(arg, 0, n);
    return 0;
}

static int fake_record(void *ctx, const tf_rule_run_t *run, tf_rule_recorded_cb cb, void *arg) {
    fixture_t *f = ctx;
    fired_t *x = &f->fired[f->nfired - 1];
    snprintf(x->trigger, sizeof(x->trigger), "%s", run->trigger);
    snprintf(x->dedup, sizeof(x->dedup), "%s", run->dedup_key != NULL ? run->dedup_key : "");
    snprintf(x->tenant_id, sizeof(x->tenant_id), "%s", run->tenant_id);
    tf_rule_recorded_t r = {.recorded = 1};
    cb(arg, f->record_status, &r);
    return 0;
}

static int fake_state(void *ctx, const char *tenant_id, const char *rule_id, tf_rule_state_cb cb,
                      void *arg) {
    fixture_t *f = ctx;
    (void)rule_id;
    f->state_calls++;
    char state[64];
    snprintf(state, sizeof(state), "{\"of\":\"%s\"}", tenant_id);
    cb(arg, 0, state, 7);
    return 0;
}

static int fake_evaluate(void *ctx, const tf_rule_eval_t *req, tf_rule_eval_cb cb, void *arg) {
    fixture_t *f = ctx;
    f->evaluations++;
    if (f->eval_fail) {
        return TF_EIO; /* nothing ran */
    }
    fired_t *x = &f->fired[f->nfired++];
    snprintf(x->rule_id, sizeof(x->rule_id), "%s", req->rule_id);
    snprintf(x->ctx, sizeof(x->ctx), "%s", req->ctx_json);
    snprintf(x->event, sizeof(x->event), "%s", req->event_json);
    tf_rule_outcome_t o = {.ok = 1, .condition = 1, .state_json = NULL};
    cb(arg, 0, &o);
    return 0;
}

static int fake_tenant_get(void *ctx, const char *id, tf_tenant_cb cb, void *arg) {
    (void)ctx;
    tf_tenant_t t = {.id = id, .name = "read", .plan = "free", .attributes = "{}"};
    cb(arg, 0, &t);
    return 0;
}

static int fake_tenant_list(void *ctx, const char *after_id, int rows, tf_tenants_cb cb,
                            void *arg) {
    fixture_t *f = ctx;
    f->list_calls++;
    assert_non_null(after_id);
    tf_tenant_t page[2];
    size_t n = 0;
    for (size_t i = 0; i < f->ntenants && n < 2 && (int)n < rows; i++) {
        if (strcmp(f->tenant_ids[i], after_id) > 0) {
            page[n++] = (tf_tenant_t){.id = f->tenant_ids[i], .name = "t", .attributes = "{}"};
        }
    }
    cb(arg, 0, page, n);
    return 0;
}

static void ticked(void *arg, int status, const tf_uc_cron_result_t *r) {
    fixture_t *f = arg;
    f->calls++;
    f->status = status;
    f->result = *r;
}

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->env = fake_env_new();
    f->rules = (tf_rule_store_t){.ctx = f,
                                 .cron_due = fake_cron_due,
                                 .cron_done = fake_cron_done,
                                 .record_run = fake_record,
                                 .state = fake_state};
    f->evaluator = (tf_rule_evaluator_t){.ctx = f, .evaluate = fake_evaluate};
    f->tenants = (tf_tenant_store_t){
        .ctx = f, .tenant_get = fake_tenant_get, .tenant_list = fake_tenant_list};
    f->env->uc.rules = &f->rules;
    f->env->uc.evaluator = &f->evaluator;
    f->env->uc.tenants = &f->tenants;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    fake_env_free(f->env);
    free(f);
    return 0;
}

/* A due cron rule of TENANT (or of the platform, tenant NULL), every 5 minutes, UTC. */
static void add_rule(fixture_t *f, const char *id, int64_t due_ms, int enabled,
                     const char *catch_up, const char *tenant) {
    f->due[f->ndue++] =
        (tf_rule_t){.id = id,
                    .tenant_id = tenant,
                    .name = "r",
                    .version = 3,
                    .enabled = enabled,
                    .kind = TF_TRIGGER_CRON,
                    .cron = "*/5 * * * *",
                    .catch_up = catch_up,
                    .next_fire_ms = due_ms,
                    .source = "return {}",
                    .source_len = 9,
                    .tenant_json = tenant != NULL ? "{\"id\":\"" TENANT "\",\"name\":\"acme\","
                                                    "\"plan\":\"pro\",\"attributes\":{}}"
                                                  : NULL};
}

static void tick(fixture_t *f) {
    assert_int_equal(tf_uc_cron_tick(&f->env->uc, "node-a/0", 50, 4, ticked, f), 0);
    assert_int_equal(f->calls, 1);
}

/* FAKE_T0_MS is 07:00Z; an every-5-minutes rule due at 07:00 fires at 07:00:03. */
static void test_cron__a_due_rule_fires_once_with_its_fire_time(void **state) {
    fixture_t *f = *state;
    add_rule(f, "r1", FAKE_T0_MS, 1, NULL, TENANT);
    f->env->clock.now = FAKE_T0_MS + 3000;
    tick(f);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->result.taken, 1);
    assert_int_equal(f->result.fired, 1);
    assert_int_equal(f->result.skipped, 0);
    assert_string_equal(f->due_node, "node-a/0");
    assert_int_equal(f->nfired, 1);
    assert_string_equal(f->fired[0].dedup, "cron:2026-11-26T07:00:00.000Z");
    assert_string_equal(f->fired[0].trigger, "cron");
    assert_string_equal(f->fired[0].tenant_id, TENANT);
    assert_non_null(strstr(f->fired[0].event, "\"at\":\"2026-11-26T07:00:00.000Z\""));
    assert_non_null(strstr(f->fired[0].event, "\"late_ms\":3000"));
    /* ctx.tenant came with the due rule: no tenant read */
    assert_non_null(strstr(f->fired[0].ctx, "\"plan\":\"pro\""));
    /* one release, moving the rule to 07:05 */
    assert_int_equal(f->done_calls, 1);
    assert_string_equal(f->done_node, "node-a/0");
    assert_int_equal(f->nreleased, 1);
    assert_int_equal(f->released[0].due_ms, FAKE_T0_MS);
    assert_int_equal(f->released[0].next_ms, FAKE_T0_MS + 5 * MIN);
    assert_int_equal(f->released[0].nskipped, 0);
}

/* Down 17 minutes: 07:15 fires (catch_up latest), 07:00-07:10 are
 * skipped; with catch_up none all four are; a disabled rule skips all. */
static void test_cron__missed_and_disabled_times_are_recorded(void **state) {
    fixture_t *f = *state;
    add_rule(f, "latest", FAKE_T0_MS, 1, "latest", TENANT);
    add_rule(f, "none", FAKE_T0_MS, 1, "none", TENANT);
    add_rule(f, "off", FAKE_T0_MS, 0, NULL, TENANT);
    f->env->clock.now = FAKE_T0_MS + 17 * MIN;
    tick(f);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->result.taken, 3);
    assert_int_equal(f->result.fired, 1);
    assert_int_equal(f->result.skipped, 3 + 4 + 4);
    assert_int_equal(f->nfired, 1);
    assert_string_equal(f->fired[0].rule_id, "latest");
    assert_string_equal(f->fired[0].dedup, "cron:2026-11-26T07:15:00.000Z");
    assert_int_equal(f->done_calls, 1); /* the three in one statement */
    assert_int_equal(f->nreleased, 3);
    for (size_t i = 0; i < 3; i++) {
        released_t *r = &f->released[i];
        assert_int_equal(r->next_ms, FAKE_T0_MS + 20 * MIN);
        const char *want = strcmp(r->rule_id, "off") == 0 ? "disabled" : "catch_up";
        for (size_t k = 0; k < r->nskipped; k++) {
            assert_string_equal(r->reasons[k], want);
            assert_int_equal(r->skipped_ms[k], FAKE_T0_MS + (int64_t)k * 5 * MIN);
        }
        assert_int_equal(r->nskipped, strcmp(r->rule_id, "latest") == 0 ? 3 : 4);
    }
    assert_string_equal(f->released[0].keys[0], "cron:2026-11-26T07:00:00.000Z");
}

/* A platform rule fires once per tenant, page by page, each with its own
 * state; its skipped times are for every tenant (tenant NULL). */
static void test_cron__a_platform_rule_fires_for_every_tenant(void **state) {
    fixture_t *f = *state;
    static const char *const ids[] = {"0190a0b0-0000-7000-8000-00000000000a",
                                      "0190a0b0-0000-7000-8000-00000000000b",
                                      "0190a0b0-0000-7000-8000-00000000000c"};
    for (size_t i = 0; i < 3; i++) {
        f->tenant_ids[f->ntenants++] = ids[i];
    }
    add_rule(f, "platform", FAKE_T0_MS - 5 * MIN, 1, NULL, NULL);
    f->env->clock.now = FAKE_T0_MS + 1000;
    tick(f);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->result.fired, 1);
    assert_int_equal(f->nfired, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(f->fired[i].tenant_id, ids[i]);
        assert_string_equal(f->fired[i].dedup, "cron:2026-11-26T07:00:00.000Z");
        char want[80];
        snprintf(want, sizeof(want), "\"state\":{\"of\":\"%s\"}", ids[i]);
        assert_non_null(strstr(f->fired[i].ctx, want));
    }
    assert_int_equal(f->state_calls, 3);
    assert_int_equal(f->list_calls, 3); /* two pages of two, then an empty one */
    assert_int_equal(f->nreleased, 1);
    assert_string_equal(f->released[0].tenant_id, "(platform)");
    assert_int_equal(f->released[0].nskipped, 1); /* 06:55, missed */
    assert_string_equal(f->released[0].reasons[0], "catch_up");
}

/* A firing that cannot run leaves the rule leased (it is taken again when
 * the lease ends); the others of the round are released. */
static void test_cron__a_failed_firing_is_not_released(void **state) {
    fixture_t *f = *state;
    add_rule(f, "a", FAKE_T0_MS, 1, NULL, TENANT);
    add_rule(f, "b", FAKE_T0_MS, 0, NULL, TENANT);
    f->eval_fail = 1;
    f->env->clock.now = FAKE_T0_MS + 1000;
    tick(f);
    assert_int_equal(f->status, TF_EIO);
    assert_int_equal(f->result.failed, 1);
    assert_int_equal(f->nreleased, 1);
    assert_string_equal(f->released[0].rule_id, "b");
    assert_string_equal(f->released[0].reasons[0], "disabled");
}

/* A schedule that no longer parses, or a zone gone from tzdata, is moved
 * to "never" without firing; a store that fails answers its error. */
static void test_cron__broken_rules_and_a_failing_store(void **state) {
    fixture_t *f = *state;
    add_rule(f, "bad", FAKE_T0_MS, 1, NULL, TENANT);
    f->due[0].cron = "61 * * * *";
    add_rule(f, "gone", FAKE_T0_MS, 1, NULL, TENANT);
    f->due[1].timezone = "Mars/Base"; /* no zones port at all */
    f->env->clock.now = FAKE_T0_MS + 1000;
    tick(f);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->nfired, 0);
    assert_int_equal(f->nreleased, 2);
    assert_true(f->released[0].next_ms == TF_TIME_NONE);
    assert_true(f->released[1].next_ms == TF_TIME_NONE);
    f->calls = 0;
    f->due_status = TF_EUNAVAIL;
    tick(f);
    assert_int_equal(f->status, TF_EUNAVAIL);
    f->env->uc.evaluator = NULL;
    assert_int_equal(tf_uc_cron_tick(&f->env->uc, "n", 1, 1, ticked, f), TF_EUNAVAIL);
}

static void test_cron__next_fire_time(void **state) {
    fixture_t *f = *state;
    assert_int_equal(tf_uc_cron_next(&f->env->uc, "0 7 * * *", "UTC", FAKE_T0_MS),
                     FAKE_T0_MS + 24 * 60 * MIN);
    assert_int_equal(tf_uc_cron_next(&f->env->uc, "*/5 * * * *", NULL, FAKE_T0_MS + 1),
                     FAKE_T0_MS + 5 * MIN);
    assert_true(tf_uc_cron_next(&f->env->uc, "0 0 30 2 *", NULL, FAKE_T0_MS) == TF_TIME_NONE);
    assert_true(tf_uc_cron_next(&f->env->uc, "nonsense", NULL, FAKE_T0_MS) == TF_TIME_NONE);
    assert_true(tf_uc_cron_next(&f->env->uc, "* * * * *", "Europe/Oslo", FAKE_T0_MS) ==
                TF_TIME_NONE); /* no zones port */
}

#define T(name) cmocka_unit_test_setup_teardown(test_cron__##name, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(a_due_rule_fires_once_with_its_fire_time), T(missed_and_disabled_times_are_recorded),
        T(a_platform_rule_fires_for_every_tenant),   T(a_failed_firing_is_not_released),
        T(broken_rules_and_a_failing_store),         T(next_fire_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
