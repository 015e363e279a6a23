/*
 * test_events.c - tests for engine/events.c: the state -> event mapping for
 * every job state (expected values written out here, not read from
 * events.c), names and their round trips, the port with a fake sink that
 * records what it receives, rejected input, and the buffer sink
 * (tf_event_buf_t): order, its cap, refused events, lookup by job id.
 * One cmocka process; no shared state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/error.h"
#include "engine/events.h"
#include "engine/job.h"

#define NOT_TERMINAL (-1)
#define INVALID_KIND ((tf_domain_event_kind_t)99)
#define UNTOUCHED ((tf_domain_event_kind_t)77)

/* expected_kind[state]: the event for each state, or NOT_TERMINAL. */
static const int expected_kind[TF_JOB_STATE_COUNT] = {
    [TF_JOB_PENDING] = NOT_TERMINAL,
    [TF_JOB_SCHEDULED] = NOT_TERMINAL,
    [TF_JOB_RUNNING] = NOT_TERMINAL,
    [TF_JOB_SUCCEEDED] = TF_EVENT_JOB_SUCCEEDED,
    [TF_JOB_FAILED] = TF_EVENT_JOB_FAILED,
    [TF_JOB_DEAD] = TF_EVENT_JOB_DEAD,
    [TF_JOB_CANCELLED] = TF_EVENT_JOB_CANCELLED,
};

static const char *const expected_names[TF_EVENT_KIND_COUNT] = {
    "job.succeeded",
    "job.failed",
    "job.dead",
    "job.cancelled",
};

/* A fake sink: records the events it receives and answers with `rc`. */
#define RECORDER_MAX 8

typedef struct {
    int calls;
    int rc;
    tf_domain_event_kind_t kinds[RECORDER_MAX];
    tf_job_state_t states[RECORDER_MAX];
    char tenant_ids[RECORDER_MAX][64];
    char job_ids[RECORDER_MAX][64];
    char reasons[RECORDER_MAX][64];
} recorder_t;

static void copy_text(char *dst, size_t size, const char *src) {
    const char *text = src != NULL ? src : "(null)";
    size_t len = strlen(text);
    if (len >= size) {
        len = size - 1;
    }
    memcpy(dst, text, len);
    dst[len] = '\0';
}

static int recorder_emit(void *ctx, const tf_domain_event_t *ev) {
    recorder_t *rec = ctx;
    if (rec->calls < RECORDER_MAX) {
        const int i = rec->calls;
        rec->kinds[i] = ev->kind;
        rec->states[i] = ev->state;
        copy_text(rec->tenant_ids[i], sizeof rec->tenant_ids[i], ev->tenant_id);
        copy_text(rec->job_ids[i], sizeof rec->job_ids[i], ev->job_id);
        copy_text(rec->reasons[i], sizeof rec->reasons[i], ev->reason);
    }
    rec->calls++;
    return rec->rc;
}

static tf_domain_event_t make_event(tf_job_state_t state, const char *job_id, const char *reason) {
    tf_domain_event_kind_t kind = INVALID_KIND;
    assert_int_equal(tf_event_for_state(state, &kind), 0);
    return (tf_domain_event_t){
        .kind = kind,
        .tenant_id = "0190a0b0-0000-7000-8000-000000000001",
        .job_id = job_id,
        .state = state,
        .reason = reason,
    };
}

static void test_events__every_state_maps_to_its_event_or_is_refused(void **state) {
    (void)state;
    int terminal = 0;
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        tf_domain_event_kind_t kind = UNTOUCHED;
        const int rc = tf_event_for_state((tf_job_state_t)s, &kind);
        if (expected_kind[s] == NOT_TERMINAL) {
            assert_int_equal(rc, TF_EINVAL);
            assert_int_equal(kind, UNTOUCHED);
            assert_false(tf_job_state_is_terminal((tf_job_state_t)s));
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(kind, expected_kind[s]);
            assert_true(tf_job_state_is_terminal((tf_job_state_t)s));
            assert_int_equal(tf_domain_event_state(kind), s);
            terminal++;
        }
    }
    assert_int_equal(terminal, TF_EVENT_KIND_COUNT);
}

