/*
 * test_log.c - tests for adapters/log/log.c.
 *
 * Each test points a logger at a pipe, reads the lines back and checks them
 * with the small strict JSON parser below (objects, arrays, strings with
 * escapes and UTF-8 validation, numbers, literals), which also decodes the
 * top-level members so values can be compared with what was logged.
 * Invariant under test: every line is one valid JSON object of at most
 * 16 KiB, whatever bytes the caller passed.  Single-threaded except the
 * concurrency test, which runs four writers and one reader thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapters/log/log.h"
#include "engine/error.h"
#include "engine/timefmt.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 16384

/* ---- a minimal strict JSON parser --------------------------------------- */

typedef struct {
    char *key;    /* decoded */
    char *str;    /* decoded value when it is a string, else NULL */
    char raw[64]; /* the value's text, cut to 63 bytes */
} member_t;

typedef struct {
    member_t *members;
    size_t n;
} object_t;

typedef struct {
    const char *p;
    const char *end;
} cursor_t;

static int parse_value(cursor_t *c, int depth);

static void skip_ws(cursor_t *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
    }
}

static int hex4(const char *p, unsigned *out) {
    char digits[5] = {0};
    for (int i = 0; i < 4; i++) {
        if (!isxdigit((unsigned char)p[i])) {
            return -1;
        }
        digits[i] = p[i];
    }
    *out = (unsigned)strtoul(digits, NULL, 16);
    return 0;
}

static size_t put_utf8(char *out, unsigned cp) {
    static const unsigned char lead[] = {0, 0, 0xC0, 0xE0, 0xF0};
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (size_t i = n - 1; i > 0; i--, cp >>= 6) {
        out[i] = (char)(0x80 | (cp & 0x3F));
    }
    out[0] = (char)(lead[n] | cp);
    return n;
}

/* Length of a well-formed UTF-8 sequence at p (lead >= 0x80), 0 if bad. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned char b = p[0];
    size_t n = b >= 0xC2 && b <= 0xDF   ? 2
               : b >= 0xE0 && b <= 0xEF ? 3
               : b >= 0xF0 && b <= 0xF4 ? 4
                                        : 0;
    if (n == 0 || (size_t)(end - p) < n) {
        return 0;
    }
    unsigned char lo = b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = b == 0xED ? 0x9F : b == 0xF4 ? 0x8F : 0xBF;
    if (p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }
    return n;
}

/* Parses one escape after the backslash; appends the decoded bytes. */
static int parse_escape(cursor_t *c, char *out, size_t *o) {
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = c->p < c->end ? strchr(from, *c->p) : NULL;
    if (hit != NULL && *c->p != '\0') {
        out[(*o)++] = to[hit - from];
        c->p++;
        return 0;
    }
    unsigned cp, lo;
    if (c->end - c->p < 5 || *c->p != 'u' || hex4(c->p + 1, &cp) != 0) {
        return -1;
    }
    c->p += 5;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return -1;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' || hex4(c->p + 2, &lo) != 0 ||
            lo < 0xDC00 || lo > 0xDFFF) {
            return -1;
        }
        c->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    *o += put_utf8(out + *o, cp);
    return 0;
}

/* Parses a string; when `decoded` is set, stores a malloc'd decoding. */
static int parse_string(cursor_t *c, char **decoded) {
    if (c->p >= c->end || *c->p != '"') {
        return -1;
    }
    c->p++;
    char *out = malloc((size_t)(c->end - c->p) + 1);
    size_t o = 0;
    while (c->p < c->end && *c->p != '"') {
        unsigned char b = (unsigned char)*c->p;
        size_t n =
            b < 0x80 ? 1 : utf8_len((const unsigned char *)c->p, (const unsigned char *)c->end);
        if (b < 0x20 || n == 0) {
            goto fail;
        }
        if (b == '\\') {
            c->p++;
            if (parse_escape(c, out, &o) != 0) {
                goto fail;
            }
            continue;
        }
        memcpy(out + o, c->p, n);
        o += n;
        c->p += n;
    }
    if (c->p >= c->end) {
        goto fail;
    }
    c->p++;
    out[o] = '\0';
    if (decoded != NULL) {
        *decoded = out;
    } else {
        free(out);
    }
    return 0;
fail:
    free(out);
    return -1;
}

