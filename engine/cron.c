/*
 * cron.c - cron expressions and their fire times (see cron.h).
 *
 * The next fire time walks the schedule's local minutes in order and
 * resolves each to the instants that show it on the zone's clock: one, none
 * (a gap) or two (an overlap).  Local order is not instant order around an
 * overlap, so the walk starts a window before the local time of `after`
 * and stops once no later local minute can give an earlier instant than the
 * best one found (an instant is at least its local time minus the largest
 * offset, WINDOW).
 */
#include "engine/cron.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "engine/error.h"
#include "engine/timefmt.h"

enum {
    WINDOW = 26 * 3600,     /* more than any UTC offset or offset change */
    SEARCH_DAYS = 28 * 366, /* a schedule that never fires in 28 years never will */
    MAX_CANDIDATES = 8,
};

typedef struct {
    const char *name;
    int lo, hi;
    const char *const *names; /* indexed from lo; NULL: numbers only */
} field_t;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                          "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const field_t fields[5] = {
    {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},    {"month", 1, 12, month_names},
    {"day of week", 0, 7, day_names},
};

static const struct {
    const char *name, *expr;
} macros[] = {
    {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

/* ---- parsing ---- */

static bool same_letters(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (toupper((unsigned char)a[i]) != toupper((unsigned char)b[i])) {
            return false;
        }
    }
    return true;
}

/* "<field>: <message>", or the message alone when `field` is NULL. */
static int fail(char *err, size_t errlen, const char *field, const char *message) {
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s%s%s", field != NULL ? field : "", field != NULL ? ": " : "",
                 message);
    }
    return TF_EINVAL;
}

/* One value at *p: a number or, where the field has them, a name.
 * Advances *p past it. */
static int parse_value(const field_t *f, const char **p, const char *end, int *out, char *err,
                       size_t errlen) {
    const char *s = *p;
    if (s < end && isdigit((unsigned char)*s)) {
        long v = 0;
        while (s < end && isdigit((unsigned char)*s)) {
            v = v * 10 + (*s++ - '0');
            if (v > 1000) {
                break;
            }
        }
        if (v < f->lo || v > f->hi) {
            char range[64];
            snprintf(range, sizeof(range), "%.*s is out of range %d-%d", (int)(s - *p), *p, f->lo,
                     f->hi);
            return fail(err, errlen, f->name, range);
        }
        *out = (int)v;
        *p = s;
        return 0;
    }
    if (f->names != NULL && end - s >= 3) {
        for (int i = 0; f->names[i] != NULL; i++) {
            if (same_letters(s, f->names[i], 3) &&
                (end - s == 3 || !isalpha((unsigned char)s[3]))) {
                *out = f->lo + i;
                *p = s + 3;
                return 0;
            }
        }
    }
    char what[64];
    snprintf(what, sizeof(what), "'%.*s' is not a number%s", (int)(end - s < 16 ? end - s : 16), s,
             f->names != NULL ? " or a name" : "");
    return fail(err, errlen, f->name, what);
}

