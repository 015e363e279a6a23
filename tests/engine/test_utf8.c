/*
 * test_utf8.c - tests for engine/utf8.c: every boundary of the 2, 3 and
 * 4-byte forms (RFC 3629), overlong forms, surrogates, code points above
 * U+10FFFF, sequences cut short by the end of the input, stray
 * continuation bytes, NUL, and the repair of all of these by
 * tf_utf8_sanitize().  The expected byte strings are written out here, and
 * the exhaustive checks compare against a reference decoder below that
 * works from the code point arithmetic, not from utf8.c's byte ranges.
 * Inputs that must not be over-read sit at the very end of a heap block of
 * their exact size, so AddressSanitizer (TF_SANITIZE=ON) catches any byte
 * read too many.  One cmocka process; no shared state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/utf8.h"

#define FFFD "\xEF\xBF\xBD"

/* A byte string with its length (it may hold NUL). */
typedef struct {
    const char *bytes;
    size_t len;
} bytes_t;

#define B(lit) ((bytes_t){(lit), sizeof(lit) - 1})

/* A heap block holding exactly `len` bytes of `bytes` (no terminator). */
static unsigned char *heap_copy(const void *bytes, size_t len) {
    unsigned char *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    memcpy(p, bytes, len);
    return p;
}

static size_t seq_len_of(const char *bytes, size_t len, size_t avail) {
    unsigned char *p = heap_copy(bytes, len);
    const size_t n = tf_utf8_seq_len(p, avail);
    free(p);
    return n;
}

/* Reference: the length of the well-formed sequence at `p` (1 for ASCII),
 * or 0, decoded through the code point value. */
static size_t ref_seq_len(const unsigned char *p, size_t avail) {
    if (avail == 0) {
        return 0;
    }
    uint32_t cp, min;
    size_t n;
    if (p[0] < 0x80) {
        return 1;
    } else if ((p[0] & 0xE0) == 0xC0) {
        n = 2, cp = p[0] & 0x1Fu, min = 0x80;
    } else if ((p[0] & 0xF0) == 0xE0) {
        n = 3, cp = p[0] & 0x0Fu, min = 0x800;
    } else if ((p[0] & 0xF8) == 0xF0) {
        n = 4, cp = p[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n > avail) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3Fu);
    }
    if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
        return 0;
    }
    return n;
}