static size_t skip_digits(cursor_t *c) {
    const char *start = c->p;
    while (c->p < c->end && isdigit((unsigned char)*c->p)) {
        c->p++;
    }
    return (size_t)(c->p - start);
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int parse_number(cursor_t *c) {
    c->p += c->p < c->end && *c->p == '-';
    if (c->p < c->end && *c->p == '0') {
        c->p++;
    } else if (skip_digits(c) == 0) {
        return -1;
    }
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (skip_digits(c) == 0) {
            return -1;
        }
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        c->p += c->p < c->end && (*c->p == '+' || *c->p == '-');
        if (skip_digits(c) == 0) {
            return -1;
        }
    }
    return 0;
}

/* Parses '{' ... '}' or '[' ... ']'; members of an object go to `obj`. */
static int parse_container(cursor_t *c, int depth, object_t *obj) {
    char close = *c->p == '{' ? '}' : ']';
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return 0;
    }
    for (;;) {
        skip_ws(c);
        if (close == '}') {
            char *key = NULL;
            if (parse_string(c, &key) != 0) {
                return -1;
            }
            skip_ws(c);
            if (c->p >= c->end || *c->p != ':') {
                free(key);
                return -1;
            }
            c->p++;
            skip_ws(c);
            if (obj != NULL) {
                member_t *m = &obj->members[obj->n++];
                m->key = key;
                m->str = NULL;
                snprintf(m->raw, sizeof(m->raw), "%.*s",
                         (int)(c->end - c->p < 63 ? c->end - c->p : 63), c->p);
                if (*c->p == '"') {
                    cursor_t probe = *c;
                    parse_string(&probe, &m->str);
                }
            } else {
                free(key);
            }
        }
        if (parse_value(c, depth + 1) != 0) {
            return -1;
        }
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 0;
        }
        return -1;
    }
}

static int parse_value(cursor_t *c, int depth) {
    static const char *const literals[] = {"true", "false", "null"};
    if (depth > 32 || c->p >= c->end) {
        return -1;
    }
    if (*c->p == '{' || *c->p == '[') {
        return parse_container(c, depth, NULL);
    }
    if (*c->p == '"') {
        return parse_string(c, NULL);
    }
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(literals[i]);
        if ((size_t)(c->end - c->p) >= n && memcmp(c->p, literals[i], n) == 0) {
            c->p += n;
            return 0;
        }
    }
    return parse_number(c);
}

static void object_free(object_t *obj) {
    for (size_t i = 0; i < obj->n; i++) {
        free(obj->members[i].key);
        free(obj->members[i].str);
    }
    free(obj->members);
    obj->members = NULL;
    obj->n = 0;
}

/* Parses `line` (without its '\n') as exactly one JSON object. */
static int parse_line(const char *line, object_t *obj) {
    size_t len = strlen(line);
    cursor_t c = {line, line + len};
    obj->members = calloc(len / 4 + 4, sizeof(member_t));
    obj->n = 0;
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{' || parse_container(&c, 0, obj) != 0) {
        return -1;
    }
    skip_ws(&c);
    return c.p == c.end ? 0 : -1;
}

static const member_t *member(const object_t *obj, const char *key) {
    for (size_t i = 0; i < obj->n; i++) {
        if (strcmp(obj->members[i].key, key) == 0) {
            return &obj->members[i];
        }
    }
    return NULL;
}

/* The decoded string value of `key`, failing the test when it is absent or
 * not a string. */
static const char *str_of(const object_t *obj, const char *key) {
    const member_t *m = member(obj, key);
    assert_non_null(m);
    assert_non_null(m->str);
    return m->str;
}

/* Checks that the value text of `key` starts with `want` (< 64 bytes). */
static void assert_raw(const object_t *obj, const char *key, const char *want) {
    const member_t *m = member(obj, key);
    assert_non_null(m);
    if (strncmp(m->raw, want, strlen(want)) != 0) {
        fail_msg("%s: got %s, want %s...", key, m->raw, want);
    }
}

/* ---- reading lines back --------------------------------------------------- */

typedef struct {
    int fd;
    char *buf;
    size_t len;
    size_t cap;
} reader_t;

/* The next line without its '\n' (caller frees), or NULL at end of input.
 * A line must end in '\n'. */
