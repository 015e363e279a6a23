/*
 * test_cursor.c - signed pagination cursors: a cursor opens only under the
 * key, scope and age it was made for; any altered, foreign, expired or
 * malformed text is refused with a reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/api/cursor.h"
#include "engine/error.h"

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const int64_t NOW = INT64_C(1795000000000); /* 2026-11-18 */

static void fill_key(uint8_t key[32], uint8_t seed) {
    for (int i = 0; i < 32; i++) {
        key[i] = (uint8_t)(seed + 7 * i);
    }
}

static tf_uuid_t sample_id(void) {
    tf_uuid_t id;
    for (int i = 0; i < 16; i++) {
        id.bytes[i] = (uint8_t)(0xa0 + i);
    }
    return id;
}

/* Decodes `text` and asserts that it is refused with a reason. */
static void expect_refused(const uint8_t key[32], const char *scope, const char *text,
                           int64_t now_ms) {
    tf_uuid_t out;
    const char *why = NULL;
    int rc = tf_cursor_decode(key, scope, text, now_ms, &out, &why);
    if (rc != TF_EINVAL) {
        fail_msg("cursor '%s' accepted (rc %d)", text, rc);
    }
    assert_non_null(why);
    assert_true(strlen(why) > 0);
}

static void test_cursor__round_trip_gives_the_id_back(void **state) {
    (void)state;
    uint8_t key[32];
    fill_key(key, 1);
    tf_uuid_t id = sample_id(), out;
    char text[TF_CURSOR_TEXT_LEN];
    tf_cursor_encode(key, "tenants", &id, NOW, text);
    assert_int_equal(strlen(text), TF_CURSOR_TEXT_LEN - 2);
    assert_int_equal(strspn(text, B64URL), strlen(text)); /* URL-safe, no padding */
    const char *why = NULL;
    assert_int_equal(tf_cursor_decode(key, "tenants", text, NOW, &out, &why), 0);
    assert_memory_equal(out.bytes, id.bytes, 16);

    tf_uuid_t nil = {{0}};
    tf_cursor_encode(key, "tenants", &nil, NOW, text);
    assert_int_equal(tf_cursor_decode(key, "tenants", text, NOW + 1000, &out, &why), 0);
    assert_memory_equal(out.bytes, nil.bytes, 16);
}

static void test_cursor__different_ids_give_different_cursors(void **state) {
    (void)state;
    uint8_t key[32];
    fill_key(key, 2);
    tf_uuid_t a = sample_id(), b = sample_id();
    b.bytes[15] ^= 1;
    char ta[TF_CURSOR_TEXT_LEN], tb[TF_CURSOR_TEXT_LEN];
    tf_cursor_encode(key, "tenants", &a, NOW, ta);
    tf_cursor_encode(key, "tenants", &b, NOW, tb);
    assert_string_not_equal(ta, tb);
}

static void test_cursor__every_altered_character_is_refused(void **state) {
    (void)state;
    uint8_t key[32];
    fill_key(key, 3);
    tf_uuid_t id = sample_id();
    char text[TF_CURSOR_TEXT_LEN];
    tf_cursor_encode(key, "tenants", &id, NOW, text);
    size_t len = strlen(text);
    for (size_t i = 0; i < len; i++) {
        char copy[TF_CURSOR_TEXT_LEN];
        memcpy(copy, text, sizeof(copy));
        /* Each position, changed to two different valid characters. */
        for (int k = 1; k <= 2; k++) {
            copy[i] = B64URL[(strchr(B64URL, text[i]) - B64URL + 17 * k) % 64];
            expect_refused(key, "tenants", copy, NOW);
        }
    }
}