/* One field's text [s, end) into a bit set. */
static int parse_field(const field_t *f, const char *s, const char *end, uint64_t *bits,
                       uint8_t *star, uint8_t *stepped, char *err, size_t errlen) {
    *bits = 0;
    *star = s < end && *s == '*';
    *stepped = 0;
    const char *item = s;
    for (;;) {
        const char *stop = memchr(item, ',', (size_t)(end - item));
        stop = stop != NULL ? stop : end;
        if (stop == item) {
            return fail(err, errlen, f->name, "an empty list item");
        }
        const char *p = item;
        int lo = f->lo, hi = f->hi, step = 1;
        bool range = false;
        if (*p == '*') {
            p++;
            range = true;
        } else {
            int rc = parse_value(f, &p, stop, &lo, err, errlen);
            if (rc != 0) {
                return rc;
            }
            hi = lo;
            if (p < stop && *p == '-') {
                p++;
                rc = parse_value(f, &p, stop, &hi, err, errlen);
                if (rc != 0) {
                    return rc;
                }
                if (hi < lo) {
                    return fail(err, errlen, f->name,
                                "a range must not run backwards (write two ranges)");
                }
                range = true;
            }
        }
        if (p < stop && *p == '/') {
            p++;
            const char *digits = p;
            long v = 0;
            while (p < stop && isdigit((unsigned char)*p) && v <= 1000) {
                v = v * 10 + (*p++ - '0');
            }
            if (p == digits || v < 1 || v > f->hi - f->lo + 1) {
                char what[64];
                snprintf(what, sizeof(what), "the step must be a number from 1 to %d",
                         f->hi - f->lo + 1);
                return fail(err, errlen, f->name, what);
            }
            step = (int)v;
            if (!range) {
                hi = f->hi; /* 5/10: from 5 to the end */
            }
            *stepped = 1;
        }
        if (p != stop) {
            char what[40];
            snprintf(what, sizeof(what), "unexpected '%.*s'", (int)(stop - p < 16 ? stop - p : 16),
                     p);
            return fail(err, errlen, f->name, what);
        }
        for (int v = lo; v <= hi; v += step) {
            *bits |= UINT64_C(1) << v;
        }
        if (stop == end) {
            return 0;
        }
        item = stop + 1;
    }
}

int tf_cron_parse(const char *expr, tf_cron_t *out, char *err, size_t errlen) {
    if (expr == NULL || out == NULL) {
        return fail(err, errlen, NULL, "no expression");
    }
    size_t len = 0;
    while (len <= TF_CRON_EXPR_MAX && expr[len] != '\0') {
        len++;
    }
    if (len > TF_CRON_EXPR_MAX) {
        return fail(err, errlen, NULL, "the expression is too long");
    }
    while (len > 0 && isspace((unsigned char)*expr)) {
        expr++, len--;
    }
    while (len > 0 && isspace((unsigned char)expr[len - 1])) {
        len--;
    }
    if (len > 0 && *expr == '@') {
        for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
            if (strlen(macros[i].name) == len && same_letters(expr, macros[i].name, len)) {
                return tf_cron_parse(macros[i].expr, out, err, errlen);
            }
        }
        char what[120];
        snprintf(what, sizeof(what),
                 "unknown macro '%.*s' (@hourly, @daily, @weekly, @monthly, @yearly)",
                 (int)(len < 20 ? len : 20), expr);
        return fail(err, errlen, NULL, what);
    }
    const char *spans[5][2];
    size_t n = 0;
    const char *p = expr, *end = expr + len;
    while (p < end) {
        while (p < end && isspace((unsigned char)*p)) {
            p++;
        }
        const char *start = p;
        while (p < end && !isspace((unsigned char)*p)) {
            p++;
        }
        if (p > start) {
            if (n == 5) {
                return fail(err, errlen, NULL, "more than five fields");
            }
            spans[n][0] = start;
            spans[n][1] = p;
            n++;
        }
    }
    if (n != 5) {
        return fail(err, errlen, NULL,
                    "five fields are needed: minute hour day-of-month month day-of-week");
    }
    tf_cron_t c = {0};
    uint64_t bits[5];
    uint8_t star[5], stepped[5];
    for (size_t i = 0; i < 5; i++) {
        int rc = parse_field(&fields[i], spans[i][0], spans[i][1], &bits[i], &star[i], &stepped[i],
                             err, errlen);
        if (rc != 0) {
            return rc;
        }
    }
    c.minutes = bits[0];
    c.hours = (uint32_t)bits[1];
    c.mdays = (uint32_t)bits[2];
    c.months = (uint16_t)bits[3];
    c.wdays = (uint8_t)((bits[4] | bits[4] >> 7) & 0x7f); /* 7 is Sunday */
    c.mday_star = star[2];
    c.wday_star = star[4];
    c.hour_floats = star[1] || stepped[1];
    *out = c;
    return 0;
}

/* ---- fire times ---- */

static int32_t utc_offset(const void *zone, int64_t t) {
    (void)zone, (void)t;
    return 0;
}

static int64_t utc_next_change(const void *zone, int64_t t) {
    (void)zone, (void)t;
    return INT64_MAX;
}