static char *next_line(reader_t *r) {
    for (;;) {
        char *nl = r->len > 0 ? memchr(r->buf, '\n', r->len) : NULL;
        if (nl != NULL) {
            size_t n = (size_t)(nl - r->buf);
            char *line = malloc(n + 1);
            memcpy(line, r->buf, n);
            line[n] = '\0';
            memmove(r->buf, nl + 1, r->len - n - 1);
            r->len -= n + 1;
            return line;
        }
        if (r->cap - r->len < 65536) {
            r->cap = r->cap * 2 + 65536;
            r->buf = realloc(r->buf, r->cap);
        }
        ssize_t got = read(r->fd, r->buf + r->len, r->cap - r->len);
        if (got <= 0) {
            assert_int_equal(r->len, 0); /* no partial line at the end */
            return NULL;
        }
        r->len += (size_t)got;
    }
}

typedef struct {
    int fds[2];
    tf_log_t *log;
    reader_t reader;
    object_t obj;
    char *line;
} fixture_t;

static int setup_at(void **state, tf_log_level_t level) {
    fixture_t *f = calloc(1, sizeof(*f));
    assert_int_equal(pipe(f->fds), 0);
    assert_int_equal(tf_log_create(f->fds[1], level, &f->log), 0);
    f->reader.fd = f->fds[0];
    *state = f;
    return 0;
}

static int setup(void **state) {
    return setup_at(state, TF_LOG_DEBUG);
}

static int setup_warn(void **state) {
    return setup_at(state, TF_LOG_WARN);
}

static int teardown(void **state) {
    fixture_t *f = *state;
    tf_log_destroy(f->log);
    close(f->fds[1]);
    close(f->fds[0]);
    object_free(&f->obj);
    free(f->line);
    free(f->reader.buf);
    free(f);
    return 0;
}

/* Reads the next line into f->line / f->obj and checks it is valid JSON of
 * at most 16 KiB. */
static void read_back(fixture_t *f) {
    object_free(&f->obj);
    free(f->line);
    f->line = next_line(&f->reader);
    assert_non_null(f->line);
    assert_true(strlen(f->line) + 1 <= LINE_MAX_BYTES);
    if (parse_line(f->line, &f->obj) != 0) {
        fail_msg("not valid JSON: %.200s", f->line);
    }
}

/* ---- tests ---------------------------------------------------------------- */

static void test_log__line_has_ts_level_msg_and_fields(void **state) {
    fixture_t *f = *state;
    struct timespec now;
    int64_t ms;

    tf_log_info(f->log, "job claimed", TF_LF_STR("job_id", "j-1"), TF_LF_INT("attempt", 3));
    read_back(f);
    assert_int_equal(f->obj.n, 5);
    assert_string_equal(f->obj.members[0].key, "ts");
    assert_string_equal(f->obj.members[1].key, "level");
    assert_string_equal(f->obj.members[2].key, "msg");
    assert_string_equal(str_of(&f->obj, "level"), "info");
    assert_string_equal(str_of(&f->obj, "msg"), "job claimed");
    assert_string_equal(str_of(&f->obj, "job_id"), "j-1");
    assert_raw(&f->obj, "attempt", "3}");
    assert_null(member(&f->obj, "truncated"));

    const char *ts = str_of(&f->obj, "ts");
    assert_int_equal(strlen(ts), TF_TIME_STR_LEN);
    assert_int_equal(ts[TF_TIME_STR_LEN - 1], 'Z');
    assert_int_equal(tf_time_parse(ts, strlen(ts), &ms), 0);
    clock_gettime(CLOCK_REALTIME, &now);
    assert_true(llabs((long long)now.tv_sec * 1000 - ms) < 60000);
}

static void test_log__each_level_has_its_name(void **state) {
    fixture_t *f = *state;
    static const char *const names[] = {"debug", "info", "warn", "error"};

    for (int lv = TF_LOG_DEBUG; lv <= TF_LOG_ERROR; lv++) {
        tf_log_emit(f->log, (tf_log_level_t)lv, "x", NULL, 0);
        read_back(f);
        assert_string_equal(str_of(&f->obj, "level"), names[lv]);
        assert_int_equal(f->obj.n, 3);
    }
}