static int ref_valid(const unsigned char *p, size_t len) {
    for (size_t i = 0; i < len;) {
        const size_t n = ref_seq_len(p + i, len - i);
        if (n == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}

/* Reference repair, as the contract says it: each byte that does not start
 * a well-formed sequence (and NUL when asked) becomes U+FFFD. */
static size_t ref_sanitize(const unsigned char *p, size_t len, int replace_nul, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        const size_t n = ref_seq_len(p + i, len - i);
        if (n == 0 || (p[i] == 0 && replace_nul)) {
            memcpy(out + o, FFFD, 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
    return o;
}

/* The form of `cp` in `n` bytes (n = 1..4), overlong when n is too large. */
static size_t encode_in(uint32_t cp, size_t n, unsigned char *out) {
    static const unsigned char lead[5] = {0, 0x00, 0xC0, 0xE0, 0xF0};
    for (size_t i = n - 1; i > 0; i--) {
        out[i] = (unsigned char)(0x80 | (cp & 0x3F));
        cp >>= 6;
    }
    out[0] = (unsigned char)(lead[n] | cp);
    return n;
}

/* Sanitizes `in` into a heap block of exactly the measured size plus the
 * terminator, checks both modes agree, and compares with `want`. */
static void assert_sanitizes_to(bytes_t in, int replace_nul, bytes_t want) {
    const size_t measured = tf_utf8_sanitize(in.bytes, in.len, replace_nul, NULL);
    assert_int_equal(measured, want.len);
    char *out = malloc(measured + 1);
    assert_non_null(out);
    memset(out, 0x55, measured + 1);
    const size_t written = tf_utf8_sanitize(in.bytes, in.len, replace_nul, out);
    assert_int_equal(written, measured);
    assert_memory_equal(out, want.bytes, want.len);
    assert_int_equal(out[written], '\0');
    assert_true(tf_utf8_valid(out, written));
    free(out);
}

static void test_utf8__ascii_is_valid_and_no_multibyte_lead(void **state) {
    (void)state;
    const char text[] = "Hello, TaskFlow! {\"a\":[1,2]}\t\r\n~\x01\x7F";
    assert_true(tf_utf8_valid(text, sizeof text - 1));
    assert_true(tf_utf8_valid("", 0));
    for (unsigned b = 0; b < 0x80; b++) {
        const unsigned char p[4] = {(unsigned char)b, 0x80, 0x80, 0x80};
        if (tf_utf8_seq_len(p, 4) != 0) {
            fail_msg("ASCII lead 0x%02X should give 0", b);
        }
        const char c = (char)b;
        if (!tf_utf8_valid(&c, 1)) {
            fail_msg("ASCII byte 0x%02X should be valid", b);
        }
    }
    assert_int_equal(tf_utf8_seq_len((const unsigned char *)"\xC2\x80", 0), 0);
}

static void test_utf8__every_form_boundary_is_well_formed(void **state) {
    (void)state;
    const struct {
        bytes_t seq;
        size_t len;
    } cases[] = {
        {B("\xC2\x80"), 2},         /* U+0080   first 2-byte */
        {B("\xDF\xBF"), 2},         /* U+07FF   last 2-byte */
        {B("\xE0\xA0\x80"), 3},     /* U+0800   first 3-byte */
        {B("\xED\x9F\xBF"), 3},     /* U+D7FF   just below the surrogates */
        {B("\xEE\x80\x80"), 3},     /* U+E000   just above the surrogates */
        {B("\xEF\xBF\xBD"), 3},     /* U+FFFD */
        {B("\xEF\xBF\xBF"), 3},     /* U+FFFF   last 3-byte */
        {B("\xF0\x90\x80\x80"), 4}, /* U+10000  first 4-byte */
        {B("\xF4\x8F\xBF\xBF"), 4}, /* U+10FFFF last code point */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bytes_t s = cases[i].seq;
        /* Exactly enough bytes, in a block of that size. */
        if (seq_len_of(s.bytes, s.len, s.len) != cases[i].len) {
            fail_msg("case %zu: seq_len with avail %zu", i, s.len);
        }
        /* More available than needed: still the sequence's own length. */
        char longer[8] = {0};
        memcpy(longer, s.bytes, s.len);
        longer[s.len] = 'x';
        if (tf_utf8_seq_len((const unsigned char *)longer, sizeof longer) != cases[i].len) {
            fail_msg("case %zu: seq_len with avail 8", i);
        }
        if (!tf_utf8_valid(s.bytes, s.len)) {
            fail_msg("case %zu should be valid", i);
        }
        assert_true(tf_utf8_valid(longer, s.len + 1));
    }
    /* All of them in one text. */
    const char all[] = "a\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBFz";
    assert_true(tf_utf8_valid(all, sizeof all - 1));
}

static void test_utf8__every_scalar_value_is_well_formed_in_its_shortest_form(void **state) {
    (void)state;
    unsigned char buf[4];
    for (uint32_t cp = 0x80; cp <= 0x10FFFF; cp++) {
        const size_t n = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        encode_in(cp, n, buf);
        const int surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        const size_t want = surrogate ? 0 : n;
        if (tf_utf8_seq_len(buf, n) != want || tf_utf8_valid((char *)buf, n) != !surrogate) {
            fail_msg("U+%04X in %zu bytes: expected %s", (unsigned)cp, n,
                     surrogate ? "refused" : "accepted");
        }
    }
}

static void test_utf8__overlong_forms_are_refused(void **state) {
    (void)state;
    const bytes_t named[] = {
        B("\xC0\x80"),         B("\xC0\xAF"),         B("\xC1\xBF"),
        B("\xE0\x80\x80"),     B("\xE0\x80\xAF"),     B("\xE0\x9F\xBF"),
        B("\xF0\x80\x80\x80"), B("\xF0\x80\x80\xAF"), B("\xF0\x8F\xBF\xBF"),
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (seq_len_of(named[i].bytes, named[i].len, named[i].len) != 0 ||
            tf_utf8_valid(named[i].bytes, named[i].len)) {
            fail_msg("overlong %zu should be refused", i);
        }
    }
    /* Every code point in every form longer than its shortest one. */
    unsigned char buf[4];
    for (uint32_t cp = 0; cp < 0x10000; cp++) {
        const size_t shortest = cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
        for (size_t n = shortest + 1; n <= 4; n++) {
            encode_in(cp, n, buf);
            if (tf_utf8_seq_len(buf, n) != 0 || tf_utf8_valid((char *)buf, n)) {
                fail_msg("U+%04X in %zu bytes (overlong) should be refused", (unsigned)cp, n);
            }
        }
    }
}

static void test_utf8__surrogates_are_refused(void **state) {
    (void)state;
    const bytes_t named[] = {
        B("\xED\xA0\x80"),             /* U+D800 */
        B("\xED\xAF\xBF"),             /* U+DBFF */
        B("\xED\xB0\x80"),             /* U+DC00 */
        B("\xED\xBF\xBF"),             /* U+DFFF */
        B("\xED\xA0\xBD\xED\xB2\xA9"), /* CESU-8 pair for U+1F4A9 */
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (seq_len_of(named[i].bytes, named[i].len, named[i].len) != 0 ||
            tf_utf8_valid(named[i].bytes, named[i].len)) {
            fail_msg("surrogate %zu should be refused", i);
        }
    }
}

static void test_utf8__above_u10ffff_and_bad_leads_are_refused(void **state) {
    (void)state;
    const bytes_t named[] = {
        B("\xF4\x90\x80\x80"),         /* U+110000 */
        B("\xF4\xBF\xBF\xBF"),         /* U+13FFFF */
        B("\xF5\x80\x80\x80"),         /* U+140000 */
        B("\xF6\x80\x80\x80"),         /* U+180000 */
        B("\xF7\xBF\xBF\xBF"),         /* U+1FFFFF */
        B("\xF8\x88\x80\x80\x80"),     /* old 5-byte form */
        B("\xFC\x84\x80\x80\x80\x80"), /* old 6-byte form */
        B("\xFE\xFF"),                 /* never in UTF-8 */
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (seq_len_of(named[i].bytes, named[i].len, named[i].len) != 0 ||
            tf_utf8_valid(named[i].bytes, named[i].len)) {
            fail_msg("case %zu should be refused", i);
        }
    }
    unsigned char buf[4];
    for (uint32_t cp = 0x110000; cp <= 0x1FFFFF; cp++) {
        encode_in(cp, 4, buf);
        if (tf_utf8_seq_len(buf, 4) != 0 || tf_utf8_valid((char *)buf, 4)) {
            fail_msg("U+%X should be refused", (unsigned)cp);
        }
    }
    for (unsigned b = 0xF5; b <= 0xFF; b++) {
        const unsigned char p[4] = {(unsigned char)b, 0x80, 0x80, 0x80};
        assert_int_equal(tf_utf8_seq_len(p, 4), 0);
        assert_false(tf_utf8_valid((const char *)p, 1));
        assert_false(tf_utf8_valid((const char *)p, 4));
    }
}

static void test_utf8__sequences_cut_short_by_avail_are_refused(void **state) {
    (void)state;
    const bytes_t whole[] = {
        B("\xC2\x80"),     B("\xDF\xBF"),         B("\xE0\xA0\x80"),     B("\xE2\x82\xAC"),
        B("\xEF\xBF\xBF"), B("\xF0\x90\x80\x80"), B("\xF0\x9F\x92\xA9"), B("\xF4\x8F\xBF\xBF"),
    };
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
        for (size_t avail = 1; avail < whole[i].len; avail++) {
            /* The bytes that follow exist but lie beyond avail. */
            if (tf_utf8_seq_len((const unsigned char *)whole[i].bytes, avail) != 0) {
                fail_msg("case %zu with avail %zu should give 0", i, avail);
            }
            /* Only `avail` bytes exist: ASan catches a read of the next. */
            if (seq_len_of(whole[i].bytes, avail, avail) != 0) {
                fail_msg("case %zu cut to %zu bytes should give 0", i, avail);
            }
            if (tf_utf8_valid(whole[i].bytes, avail)) {
                fail_msg("case %zu cut to %zu bytes should be invalid", i, avail);
            }
            char text[8] = "ab";
            memcpy(text + 2, whole[i].bytes, avail);
            assert_false(tf_utf8_valid(text, 2 + avail));
        }
    }
}

static void test_utf8__stray_and_missing_continuation_bytes_are_refused(void **state) {
    (void)state;
    for (unsigned b = 0x80; b <= 0xBF; b++) {
        const unsigned char p[4] = {(unsigned char)b, 0x80, 0x80, 0x80};
        assert_int_equal(tf_utf8_seq_len(p, 4), 0);
        const char text[3] = {'a', (char)b, 'b'};
        assert_false(tf_utf8_valid(text, 3));
    }
    const bytes_t bad[] = {
        B("\x80"),
        B("\xBF"),
        B("\xC2\x80\x80"),     /* one continuation too many */
        B("\xE2\x82\xAC\xAC"), /* one continuation too many */
        B("\xC2\x41"),         /* lead then ASCII */
        B("\xC2\xC2\x80"),     /* lead then lead */
        B("\xE2\x28\xA1"),     /* bad second byte */
        B("\xE2\x82\x28"),     /* bad third byte */
        B("\xF0\x90\x28\xBC"), /* bad third byte */
        B("\xF0\x90\x80\x28"), /* bad fourth byte */
        B("\xF0\x90\x80\xC0"), /* bad fourth byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (tf_utf8_valid(bad[i].bytes, bad[i].len)) {
            fail_msg("case %zu should be invalid", i);
        }
    }
    assert_int_equal(tf_utf8_seq_len((const unsigned char *)"\xE2\x28\xA1", 3), 0);
    assert_int_equal(tf_utf8_seq_len((const unsigned char *)"\xE2\x82\x28", 3), 0);
    assert_int_equal(tf_utf8_seq_len((const unsigned char *)"\xF0\x90\x80\x28", 4), 0);
}

static void test_utf8__nul_counts_as_a_character(void **state) {
    (void)state;
    assert_true(tf_utf8_valid("\0", 1));
    assert_true(tf_utf8_valid("a\0b", 3));
    assert_true(tf_utf8_valid("\xE2\x82\xAC\0\xC2\xA9\0", 7));
    /* But NUL is no continuation byte. */
    assert_false(tf_utf8_valid("\xC2\0", 2));
    assert_false(tf_utf8_valid("\xE2\0\xAC", 3));
    assert_false(tf_utf8_valid("\xE2\x82\0", 3));
    assert_false(tf_utf8_valid("\xF0\x90\x80\0", 4));
}

/* NUL-terminated text may be passed with avail 4: the block ends right
 * after the NUL, so ASan reports any read past it. */
static void test_utf8__seq_len_never_reads_past_a_nul(void **state) {
    (void)state;
    const struct {
        bytes_t text; /* including its NUL */
        size_t want;
    } cases[] = {
        {B("\0"), 0},
        {B("A\0"), 0},
        {B("\xC2\0"), 0},
        {B("\xDF\0"), 0},
        {B("\xE0\0"), 0},
        {B("\xE2\0"), 0},
        {B("\xE2\x82\0"), 0},
        {B("\xED\0"), 0},
        {B("\xF0\0"), 0},
        {B("\xF0\x90\0"), 0},
        {B("\xF0\x90\x80\0"), 0},
        {B("\xF4\x8F\xBF\0"), 0},
        {B("\xC2\xA9\0"), 2},
        {B("\xE2\x82\xAC\0"), 3},
        {B("\xF0\x9F\x92\xA9"), 4}, /* no NUL at all, exactly 4 bytes */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (seq_len_of(cases[i].text.bytes, cases[i].text.len, 4) != cases[i].want) {
            fail_msg("case %zu: expected %zu", i, cases[i].want);
        }
    }
}

static void test_utf8__valid_text_is_copied_unchanged(void **state) {
    (void)state;
    const bytes_t texts[] = {
        B(""),
        B("plain ASCII, nothing to do"),
        B("caf\xC3\xA9 \xE2\x82\xAC 5 \xF0\x9F\x92\xA9 \xE6\x97\xA5\xE6\x9C\xAC"),
        B("\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80"
          "\xF4\x8F\xBF\xBF"),
        B(FFFD FFFD), /* replacement characters are valid input */
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        assert_true(tf_utf8_valid(texts[i].bytes, texts[i].len));
        assert_sanitizes_to(texts[i], 0, texts[i]);
        assert_sanitizes_to(texts[i], 1, texts[i]);
    }
    /* NUL stays when replace_nul is 0. */
    const bytes_t with_nul = B("a\0b\0\xE2\x82\xAC");
    assert_sanitizes_to(with_nul, 0, with_nul);
}

static void test_utf8__sanitize_replaces_nul_only_when_asked(void **state) {
    (void)state;
    assert_sanitizes_to(B("\0"), 1, B(FFFD));
    assert_sanitizes_to(B("a\0b"), 1, B("a" FFFD "b"));
    assert_sanitizes_to(B("\0\0"), 1, B(FFFD FFFD));
    assert_sanitizes_to(B("a\0b"), 0, B("a\0b"));
}

static void test_utf8__sanitize_replaces_each_bad_byte(void **state) {
    (void)state;
    const struct {
        bytes_t in, want;
    } cases[] = {
        {B("\x80"), B(FFFD)},
        {B("a\x80z"), B("a" FFFD "z")},
        {B("\xFF\xFE"), B(FFFD FFFD)},
        {B("\xC0\x80"), B(FFFD FFFD)},                   /* overlong NUL */
        {B("\xE0\x80\x80"), B(FFFD FFFD FFFD)},          /* overlong */
        {B("\xF0\x80\x80\x80"), B(FFFD FFFD FFFD FFFD)}, /* overlong */
        {B("\xED\xA0\x80"), B(FFFD FFFD FFFD)},          /* surrogate */
        {B("\xED\xBF\xBF"), B(FFFD FFFD FFFD)},          /* surrogate */
        {B("\xF4\x90\x80\x80"), B(FFFD FFFD FFFD FFFD)}, /* U+110000 */
        {B("\xF5\x80\x80\x80"), B(FFFD FFFD FFFD FFFD)},
        {B("ab\xE2\x82"), B("ab" FFFD FFFD)},            /* cut at the end */
        {B("ab\xF0\x9F\x92"), B("ab" FFFD FFFD FFFD)},   /* cut at the end */
        {B("\xC2\x41"), B(FFFD "A")},                    /* lead then ASCII */
        {B("\xE2\x82\xAC\xAC"), B("\xE2\x82\xAC" FFFD)}, /* extra continuation */
        {B("\xC2\xC2\xA9"), B(FFFD "\xC2\xA9")},         /* resynchronises */
        {B("\xE2\x82\x41\xC3\xA9"), B(FFFD FFFD "A\xC3\xA9")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_sanitizes_to(cases[i].in, 0, cases[i].want);
        assert_sanitizes_to(cases[i].in, 1, cases[i].want);
    }
    /* Bad bytes and NUL together. */
    assert_sanitizes_to(B("\0\x80\0"), 1, B(FFFD FFFD FFFD));
    assert_sanitizes_to(B("\0\x80\0"), 0, B("\0" FFFD "\0"));
}

static void test_utf8__sanitize_reads_only_len_bytes(void **state) {
    (void)state;
    /* The input is cut mid-sequence and ends its heap block. */
    unsigned char *in = heap_copy("x\xF0\x9F\x92", 4);
    char out[16];
    const size_t n = tf_utf8_sanitize((const char *)in, 4, 0, out);
    assert_int_equal(n, 1 + 3 * 3);
    assert_memory_equal(out, "x" FFFD FFFD FFFD, n + 1);
    assert_int_equal(tf_utf8_sanitize((const char *)in, 4, 0, NULL), n);
    free(in);
    /* len 0 writes only the terminator. */
    char empty[2] = {'#', '#'};
    assert_int_equal(tf_utf8_sanitize("abc", 0, 1, empty), 0);
    assert_int_equal(empty[0], '\0');
    assert_int_equal(empty[1], '#');
    assert_int_equal(tf_utf8_sanitize("abc", 0, 1, NULL), 0);
}

/* Every 1, 2 and 3-byte input against the reference decoder; the
 * sanitizer on every 1 and 2-byte input. */
static void test_utf8__short_inputs_match_the_reference_exhaustively(void **state) {
    (void)state;
    unsigned char p[3];
    char out[3 * 3 + 1], want[3 * 3 + 1];
    for (unsigned a = 0; a < 256; a++) {
        p[0] = (unsigned char)a;
        if (tf_utf8_valid((char *)p, 1) != ref_valid(p, 1)) {
            fail_msg("valid(%02X)", a);
        }
        for (unsigned b = 0; b < 256; b++) {
            p[1] = (unsigned char)b;
            if (tf_utf8_valid((char *)p, 2) != ref_valid(p, 2)) {
                fail_msg("valid(%02X %02X)", a, b);
            }
            for (int nul = 0; nul <= 1; nul++) {
                const size_t n = tf_utf8_sanitize((char *)p, 2, nul, out);
                const size_t w = ref_sanitize(p, 2, nul, want);
                if (n != w || memcmp(out, want, w + 1) != 0 ||
                    tf_utf8_sanitize((char *)p, 2, nul, NULL) != n) {
                    fail_msg("sanitize(%02X %02X, %d)", a, b, nul);
                }
            }
            for (unsigned c = 0; c < 256; c++) {
                p[2] = (unsigned char)c;
                const size_t want_len = p[0] < 0x80 ? 0 : ref_seq_len(p, 3);
                if (tf_utf8_seq_len(p, 3) != want_len ||
                    tf_utf8_valid((char *)p, 3) != ref_valid(p, 3)) {
                    fail_msg("%02X %02X %02X", a, b, c);
                }
            }
        }
    }
}

/* 4-byte inputs with a multi-byte lead: every second byte, and the edge
 * values of the continuation range for the third and fourth. */
static void test_utf8__four_byte_inputs_match_the_reference(void **state) {
    (void)state;
    static const unsigned char edges[] = {0x00, 0x41, 0x7F, 0x80, 0x81, 0x8F, 0x90,
                                          0x9F, 0xA0, 0xBE, 0xBF, 0xC0, 0xF0, 0xFF};
    const size_t ne = sizeof edges;
    unsigned char p[4];
    char out[4 * 3 + 1], want[4 * 3 + 1];
    for (unsigned a = 0x80; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            for (size_t c = 0; c < ne; c++) {
                for (size_t d = 0; d < ne; d++) {
                    p[0] = (unsigned char)a, p[1] = (unsigned char)b;
                    p[2] = edges[c], p[3] = edges[d];
                    const size_t n = tf_utf8_sanitize((char *)p, 4, 1, out);
                    const size_t w = ref_sanitize(p, 4, 1, want);
                    if (tf_utf8_seq_len(p, 4) != ref_seq_len(p, 4) ||
                        tf_utf8_valid((char *)p, 4) != ref_valid(p, 4) || n != w ||
                        memcmp(out, want, w + 1) != 0) {
                        fail_msg("%02X %02X %02X %02X", a, b, edges[c], edges[d]);
                    }
                }
            }
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8__ascii_is_valid_and_no_multibyte_lead),
        cmocka_unit_test(test_utf8__every_form_boundary_is_well_formed),
        cmocka_unit_test(test_utf8__every_scalar_value_is_well_formed_in_its_shortest_form),
        cmocka_unit_test(test_utf8__overlong_forms_are_refused),
        cmocka_unit_test(test_utf8__surrogates_are_refused),
        cmocka_unit_test(test_utf8__above_u10ffff_and_bad_leads_are_refused),
        cmocka_unit_test(test_utf8__sequences_cut_short_by_avail_are_refused),
        cmocka_unit_test(test_utf8__stray_and_missing_continuation_bytes_are_refused),
        cmocka_unit_test(test_utf8__nul_counts_as_a_character),
        cmocka_unit_test(test_utf8__seq_len_never_reads_past_a_nul),
        cmocka_unit_test(test_utf8__valid_text_is_copied_unchanged),
        cmocka_unit_test(test_utf8__sanitize_replaces_nul_only_when_asked),
        cmocka_unit_test(test_utf8__sanitize_replaces_each_bad_byte),
        cmocka_unit_test(test_utf8__sanitize_reads_only_len_bytes),
        cmocka_unit_test(test_utf8__short_inputs_match_the_reference_exhaustively),
        cmocka_unit_test(test_utf8__four_byte_inputs_match_the_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