static const tf_cron_zone_t utc_zone = {utc_offset, utc_next_change, NULL};

static bool day_matches(const tf_cron_t *c, int64_t days) {
    int64_t year;
    int month, mday;
    tf_civil_from_days(days, &year, &month, &mday);
    if (!(c->months >> month & 1)) {
        return false;
    }
    int wday = tf_weekday(days);
    bool dom = c->mdays >> mday & 1, dow = c->wdays >> wday & 1;
    if (c->mday_star || c->wday_star) {
        return dom && dow;
    }
    return dom || dow;
}

static int64_t floor_div(int64_t a, int64_t b) {
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

typedef struct {
    const tf_cron_zone_t *z;
    int64_t after, best;
    bool found;
} search_t;

static void consider(search_t *s, int64_t t) {
    if (t > s->after && (!s->found || t < s->best)) {
        s->best = t;
        s->found = true;
    }
}

/* The instants showing local time `local` (seconds, as if UTC) on the
 * zone's clock, as fire times of `c`. */
static void resolve(search_t *s, const tf_cron_t *c, int64_t local) {
    const tf_cron_zone_t *z = s->z;
    int32_t offsets[MAX_CANDIDATES];
    size_t n = 0;
    offsets[n++] = z->offset_at(z->zone, local - WINDOW);
    int64_t gap = INT64_MIN;
    for (int64_t t = local - WINDOW; n < MAX_CANDIDATES;) {
        int64_t next = z->next_change(z->zone, t);
        if (next == INT64_MAX || next > local + WINDOW) {
            break;
        }
        int32_t before = z->offset_at(z->zone, next - 1), after = z->offset_at(z->zone, next);
        if (next + before <= local && local < next + after) {
            gap = next; /* the clock jumps over `local` at `next` */
        }
        offsets[n++] = after;
        t = next;
    }
    int64_t hits[MAX_CANDIDATES];
    size_t nhits = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t t = local - offsets[i];
        if (z->offset_at(z->zone, t) != offsets[i]) {
            continue;
        }
        bool seen = false;
        for (size_t k = 0; k < nhits; k++) {
            seen |= hits[k] == t;
        }
        if (!seen) {
            hits[nhits++] = t;
        }
    }
    if (nhits == 0) {
        if (!c->hour_floats && gap != INT64_MIN) {
            consider(s, gap); /* the first instant after the gap */
        }
        return;
    }
    int64_t first = hits[0];
    for (size_t k = 1; k < nhits; k++) {
        first = hits[k] < first ? hits[k] : first;
    }
    if (c->hour_floats) {
        for (size_t k = 0; k < nhits; k++) {
            consider(s, hits[k]);
        }
    } else {
        consider(s, first); /* a repeated time fires at its first occurrence */
    }
}

int tf_cron_next(const tf_cron_t *cron, const tf_cron_zone_t *zone, int64_t after, int64_t *next) {
    search_t s = {.z = zone != NULL ? zone : &utc_zone, .after = after};
    int64_t from = after + s.z->offset_at(s.z->zone, after) - WINDOW;
    int64_t day0 = floor_div(from, 86400);
    for (int64_t day = day0; day < day0 + SEARCH_DAYS; day++) {
        int64_t midnight = day * 86400;
        if (s.found && midnight - WINDOW > s.best) {
            break; /* no later local time can come earlier */
        }
        if (!day_matches(cron, day)) {
            continue;
        }
        for (int h = 0; h < 24; h++) {
            if (!(cron->hours >> h & 1)) {
                continue;
            }
            for (int m = 0; m < 60; m++) {
                if (!(cron->minutes >> m & 1)) {
                    continue;
                }
                int64_t local = midnight + h * 3600 + m * 60;
                if (local < from) {
                    continue;
                }
                if (s.found && local - WINDOW > s.best) {
                    break;
                }
                resolve(&s, cron, local);
            }
        }
    }
    if (!s.found) {
        return TF_ENOTFOUND;
    }
    *next = s.best;
    return 0;
}