static void test_events__invalid_state_or_null_out_is_refused(void **state) {
    (void)state;
    tf_domain_event_kind_t kind = UNTOUCHED;
    assert_int_equal(tf_event_for_state(TF_JOB_STATE_COUNT, &kind), TF_EINVAL);
    assert_int_equal(tf_event_for_state((tf_job_state_t)-1, &kind), TF_EINVAL);
    assert_int_equal(tf_event_for_state((tf_job_state_t)99, &kind), TF_EINVAL);
    assert_int_equal(kind, UNTOUCHED);
    assert_int_equal(tf_event_for_state(TF_JOB_SUCCEEDED, NULL), TF_EINVAL);
    assert_int_equal(tf_domain_event_state(INVALID_KIND), TF_JOB_STATE_COUNT);
    assert_int_equal(tf_domain_event_state((tf_domain_event_kind_t)-1), TF_JOB_STATE_COUNT);
}

static void test_events__names_are_the_documented_ones_and_round_trip(void **state) {
    (void)state;
    for (int k = 0; k < TF_EVENT_KIND_COUNT; k++) {
        const char *name = tf_domain_event_name((tf_domain_event_kind_t)k);
        assert_non_null(name);
        assert_string_equal(name, expected_names[k]);
        tf_domain_event_kind_t parsed = UNTOUCHED;
        assert_int_equal(tf_domain_event_parse(name, &parsed), 0);
        assert_int_equal(parsed, k);
    }
    assert_null(tf_domain_event_name(TF_EVENT_KIND_COUNT));
    assert_null(tf_domain_event_name(INVALID_KIND));
    assert_null(tf_domain_event_name((tf_domain_event_kind_t)-1));
}

static void test_events__parse_takes_exact_names_only(void **state) {
    (void)state;
    const char *const bad[] = {
        "",          "job.",     "JOB.DEAD",    "job.dead ",       " job.dead",
        "job.Dead",  "dead",     "job.succeed", "job.canceled",    "job.pending",
        "job.deadx", "job_dead", "job.fail",    "job.cancelled\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tf_domain_event_kind_t kind = UNTOUCHED;
        if (tf_domain_event_parse(bad[i], &kind) != TF_EINVAL) {
            fail_msg("\"%s\" should be refused", bad[i]);
        }
        assert_int_equal(kind, UNTOUCHED);
    }
    tf_domain_event_kind_t kind = UNTOUCHED;
    assert_int_equal(tf_domain_event_parse(NULL, &kind), TF_EINVAL);
    assert_int_equal(tf_domain_event_parse("job.dead", NULL), TF_EINVAL);
    assert_int_equal(kind, UNTOUCHED);
}

static void test_events__fake_sink_records_emitted_events_in_order(void **state) {
    (void)state;
    recorder_t rec = {0};
    const tf_event_sink_t sink = {.emit = recorder_emit, .ctx = &rec};
    const tf_job_state_t terminal[] = {TF_JOB_SUCCEEDED, TF_JOB_FAILED, TF_JOB_DEAD,
                                       TF_JOB_CANCELLED};
    const char *const job_ids[] = {"job-1", "job-2", "job-3", "job-4"};
    const char *const reasons[] = {NULL, "timeout: took 30s", "attempts exhausted (3/3)",
                                   "cancelled by API"};
    for (size_t i = 0; i < 4; i++) {
        const tf_domain_event_t ev = make_event(terminal[i], job_ids[i], reasons[i]);
        assert_int_equal(tf_event_emit(&sink, &ev), 0);
    }
    assert_int_equal(rec.calls, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(rec.kinds[i], expected_kind[terminal[i]]);
        assert_int_equal(rec.states[i], terminal[i]);
        assert_string_equal(rec.tenant_ids[i], "0190a0b0-0000-7000-8000-000000000001");
        assert_string_equal(rec.job_ids[i], job_ids[i]);
        assert_string_equal(rec.reasons[i], reasons[i] != NULL ? reasons[i] : "(null)");
    }
}

