/*
 * test_job.c - tests for engine/job.c: every (state, event) pair against an
 * expected matrix written out here independently of job.c's table, the
 * guard sets, names and their round trips, invalid values, what a parent's
 * state means for its dependants, and the TF_SQL_STATE() numbers.
 * One cmocka process; no shared state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/error.h"
#include "engine/job.h"

/* Short names so the matrix below stays a readable grid. */
#define NONE (-1)
#define PEND TF_JOB_PENDING
#define SCHD TF_JOB_SCHEDULED
#define RUN TF_JOB_RUNNING
#define SUCC TF_JOB_SUCCEEDED
#define FAIL TF_JOB_FAILED
#define DEAD TF_JOB_DEAD
#define CANC TF_JOB_CANCELLED

/* expected[from][event]: the state reached, or NONE.  Columns: claim,
 * succeed, fail_retry, fail_final, fail_exhausted, due, cancel, retry,
 * release (the order of tf_job_event_t). */
/* clang-format off */
static const int expected[TF_JOB_STATE_COUNT][TF_JOB_EVENT_COUNT] = {
    /*          claim succeed fail_retry fail_final fail_exh due   cancel retry release */
    [PEND] = {  RUN,  NONE,   NONE,      NONE,      NONE,    NONE, CANC,  NONE, NONE },
    [SCHD] = {  NONE, NONE,   NONE,      NONE,      NONE,    PEND, CANC,  NONE, NONE },
    [RUN]  = {  NONE, SUCC,   SCHD,      FAIL,      DEAD,    NONE, CANC,  NONE, PEND },
    [SUCC] = {  NONE, NONE,   NONE,      NONE,      NONE,    NONE, NONE,  NONE, NONE },
    [FAIL] = {  NONE, NONE,   NONE,      NONE,      NONE,    NONE, NONE,  PEND, NONE },
    [DEAD] = {  NONE, NONE,   NONE,      NONE,      NONE,    NONE, NONE,  PEND, NONE },
    [CANC] = {  NONE, NONE,   NONE,      NONE,      NONE,    NONE, NONE,  PEND, NONE },
};
/* clang-format on */

static const char *const expected_state_names[TF_JOB_STATE_COUNT] = {
    "PENDING", "SCHEDULED", "RUNNING", "SUCCEEDED", "FAILED", "DEAD", "CANCELLED",
};

static const char *const expected_event_names[TF_JOB_EVENT_COUNT] = {
    "claim", "succeed", "fail_retry", "fail_final", "fail_exhausted",
    "due",   "cancel",  "retry",      "release",
};

#define INVALID_STATE ((tf_job_state_t)99)
#define INVALID_EVENT ((tf_job_event_t)99)

static void test_job__every_state_event_pair_matches_the_expected_table(void **state) {
    (void)state;
    int allowed = 0;
    for (int from = 0; from < TF_JOB_STATE_COUNT; from++) {
        for (int ev = 0; ev < TF_JOB_EVENT_COUNT; ev++) {
            tf_job_state_t to = INVALID_STATE;
            const int rc = tf_job_transition((tf_job_state_t)from, (tf_job_event_t)ev, &to);
            if (expected[from][ev] == NONE) {
                if (rc != TF_ESTATE) {
                    fail_msg("%s --%s--> should be refused", expected_state_names[from],
                             expected_event_names[ev]);
                }
                assert_int_equal(to, INVALID_STATE); /* untouched on failure */
            } else {
                if (rc != 0 || (int)to != expected[from][ev]) {
                    fail_msg("%s --%s--> should reach %s", expected_state_names[from],
                             expected_event_names[ev], expected_state_names[expected[from][ev]]);
                }
                allowed++;
            }
        }
    }
    assert_int_equal(allowed, 13);
}

static void test_job__event_sources_match_the_expected_table(void **state) {
    (void)state;
    for (int ev = 0; ev < TF_JOB_EVENT_COUNT; ev++) {
        tf_job_state_set_t want = 0;
        for (int from = 0; from < TF_JOB_STATE_COUNT; from++) {
            if (expected[from][ev] != NONE) {
                want |= (tf_job_state_set_t)1u << from;
            }
        }
        assert_int_equal(tf_job_event_sources((tf_job_event_t)ev), want);
    }
}

static void test_job__cancel_and_retry_guards_name_their_states(void **state) {
    (void)state;
    assert_int_equal(tf_job_event_sources(TF_JOB_EV_CANCEL),
                     TF_JOB_STATE_BIT(PEND) | TF_JOB_STATE_BIT(SCHD) | TF_JOB_STATE_BIT(RUN));
    assert_int_equal(tf_job_event_sources(TF_JOB_EV_RETRY),
                     TF_JOB_STATE_BIT(FAIL) | TF_JOB_STATE_BIT(DEAD) | TF_JOB_STATE_BIT(CANC));
    assert_int_equal(tf_job_event_sources(TF_JOB_EV_CLAIM), TF_JOB_STATE_BIT(PEND));
}

