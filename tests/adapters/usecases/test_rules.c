/*
 * test_rules.c - the rules use case (adapters/usecases/rules.c) on a fake
 * checker, rule store and zones port: what is refused before anything
 * runs, what the checker's answer leads to, what the store gets, and the
 * next fire time of a cron rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/usecases/rules.h"
#include "engine/error.h"
#include "engine/store.h"
#include "fake_store.h"

#define TENANT "0190a0b0-0000-7000-8000-000000000001"
#define RULE_ID "0190a0b0-0000-7000-8000-0000000000aa"
#define KEY "0123456789abcdef0123456789abcdef"
#define SECRET "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

/* ---- fakes ---- */

typedef struct {
    fake_env_t *env;
    tf_script_checker_t checker;
    tf_rule_store_t rules;
    tf_zone_source_t zones;
    /* the checker's last call, answered by the test */
    int checks;
    char checked_tenant[64];
    tf_rule_check_cb check_cb;
    void *check_arg;
    /* the store's last put */
    int creates, updates;
    tf_rule_put_t put;
    char put_trigger[1024], put_name[200], put_id[64], put_key[64], put_secret[80];
    tf_rule_put_cb put_cb;
    void *put_arg;
    int zone_lookups;
    /* the use case's answer */
    int calls, status, created;
    char message[400], trigger[1024], secret[80], cron[300], timezone[80], hook_key[80];
    tf_rule_t rule; /* its strings copied into the fixture: rows are borrowed */
} fixture_t;

static int fake_check_rule(void *ctx, const char *tenant_id, const char *source, size_t len,
                           tf_rule_check_cb cb, void *arg) {
    fixture_t *f = ctx;
    (void)source, (void)len;
    f->checks++;
    snprintf(f->checked_tenant, sizeof(f->checked_tenant), "%s", tenant_id);
    f->check_cb = cb;
    f->check_arg = arg;
    return 0;
}

static int fake_put(fixture_t *f, const tf_rule_put_t *put, tf_rule_put_cb cb, void *arg) {
    f->put = *put;
    snprintf(f->put_trigger, sizeof(f->put_trigger), "%s", put->trigger_json);
    snprintf(f->put_name, sizeof(f->put_name), "%s", put->name);
    snprintf(f->put_id, sizeof(f->put_id), "%s", put->id);
    snprintf(f->put_key, sizeof(f->put_key), "%s", put->hook_key ? put->hook_key : "(null)");
    snprintf(f->put_secret, sizeof(f->put_secret), "%s",
             put->hook_secret ? put->hook_secret : "(null)");
    f->put_cb = cb;
    f->put_arg = arg;
    return 0;
}

static int fake_create(void *ctx, const tf_rule_put_t *put, tf_rule_put_cb cb, void *arg) {
    ((fixture_t *)ctx)->creates++;
    return fake_put(ctx, put, cb, arg);
}

static int fake_update(void *ctx, const tf_rule_put_t *put, tf_rule_put_cb cb, void *arg) {
    ((fixture_t *)ctx)->updates++;
    return fake_put(ctx, put, cb, arg);
}

/* Knows no zone but "Etc/GMT-2" (a fixed +02:00). */
static int fake_zone(void *ctx, const char *name, const tf_tz_t **out) {
    fixture_t *f = ctx;
    f->zone_lookups++;
    static tf_tz_t *plus2;
    if (strcmp(name, "Etc/GMT-2") != 0) {
        return TF_ENOTFOUND;
    }
    if (plus2 == NULL) {
        /* A version 1 TZif file: one type, +7200 seconds. */
        static const unsigned char file[] = {
            'T', 'Z', 'i', 'f', 0, 0, 0, 0, 0, 0, 0,    0,    0, 0, 0,   0,   0,   0,
            0,   0,   0,   0,   0, 0, 0, 0, 0, 0, 0,    0,    0, 0, 0,   0,   0,   0,
            0,   0,   0,   1,   0, 0, 0, 4, 0, 0, 0x1c, 0x20, 0, 0, 'X', 'X', 'X', 0};
        assert_int_equal(tf_tz_parse(file, sizeof(file), &plus2), 0);
    }
    *out = plus2;
    return 0;
}