static void test_events__sink_error_is_returned(void **state) {
    (void)state;
    recorder_t rec = {.rc = TF_EUNAVAIL};
    const tf_event_sink_t sink = {.emit = recorder_emit, .ctx = &rec};
    const tf_domain_event_t ev = make_event(TF_JOB_DEAD, "job-9", "attempts exhausted");
    assert_int_equal(tf_event_emit(&sink, &ev), TF_EUNAVAIL);
    assert_int_equal(rec.calls, 1);
}

static void test_events__no_sink_drops_events_but_still_checks_them(void **state) {
    (void)state;
    const tf_domain_event_t ev = make_event(TF_JOB_SUCCEEDED, "job-1", "");
    const tf_event_sink_t zeroed = {0};
    assert_int_equal(tf_event_emit(NULL, &ev), 0);
    assert_int_equal(tf_event_emit(&zeroed, &ev), 0);

    tf_domain_event_t bad = ev;
    bad.state = TF_JOB_FAILED;
    assert_int_equal(tf_event_emit(NULL, &bad), TF_EINVAL);
    assert_int_equal(tf_event_emit(&zeroed, &bad), TF_EINVAL);
    assert_int_equal(tf_event_emit(NULL, NULL), TF_EINVAL);
}

static void test_events__bad_events_are_refused_without_calling_the_sink(void **state) {
    (void)state;
    recorder_t rec = {0};
    const tf_event_sink_t sink = {.emit = recorder_emit, .ctx = &rec};
    const tf_domain_event_t good = make_event(TF_JOB_CANCELLED, "job-7", "cancelled by API");

    tf_domain_event_t bad[8];
    const size_t count = sizeof bad / sizeof bad[0];
    for (size_t i = 0; i < count; i++) {
        bad[i] = good;
    }
    bad[0].kind = INVALID_KIND;
    bad[1].kind = (tf_domain_event_kind_t)-1;
    bad[2].state = TF_JOB_SUCCEEDED; /* kind and state disagree */
    bad[3].state = TF_JOB_RUNNING;   /* not terminal */
    bad[4].tenant_id = NULL;
    bad[5].tenant_id = "";
    bad[6].job_id = NULL;
    bad[7].job_id = "";
    for (size_t i = 0; i < count; i++) {
        if (tf_event_emit(&sink, &bad[i]) != TF_EINVAL) {
            fail_msg("bad event %zu should be refused", i);
        }
    }
    assert_int_equal(tf_event_emit(&sink, NULL), TF_EINVAL);
    assert_int_equal(rec.calls, 0);

    /* The reason is optional. */
    tf_domain_event_t no_reason = good;
    no_reason.reason = NULL;
    assert_int_equal(tf_event_emit(&sink, &no_reason), 0);
    assert_int_equal(rec.calls, 1);
}

/* tf_event_buf_t: the unit-of-work buffer behind tf_event_buf_sink(). */
#define BUF_CAP 3
#define BUF_SENTINEL "sentinel"

/* Storage one entry larger than the buffer's cap; the last entry is a
 * sentinel the buffer must never touch. */
static void init_buf(tf_event_buf_t *buf, tf_domain_event_t storage[BUF_CAP + 1], size_t cap) {
    for (size_t i = 0; i < BUF_CAP + 1; i++) {
        storage[i] = (tf_domain_event_t){.kind = UNTOUCHED, .job_id = BUF_SENTINEL};
    }
    tf_event_buf_init(buf, storage, cap);
}

