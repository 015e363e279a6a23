/*
 * test_hex.c - tests for engine/hex.c: known encodings, every byte value,
 * round trips, either case on input, the exact bounds of `cap`, and every
 * kind of rejected input (NULL, empty, odd length, characters on either
 * side of the digit ranges).  Output buffers are heap blocks of the exact
 * size the contract allows, so AddressSanitizer (TF_SANITIZE=ON) catches
 * a byte written too many.  One cmocka process; no shared state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/error.h"
#include "engine/hex.h"

#define CANARY 0x5A

static void assert_encodes_as(const uint8_t *bytes, size_t len, const char *want) {
    char *out = malloc(2 * len + 1); /* exactly what the contract asks for */
    assert_non_null(out);
    memset(out, CANARY, 2 * len + 1);
    tf_hex_encode(bytes, len, out);
    assert_string_equal(out, want);
    free(out);
}

static void test_hex__encode_known_bytes_in_lower_case(void **state) {
    (void)state;
    const uint8_t bytes[] = {0x00, 0x01, 0x0F, 0x10, 0x7F, 0x80, 0xAB, 0xCD, 0xEF, 0xFF};
    assert_encodes_as(bytes, sizeof bytes, "00010f107f80abcdefff");
    const uint8_t one[] = {0x9A};
    assert_encodes_as(one, 1, "9a");
    const uint8_t sha_prefix[] = {0xE3, 0xB0, 0xC4, 0x42, 0x98, 0xFC, 0x1C, 0x14};
    assert_encodes_as(sha_prefix, sizeof sha_prefix, "e3b0c44298fc1c14");
}

static void test_hex__encode_every_byte_value(void **state) {
    (void)state;
    uint8_t bytes[256];
    char want[2 * 256 + 1];
    for (int i = 0; i < 256; i++) {
        bytes[i] = (uint8_t)i;
        snprintf(want + 2 * i, 3, "%02x", (unsigned)i);
    }
    assert_encodes_as(bytes, sizeof bytes, want);
}

static void test_hex__encode_of_zero_bytes_writes_only_the_terminator(void **state) {
    (void)state;
    const uint8_t bytes[1] = {0xAB};
    char out[4];
    memset(out, CANARY, sizeof out);
    tf_hex_encode(bytes, 0, out);
    assert_int_equal(out[0], '\0');
    assert_int_equal(out[1], CANARY);
    assert_encodes_as(bytes, 0, "");
}

static void test_hex__encode_writes_exactly_two_digits_per_byte_and_a_nul(void **state) {
    (void)state;
    const uint8_t bytes[3] = {0x01, 0x02, 0x03};
    char out[10];
    memset(out, CANARY, sizeof out);
    tf_hex_encode(bytes, 3, out);
    assert_memory_equal(out, "010203", 7);
    assert_int_equal(out[7], CANARY);
}

static void test_hex__round_trips(void **state) {
    (void)state;
    uint32_t x = 0x12345678u; /* xorshift32: deterministic bytes */
    for (size_t len = 1; len <= 80; len++) {
        uint8_t bytes[80];
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            bytes[i] = (uint8_t)x;
        }
        char text[2 * 80 + 1];
        tf_hex_encode(bytes, len, text);
        assert_int_equal(strlen(text), 2 * len);
        uint8_t *back = malloc(len); /* cap == len: exactly enough */
        assert_non_null(back);
        assert_int_equal(tf_hex_decode(text, back, len), (int)len);
        assert_memory_equal(back, bytes, len);
        free(back);
    }
    /* And every byte value. */
    uint8_t all[256], back[256];
    char text[2 * 256 + 1];
    for (int i = 0; i < 256; i++) {
        all[i] = (uint8_t)i;
    }
    tf_hex_encode(all, sizeof all, text);
    assert_int_equal(tf_hex_decode(text, back, sizeof back), 256);
    assert_memory_equal(back, all, sizeof all);
}

static void test_hex__decode_takes_either_case(void **state) {
    (void)state;
    const uint8_t want[] = {0xDE, 0xAD, 0xBE, 0xEF, 0xAB, 0xCD, 0xEF, 0x09};
    const char *const texts[] = {"deadbeefabcdef09", "DEADBEEFABCDEF09", "DeAdBeEfaBcDeF09",
                                 "deADBEefABcdEF09"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        uint8_t out[8];
        memset(out, CANARY, sizeof out);
        assert_int_equal(tf_hex_decode(texts[i], out, sizeof out), 8);
        assert_memory_equal(out, want, sizeof want);
    }
    /* Each digit on its own, in both cases. */
    const char digits[] = "0123456789abcdef";
    const char upper[] = "0123456789ABCDEF";
    for (int hi = 0; hi < 16; hi++) {
        for (int lo = 0; lo < 16; lo++) {
            const char a[3] = {digits[hi], digits[lo], '\0'};
            const char b[3] = {upper[hi], upper[lo], '\0'};
            uint8_t x = 0, y = 0;
            assert_int_equal(tf_hex_decode(a, &x, 1), 1);
            assert_int_equal(tf_hex_decode(b, &y, 1), 1);
            assert_int_equal(x, hi * 16 + lo);
            assert_int_equal(y, hi * 16 + lo);
        }
    }
}