static void answered(void *arg, int status, const char *message, const tf_rule_t *rule, int created,
                     const char *hook_secret) {
    fixture_t *f = arg;
    f->calls++;
    f->status = status;
    f->created = created;
    snprintf(f->message, sizeof(f->message), "%s", message != NULL ? message : "");
    snprintf(f->secret, sizeof(f->secret), "%s", hook_secret != NULL ? hook_secret : "");
    if (rule != NULL) {
        f->rule = *rule;
        snprintf(f->trigger, sizeof(f->trigger), "%s", rule->trigger_json);
        f->rule.trigger_json = f->trigger;
        snprintf(f->cron, sizeof(f->cron), "%s", rule->cron != NULL ? rule->cron : "");
        snprintf(f->timezone, sizeof(f->timezone), "%s",
                 rule->timezone != NULL ? rule->timezone : "");
        snprintf(f->hook_key, sizeof(f->hook_key), "%s",
                 rule->hook_key != NULL ? rule->hook_key : "");
        f->rule.cron = rule->cron != NULL ? f->cron : NULL;
        f->rule.timezone = rule->timezone != NULL ? f->timezone : NULL;
        f->rule.hook_key = rule->hook_key != NULL ? f->hook_key : NULL;
        f->rule.id = f->rule.tenant_id = f->rule.name = f->rule.sha256 = NULL;
        f->rule.created_by = NULL;
    }
}

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->env = fake_env_new();
    f->checker = (tf_script_checker_t){.ctx = f, .check_rule = fake_check_rule};
    f->rules = (tf_rule_store_t){.ctx = f, .create = fake_create, .update = fake_update};
    f->zones = (tf_zone_source_t){.ctx = f, .get = fake_zone};
    f->env->uc.checker = &f->checker;
    f->env->uc.rules = &f->rules;
    f->env->uc.zones = &f->zones;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    fake_env_free(f->env);
    free(f);
    return 0;
}

static int upload(fixture_t *f, const char *id, const char *source, char *err, size_t errlen) {
    tf_uc_rule_upload_t up = {.tenant_id = TENANT,
                              .id = id,
                              .source = source,
                              .len = strlen(source),
                              .actor = "key:k1",
                              .hook_key = id == NULL ? KEY : NULL,
                              .hook_secret = id == NULL ? SECRET : NULL};
    return tf_uc_rule_upload(&f->env->uc, &up, answered, f, err, errlen);
}

static tf_trigger_t trigger(tf_trigger_kind_t kind, const char *timezone) {
    tf_trigger_t t = {.kind = kind};
    snprintf(t.cron, sizeof(t.cron), "0 7 * * *");
    snprintf(t.timezone, sizeof(t.timezone), "%s", timezone);
    snprintf(t.scheme, sizeof(t.scheme), "taskflow");
    snprintf(t.event, sizeof(t.event), "user.signed_up");
    return t;
}

static void check_passes(fixture_t *f, const char *name, const tf_trigger_t *t) {
    tf_rule_meta_t meta = {.name = name, .trigger = t, .has_condition = 1};
    f->check_cb(f->check_arg, 0, NULL, &meta);
}

static void store_answers(fixture_t *f, int status, int version, int enabled, const char *key) {
    tf_rule_put_result_t r = {
        .version = version, .sha256 = "abc", .enabled = enabled, .hook_key = key};
    f->put_cb(f->put_arg, status, &r);
}

/* ---- tests ---- */

static void test_rules__bad_sources_are_refused_before_anything_runs(void **state) {
    fixture_t *f = *state;
    char err[200];
    assert_int_equal(upload(f, NULL, "", err, sizeof(err)), TF_EINVAL);
    assert_non_null(strstr(err, "Lua source"));
    assert_int_equal(upload(f, NULL, "\x1bLuaT", err, sizeof(err)), TF_EINVAL);
    assert_non_null(strstr(err, "binary"));
    assert_int_equal(upload(f, NULL, "return '\xff'", err, sizeof(err)), TF_EINVAL);
    assert_non_null(strstr(err, "UTF-8"));
    char *big = malloc(TF_SCRIPT_SOURCE_MAX + 2);
    assert_non_null(big);
    memset(big, '-', TF_SCRIPT_SOURCE_MAX + 1);
    big[TF_SCRIPT_SOURCE_MAX + 1] = '\0';
    assert_int_equal(upload(f, NULL, big, err, sizeof(err)), TF_ETOOBIG);
    free(big);
    /* A new rule without its hook key and secret is the caller's fault. */
    tf_uc_rule_upload_t up = {.tenant_id = TENANT, .source = "return {}", .len = 9};
    assert_int_equal(tf_uc_rule_upload(&f->env->uc, &up, answered, f, err, sizeof(err)), TF_EINVAL);
    f->env->uc.rules = NULL;
    assert_int_equal(upload(f, NULL, "return {}", err, sizeof(err)), TF_EUNAVAIL);
    assert_int_equal(f->checks, 0);
    assert_int_equal(f->calls, 0);
}

static void test_rules__a_new_cron_rule_is_stored_with_its_trigger(void **state) {
    fixture_t *f = *state;
    char err[200];
    assert_int_equal(upload(f, NULL, "return {...}", err, sizeof(err)), 0);
    assert_int_equal(f->checks, 1);
    assert_string_equal(f->checked_tenant, TENANT);
    tf_trigger_t t = trigger(TF_TRIGGER_CRON, "Etc/GMT-2");
    check_passes(f, "billing", &t);
    assert_int_equal(f->zone_lookups, 2); /* known, then its first fire time */
    assert_int_equal(f->creates, 1);
    assert_string_equal(f->put_name, "billing");
    assert_int_equal(f->put.kind, TF_TRIGGER_CRON);
    assert_string_equal(f->put_trigger, "{\"kind\":\"cron\",\"cron\":\"0 7 * * *\",\"timezone\":"
                                        "\"Etc/GMT-2\",\"catch_up\":\"latest\"}");
    assert_string_equal(f->put_key, "(null)"); /* not a webhook: no hook */
    assert_int_equal(f->put.now_ms, FAKE_T0_MS);
    assert_int_equal(strlen(f->put_id), 36);
    store_answers(f, 0, 1, 1, NULL);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->created, 1);
    assert_string_equal(f->secret, "");
    assert_string_equal(f->rule.cron, "0 7 * * *");
    /* Stored with its first fire time: 07:00 at +02:00 is 05:00Z; the
     * clock is 2026-11-26T07:00Z. */
    assert_int_equal(f->put.next_fire_ms, FAKE_T0_MS + 22 * 3600 * INT64_C(1000));
}

