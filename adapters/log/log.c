/*
 * log.c - structured JSON-lines logger (see log.h for the contract).
 *
 * Role: the adapter every other layer writes its diagnostics through.  A line
 * is {"ts":...,"level":...,"msg":...,<fields>} followed by '\n'.
 *
 * Invariants:
 * - Every line is valid JSON on its own, whatever bytes the caller passed:
 *   strings are escaped (quotes, backslash, control characters), invalid
 *   UTF-8 bytes become \ufffd, non-finite doubles become null.
 * - No line is longer than TF_LOG_LINE_MAX bytes (newline included).  When
 *   the natural line would be longer, string values are cut to a common cap
 *   (so one huge field does not starve the others; the message keeps at
 *   least TF_LOG_MSG_FLOOR bytes and each kept field TF_LOG_FIELD_FLOOR),
 *   keys are cut at TF_LOG_KEY_MAX bytes, trailing fields that still do not
 *   fit are dropped, and the line ends with "truncated":true.  Cuts fall
 *   between characters, never inside an escape or a UTF-8 sequence.
 * - A value whose key contains token, authorization, password, secret or
 *   api_key (case-insensitive, '-' read as '_') is written as "[redacted]",
 *   whatever its kind.
 * - Fields are written in the caller's order after ts, level and msg; the
 *   logger does not rename keys that repeat those.
 *
 * Threads: any.  A line is formatted into a buffer on the caller's stack, so
 * formatting never takes a lock.  The write loop (partial writes, EINTR,
 * EAGAIN) runs under the logger's own mutex: a single write(2) of more than
 * PIPE_BUF bytes to a pipe is not atomic, and neither are the retries after a
 * partial write, so without it two threads' lines could interleave.  The lock
 * belongs to the logger object; there is no global state.
 */
#include "adapters/log/log.h"

#include "engine/error.h"
#include "engine/timefmt.h"
#include "engine/utf8.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TF_LOG_LINE_MAX 16384     /* bytes per line, the trailing '\n' included */
#define TF_LOG_KEY_MAX 128        /* escaped bytes of one key before it is cut */
#define TF_LOG_MSG_FLOOR 1024     /* the message keeps this much when lines are cut */
#define TF_LOG_FIELD_FLOOR 64     /* and each kept string field this much */
#define TF_LOG_WRITE_WAIT_MS 1000 /* how long a full non-blocking fd may stall us */

struct tf_log {
    int fd;
    tf_log_level_t level;
    pthread_mutex_t write_lock;
};

static const char *const tf_log_level_names[] = {"debug", "info", "warn", "error"};

/* Substrings that mark a key as secret, compared case-insensitively with '-'
 * treated like '_' (so "X-Api-Key" matches "api_key"). */
static const char *const tf_log_secret_words[] = {
    "token", "authorization", "password", "secret", "api_key",
};

static const char tf_log_redacted[] = "\"[redacted]\"";
static const char tf_log_truncated_tail[] = ",\"truncated\":true}\n";

/* A bounded output buffer.  `cap` already excludes the room kept for the
 * closing tail, so the tail always fits. */
typedef struct {
    char *buf;
    size_t len;
    size_t cap;
    int truncated;
} tf_log_buf_t;

/* ---- UTF-8 and JSON string escaping ------------------------------------ */

/* True for a byte that JSON takes as it is: printable ASCII but '"' and '\\'. */
static int tf_log_is_plain(unsigned char c) {
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Escapes the character at `p` into `out` (at least 6 bytes).  Returns the
 * number of bytes written and stores how many input bytes it used. */
static size_t tf_log_escape_unit(const unsigned char *p, char *out, size_t *used) {
    static const char hex[] = "0123456789abcdef";
    unsigned char c = *p;

    *used = 1;
    if (c >= 0x80) {
        size_t n = tf_utf8_seq_len(p, 4);
        if (n == 0) {
            memcpy(out, "\\ufffd", 6);
            return 6;
        }
        memcpy(out, p, n);
        *used = n;
        return n;
    }
    if (c == '"' || c == '\\') {
        out[0] = '\\';
        out[1] = (char)c;
        return 2;
    }
    if (c >= 0x20) {
        out[0] = (char)c;
        return 1;
    }
    const char *short_form = c == '\n'   ? "\\n"
                             : c == '\t' ? "\\t"
                             : c == '\r' ? "\\r"
                             : c == '\b' ? "\\b"
                             : c == '\f' ? "\\f"
                                         : NULL;
    if (short_form != NULL) {
        memcpy(out, short_form, 2);
        return 2;
    }
    memcpy(out, "\\u00", 4);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 0xF];
    return 6;
}