static void test_hex__decode_refuses_null_empty_and_odd_length(void **state) {
    (void)state;
    uint8_t out[8];
    assert_int_equal(tf_hex_decode(NULL, out, sizeof out), TF_EINVAL);
    assert_int_equal(tf_hex_decode("", out, sizeof out), TF_EINVAL);
    assert_int_equal(tf_hex_decode("a", out, sizeof out), TF_EINVAL);
    assert_int_equal(tf_hex_decode("abc", out, sizeof out), TF_EINVAL);
    assert_int_equal(tf_hex_decode("0123456", out, sizeof out), TF_EINVAL);
    assert_int_equal(tf_hex_decode("012345678", out, sizeof out), TF_EINVAL);
}

static void test_hex__decode_refuses_characters_that_are_not_hex_digits(void **state) {
    (void)state;
    /* The neighbours of each digit range, in either position; other
     * look-alikes; non-ASCII (é in UTF-8) and high bytes (\200 is 0x80);
     * a bad pair after good ones and before them. */
    const char *const bad[] = {
        "/0",    "0/",    ":0",       "0:",       "@0",     "0@",         "G0", "0G",
        "`0",    "0`",    "g0",       "0g",       "0x",     "0X",         "x0", " 0",
        "0 ",    "-1",    "+1",       "zz",       "\t0",    "0\n",        "..", "\xC3\xA9",
        "0\xFF", "\2000", "0011223g", "g0112233", "00 111", "00112233zz",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t out[8];
        if (tf_hex_decode(bad[i], out, sizeof out) != TF_EINVAL) {
            fail_msg("\"%s\" should be refused", bad[i]);
        }
    }
}

static void test_hex__decode_fills_exactly_cap_bytes(void **state) {
    (void)state;
    uint8_t *out = malloc(4); /* ASan: no room for a fifth byte */
    assert_non_null(out);
    assert_int_equal(tf_hex_decode("01020304", out, 4), 4);
    assert_memory_equal(out, "\x01\x02\x03\x04", 4);
    free(out);

    uint8_t *one = malloc(1);
    assert_non_null(one);
    assert_int_equal(tf_hex_decode("fF", one, 1), 1);
    assert_int_equal(one[0], 0xFF);
    free(one);

    /* Shorter than cap: writes only what it decodes. */
    uint8_t room[8];
    memset(room, CANARY, sizeof room);
    assert_int_equal(tf_hex_decode("a1b2", room, sizeof room), 2);
    assert_int_equal(room[0], 0xA1);
    assert_int_equal(room[1], 0xB2);
    for (size_t i = 2; i < sizeof room; i++) {
        assert_int_equal(room[i], CANARY);
    }
}

static void test_hex__decode_refuses_more_than_cap_without_overflowing(void **state) {
    (void)state;
    uint8_t *out = malloc(3); /* ASan: a write of byte 4 would be caught */
    assert_non_null(out);
    assert_int_equal(tf_hex_decode("01020304", out, 3), TF_EINVAL);
    assert_int_equal(tf_hex_decode("0102030405060708", out, 3), TF_EINVAL);
    free(out);

    uint8_t guard[2] = {CANARY, CANARY};
    assert_int_equal(tf_hex_decode("00", guard, 0), TF_EINVAL);
    assert_int_equal(guard[0], CANARY);
    assert_int_equal(tf_hex_decode("0011", guard, 1), TF_EINVAL);
    assert_int_equal(guard[1], CANARY);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex__encode_known_bytes_in_lower_case),
        cmocka_unit_test(test_hex__encode_every_byte_value),
        cmocka_unit_test(test_hex__encode_of_zero_bytes_writes_only_the_terminator),
        cmocka_unit_test(test_hex__encode_writes_exactly_two_digits_per_byte_and_a_nul),
        cmocka_unit_test(test_hex__round_trips),
        cmocka_unit_test(test_hex__decode_takes_either_case),
        cmocka_unit_test(test_hex__decode_refuses_null_empty_and_odd_length),
        cmocka_unit_test(test_hex__decode_refuses_characters_that_are_not_hex_digits),
        cmocka_unit_test(test_hex__decode_fills_exactly_cap_bytes),
        cmocka_unit_test(test_hex__decode_refuses_more_than_cap_without_overflowing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