static void test_log__escapes_quotes_backslash_and_control_chars(void **state) {
    fixture_t *f = *state;
    const char *nasty = "say \"hi\"\\ \n\t\r\b\f \x01\x1f\x7f end";

    tf_log_warn(f->log, nasty, TF_LF_STR("k\"ey\n", nasty));
    read_back(f);
    assert_non_null(strstr(f->line, "say \\\"hi\\\"\\\\ \\n\\t\\r\\b\\f \\u0001\\u001f\x7f end"));
    assert_string_equal(str_of(&f->obj, "msg"), nasty);
    assert_string_equal(str_of(&f->obj, "k\"ey\n"), nasty);
}

static void test_log__invalid_utf8_is_replaced(void **state) {
    fixture_t *f = *state;
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"a\xff"
         "b",
         "a\xEF\xBF\xBD"
         "b"},                                                                    /* never valid */
        {"\xc0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD"},                                 /* overlong NUL */
        {"\xed\xa0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},                 /* surrogate */
        {"\xf4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* > U+10FFFF */
        {"x\xe2\x82", "x\xEF\xBF\xBD\xEF\xBF\xBD"}, /* cut short at the end */
        {"\xe2\x82y", "\xEF\xBF\xBD\xEF\xBF\xBDy"}, /* cut short mid-string */
        {"\x80", "\xEF\xBF\xBD"},                   /* lone continuation */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tf_log_error(f->log, cases[i].in, TF_LF_STR(cases[i].in, cases[i].in));
        read_back(f);
        assert_non_null(strstr(f->line, "\\ufffd"));
        assert_string_equal(str_of(&f->obj, "msg"), cases[i].want);
        assert_string_equal(f->obj.members[3].key, cases[i].want);
        assert_string_equal(f->obj.members[3].str, cases[i].want);
    }
}

static void test_log__valid_utf8_passes_through(void **state) {
    fixture_t *f = *state;
    const char *text = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9D\x84\x9E \xEF\xBF\xBF \xF4\x8F\xBF\xBF";

    tf_log_info(f->log, text, TF_LF_STR("s", text));
    read_back(f);
    assert_non_null(strstr(f->line, text));
    assert_null(strstr(f->line, "\\u"));
    assert_string_equal(str_of(&f->obj, "msg"), text);
}

static void test_log__secret_keys_are_redacted(void **state) {
    fixture_t *f = *state;

    tf_log_info(f->log, "login", TF_LF_STR("token", "t0p"),
                TF_LF_STR("Authorization", "Bearer abc"), TF_LF_STR("db_PASSWORD", "hunter2"),
                TF_LF_STR("client_secret", "s3"), TF_LF_STR("X-Api-Key", "k1"),
                TF_LF_STR("api_key", "k2"), TF_LF_INT("refresh_token", 12345),
                TF_LF_STR("password", NULL), TF_LF_STR("user", "alice"));
    read_back(f);
    static const char *const secret_keys[] = {"token",         "Authorization", "db_PASSWORD",
                                              "client_secret", "X-Api-Key",     "api_key",
                                              "refresh_token", "password"};
    for (size_t i = 0; i < sizeof(secret_keys) / sizeof(secret_keys[0]); i++) {
        assert_string_equal(str_of(&f->obj, secret_keys[i]), "[redacted]");
    }
    assert_string_equal(str_of(&f->obj, "user"), "alice");
    assert_null(strstr(f->line, "t0p"));
    assert_null(strstr(f->line, "Bearer"));
    assert_null(strstr(f->line, "hunter2"));
    assert_null(strstr(f->line, "12345"));
}

static void test_log__scalars_and_non_finite_doubles(void **state) {
    fixture_t *f = *state;

    tf_log_info(f->log, NULL, TF_LF_INT("min", INT64_MIN), TF_LF_INT("max", INT64_MAX),
                TF_LF_DBL("tenth", 0.1), TF_LF_DBL("big", 1e300), TF_LF_DBL("nan", NAN),
                TF_LF_DBL("inf", INFINITY), TF_LF_DBL("ninf", -INFINITY), TF_LF_BOOL("yes", 7),
                TF_LF_BOOL("no", 0), TF_LF_STR("nil", NULL), TF_LF_STR(NULL, "v"));
    read_back(f);
    assert_raw(&f->obj, "msg", "null,\"min\":-9223372036854775808,\"max\":92233720");
    assert_raw(&f->obj, "max", "9223372036854775807,\"tenth\":0.1,\"big\":1e+300,\"nan\"");
    assert_raw(&f->obj, "nan", "null,\"inf\":null,\"ninf\":null,\"yes\":true,\"no\":fa");
    assert_raw(&f->obj, "no", "false,\"nil\":null,\"\":\"v\"}");
    assert_string_equal(str_of(&f->obj, ""), "v");
}

