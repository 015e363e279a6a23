/*
 * test_events.c - an event firing its rules (adapters/usecases/events.c) on
 * a fake rule store, evaluator and tenant store whose answers are held back
 * until the test releases them: the rules fire side by side, never more
 * than the window at once; the answer lists every rule in the order given;
 * a rule whose state changed under it is evaluated again; a failure stops
 * new rules from starting and answers once, after those in flight ended;
 * answers given at once (no waiting) work the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/usecases/events.h"
#include "engine/error.h"
#include "engine/store.h"
#include "fake_store.h"

#define TENANT "0190a0b0-0000-7000-8000-000000000001"
#define NRULES 40
#define WINDOW 16 /* FIRE_WINDOW of events.c */

/* ---- fakes: every answer waits in a queue until released ---- */

typedef struct {
    int kind; /* 0 evaluation, 1 record, 2 state read */
    void (*cb)(void);
    void *arg;
    char rule_id[40];
    int64_t version; /* a record's: the state version its run read */
} held_t;

typedef struct {
    fake_env_t *env;
    tf_rule_store_t rules;
    tf_rule_evaluator_t evaluator;
    tf_tenant_store_t tenants;
    tf_rule_t given[NRULES];
    char ids[NRULES][40];
    held_t held[4 * NRULES];
    size_t nheld;
    int at_once;                  /* answer inside the call instead of holding */
    int in_flight, max_in_flight; /* rules between evaluation and record */
    int evaluations, records, state_reads;
    char stale_rule[40]; /* its first record is stale */
    int stale_done;
    char failing_rule[40]; /* its record fails */
    int versioned;         /* records check the state's version, as the store does */
    int always_stale;      /* every record finds the state changed */
    int64_t version;       /* the state's, when versioned */
    /* the answer */
    int calls, status;
    size_t n;
    char order[NRULES][40];
    int duplicates;
} fixture_t;

static fixture_t *fx;

static void release_one(size_t i);

static int fake_evaluate(void *ctx, const tf_rule_eval_t *req, tf_rule_eval_cb cb, void *arg) {
    fixture_t *f = ctx;
    f->evaluations++;
    f->in_flight++;
    if (f->in_flight > f->max_in_flight) {
        f->max_in_flight = f->in_flight;
    }
    assert_non_null(strstr(req->ctx_json, "\"tenant\":{\"id\":\"" TENANT "\""));
    held_t *h = &f->held[f->nheld++];
    *h = (held_t){.kind = 0, .cb = (void (*)(void))cb, .arg = arg};
    snprintf(h->rule_id, sizeof(h->rule_id), "%s", req->rule_id);
    if (f->at_once) {
        release_one(f->nheld - 1);
    }
    return 0;
}

static int fake_record(void *ctx, const tf_rule_run_t *run, tf_rule_recorded_cb cb, void *arg) {
    fixture_t *f = ctx;
    f->records++;
    assert_string_equal(run->tenant_id, TENANT);
    assert_string_equal(run->trigger, "event:order.created");
    held_t *h = &f->held[f->nheld++];
    *h = (held_t){.kind = 1, .cb = (void (*)(void))cb, .arg = arg, .version = run->state_version};
    snprintf(h->rule_id, sizeof(h->rule_id), "%s", run->rule_id);
    assert_non_null(run->state_json); /* every evaluation here changes the state */
    if (f->at_once) {
        release_one(f->nheld - 1);
    }
    return 0;
}

static int fake_state(void *ctx, const char *tenant_id, const char *rule_id, tf_rule_state_cb cb,
                      void *arg) {
    fixture_t *f = ctx;
    (void)tenant_id;
    f->state_reads++;
    held_t *h = &f->held[f->nheld++];
    *h = (held_t){.kind = 2, .cb = (void (*)(void))cb, .arg = arg};
    snprintf(h->rule_id, sizeof(h->rule_id), "%s", rule_id);
    if (f->at_once) {
        release_one(f->nheld - 1);
    }
    return 0;
}

