/*
 * test_cronplan.c - which due fire times of a cron rule fire and which are
 * skipped, and why.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/cronplan.h"

#define T0 1764921600 /* 2025-12-05T08:00:00Z, a whole hour */

static tf_cron_t parse(const char *expr) {
    tf_cron_t c;
    assert_int_equal(tf_cron_parse(expr, &c, NULL, 0), 0);
    return c;
}

static void test_cronplan__on_time_fires_alone(void **state) {
    (void)state;
    tf_cron_t c = parse("*/5 * * * *");
    tf_cron_plan_t p;
    tf_cron_plan_due(&c, NULL, T0, T0 + 3, 1, TF_CATCH_UP_NONE, 60, &p);
    assert_int_equal(p.fire, T0);
    assert_int_equal(p.nskipped, 0);
    assert_int_equal(p.next, T0 + 300);
}

static void test_cronplan__not_due_yet(void **state) {
    (void)state;
    tf_cron_t c = parse("*/5 * * * *");
    tf_cron_plan_t p;
    tf_cron_plan_due(&c, NULL, T0, T0 - 1, 1, TF_CATCH_UP_LATEST, 60, &p);
    assert_true(p.fire == TF_CRON_NEVER);
    assert_int_equal(p.nskipped, 0);
    assert_int_equal(p.next, T0);
}

/* Down for 17 minutes: the latest missed time fires, the rest are skipped. */
static void test_cronplan__catch_up_latest(void **state) {
    (void)state;
    tf_cron_t c = parse("*/5 * * * *");
    tf_cron_plan_t p;
    tf_cron_plan_due(&c, NULL, T0, T0 + 17 * 60, 1, TF_CATCH_UP_LATEST, 60, &p);
    assert_int_equal(p.fire, T0 + 15 * 60);
    assert_int_equal(p.why, TF_CRON_SKIP_CATCH_UP);
    assert_int_equal(p.nskipped, 3);
    assert_int_equal(p.skipped[0], T0);
    assert_int_equal(p.skipped[1], T0 + 5 * 60);
    assert_int_equal(p.skipped[2], T0 + 10 * 60);
    assert_int_equal(p.next, T0 + 20 * 60);
    assert_string_equal(tf_cron_skip_name(p.why), "catch_up");
}

static void test_cronplan__catch_up_none(void **state) {
    (void)state;
    tf_cron_t c = parse("*/5 * * * *");
    tf_cron_plan_t p;
    tf_cron_plan_due(&c, NULL, T0, T0 + 17 * 60, 1, TF_CATCH_UP_NONE, 60, &p);
    assert_true(p.fire == TF_CRON_NEVER);
    assert_int_equal(p.nskipped, 4);
    assert_int_equal(p.skipped[3], T0 + 15 * 60);
    /* but a time just due fires with catch_up none too */
    tf_cron_plan_due(&c, NULL, T0, T0 + 5 * 60 + 30, 1, TF_CATCH_UP_NONE, 60, &p);
    assert_int_equal(p.fire, T0 + 5 * 60);
    assert_int_equal(p.nskipped, 1);
    assert_int_equal(p.skipped[0], T0);
}

static void test_cronplan__disabled_skips_all(void **state) {
    (void)state;
    tf_cron_t c = parse("0 * * * *");
    tf_cron_plan_t p;
    tf_cron_plan_due(&c, NULL, T0, T0 + 3 * 3600, 0, TF_CATCH_UP_LATEST, 60, &p);
    assert_true(p.fire == TF_CRON_NEVER);
    assert_int_equal(p.why, TF_CRON_SKIP_DISABLED);
    assert_int_equal(p.nskipped, 4);
    assert_int_equal(p.next, T0 + 4 * 3600);
    assert_string_equal(tf_cron_skip_name(p.why), "disabled");
}

/* A year down on an every-minute schedule: plans of TF_CRON_PLAN_MAX. */
static void test_cronplan__long_downtime_in_pieces(void **state) {
    (void)state;
    tf_cron_t c = parse("* * * * *");
    tf_cron_plan_t p;
    int64_t now = T0 + 2500 * 60 + 10, due = T0, skipped = 0;
    int plans = 0;
    for (;;) {
        tf_cron_plan_due(&c, NULL, due, now, 1, TF_CATCH_UP_LATEST, 60, &p);
        plans++;
        assert_true(p.nskipped <= TF_CRON_PLAN_MAX);
        if (p.nskipped > 0) {
            assert_int_equal(p.skipped[0], due); /* nothing dropped between plans */
        }
        skipped += (int64_t)p.nskipped;
        due = p.next;
        if (p.fire != TF_CRON_NEVER) {
            break;
        }
    }
    assert_int_equal(plans, 3);
    assert_int_equal(skipped, 2500);
    assert_int_equal(p.fire, T0 + 2500 * 60);
    assert_int_equal(p.next, T0 + 2501 * 60);
}

static void test_cronplan__overlap(void **state) {
    (void)state;
    tf_cron_t c = parse("* * * * *");
    tf_cron_plan_t p;
    tf_cron_plan_overlap(&c, NULL, T0, T0 + 150, &p);
    assert_int_equal(p.why, TF_CRON_SKIP_OVERLAP);
    assert_int_equal(p.nskipped, 2);
    assert_int_equal(p.skipped[0], T0 + 60);
    assert_int_equal(p.skipped[1], T0 + 120);
    assert_int_equal(p.next, T0 + 180);
    assert_string_equal(tf_cron_skip_name(p.why), "overlap");
    tf_cron_plan_overlap(&c, NULL, T0, T0 + 20, &p); /* a short firing */
    assert_int_equal(p.nskipped, 0);
    assert_int_equal(p.next, T0 + 60);
}

static void test_cronplan__never_again(void **state) {
    (void)state;
    tf_cron_t c = parse("0 0 30 2 *"); /* never fires */
    tf_cron_plan_t p;
    tf_cron_plan_overlap(&c, NULL, T0, T0 + 20, &p);
    assert_true(p.next == TF_CRON_NEVER);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cronplan__on_time_fires_alone),
        cmocka_unit_test(test_cronplan__not_due_yet),
        cmocka_unit_test(test_cronplan__catch_up_latest),
        cmocka_unit_test(test_cronplan__catch_up_none),
        cmocka_unit_test(test_cronplan__disabled_skips_all),
        cmocka_unit_test(test_cronplan__long_downtime_in_pieces),
        cmocka_unit_test(test_cronplan__overlap),
        cmocka_unit_test(test_cronplan__never_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