static void test_log__level_filtering(void **state) {
    fixture_t *f = *state;

    assert_false(tf_log_enabled(f->log, TF_LOG_DEBUG));
    assert_false(tf_log_enabled(f->log, TF_LOG_INFO));
    assert_true(tf_log_enabled(f->log, TF_LOG_WARN));
    assert_true(tf_log_enabled(f->log, TF_LOG_ERROR));
    assert_false(tf_log_enabled(NULL, TF_LOG_ERROR));

    tf_log_debug(f->log, "dropped debug", TF_LF_INT("n", 1));
    tf_log_info(f->log, "dropped info", TF_LF_INT("n", 2));
    tf_log_warn(f->log, "kept warn", TF_LF_INT("n", 3));
    tf_log_error(f->log, "kept error", TF_LF_INT("n", 4));
    read_back(f);
    assert_string_equal(str_of(&f->obj, "msg"), "kept warn");
    read_back(f);
    assert_string_equal(str_of(&f->obj, "msg"), "kept error");
}

static void test_log__level_parse(void **state) {
    static const struct {
        const char *text;
        tf_log_level_t level;
    } good[] = {{"debug", TF_LOG_DEBUG}, {"info", TF_LOG_INFO}, {"warn", TF_LOG_WARN},
                {"error", TF_LOG_ERROR}, {"INFO", TF_LOG_INFO}, {"Warn", TF_LOG_WARN}};
    static const char *const bad[] = {"",    "inf",   "infos", "warning",
                                      "err", "trace", " info", "info "};
    tf_log_level_t level = TF_LOG_DEBUG;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(tf_log_level_parse(good[i].text, &level), 0);
        assert_int_equal(level, good[i].level);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        level = TF_LOG_ERROR;
        assert_int_equal(tf_log_level_parse(bad[i], &level), TF_EINVAL);
        assert_int_equal(level, TF_LOG_ERROR);
    }
    assert_int_equal(tf_log_level_parse(NULL, &level), TF_EINVAL);
    assert_int_equal(tf_log_level_parse("info", NULL), TF_EINVAL);
}

static char *repeat(const char *unit, size_t times) {
    size_t n = strlen(unit);
    char *s = malloc(n * times + 1);
    for (size_t i = 0; i < times; i++) {
        memcpy(s + i * n, unit, n);
    }
    s[n * times] = '\0';
    return s;
}

static void test_log__long_values_are_truncated_fairly(void **state) {
    fixture_t *f = *state;
    char *big_msg = repeat("m", 100000);
    char *big_field = repeat("f", 50000);

    tf_log_info(f->log, big_msg, TF_LF_STR("payload", big_field), TF_LF_STR("small", "kept whole"),
                TF_LF_INT("n", 42));
    read_back(f);
    assert_raw(&f->obj, "truncated", "true}");
    assert_string_equal(str_of(&f->obj, "small"), "kept whole");
    assert_raw(&f->obj, "n", "42,\"truncated\":true}");
    const char *msg = str_of(&f->obj, "msg");
    const char *payload = str_of(&f->obj, "payload");
    assert_true(strlen(msg) > 7000);
    assert_int_equal(strlen(msg), strlen(payload)); /* the cap is shared */
    assert_memory_equal(msg, big_msg, strlen(msg));
    assert_memory_equal(payload, big_field, strlen(payload));
    assert_true(strlen(f->line) + 1 > LINE_MAX_BYTES - 64); /* the space is used */
    free(big_msg);
    free(big_field);
}

static void test_log__truncation_cuts_between_characters(void **state) {
    fixture_t *f = *state;
    static const char *const units[] = {"\xC3\xA9", "\xF0\x9D\x84\x9E", "\x01", "\"", "\xff",
                                        "ab\n"};

    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        for (size_t extra = 0; extra < 8; extra++) {
            char *text = repeat(units[u], 20000 + extra);
            tf_log_info(f->log, text, TF_LF_STR("other", text));
            read_back(f);
            assert_raw(&f->obj, "truncated", "true}");
            free(text);
        }
    }
}