static void test_events__buffer_sink_stores_emitted_events_in_order(void **state) {
    (void)state;
    tf_domain_event_t storage[BUF_CAP + 1];
    tf_event_buf_t buf;
    init_buf(&buf, storage, BUF_CAP);
    assert_int_equal(buf.n, 0);
    assert_int_equal(buf.cap, BUF_CAP);
    const tf_event_sink_t sink = tf_event_buf_sink(&buf);

    const tf_job_state_t states[BUF_CAP] = {TF_JOB_DEAD, TF_JOB_SUCCEEDED, TF_JOB_CANCELLED};
    const char *const job_ids[BUF_CAP] = {"job-a", "job-b", "job-c"};
    const char *const reasons[BUF_CAP] = {"attempts exhausted (3/3)", NULL, "cancelled by API"};
    tf_domain_event_t sent[BUF_CAP];
    for (size_t i = 0; i < BUF_CAP; i++) {
        sent[i] = make_event(states[i], job_ids[i], reasons[i]);
        assert_int_equal(tf_event_emit(&sink, &sent[i]), 0);
        assert_int_equal(buf.n, i + 1);
    }
    for (size_t i = 0; i < BUF_CAP; i++) {
        const tf_domain_event_t *got = &buf.items[i];
        assert_ptr_equal(buf.items, storage); /* the caller's storage */
        assert_int_equal(got->kind, expected_kind[states[i]]);
        assert_int_equal(got->state, states[i]);
        assert_string_equal(got->tenant_id, "0190a0b0-0000-7000-8000-000000000001");
        /* Copied as they are: the strings stay borrowed. */
        assert_ptr_equal(got->job_id, job_ids[i]);
        assert_ptr_equal(got->reason, reasons[i]);
    }
    /* The event itself was copied: changing the caller's value after the
     * emit leaves the buffered one as it was. */
    sent[0].job_id = "changed";
    sent[0].reason = "changed";
    assert_string_equal(buf.items[0].job_id, "job-a");
    assert_string_equal(buf.items[0].reason, "attempts exhausted (3/3)");
    assert_string_equal(storage[BUF_CAP].job_id, BUF_SENTINEL);
}

static void test_events__buffer_sink_beyond_cap_is_refused_and_keeps_the_first(void **state) {
    (void)state;
    tf_domain_event_t storage[BUF_CAP + 1];
    tf_event_buf_t buf;
    init_buf(&buf, storage, BUF_CAP);
    const tf_event_sink_t sink = tf_event_buf_sink(&buf);
    const char *const job_ids[] = {"job-1", "job-2", "job-3", "job-4", "job-5"};
    for (size_t i = 0; i < BUF_CAP; i++) {
        const tf_domain_event_t ev = make_event(TF_JOB_FAILED, job_ids[i], "http_503");
        assert_int_equal(tf_event_emit(&sink, &ev), 0);
    }
    for (size_t i = BUF_CAP; i < 5; i++) {
        const tf_domain_event_t ev = make_event(TF_JOB_SUCCEEDED, job_ids[i], NULL);
        assert_int_equal(tf_event_emit(&sink, &ev), TF_ERANGE);
    }
    assert_int_equal(buf.n, BUF_CAP);
    for (size_t i = 0; i < BUF_CAP; i++) {
        assert_string_equal(buf.items[i].job_id, job_ids[i]);
        assert_int_equal(buf.items[i].kind, TF_EVENT_JOB_FAILED);
        assert_int_equal(buf.items[i].state, TF_JOB_FAILED);
        assert_string_equal(buf.items[i].reason, "http_503");
    }
    assert_null(tf_event_buf_find(&buf, "job-4"));
    assert_null(tf_event_buf_find(&buf, "job-5"));
    /* Nothing was written past cap. */
    assert_int_equal(storage[BUF_CAP].kind, UNTOUCHED);
    assert_string_equal(storage[BUF_CAP].job_id, BUF_SENTINEL);

    /* A buffer of cap 0 refuses the first event. */
    tf_event_buf_t none;
    init_buf(&none, storage, 0);
    const tf_event_sink_t none_sink = tf_event_buf_sink(&none);
    const tf_domain_event_t ev = make_event(TF_JOB_DEAD, "job-0", NULL);
    assert_int_equal(tf_event_emit(&none_sink, &ev), TF_ERANGE);
    assert_int_equal(none.n, 0);
    assert_string_equal(storage[0].job_id, BUF_SENTINEL);
}