static void test_cursor__another_scope_is_refused(void **state) {
    (void)state;
    uint8_t key[32];
    fill_key(key, 4);
    tf_uuid_t id = sample_id(), out;
    char text[TF_CURSOR_TEXT_LEN];
    tf_cursor_encode(key, "tenants", &id, NOW, text);
    expect_refused(key, "jobs:0193a1b2-0000-7000-8000-000000000000", text, NOW);
    expect_refused(key, "tenantS", text, NOW);
    expect_refused(key, "", text, NOW);
    const char *why = NULL;
    assert_int_equal(tf_cursor_decode(key, "tenants", text, NOW, &out, &why), 0);
}

static void test_cursor__another_key_is_refused(void **state) {
    (void)state;
    uint8_t key[32], other[32];
    fill_key(key, 5);
    fill_key(other, 6);
    tf_uuid_t id = sample_id();
    char text[TF_CURSOR_TEXT_LEN];
    tf_cursor_encode(key, "tenants", &id, NOW, text);
    expect_refused(other, "tenants", text, NOW);
}

static void test_cursor__expires_after_max_age(void **state) {
    (void)state;
    uint8_t key[32];
    fill_key(key, 7);
    tf_uuid_t id = sample_id(), out;
    char text[TF_CURSOR_TEXT_LEN];
    tf_cursor_encode(key, "tenants", &id, NOW, text);
    const char *why = NULL;
    assert_int_equal(tf_cursor_decode(key, "tenants", text, NOW + TF_CURSOR_MAX_AGE_MS, &out, &why),
                     0);
    expect_refused(key, "tenants", text, NOW + TF_CURSOR_MAX_AGE_MS + 1);
    expect_refused(key, "tenants", text, NOW + 10 * TF_CURSOR_MAX_AGE_MS);
    /* Issued well in the future of this node's clock: refused too. */
    expect_refused(key, "tenants", text, NOW - 3600 * 1000);
}

static void test_cursor__garbage_short_and_long_text_is_refused(void **state) {
    (void)state;
    uint8_t key[32];
    fill_key(key, 8);
    tf_uuid_t id = sample_id();
    char text[TF_CURSOR_TEXT_LEN];
    tf_cursor_encode(key, "tenants", &id, NOW, text);

    expect_refused(key, "tenants", "", NOW);
    expect_refused(key, "tenants", "x", NOW);
    expect_refused(key, "tenants", "not a cursor at all", NOW);
    expect_refused(key, "tenants", "0193a1b2-0000-7000-8000-000000000000", NOW);

    char buf[2048];
    /* One character short, one too many, and the same with padding. */
    memcpy(buf, text, strlen(text) - 1);
    buf[strlen(text) - 1] = '\0';
    expect_refused(key, "tenants", buf, NOW);
    snprintf(buf, sizeof(buf), "%sA", text);
    expect_refused(key, "tenants", buf, NOW);
    snprintf(buf, sizeof(buf), "%s==", text);
    expect_refused(key, "tenants", buf, NOW);
    /* Right length, characters outside base64url. */
    memset(buf, '!', 66);
    buf[66] = '\0';
    expect_refused(key, "tenants", buf, NOW);
    memcpy(buf, text, sizeof(text));
    buf[10] = '+'; /* standard base64, not base64url */
    expect_refused(key, "tenants", buf, NOW);
    buf[10] = ' ';
    expect_refused(key, "tenants", buf, NOW);
    /* Very long text. */
    memset(buf, 'A', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    expect_refused(key, "tenants", buf, NOW);
    /* All zero bytes, well-formed base64url: no valid MAC. */
    memset(buf, 'A', 66);
    buf[66] = '\0';
    expect_refused(key, "tenants", buf, NOW);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor__round_trip_gives_the_id_back),
        cmocka_unit_test(test_cursor__different_ids_give_different_cursors),
        cmocka_unit_test(test_cursor__every_altered_character_is_refused),
        cmocka_unit_test(test_cursor__another_scope_is_refused),
        cmocka_unit_test(test_cursor__another_key_is_refused),
        cmocka_unit_test(test_cursor__expires_after_max_age),
        cmocka_unit_test(test_cursor__garbage_short_and_long_text_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