static void test_log__line_exactly_at_the_limit_is_not_truncated(void **state) {
    fixture_t *f = *state;
    char *probe_text = repeat("x", 100);

    tf_log_emit(f->log, TF_LOG_INFO, probe_text, NULL, 0);
    read_back(f);
    size_t overhead = strlen(f->line) + 1 - 100;
    char *text = repeat("x", LINE_MAX_BYTES - overhead);
    tf_log_emit(f->log, TF_LOG_INFO, text, NULL, 0);
    read_back(f);
    assert_int_equal(strlen(f->line) + 1, LINE_MAX_BYTES);
    assert_null(member(&f->obj, "truncated"));
    assert_string_equal(str_of(&f->obj, "msg"), text);
    free(text);
    text = repeat("x", LINE_MAX_BYTES - overhead + 1);
    tf_log_emit(f->log, TF_LOG_INFO, text, NULL, 0);
    read_back(f);
    assert_raw(&f->obj, "truncated", "true}");
    free(text);
    free(probe_text);
}

static void test_log__too_many_fields_are_dropped(void **state) {
    fixture_t *f = *state;
    enum { N = 3000 };
    tf_log_field_t *fields = calloc(N, sizeof(*fields));
    char(*keys)[16] = calloc(N, sizeof(*keys));
    char *long_key = repeat("k", 1000);

    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "field_%zu", i);
        fields[i] = i % 2 ? TF_LF_INT(keys[i], i) : TF_LF_STR(keys[i], "value");
    }
    fields[0].key = long_key;
    tf_log_emit(f->log, TF_LOG_INFO, "many", fields, N);
    read_back(f);
    assert_raw(&f->obj, "truncated", "true}");
    assert_true(f->obj.n > 100 && f->obj.n < N);
    assert_int_equal(strlen(f->obj.members[3].key), 128); /* a long key is cut */
    assert_memory_equal(f->obj.members[3].key, long_key, 128);
    assert_string_equal(f->obj.members[3].str, "value");
    assert_raw(&f->obj, "field_1", "1,\"field_2\":\"value\",\"field_3\":3,\"field_4\":\"");
    assert_string_equal(str_of(&f->obj, "msg"), "many");
    free(long_key);
    free(keys);
    free(fields);
}

/* Random bytes of random lengths, keys included, always give a valid line
 * of at most 16 KiB. */
static void test_log__random_bytes_always_give_valid_lines(void **state) {
    fixture_t *f = *state;
    uint64_t seed = 0x9E3779B97F4A7C15u;
    enum { NSTR = 6 };
    char *strs[NSTR];

    for (int round = 0; round < 300; round++) {
        for (int i = 0; i < NSTR; i++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            size_t len = (size_t)(seed >> 33) % (i == 0 ? 40000 : 9000);
            strs[i] = malloc(len + 1);
            for (size_t j = 0; j < len; j++) {
                seed = seed * 6364136223846793005u + 1442695040888963407u;
                strs[i][j] = (char)((seed >> 40) % 255 + 1);
            }
            strs[i][len] = '\0';
        }
        tf_log_info(f->log, strs[0], TF_LF_STR(strs[1], strs[2]), TF_LF_STR("b", strs[3]),
                    TF_LF_INT(strs[4], round), TF_LF_STR("d", strs[5]));
        read_back(f); /* checks validity and length */
        for (int i = 0; i < NSTR; i++) {
            free(strs[i]);
        }
    }
}

static void test_log__bad_arguments_and_null_logger(void **state) {
    tf_log_t *log = NULL;

    (void)state;
    assert_int_equal(tf_log_create(-1, TF_LOG_INFO, &log), TF_EINVAL);
    assert_int_equal(tf_log_create(2, (tf_log_level_t)7, &log), TF_EINVAL);
    assert_int_equal(tf_log_create(2, TF_LOG_INFO, NULL), TF_EINVAL);
    assert_null(log);
    tf_log_info(NULL, "nothing happens", TF_LF_INT("n", 1));
    tf_log_destroy(NULL);
}