/* Escaped length of `s` (quotes excluded), saturating just above `limit` so
 * a huge string costs no more than `limit` bytes of work. */
static size_t tf_log_escaped_len(const char *s, size_t limit) {
    const unsigned char *p = (const unsigned char *)s;
    size_t total = 0;
    char unit[6];

    while (*p != '\0' && total <= limit) {
        if (tf_log_is_plain(*p)) {
            total++;
            p++;
            continue;
        }
        size_t used;
        total += tf_log_escape_unit(p, unit, &used);
        p += used;
    }
    return total;
}

/* ---- bounded writer ------------------------------------------------------ */

static int tf_log_put(tf_log_buf_t *b, const char *s, size_t n) {
    if (n > b->cap - b->len) {
        return TF_ETOOBIG;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    return 0;
}

/* Appends the line's closing, which the capacity kept room for. */
static void tf_log_put_tail(tf_log_buf_t *b, const char *tail, size_t len) {
    memcpy(b->buf + b->len, tail, len);
    b->len += len;
}

/* Writes `s` as a quoted JSON string, using at most `max` bytes between the
 * quotes (and never more than the buffer holds).  A cut string sets
 * `truncated`.  Fails only when not even "" fits. */
static int tf_log_put_string(tf_log_buf_t *b, const char *s, size_t max) {
    const unsigned char *p = (const unsigned char *)s;
    char unit[6];

    if (b->cap - b->len < 2) {
        return TF_ETOOBIG;
    }
    size_t room = b->cap - b->len - 2;
    size_t limit = b->len + 1 + (max < room ? max : room);

    b->buf[b->len++] = '"';
    while (*p != '\0') {
        if (tf_log_is_plain(*p) && b->len < limit) {
            b->buf[b->len++] = (char)*p++;
            continue;
        }
        size_t used;
        size_t n = tf_log_escape_unit(p, unit, &used);
        if (n > limit - b->len) {
            b->truncated = 1;
            break;
        }
        memcpy(b->buf + b->len, unit, n);
        b->len += n;
        p += used;
    }
    b->buf[b->len++] = '"';
    return 0;
}

/* ---- values -------------------------------------------------------------- */

static char tf_log_fold(char c) {
    if (c >= 'A' && c <= 'Z') {
        return (char)(c - 'A' + 'a');
    }
    return c == '-' ? '_' : c;
}

static int tf_log_key_is_secret(const char *key) {
    if (key == NULL) {
        return 0;
    }
    for (size_t w = 0; w < sizeof(tf_log_secret_words) / sizeof(tf_log_secret_words[0]); w++) {
        const char *word = tf_log_secret_words[w];
        for (const char *k = key; *k != '\0'; k++) {
            size_t i = 0;
            while (word[i] != '\0' && tf_log_fold(k[i]) == word[i]) {
                i++;
            }
            if (word[i] == '\0') {
                return 1;
            }
        }
    }
    return 0;
}

/* Formats a double the shortest way that reads back exactly; "null" when it
 * is not finite (JSON has no Inf or NaN). */
static size_t tf_log_format_double(double d, char *out, size_t size) {
    if (!isfinite(d)) {
        return (size_t)snprintf(out, size, "null");
    }
    int n = 0;
    for (int precision = 15; precision <= 17; precision++) {
        n = snprintf(out, size, "%.*g", precision, d);
        if (strtod(out, NULL) == d) {
            break;
        }
    }
    for (char *c = out; *c != '\0'; c++) {
        if (*c == ',') { /* a locale with a decimal comma */
            *c = '.';
        }
    }
    return (size_t)n;
}

/* Renders a non-string value (or a redacted one) as JSON text into `out`. */
static size_t tf_log_scalar_text(const tf_log_field_t *f, int secret, char *out, size_t size) {
    if (secret) {
        return (size_t)snprintf(out, size, "%s", tf_log_redacted);
    }
    switch (f->kind) {
    case TF_LOG_FIELD_INT:
        return (size_t)snprintf(out, size, "%lld", f->i);
    case TF_LOG_FIELD_DOUBLE:
        return tf_log_format_double(f->d, out, size);
    case TF_LOG_FIELD_BOOL:
        return (size_t)snprintf(out, size, "%s", f->i ? "true" : "false");
    case TF_LOG_FIELD_STR:
    default:
        return (size_t)snprintf(out, size, "null");
    }
}

/* True when the field's value is a string written through the cap. */
static int tf_log_is_capped_string(const tf_log_field_t *f) {
    return f->kind == TF_LOG_FIELD_STR && f->s != NULL && !tf_log_key_is_secret(f->key);
}

static const char *tf_log_key_text(const tf_log_field_t *f) {
    return f->key != NULL ? f->key : "";
}

/* Bytes a field takes besides its capped string value: the comma, the quoted
 * key (cut at TF_LOG_KEY_MAX), the colon, and either the quotes of a string
 * or the whole scalar. */
static size_t tf_log_field_fixed_len(const tf_log_field_t *f) {
    char scalar[64];
    size_t key_len = tf_log_escaped_len(tf_log_key_text(f), TF_LOG_KEY_MAX);
    size_t len = 1 + 2 + (key_len < TF_LOG_KEY_MAX ? key_len : TF_LOG_KEY_MAX) + 1;

    if (tf_log_is_capped_string(f)) {
        return len + 2;
    }
    return len + tf_log_scalar_text(f, tf_log_key_is_secret(f->key), scalar, sizeof(scalar));
}

/* ---- line layout --------------------------------------------------------- */

/* The line's layout: how many fields (a prefix) are written at all, and the
 * common cap on string values.  A value of escaped length L is written up to
 * min(L, max(floor, cap)) bytes, where the floor is TF_LOG_MSG_FLOOR for the
 * message and TF_LOG_FIELD_FLOOR for a field, so a flood of fields cannot
 * squeeze the message away.  `lens` caches the escaped length of each string
 * value (saturated at the line size): the message first, then the kept string
 * fields; each costs at least 6 bytes (,"":""), which bounds their number. */
typedef struct {
    size_t nkept;
    size_t cap;
    int truncates; /* a value or key is cut or a field dropped */
    size_t nlens;
    uint16_t lens[TF_LOG_LINE_MAX / 6 + 2];
} tf_log_plan_t;

/* Bytes the cached string values take under `cap`. */
static size_t tf_log_values_len(const tf_log_plan_t *plan, int has_msg, size_t cap) {
    size_t total = 0;

    for (size_t i = 0; i < plan->nlens; i++) {
        size_t floor_len = i == 0 && has_msg ? TF_LOG_MSG_FLOOR : TF_LOG_FIELD_FLOOR;
        size_t limit = floor_len > cap ? floor_len : cap;
        total += plan->lens[i] < limit ? plan->lens[i] : limit;
    }
    return total;
}

static size_t tf_log_measure(const char *s) {
    size_t n = tf_log_escaped_len(s, TF_LOG_LINE_MAX);
    return n < TF_LOG_LINE_MAX ? n : TF_LOG_LINE_MAX;
}

/* Keeps the longest prefix of fields whose fixed parts and value floors fit
 * in `room` bytes; returns the room left for the values. */
static size_t tf_log_plan_fields(tf_log_plan_t *plan, const char *msg, const tf_log_field_t *fields,
                                 size_t nfields, size_t room) {
    static const size_t max_lens = sizeof(plan->lens) / sizeof(plan->lens[0]);
    size_t fixed = 0;

    plan->nkept = plan->nlens = 0;
    if (msg != NULL) {
        plan->lens[plan->nlens++] = (uint16_t)tf_log_measure(msg);
    }
    size_t floors = tf_log_values_len(plan, msg != NULL, 0); /* the message's floor */
    for (; plan->nkept < nfields && plan->nlens < max_lens; plan->nkept++) {
        const tf_log_field_t *f = &fields[plan->nkept];
        size_t fixed_len = tf_log_field_fixed_len(f);
        size_t len = tf_log_is_capped_string(f) ? tf_log_measure(f->s) : 0;
        size_t value_floor = len < TF_LOG_FIELD_FLOOR ? len : TF_LOG_FIELD_FLOOR;
        if (fixed + fixed_len + floors + value_floor > room) {
            break;
        }
        fixed += fixed_len;
        floors += value_floor;
        if (tf_log_is_capped_string(f)) {
            plan->lens[plan->nlens++] = (uint16_t)len;
        }
        plan->truncates |= tf_log_escaped_len(tf_log_key_text(f), TF_LOG_KEY_MAX) > TF_LOG_KEY_MAX;
    }
    plan->truncates |= plan->nkept < nfields;
    return room - fixed;
}

/* Plans the line after the header already in `b`: the kept fields, then the
 * largest cap under which the kept values fit the rest of the line. */
static void tf_log_plan(tf_log_plan_t *plan, const tf_log_buf_t *b, const char *msg,
                        const tf_log_field_t *fields, size_t nfields) {
    size_t room = b->cap - b->len - (msg != NULL ? 2 : 4); /* "" around msg, or null */

    plan->truncates = 0;
    plan->cap = TF_LOG_LINE_MAX;
    room = tf_log_plan_fields(plan, msg, fields, nfields, room);
    if (tf_log_values_len(plan, msg != NULL, TF_LOG_LINE_MAX) <= room) {
        return;
    }
    plan->truncates = 1;
    size_t lo = 0, hi = TF_LOG_LINE_MAX; /* lo fits (the floors do), hi does not */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tf_log_values_len(plan, msg != NULL, mid) <= room) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    plan->cap = lo;
}