/* Answers held call `i` (and forgets it). */
static void release_one(size_t i) {
    held_t h = fx->held[i];
    memmove(&fx->held[i], &fx->held[i + 1], (fx->nheld - i - 1) * sizeof(held_t));
    fx->nheld--;
    if (h.kind == 0) {
        tf_rule_outcome_t o = {.ok = 1, .condition = 1, .state_json = "{\"n\":1}"};
        ((tf_rule_eval_cb)h.cb)(h.arg, 0, &o);
    } else if (h.kind == 1) {
        fx->in_flight--;
        int stale = strcmp(h.rule_id, fx->stale_rule) == 0 && !fx->stale_done;
        fx->stale_done |= stale;
        if (fx->versioned) { /* the run read version h.version: current, or stale */
            stale = h.version != fx->version;
            fx->version += !stale;
        }
        stale |= fx->always_stale;
        tf_rule_recorded_t r = {.recorded = !stale, .stale = stale};
        int failed = strcmp(h.rule_id, fx->failing_rule) == 0;
        ((tf_rule_recorded_cb)h.cb)(h.arg, failed ? TF_EIO : 0, &r);
    } else {
        ((tf_rule_state_cb)h.cb)(h.arg, 0, "{\"n\":5}", fx->versioned ? fx->version : 2);
    }
}

/* Answers the oldest held calls until none is left. */
static void release_all(void) {
    while (fx->nheld > 0) {
        release_one(0);
    }
}

static int fake_tenant_get(void *ctx, const char *id, tf_tenant_cb cb, void *arg) {
    (void)ctx;
    tf_tenant_t t = {.id = id, .name = "acme", .plan = "pro", .attributes = "{}"};
    cb(arg, 0, &t);
    return 0;
}

static void answered(void *arg, int status, const tf_uc_fired_t *runs, size_t n) {
    fixture_t *f = arg;
    f->calls++;
    f->status = status;
    f->n = n;
    for (size_t i = 0; i < n && i < NRULES; i++) {
        snprintf(f->order[i], sizeof(f->order[i]), "%s", runs[i].rule_id);
        assert_int_equal(runs[i].outcome, TF_RULE_RUN_FIRED);
        f->duplicates += runs[i].duplicate;
    }
}

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->env = fake_env_new();
    f->rules = (tf_rule_store_t){.ctx = f, .record_run = fake_record, .state = fake_state};
    f->evaluator = (tf_rule_evaluator_t){.ctx = f, .evaluate = fake_evaluate};
    f->tenants = (tf_tenant_store_t){.ctx = f, .tenant_get = fake_tenant_get};
    f->env->uc.rules = &f->rules;
    f->env->uc.evaluator = &f->evaluator;
    f->env->uc.tenants = &f->tenants;
    for (int i = 0; i < NRULES; i++) {
        snprintf(f->ids[i], sizeof(f->ids[i]), "0190a0b0-0000-7000-8000-0000000001%02d", i);
        f->given[i] = (tf_rule_t){.id = f->ids[i],
                                  .tenant_id = TENANT,
                                  .name = "r",
                                  .version = 1,
                                  .enabled = 1,
                                  .kind = TF_TRIGGER_EVENT,
                                  .source = "return {}",
                                  .source_len = 9};
    }
    fx = f;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    fake_env_free(f->env);
    free(f);
    return 0;
}

/* An event firing the first `n` given rules (with an event id or none). */
static void fire_rules(fixture_t *f, size_t n, const char *event_id) {
    tf_uc_fire_t fire = {.tenant_id = TENANT,
                         .rules = f->given,
                         .n = n,
                         .trigger = "event:order.created",
                         .event_json = "{\"name\":\"order.created\"}",
                         .dedup_key = event_id};
    assert_int_equal(tf_uc_rules_fire(&f->env->uc, &fire, answered, f), 0);
}

static void fire(fixture_t *f) {
    fire_rules(f, NRULES, "evt-1");
}

static void test_events__rules_fire_side_by_side_within_the_window(void **state) {
    fixture_t *f = *state;
    fire(f);
    /* the first window is evaluating at once; nothing answered yet */
    assert_int_equal(f->evaluations, WINDOW);
    assert_int_equal(f->calls, 0);
    release_all();
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->n, NRULES);
    assert_int_equal(f->max_in_flight, WINDOW);
    assert_int_equal(f->evaluations, NRULES);
    assert_int_equal(f->records, NRULES);
    for (int i = 0; i < NRULES; i++) { /* in the order given, whatever the order of ends */
        assert_string_equal(f->order[i], f->ids[i]);
    }
}