static void test_events__buffer_sink_never_receives_invalid_events(void **state) {
    (void)state;
    tf_domain_event_t storage[BUF_CAP + 1];
    tf_event_buf_t buf;
    init_buf(&buf, storage, BUF_CAP);
    const tf_event_sink_t sink = tf_event_buf_sink(&buf);
    const tf_domain_event_t good = make_event(TF_JOB_SUCCEEDED, "job-ok", NULL);

    tf_domain_event_t bad[6];
    const size_t count = sizeof bad / sizeof bad[0];
    for (size_t i = 0; i < count; i++) {
        bad[i] = good;
    }
    bad[0].kind = INVALID_KIND;
    bad[1].state = TF_JOB_DEAD;    /* kind and state disagree */
    bad[2].state = TF_JOB_PENDING; /* not terminal */
    bad[3].tenant_id = "";
    bad[4].job_id = NULL;
    bad[5].job_id = "";
    for (size_t i = 0; i < count; i++) {
        if (tf_event_emit(&sink, &bad[i]) != TF_EINVAL) {
            fail_msg("bad event %zu should be refused", i);
        }
    }
    assert_int_equal(tf_event_emit(&sink, NULL), TF_EINVAL);
    assert_int_equal(buf.n, 0);
    assert_int_equal(storage[0].kind, UNTOUCHED);
    assert_null(tf_event_buf_find(&buf, "job-ok"));

    /* The buffer still has all its room for valid events. */
    for (size_t i = 0; i < BUF_CAP; i++) {
        assert_int_equal(tf_event_emit(&sink, &good), 0);
    }
    assert_int_equal(buf.n, BUF_CAP);
}

static void test_events__buffer_find_returns_the_event_of_a_job_or_null(void **state) {
    (void)state;
    tf_domain_event_t storage[BUF_CAP + 1];
    tf_event_buf_t buf;
    init_buf(&buf, storage, BUF_CAP);
    assert_null(tf_event_buf_find(&buf, "job-1"));      /* empty */
    assert_null(tf_event_buf_find(&buf, BUF_SENTINEL)); /* storage, but not an event */

    const tf_event_sink_t sink = tf_event_buf_sink(&buf);
    const tf_domain_event_t evs[BUF_CAP] = {
        make_event(TF_JOB_SUCCEEDED, "job-1", NULL),
        make_event(TF_JOB_CANCELLED, "job-2", "dependency_FAILED:job-9"),
        make_event(TF_JOB_DEAD, "job-3", "attempts exhausted"),
    };
    for (size_t i = 0; i < BUF_CAP; i++) {
        assert_int_equal(tf_event_emit(&sink, &evs[i]), 0);
    }
    for (size_t i = 0; i < BUF_CAP; i++) {
        /* Looked up through a copy of the id: compared as text. */
        char id[16];
        memcpy(id, evs[i].job_id, strlen(evs[i].job_id) + 1);
        const tf_domain_event_t *found = tf_event_buf_find(&buf, id);
        assert_ptr_equal(found, &buf.items[i]);
        assert_int_equal(found->state, evs[i].state);
        assert_int_equal(found->kind, evs[i].kind);
    }
    assert_string_equal(tf_event_buf_find(&buf, "job-2")->reason, "dependency_FAILED:job-9");

    const char *const absent[] = {"job-4", "job-", "job-10", "JOB-1", "", "job-9"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        if (tf_event_buf_find(&buf, absent[i]) != NULL) {
            fail_msg("\"%s\" should not be found", absent[i]);
        }
    }
    /* Only the n buffered events are searched, not the storage after them. */
    assert_string_equal(storage[BUF_CAP].job_id, BUF_SENTINEL);
    assert_null(tf_event_buf_find(&buf, BUF_SENTINEL));
    assert_null(tf_event_buf_find(&buf, NULL));
    assert_null(tf_event_buf_find(NULL, "job-1"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events__every_state_maps_to_its_event_or_is_refused),
        cmocka_unit_test(test_events__invalid_state_or_null_out_is_refused),
        cmocka_unit_test(test_events__names_are_the_documented_ones_and_round_trip),
        cmocka_unit_test(test_events__parse_takes_exact_names_only),
        cmocka_unit_test(test_events__fake_sink_records_emitted_events_in_order),
        cmocka_unit_test(test_events__sink_error_is_returned),
        cmocka_unit_test(test_events__no_sink_drops_events_but_still_checks_them),
        cmocka_unit_test(test_events__bad_events_are_refused_without_calling_the_sink),
        cmocka_unit_test(test_events__buffer_sink_stores_emitted_events_in_order),
        cmocka_unit_test(test_events__buffer_sink_beyond_cap_is_refused_and_keeps_the_first),
        cmocka_unit_test(test_events__buffer_sink_never_receives_invalid_events),
        cmocka_unit_test(test_events__buffer_find_returns_the_event_of_a_job_or_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
