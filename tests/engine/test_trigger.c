/*
 * test_trigger.c - rule triggers: names, and their JSON form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "engine/error.h"
#include "engine/trigger.h"

static void test_trigger__zone_names(void **state) {
    (void)state;
    static const char *const good[] = {"UTC",       "Europe/Oslo", "America/Argentina/Buenos_Aires",
                                       "Etc/GMT+5", "Etc/GMT-14",  "EST5EDT",
                                       NULL};
    static const char *const bad[] = {"",
                                      "/UTC",
                                      "UTC/",
                                      "Europe//Oslo",
                                      "../etc/passwd",
                                      "Europe/./Oslo",
                                      "Europe/Oslo ",
                                      "-UTC",
                                      "Europe/-Oslo",
                                      "Europe\\Oslo",
                                      NULL};
    for (size_t i = 0; good[i] != NULL; i++) {
        if (!tf_zone_name_valid(good[i])) {
            fail_msg("'%s' refused", good[i]);
        }
    }
    for (size_t i = 0; bad[i] != NULL; i++) {
        if (tf_zone_name_valid(bad[i])) {
            fail_msg("'%s' accepted", bad[i]);
        }
    }
    assert_false(tf_zone_name_valid(NULL));
    char longname[80];
    memset(longname, 'A', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(tf_zone_name_valid(longname));
    longname[TF_ZONE_NAME_MAX] = '\0';
    assert_true(tf_zone_name_valid(longname));
}

static void test_trigger__events_and_schemes(void **state) {
    (void)state;
    assert_true(tf_job_event_valid("job.succeeded") && tf_job_event_valid("job.failed") &&
                tf_job_event_valid("job.dead") && tf_job_event_valid("job.cancelled"));
    assert_false(tf_job_event_valid("job.started") || tf_job_event_valid("") ||
                 tf_job_event_valid(NULL) || tf_job_event_valid("JOB.DEAD"));
    assert_true(tf_webhook_scheme_valid("taskflow") && tf_webhook_scheme_valid("github") &&
                tf_webhook_scheme_valid("stripe") && tf_webhook_scheme_valid("standard-webhooks"));
    assert_false(tf_webhook_scheme_valid("hmac") || tf_webhook_scheme_valid(NULL));
    assert_string_equal(tf_trigger_kind_name(TF_TRIGGER_JOB), "job");
    assert_null(tf_trigger_kind_name((tf_trigger_kind_t)99));
}

static void test_trigger__json(void **state) {
    (void)state;
    char out[1024];
    tf_trigger_t t = {.kind = TF_TRIGGER_CRON, .catch_up = TF_CATCH_UP_NONE};
    snprintf(t.cron, sizeof(t.cron), "0 7 * * *");
    snprintf(t.timezone, sizeof(t.timezone), "Europe/Oslo");
    assert_int_equal(tf_trigger_json(&t, out, sizeof(out)), 0);
    assert_string_equal(out, "{\"kind\":\"cron\",\"cron\":\"0 7 * * *\",\"timezone\":"
                             "\"Europe/Oslo\",\"catch_up\":\"none\"}");
    t = (tf_trigger_t){.kind = TF_TRIGGER_JOB};
    snprintf(t.event, sizeof(t.event), "job.dead");
    snprintf(t.type, sizeof(t.type), "Say \"hi\"\\\t");
    assert_int_equal(tf_trigger_json(&t, out, sizeof(out)), 0);
    assert_string_equal(out, "{\"kind\":\"job\",\"event\":\"job.dead\",\"type\":"
                             "\"Say \\\"hi\\\"\\\\\\u0009\",\"queue\":null}");
    t = (tf_trigger_t){.kind = TF_TRIGGER_WEBHOOK};
    snprintf(t.scheme, sizeof(t.scheme), "github");
    assert_int_equal(tf_trigger_json(&t, out, sizeof(out)), 0);
    assert_string_equal(out, "{\"kind\":\"webhook\",\"scheme\":\"github\"}");
    /* Too small: refused, never cut. */
    assert_int_equal(tf_trigger_json(&t, out, 20), TF_ERANGE);
    t.kind = (tf_trigger_kind_t)0;
    assert_int_equal(tf_trigger_json(&t, out, sizeof(out)), TF_ERANGE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trigger__zone_names),
        cmocka_unit_test(test_trigger__events_and_schemes),
        cmocka_unit_test(test_trigger__json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