static void test_job__terminal_states_are_the_finished_ones(void **state) {
    (void)state;
    const int terminal[TF_JOB_STATE_COUNT] = {
        [PEND] = 0, [SCHD] = 0, [RUN] = 0, [SUCC] = 1, [FAIL] = 1, [DEAD] = 1, [CANC] = 1,
    };
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        assert_int_equal(tf_job_state_is_terminal((tf_job_state_t)s), terminal[s]);
    }
    assert_false(tf_job_state_is_terminal(INVALID_STATE));
}

static void test_job__terminal_states_refuse_cancel(void **state) {
    (void)state;
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        tf_job_state_t to;
        const int rc = tf_job_transition((tf_job_state_t)s, TF_JOB_EV_CANCEL, &to);
        assert_int_equal(rc == TF_ESTATE, tf_job_state_is_terminal((tf_job_state_t)s));
    }
}

static void test_job__state_names_match_the_api(void **state) {
    (void)state;
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        assert_string_equal(tf_job_state_name((tf_job_state_t)s), expected_state_names[s]);
    }
}

static void test_job__state_names_round_trip(void **state) {
    (void)state;
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        tf_job_state_t parsed = INVALID_STATE;
        assert_int_equal(tf_job_state_parse(tf_job_state_name((tf_job_state_t)s), &parsed), 0);
        assert_int_equal(parsed, s);
    }
}

static void test_job__event_names_are_the_documented_ones(void **state) {
    (void)state;
    for (int ev = 0; ev < TF_JOB_EVENT_COUNT; ev++) {
        assert_string_equal(tf_job_event_name((tf_job_event_t)ev), expected_event_names[ev]);
    }
}

static void test_job__state_parse_rejects_bad_names(void **state) {
    (void)state;
    const char *const bad[] = {
        "",         "pending",   "Pending", "PENDING ",  " PENDING", "PEND",    "PENDINGX",
        "CANCELED", "cancelled", "DONE",    "RUNNING\n", "SUCCESS",  "UNKNOWN",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tf_job_state_t parsed = INVALID_STATE;
        assert_int_equal(tf_job_state_parse(bad[i], &parsed), TF_EINVAL);
        assert_int_equal(parsed, INVALID_STATE);
    }
    tf_job_state_t parsed;
    assert_int_equal(tf_job_state_parse(NULL, &parsed), TF_EINVAL);
    assert_int_equal(tf_job_state_parse("PENDING", NULL), TF_EINVAL);
}

static void test_job__invalid_values_are_refused(void **state) {
    (void)state;
    tf_job_state_t to = INVALID_STATE;
    assert_int_equal(tf_job_transition(INVALID_STATE, TF_JOB_EV_CLAIM, &to), TF_EINVAL);
    assert_int_equal(tf_job_transition(TF_JOB_STATE_COUNT, TF_JOB_EV_CLAIM, &to), TF_EINVAL);
    assert_int_equal(tf_job_transition(PEND, INVALID_EVENT, &to), TF_EINVAL);
    assert_int_equal(tf_job_transition(PEND, TF_JOB_EVENT_COUNT, &to), TF_EINVAL);
    assert_int_equal(tf_job_transition(PEND, TF_JOB_EV_CLAIM, NULL), TF_EINVAL);
    assert_int_equal(to, INVALID_STATE);
    assert_null(tf_job_state_name(INVALID_STATE));
    assert_null(tf_job_event_name(INVALID_EVENT));
    assert_int_equal(tf_job_event_sources(INVALID_EVENT), 0);
}

/* A job that fails twice, is retried by the policy, dies, and is requeued. */
static void test_job__retry_then_dead_letter_then_manual_retry(void **state) {
    (void)state;
    const tf_job_event_t events[] = {
        TF_JOB_EV_CLAIM,          TF_JOB_EV_FAIL_RETRY, TF_JOB_EV_DUE,   TF_JOB_EV_CLAIM,
        TF_JOB_EV_FAIL_EXHAUSTED, TF_JOB_EV_RETRY,      TF_JOB_EV_CLAIM, TF_JOB_EV_SUCCEED,
    };
    const tf_job_state_t states[] = {RUN, SCHD, PEND, RUN, DEAD, PEND, RUN, SUCC};
    tf_job_state_t current = PEND;
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        assert_int_equal(tf_job_transition(current, events[i], &current), 0);
        assert_int_equal(current, states[i]);
    }
}

