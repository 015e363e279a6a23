/*
 * tz.c - time zones from TZif data (see tz.h).
 *
 * Layout (RFC 8536): a 44-byte header ("TZif", version, six counts), the
 * version 1 data with 32-bit times, and for version 2 and later a second
 * header and the same data with 64-bit times, then "\n<POSIX TZ>\n".  Only
 * the 64-bit data and the footer are used when present.
 */
#include "engine/tz.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/timefmt.h"

enum {
    HEADER_LEN = 44,
    MAX_OFFSET = 26 * 3600,     /* |UT offset| above this is not a zone */
    MAX_RULE_TIME = 167 * 3600, /* RFC 8536 3.3.1: rule times up to 167 h */
    FOOTER_MAX = 256,
};

typedef enum { RULE_JULIAN1, RULE_JULIAN0, RULE_MONTH } rule_kind_t;

typedef struct {
    rule_kind_t kind;
    int day, month, week; /* Jn / n: day; Mm.w.d: month, week, day (weekday) */
    int32_t time;         /* seconds after local midnight (may be negative) */
} rule_t;

typedef struct {
    bool present; /* the file has a footer */
    bool has_dst;
    int32_t std_off, dst_off; /* seconds east */
    rule_t start, end;        /* into and out of daylight time */
} footer_t;

struct tf_tz {
    size_t n;          /* transitions */
    int64_t *at;       /* ascending */
    int32_t *off;      /* offset from at[i] on */
    int32_t first_off; /* before at[0]: time type 0 */
    footer_t footer;
};