/* Appends ,"key":value.  Fails, leaving a partial field the caller rolls
 * back, when not even the key and an empty value fit (which the plan
 * prevents; this keeps the line valid regardless). */
static int tf_log_put_field(tf_log_buf_t *b, const tf_log_field_t *f, size_t cap) {
    char scalar[64];

    if (tf_log_field_fixed_len(f) > b->cap - b->len) {
        return TF_ETOOBIG;
    }
    if (tf_log_put(b, ",", 1) != 0 ||
        tf_log_put_string(b, tf_log_key_text(f), TF_LOG_KEY_MAX) != 0 ||
        tf_log_put(b, ":", 1) != 0) {
        return TF_ETOOBIG;
    }
    if (tf_log_is_capped_string(f)) {
        return tf_log_put_string(b, f->s, cap > TF_LOG_FIELD_FLOOR ? cap : TF_LOG_FIELD_FLOOR);
    }
    size_t n = tf_log_scalar_text(f, tf_log_key_is_secret(f->key), scalar, sizeof(scalar));
    return tf_log_put(b, scalar, n);
}

/* Appends {"ts":"...","level":"...","msg": which always fits. */
static void tf_log_put_header(tf_log_buf_t *b, tf_log_level_t level) {
    struct timespec now;
    char ts[TF_TIME_STR_LEN + 1];
    int lv = (int)level;
    const char *name = tf_log_level_names[lv < TF_LOG_DEBUG   ? TF_LOG_DEBUG
                                          : lv > TF_LOG_ERROR ? TF_LOG_ERROR
                                                              : lv];
    int have_ts = clock_gettime(CLOCK_REALTIME, &now) == 0 &&
                  tf_time_format((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, ts) == 0;

    int n = snprintf(b->buf + b->len, b->cap - b->len,
                     "{\"ts\":%s%s%s,\"level\":\"%s\",\"msg\":", have_ts ? "\"" : "",
                     have_ts ? ts : "null", have_ts ? "\"" : "", name);
    b->len += (size_t)n;
}

/* ---- output -------------------------------------------------------------- */

/* Writes all of `line`, retrying partial writes and EINTR, and waiting a
 * bounded time when a non-blocking fd is full.  A line that cannot be written
 * is dropped: logging never fails its caller. */
static void tf_log_write_all(tf_log_t *log, const char *line, size_t len) {
    pthread_mutex_lock(&log->write_lock);
    while (len > 0) {
        ssize_t n = write(log->fd, line, len);
        if (n > 0) {
            line += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = log->fd, .events = POLLOUT};
            if (poll(&pfd, 1, TF_LOG_WRITE_WAIT_MS) > 0) {
                continue;
            }
        }
        break;
    }
    pthread_mutex_unlock(&log->write_lock);
}