static void test_job__dependants_action_for_each_parent_state(void **state) {
    (void)state;
    assert_int_equal(tf_job_dependants_action(TF_JOB_SUCCEEDED), TF_DEPENDANTS_RELEASE);
    assert_int_equal(tf_job_dependants_action(TF_JOB_FAILED), TF_DEPENDANTS_CANCEL);
    assert_int_equal(tf_job_dependants_action(TF_JOB_DEAD), TF_DEPENDANTS_CANCEL);
    assert_int_equal(tf_job_dependants_action(TF_JOB_CANCELLED), TF_DEPENDANTS_CANCEL);
    assert_int_equal(tf_job_dependants_action(TF_JOB_PENDING), TF_DEPENDANTS_KEEP);
    assert_int_equal(tf_job_dependants_action(TF_JOB_SCHEDULED), TF_DEPENDANTS_KEEP);
    assert_int_equal(tf_job_dependants_action(TF_JOB_RUNNING), TF_DEPENDANTS_KEEP);
    /* The three actions are distinct values, KEEP being the zero one. */
    assert_int_equal(TF_DEPENDANTS_KEEP, 0);
    assert_int_not_equal(TF_DEPENDANTS_RELEASE, TF_DEPENDANTS_CANCEL);
    assert_int_not_equal(TF_DEPENDANTS_RELEASE, TF_DEPENDANTS_KEEP);
    assert_int_not_equal(TF_DEPENDANTS_CANCEL, TF_DEPENDANTS_KEEP);
}

static void test_job__dependants_action_of_an_invalid_state_is_keep(void **state) {
    (void)state;
    assert_int_equal(tf_job_dependants_action(TF_JOB_STATE_COUNT), TF_DEPENDANTS_KEEP);
    assert_int_equal(tf_job_dependants_action(INVALID_STATE), TF_DEPENDANTS_KEEP);
    assert_int_equal(tf_job_dependants_action((tf_job_state_t)-1), TF_DEPENDANTS_KEEP);
}

static void test_job__sql_state_numbers_match_the_enum(void **state) {
    (void)state;
    assert_string_equal(TF_SQL_STATE(PENDING), "0");
    assert_string_equal(TF_SQL_STATE(SCHEDULED), "1");
    assert_string_equal(TF_SQL_STATE(RUNNING), "2");
    assert_string_equal(TF_SQL_STATE(SUCCEEDED), "3");
    assert_string_equal(TF_SQL_STATE(FAILED), "4");
    assert_string_equal(TF_SQL_STATE(DEAD), "5");
    assert_string_equal(TF_SQL_STATE(CANCELLED), "6");

    assert_int_equal(TF_JOB_STATE_PENDING_N, TF_JOB_PENDING);
    assert_int_equal(TF_JOB_STATE_SCHEDULED_N, TF_JOB_SCHEDULED);
    assert_int_equal(TF_JOB_STATE_RUNNING_N, TF_JOB_RUNNING);
    assert_int_equal(TF_JOB_STATE_SUCCEEDED_N, TF_JOB_SUCCEEDED);
    assert_int_equal(TF_JOB_STATE_FAILED_N, TF_JOB_FAILED);
    assert_int_equal(TF_JOB_STATE_DEAD_N, TF_JOB_DEAD);
    assert_int_equal(TF_JOB_STATE_CANCELLED_N, TF_JOB_CANCELLED);

    /* The text names the same state as the enum, by its API name. */
    const struct {
        const char *sql;
        const char *name;
    } pairs[] = {
        {TF_SQL_STATE(PENDING), "PENDING"},     {TF_SQL_STATE(SCHEDULED), "SCHEDULED"},
        {TF_SQL_STATE(RUNNING), "RUNNING"},     {TF_SQL_STATE(SUCCEEDED), "SUCCEEDED"},
        {TF_SQL_STATE(FAILED), "FAILED"},       {TF_SQL_STATE(DEAD), "DEAD"},
        {TF_SQL_STATE(CANCELLED), "CANCELLED"},
    };
    assert_int_equal(sizeof pairs / sizeof pairs[0], TF_JOB_STATE_COUNT);
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        assert_int_equal(strlen(pairs[i].sql), 1);
        const int number = pairs[i].sql[0] - '0';
        assert_string_equal(tf_job_state_name((tf_job_state_t)number), pairs[i].name);
    }

    /* A string literal: it pastes into statement text. */
    static const char sql[] = "state = " TF_SQL_STATE(RUNNING) " OR state = " TF_SQL_STATE(DEAD);
    assert_string_equal(sql, "state = 2 OR state = 5");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job__every_state_event_pair_matches_the_expected_table),
        cmocka_unit_test(test_job__event_sources_match_the_expected_table),
        cmocka_unit_test(test_job__cancel_and_retry_guards_name_their_states),
        cmocka_unit_test(test_job__terminal_states_are_the_finished_ones),
        cmocka_unit_test(test_job__terminal_states_refuse_cancel),
        cmocka_unit_test(test_job__state_names_match_the_api),
        cmocka_unit_test(test_job__state_names_round_trip),
        cmocka_unit_test(test_job__event_names_are_the_documented_ones),
        cmocka_unit_test(test_job__state_parse_rejects_bad_names),
        cmocka_unit_test(test_job__invalid_values_are_refused),
        cmocka_unit_test(test_job__retry_then_dead_letter_then_manual_retry),
        cmocka_unit_test(test_job__dependants_action_for_each_parent_state),
        cmocka_unit_test(test_job__dependants_action_of_an_invalid_state_is_keep),
        cmocka_unit_test(test_job__sql_state_numbers_match_the_enum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