static void test_rules__a_new_webhook_rule_keeps_the_callers_key_and_secret(void **state) {
    fixture_t *f = *state;
    char err[200];
    assert_int_equal(upload(f, NULL, "return {...}", err, sizeof(err)), 0);
    tf_trigger_t t = trigger(TF_TRIGGER_WEBHOOK, "UTC");
    check_passes(f, "payments", &t);
    assert_string_equal(f->put_key, KEY);
    assert_string_equal(f->put_secret, SECRET);
    store_answers(f, 0, 1, 1, KEY);
    assert_string_equal(f->secret, SECRET); /* shown once, now */
    assert_string_equal(f->rule.hook_key, KEY);
    assert_true(f->put.next_fire_ms == TF_TIME_NONE); /* fires on deliveries only */
}

static void test_rules__check_failures_and_unknown_zones_store_nothing(void **state) {
    fixture_t *f = *state;
    char err[200];
    assert_int_equal(upload(f, NULL, "return {...}", err, sizeof(err)), 0);
    f->check_cb(f->check_arg, TF_EINVAL, "rule:1: action must be a function(ev, ctx)", NULL);
    assert_int_equal(f->status, TF_EINVAL);
    assert_string_equal(f->message, "rule:1: action must be a function(ev, ctx)");
    assert_int_equal(upload(f, NULL, "return {...}", err, sizeof(err)), 0);
    tf_trigger_t t = trigger(TF_TRIGGER_CRON, "Mars/Base");
    check_passes(f, "r", &t);
    assert_int_equal(f->status, TF_EINVAL);
    assert_non_null(strstr(f->message, "unknown time zone \"Mars/Base\""));
    /* Without a zones port only UTC is known. */
    f->env->uc.zones = NULL;
    assert_int_equal(upload(f, NULL, "return {...}", err, sizeof(err)), 0);
    t = trigger(TF_TRIGGER_CRON, "Etc/GMT-2");
    check_passes(f, "r", &t);
    assert_int_equal(f->status, TF_EINVAL);
    assert_int_equal(upload(f, NULL, "return {...}", err, sizeof(err)), 0);
    t = trigger(TF_TRIGGER_CRON, "UTC");
    check_passes(f, "r", &t);
    assert_int_equal(f->creates, 1);
    store_answers(f, 0, 1, 1, NULL);
    assert_int_equal(f->status, 0);
    assert_int_equal(f->calls, 4);
}

static void test_rules__a_version_goes_to_update_and_its_refusals_say_why(void **state) {
    fixture_t *f = *state;
    char err[200];
    static const struct {
        int status;
        const char *fragment;
    } refusals[] = {
        {TF_ESTATE, "cannot change the trigger's kind"},
        {TF_ECONFLICT, "another rule of that name"},
        {TF_ENOTFOUND, "no such rule"},
    };
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        assert_int_equal(upload(f, RULE_ID, "return {...}", err, sizeof(err)), 0);
        tf_trigger_t t = trigger(TF_TRIGGER_EVENT, "UTC");
        check_passes(f, "signup", &t);
        assert_string_equal(f->put_id, RULE_ID);
        assert_string_equal(f->put_key, "(null)");
        store_answers(f, refusals[i].status, 0, 0, NULL);
        assert_int_equal(f->status, refusals[i].status);
        assert_non_null(strstr(f->message, refusals[i].fragment));
    }
    assert_int_equal(upload(f, RULE_ID, "return {...}", err, sizeof(err)), 0);
    tf_trigger_t t = trigger(TF_TRIGGER_CRON, "UTC");
    check_passes(f, "nightly", &t);
    store_answers(f, 0, 4, 0, NULL);
    assert_int_equal(f->updates, 4);
    assert_int_equal(f->creates, 0);
    assert_int_equal(f->created, 0);
    assert_int_equal(f->rule.version, 4);
    assert_int_equal(f->rule.enabled, 0); /* as stored: a version keeps it */
    /* the first fire time after now, which the store keeps if the trigger
     * did not change */
    assert_int_equal(f->put.next_fire_ms, FAKE_T0_MS + 86400000);
}

#define T(name) cmocka_unit_test_setup_teardown(test_rules__##name, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(bad_sources_are_refused_before_anything_runs),
        T(a_new_cron_rule_is_stored_with_its_trigger),
        T(a_new_webhook_rule_keeps_the_callers_key_and_secret),
        T(check_failures_and_unknown_zones_store_nothing),
        T(a_version_goes_to_update_and_its_refusals_say_why),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