static void test_events__a_stale_state_is_read_and_the_rule_evaluated_again(void **state) {
    fixture_t *f = *state;
    snprintf(f->stale_rule, sizeof(f->stale_rule), "%s", f->ids[3]);
    fire(f);
    release_all();
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->n, NRULES);
    assert_int_equal(f->state_reads, 1);
    assert_int_equal(f->evaluations, NRULES + 1);
    assert_int_equal(f->records, NRULES + 1);
    assert_int_equal(f->duplicates, 0);
}

static void test_events__a_failure_stops_new_rules_and_answers_once(void **state) {
    fixture_t *f = *state;
    snprintf(f->failing_rule, sizeof(f->failing_rule), "%s", f->ids[0]);
    fire(f);
    /* answer the first rule's evaluation and its failing record only */
    release_one(0); /* evaluation of rule 0 */
    assert_int_equal(f->held[f->nheld - 1].kind, 1);
    release_one(f->nheld - 1);                /* its record: TF_EIO */
    assert_int_equal(f->calls, 0);            /* 15 others are still in flight */
    assert_int_equal(f->evaluations, WINDOW); /* and no new rule started */
    release_all();
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, TF_EIO);
    assert_int_equal(f->n, 0);
    assert_int_equal(f->evaluations, WINDOW);
}

static void test_events__answers_given_at_once_do_not_recurse_or_answer_twice(void **state) {
    fixture_t *f = *state;
    f->at_once = 1;
    snprintf(f->stale_rule, sizeof(f->stale_rule), "%s", f->ids[NRULES - 1]);
    fire(f);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->n, NRULES);
    assert_int_equal(f->max_in_flight, 1);
    assert_int_equal(f->evaluations, NRULES + 1);
    for (int i = 0; i < NRULES; i++) {
        assert_string_equal(f->order[i], f->ids[i]);
    }
}

/* Four events at once for one rule that writes its state: one commits,
 * three find the state changed.  From then on the rule's firings take
 * turns, each reading the state the one before left: every event fires
 * with 3 evaluations more, not 3 + 2 + 1 as colliding again would take. */
static void test_events__after_a_collision_a_rules_firings_take_turns(void **state) {
    fixture_t *f = *state;
    f->versioned = 1;
    for (int i = 0; i < 4; i++) {
        fire_rules(f, 1, NULL);
    }
    assert_int_equal(f->evaluations, 4);
    release_all();
    assert_int_equal(f->calls, 4);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->version, 4);     /* every event changed the state once */
    assert_int_equal(f->evaluations, 7); /* the three that collided: once more each */
    assert_int_equal(f->state_reads, 3);
    assert_null(f->env->uc.rule_lines); /* the line is gone once empty */
    /* A fifth event, later: side by side again, no line, no state read. */
    f->given[0].state_version = f->version;
    fire_rules(f, 1, NULL);
    release_all();
    assert_int_equal(f->calls, 5);
    assert_int_equal(f->state_reads, 3);
    assert_int_equal(f->version, 5);
}

/* A rule whose state changes under every firing (other nodes keep
 * committing first): after TF_RULE_STATE_TRIES evaluations the event
 * answers TF_ESTALE, not the store's "try again", and its line is gone. */
static void test_events__a_state_that_always_changes_gives_up_as_stale(void **state) {
    fixture_t *f = *state;
    f->always_stale = 1;
    fire_rules(f, 1, NULL);
    release_all();
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, TF_ESTALE);
    assert_int_equal(f->n, 0);
    assert_int_equal(f->evaluations, 50); /* TF_RULE_STATE_TRIES */
    assert_int_equal(f->state_reads, 49);
    assert_null(f->env->uc.rule_lines);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_events__rules_fire_side_by_side_within_the_window,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_events__a_stale_state_is_read_and_the_rule_evaluated_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events__a_failure_stops_new_rules_and_answers_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_events__answers_given_at_once_do_not_recurse_or_answer_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events__after_a_collision_a_rules_firings_take_turns,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_events__a_state_that_always_changes_gives_up_as_stale,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