/* ---- concurrency ---------------------------------------------------------- */

enum { WRITERS = 4, LINES_PER_WRITER = 600 };

typedef struct {
    tf_log_t *log;
    int id;
} writer_arg_t;

/* Line i of writer w carries a message of one repeated letter whose length
 * varies from tiny to well over PIPE_BUF, so a line needs several writes. */
static size_t message_len(size_t i) {
    return (i * 7919) % 15000 + 1;
}

static void *writer_main(void *p) {
    writer_arg_t *arg = p;
    char *msg = malloc(16000);

    for (size_t i = 0; i < LINES_PER_WRITER; i++) {
        size_t n = message_len(i);
        memset(msg, 'a' + arg->id, n);
        msg[n] = '\0';
        tf_log_info(arg->log, msg, TF_LF_INT("writer", arg->id), TF_LF_INT("seq", i));
    }
    free(msg);
    return NULL;
}

typedef struct {
    reader_t reader;
    size_t next_seq[WRITERS];
    size_t lines;
    int bad;
} collector_t;

/* Reads every line until the write end closes; counts what is malformed. */
static void *reader_main(void *p) {
    collector_t *c = p;
    char *line;

    while ((line = next_line(&c->reader)) != NULL) {
        object_t obj = {0};
        const member_t *w, *seq, *msg;
        if (parse_line(line, &obj) != 0 || (w = member(&obj, "writer")) == NULL ||
            (seq = member(&obj, "seq")) == NULL || (msg = member(&obj, "msg")) == NULL ||
            msg->str == NULL) {
            c->bad++;
        } else {
            long id = strtol(w->raw, NULL, 10);
            size_t i = (size_t)strtoul(seq->raw, NULL, 10);
            size_t n = strlen(msg->str);
            int ok = id >= 0 && id < WRITERS && i == c->next_seq[id] && n == message_len(i) &&
                     msg->str[0] == 'a' + id && msg->str[n - 1] == 'a' + id &&
                     strspn(msg->str, (char[]){(char)('a' + id), 0}) == n;
            c->bad += !ok;
            if (ok) {
                c->next_seq[id]++;
            }
        }
        c->lines++;
        object_free(&obj);
        free(line);
    }
    return NULL;
}

static void test_log__concurrent_writers_produce_intact_lines(void **state) {
    int fds[2];
    tf_log_t *log = NULL;
    pthread_t writers[WRITERS], reader;
    writer_arg_t args[WRITERS];
    collector_t collector = {0};

    (void)state;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(tf_log_create(fds[1], TF_LOG_INFO, &log), 0);
    collector.reader.fd = fds[0];
    assert_int_equal(pthread_create(&reader, NULL, reader_main, &collector), 0);
    for (int w = 0; w < WRITERS; w++) {
        args[w] = (writer_arg_t){log, w};
        assert_int_equal(pthread_create(&writers[w], NULL, writer_main, &args[w]), 0);
    }
    for (int w = 0; w < WRITERS; w++) {
        pthread_join(writers[w], NULL);
    }
    close(fds[1]);
    pthread_join(reader, NULL);
    close(fds[0]);
    tf_log_destroy(log);
    free(collector.reader.buf);

    assert_int_equal(collector.bad, 0);
    assert_int_equal(collector.lines, WRITERS * LINES_PER_WRITER);
    for (int w = 0; w < WRITERS; w++) {
        assert_int_equal(collector.next_seq[w], LINES_PER_WRITER);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log__line_has_ts_level_msg_and_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log__each_level_has_its_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log__escapes_quotes_backslash_and_control_chars, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log__invalid_utf8_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log__valid_utf8_passes_through, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log__secret_keys_are_redacted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log__scalars_and_non_finite_doubles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log__level_filtering, setup_warn, teardown),
        cmocka_unit_test(test_log__level_parse),
        cmocka_unit_test_setup_teardown(test_log__long_values_are_truncated_fairly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log__truncation_cuts_between_characters, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log__line_exactly_at_the_limit_is_not_truncated, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log__too_many_fields_are_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log__random_bytes_always_give_valid_lines, setup,
                                        teardown),
        cmocka_unit_test(test_log__bad_arguments_and_null_logger),
        cmocka_unit_test(test_log__concurrent_writers_produce_intact_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