/* ---- public API ---------------------------------------------------------- */

int tf_log_create(int fd, tf_log_level_t level, tf_log_t **out) {
    int lv = (int)level;

    if (out == NULL || fd < 0 || lv < TF_LOG_DEBUG || lv > TF_LOG_ERROR) {
        return TF_EINVAL;
    }
    tf_log_t *log = calloc(1, sizeof(*log));
    if (log == NULL) {
        return TF_ENOMEM;
    }
    if (pthread_mutex_init(&log->write_lock, NULL) != 0) {
        goto fail_free;
    }
    log->fd = fd;
    log->level = level;
    *out = log;
    return 0;

fail_free:
    free(log);
    return TF_ENOMEM;
}

void tf_log_destroy(tf_log_t *log) {
    if (log == NULL) {
        return;
    }
    pthread_mutex_destroy(&log->write_lock);
    free(log);
}

/* Case-insensitive, so LOG_LEVEL=INFO works too. */
int tf_log_level_parse(const char *text, tf_log_level_t *out) {
    if (text == NULL || out == NULL) {
        return TF_EINVAL;
    }
    for (int lv = TF_LOG_DEBUG; lv <= TF_LOG_ERROR; lv++) {
        const char *name = tf_log_level_names[lv];
        size_t i = 0;
        while (name[i] != '\0' && tf_log_fold(text[i]) == name[i]) {
            i++;
        }
        if (name[i] == '\0' && text[i] == '\0') {
            *out = (tf_log_level_t)lv;
            return 0;
        }
    }
    return TF_EINVAL;
}