/* ---- reading the file ---- */

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p) {
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct {
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} counts_t;

static int read_header(const unsigned char *p, size_t len, counts_t *c, int *version) {
    if (len < HEADER_LEN || memcmp(p, "TZif", 4) != 0) {
        return TF_EINVAL;
    }
    *version = p[4] == 0 ? 1 : p[4] - '0';
    if (*version < 1 || *version > 4) {
        return TF_EINVAL;
    }
    *c = (counts_t){be32(p + 20), be32(p + 24), be32(p + 28),
                    be32(p + 32), be32(p + 36), be32(p + 40)};
    if (c->typecnt == 0 || c->charcnt == 0 || (c->isutcnt != 0 && c->isutcnt != c->typecnt) ||
        (c->isstdcnt != 0 && c->isstdcnt != c->typecnt) || c->timecnt > 1000000 ||
        c->typecnt > 256 || c->leapcnt > 10000 || c->charcnt > 100000) {
        return TF_EINVAL;
    }
    return 0;
}

static size_t data_len(const counts_t *c, size_t time_size) {
    return c->timecnt * time_size + c->timecnt + c->typecnt * 6 + c->charcnt +
           c->leapcnt * (time_size + 4) + c->isstdcnt + c->isutcnt;
}

/* ---- the POSIX TZ footer ---- */

typedef struct {
    const char *p, *end;
} cursor_t;

static bool at_end(const cursor_t *c) {
    return c->p >= c->end;
}

static bool take(cursor_t *c, char ch) {
    if (!at_end(c) && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool number(cursor_t *c, int max, int *out) {
    int v = 0;
    const char *start = c->p;
    while (!at_end(c) && *c->p >= '0' && *c->p <= '9') {
        v = v * 10 + (*c->p++ - '0');
        if (v > max) {
            return false;
        }
    }
    *out = v;
    return c->p > start;
}

static bool name(cursor_t *c) {
    const char *start = c->p;
    if (take(c, '<')) {
        while (!at_end(c) && *c->p != '>') {
            char ch = *c->p++;
            if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '+' || ch == '-')) {
                return false;
            }
        }
        return take(c, '>') && c->p - start >= 5;
    }
    while (!at_end(c) && ((*c->p >= 'A' && *c->p <= 'Z') || (*c->p >= 'a' && *c->p <= 'z'))) {
        c->p++;
    }
    return c->p - start >= 3;
}

/* [+-]hh[:mm[:ss]], hh up to max_hours; seconds in *out. */
static bool hms(cursor_t *c, int max_hours, int32_t *out) {
    int sign = take(c, '-') ? -1 : (take(c, '+'), 1);
    int h = 0, m = 0, s = 0;
    if (!number(c, max_hours, &h)) {
        return false;
    }
    if (take(c, ':') && (!number(c, 59, &m) || (take(c, ':') && !number(c, 59, &s)))) {
        return false;
    }
    *out = sign * (h * 3600 + m * 60 + s);
    return true;
}

static bool rule(cursor_t *c, rule_t *r) {
    *r = (rule_t){.time = 2 * 3600};
    if (take(c, 'J')) {
        r->kind = RULE_JULIAN1;
        if (!number(c, 365, &r->day) || r->day < 1) {
            return false;
        }
    } else if (take(c, 'M')) {
        r->kind = RULE_MONTH;
        if (!number(c, 12, &r->month) || r->month < 1 || !take(c, '.') || !number(c, 5, &r->week) ||
            r->week < 1 || !take(c, '.') || !number(c, 6, &r->day)) {
            return false;
        }
    } else {
        r->kind = RULE_JULIAN0;
        if (!number(c, 365, &r->day)) {
            return false;
        }
    }
    return !take(c, '/') || hms(c, MAX_RULE_TIME / 3600, &r->time);
}

static int parse_footer(const char *text, size_t len, footer_t *f) {
    *f = (footer_t){.present = true};
    cursor_t c = {text, text + len};
    int32_t west = 0;
    if (!name(&c) || !hms(&c, 24, &west)) {
        return TF_EINVAL;
    }
    f->std_off = f->dst_off = -west;
    if (at_end(&c)) {
        return 0;
    }
    if (!name(&c)) {
        return TF_EINVAL;
    }
    f->has_dst = true;
    f->dst_off = f->std_off + 3600;
    if (!at_end(&c) && *c.p != ',') {
        if (!hms(&c, 24, &west)) {
            return TF_EINVAL;
        }
        f->dst_off = -west;
    }
    if (at_end(&c)) { /* POSIX's default: the US rules */
        f->start = (rule_t){RULE_MONTH, 0, 3, 2, 2 * 3600};
        f->end = (rule_t){RULE_MONTH, 0, 11, 1, 2 * 3600};
        return 0;
    }
    if (!take(&c, ',') || !rule(&c, &f->start) || !take(&c, ',') || !rule(&c, &f->end) ||
        !at_end(&c)) {
        return TF_EINVAL;
    }
    return 0;
}

static bool is_leap(int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since the epoch of rule `r`'s date in year `y`. */
static int64_t rule_day(const rule_t *r, int64_t y) {
    int64_t jan1 = tf_days_from_civil(y, 1, 1);
    switch (r->kind) {
    case RULE_JULIAN1:
        return jan1 + r->day - 1 + (is_leap(y) && r->day >= 60);
    case RULE_JULIAN0:
        return jan1 + r->day;
    case RULE_MONTH:
    default: {
        int64_t first = tf_days_from_civil(y, r->month, 1);
        int64_t next = r->month == 12 ? tf_days_from_civil(y + 1, 1, 1)
                                      : tf_days_from_civil(y, r->month + 1, 1);
        int64_t day = first + (r->day - tf_weekday(first) + 7) % 7 + (r->week - 1) * 7;
        while (day >= next) {
            day -= 7;
        }
        return day;
    }
    }
}

/* The instants daylight time starts and ends in year `y`. */
static void footer_year(const footer_t *f, int64_t y, int64_t *start, int64_t *end) {
    *start = rule_day(&f->start, y) * 86400 + f->start.time - f->std_off;
    *end = rule_day(&f->end, y) * 86400 + f->end.time - f->dst_off;
}

static int64_t year_of(int64_t t) {
    int64_t days = t / 86400 - (t % 86400 < 0), year;
    int month, day;
    tf_civil_from_days(days, &year, &month, &day);
    return year;
}

static int32_t footer_offset(const footer_t *f, int64_t t) {
    if (!f->has_dst) {
        return f->std_off;
    }
    int64_t start, end;
    footer_year(f, year_of(t + f->std_off), &start, &end);
    bool dst = start < end ? t >= start && t < end : t < end || t >= start;
    return dst ? f->dst_off : f->std_off;
}

/* The first instant > t at which the footer's offset differs from `cur`. */
static int64_t footer_next(const footer_t *f, int64_t t, int32_t cur) {
    if (!f->has_dst) {
        return INT64_MAX;
    }
    int64_t best = INT64_MAX;
    int64_t y0 = year_of(t);
    for (int64_t y = y0 - 1; y <= y0 + 2; y++) {
        int64_t cand[2];
        footer_year(f, y, &cand[0], &cand[1]);
        for (int k = 0; k < 2; k++) {
            if (cand[k] > t && cand[k] < best && footer_offset(f, cand[k]) != cur) {
                best = cand[k];
            }
        }
    }
    return best;
}

/* ---- parsing ---- */

int tf_tz_parse(const unsigned char *data, size_t len, tf_tz_t **out) {
    counts_t c;
    int version;
    if (data == NULL || out == NULL || read_header(data, len, &c, &version) != 0) {
        return TF_EINVAL;
    }
    size_t time_size = 4, pos = HEADER_LEN;
    if (version >= 2) {
        pos += data_len(&c, 4);
        if (pos > len || read_header(data + pos, len - pos, &c, &version) != 0) {
            return TF_EINVAL;
        }
        pos += HEADER_LEN;
        time_size = 8;
    }
    if (c.leapcnt != 0 || data_len(&c, time_size) > len - pos) {
        return TF_EINVAL; /* leap seconds ("right/" zones) or truncated */
    }
    const unsigned char *times = data + pos, *idx = times + c.timecnt * time_size,
                        *types = idx + c.timecnt;
    tf_tz_t *tz = calloc(1, sizeof(*tz));
    if (tz == NULL) {
        return TF_ENOMEM;
    }
    tz->n = c.timecnt;
    tz->at = malloc((c.timecnt ? c.timecnt : 1) * sizeof(*tz->at));
    tz->off = malloc((c.timecnt ? c.timecnt : 1) * sizeof(*tz->off));
    if (tz->at == NULL || tz->off == NULL) {
        tf_tz_free(tz);
        return TF_ENOMEM;
    }
    int rc = 0;
    for (uint32_t i = 0; i < c.typecnt && rc == 0; i++) {
        int32_t off = (int32_t)be32(types + 6 * i);
        if (off < -MAX_OFFSET || off > MAX_OFFSET || types[6 * i + 4] > 1 ||
            types[6 * i + 5] >= c.charcnt) {
            rc = TF_EINVAL;
        }
    }
    tz->first_off = (int32_t)be32(types);
    for (uint32_t i = 0; i < c.timecnt && rc == 0; i++) {
        tz->at[i] = time_size == 8 ? be64(times + 8 * i) : (int32_t)be32(times + 4 * i);
        if (idx[i] >= c.typecnt || (i > 0 && tz->at[i] <= tz->at[i - 1])) {
            rc = TF_EINVAL;
        } else {
            tz->off[i] = (int32_t)be32(types + 6 * idx[i]);
        }
    }
    pos += data_len(&c, time_size);
    if (rc == 0 && version >= 2 && pos < len) {
        /* "\n<footer>\n" (an empty footer: no rule past the last transition) */
        const char *f = (const char *)data + pos, *nl;
        size_t rest = len - pos;
        if (f[0] != '\n' ||
            (nl = memchr(f + 1, '\n', rest - 1 < FOOTER_MAX ? rest - 1 : FOOTER_MAX)) == NULL) {
            rc = TF_EINVAL;
        } else if (nl > f + 1) {
            rc = parse_footer(f + 1, (size_t)(nl - f - 1), &tz->footer);
        }
    }
    if (rc != 0) {
        tf_tz_free(tz);
        return rc;
    }
    *out = tz;
    return 0;
}

void tf_tz_free(tf_tz_t *tz) {
    if (tz != NULL) {
        free(tz->at);
        free(tz->off);
        free(tz);
    }
}

/* ---- answers ---- */

/* The number of transitions at or before t. */
static size_t upto(const tf_tz_t *tz, int64_t t) {
    size_t lo = 0, hi = tz->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->at[mid] <= t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

int32_t tf_tz_offset(const tf_tz_t *tz, int64_t t) {
    if (tz->n == 0) {
        return tz->footer.present ? footer_offset(&tz->footer, t) : tz->first_off;
    }
    size_t k = upto(tz, t);
    if (k == 0) {
        return tz->first_off;
    }
    if (k == tz->n && tz->footer.present) {
        return footer_offset(&tz->footer, t);
    }
    return tz->off[k - 1];
}

int64_t tf_tz_next_change(const tf_tz_t *tz, int64_t t) {
    int32_t cur = tf_tz_offset(tz, t);
    for (size_t k = upto(tz, t); k < tz->n; k++) {
        if (tf_tz_offset(tz, tz->at[k]) != cur) {
            return tz->at[k];
        }
    }
    if (!tz->footer.present) {
        return INT64_MAX;
    }
    int64_t from = tz->n > 0 && tz->at[tz->n - 1] > t ? tz->at[tz->n - 1] : t;
    return footer_next(&tz->footer, from, cur);
}

static int32_t zone_offset(const void *zone, int64_t t) {
    return tf_tz_offset(zone, t);
}

static int64_t zone_next(const void *zone, int64_t t) {
    return tf_tz_next_change(zone, t);
}

tf_cron_zone_t tf_tz_cron_zone(const tf_tz_t *tz) {
    return (tf_cron_zone_t){zone_offset, zone_next, tz};
}