int tf_log_enabled(const tf_log_t *log, tf_log_level_t level) {
    return log != NULL && (int)level >= (int)log->level;
}

void tf_log_emit(tf_log_t *log, tf_log_level_t level, const char *msg, const tf_log_field_t *fields,
                 size_t nfields) {
    static const size_t tail_len = sizeof(tf_log_truncated_tail) - 1;
    char line[TF_LOG_LINE_MAX];
    tf_log_buf_t b = {.buf = line, .cap = TF_LOG_LINE_MAX - 2}; /* room for "}\n" */
    tf_log_plan_t plan;

    if (!tf_log_enabled(log, level)) {
        return;
    }
    if (fields == NULL) {
        nfields = 0;
    }
    tf_log_put_header(&b, level);
    tf_log_plan(&plan, &b, msg, fields, nfields);
    if (plan.truncates) { /* plan again, keeping room for the longer tail */
        b.cap = TF_LOG_LINE_MAX - tail_len;
        tf_log_plan(&plan, &b, msg, fields, nfields);
    }
    if (msg != NULL) {
        tf_log_put_string(&b, msg, plan.cap > TF_LOG_MSG_FLOOR ? plan.cap : TF_LOG_MSG_FLOOR);
    } else {
        tf_log_put(&b, "null", 4);
    }
    for (size_t i = 0; i < plan.nkept; i++) {
        size_t mark = b.len;
        if (tf_log_put_field(&b, &fields[i], plan.cap) != 0) {
            b.len = mark;
            b.truncated = 1;
        }
    }
    /* The plan foresees every cut; should the writer still cut something the
     * line ends cleanly, just without the marker when there is no room. */
    if ((plan.truncates || b.truncated) && b.len + tail_len <= TF_LOG_LINE_MAX) {
        tf_log_put_tail(&b, tf_log_truncated_tail, tail_len);
    } else {
        tf_log_put_tail(&b, "}\n", 2);
    }
    tf_log_write_all(log, line, b.len);
}
