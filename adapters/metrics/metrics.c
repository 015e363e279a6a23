/*
 * metrics.c - Prometheus metrics registry (see metrics.h for the contract).
 *
 * Role: the adapter behind GET /metrics.  Families are registered at start-up;
 * children (one per combination of label values) are created on first use.
 *
 * Invariants:
 * - Families stay in registration order, children in creation order, and
 *   neither is freed before tf_metrics_destroy(), so a child pointer held by
 *   a hot path stays valid for the registry's life.
 * - Counter and gauge values are doubles stored as the bit patterns in an
 *   _Atomic uint64_t and changed with a compare-and-swap loop.  A histogram
 *   child keeps one non-cumulative atomic counter per bucket (the last one is
 *   +Inf) and its sum as atomic double bits; _count is rendered as the sum of
 *   the buckets, so it always equals the +Inf bucket.
 * - Every rendered string is valid UTF-8: HELP texts and label values have
 *   invalid bytes replaced by U+FFFD when they enter the registry.  Label
 *   values are sanitized before the child lookup, so two raw values that
 *   sanitize alike share one child and the output never repeats a series.
 * - Names are checked on registration: metric names match
 *   [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and do not
 *   start with "__" (reserved by Prometheus), are unique within the family,
 *   and a histogram may not use "le".  A family name may not collide with the
 *   _bucket/_sum/_count series of a histogram, in either direction.
 *
 * Threads: any.  The registry mutex guards the family list; each family's
 * mutex guards its child table.  Lock order is registry, then family.
 * Updates through a child pointer take no lock.
 */
#include "adapters/metrics/metrics.h"

#include "engine/error.h"
#include "engine/utf8.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    TF_METRIC_COUNTER,
    TF_METRIC_GAUGE,
    TF_METRIC_HISTOGRAM,
} tf_metric_kind_t;

struct tf_metric {
    tf_metric_family_t *family;
    char **label_values;        /* family->nlabels sanitized copies */
    uint64_t hash;              /* of label_values */
    tf_metric_t *hash_next;     /* chain in family->slots */
    tf_metric_t *next_created;  /* creation order */
    _Atomic uint64_t value;     /* counter/gauge: double bits; histogram: sum bits */
    _Atomic uint64_t buckets[]; /* histogram: nbounds + 1 non-cumulative counts */
};

struct tf_metric_family {
    tf_metric_family_t *next; /* registration order */
    tf_metric_kind_t kind;
    char *name;
    char *help;
    char **label_names;
    size_t nlabels;
    double *bounds; /* histogram only */
    size_t nbounds;
    pthread_mutex_t lock;     /* guards everything below */
    tf_metric_t *first_child; /* creation order, through next_created */
    tf_metric_t *last_child;
    size_t nchildren;
    tf_metric_t **slots; /* hash table, chained; size is a power of two */
    size_t nslots;
};

struct tf_metrics {
    pthread_mutex_t lock; /* guards the family list */
    tf_metric_family_t *first;
    tf_metric_family_t *last;
};

static const double tf_metrics_default_bounds[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

static const char *const tf_metrics_kind_names[] = {"counter", "gauge", "histogram"};

static const char *const tf_metrics_histogram_suffixes[] = {"_bucket", "_sum", "_count"};

#define TF_METRICS_NSUFFIXES                                                                       \
    (sizeof(tf_metrics_histogram_suffixes) / sizeof(tf_metrics_histogram_suffixes[0]))

/* ---- atomic doubles ------------------------------------------------------ */

static uint64_t tf_metrics_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double tf_metrics_double(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static void tf_metrics_atomic_add(_Atomic uint64_t *cell, double delta) {
    uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);
    uint64_t next;

    do {
        next = tf_metrics_bits(tf_metrics_double(old) + delta);
    } while (!atomic_compare_exchange_weak_explicit(cell, &old, next, memory_order_relaxed,
                                                    memory_order_relaxed));
}

/* ---- strings ------------------------------------------------------------- */

/* Writes `s` to `out` with each malformed UTF-8 byte replaced by U+FFFD, or
 * only measures when `out` is NULL.  Returns the output length (NUL
 * excluded), which equals strlen(s) exactly when `s` is valid UTF-8. */
static size_t tf_metrics_sanitize(const char *s, char *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;

    while (*p != '\0') {
        size_t n = *p < 0x80 ? 1 : tf_utf8_seq_len(p, 4);
        const char *piece = n > 0 ? (const char *)p : "\xEF\xBF\xBD";
        size_t piece_len = n > 0 ? n : 3;
        if (out != NULL) {
            memcpy(out + o, piece, piece_len);
        }
        o += piece_len;
        p += n > 0 ? n : 1;
    }
    if (out != NULL) {
        out[o] = '\0';
    }
    return o;
}

/* A sanitized copy of `s` (NULL reads as "").  Caller owns the result; free
 * with free().  NULL when out of memory. */
static char *tf_metrics_sanitized_dup(const char *s) {
    const char *in = s != NULL ? s : "";
    char *out = malloc(tf_metrics_sanitize(in, NULL) + 1);

    if (out != NULL) {
        tf_metrics_sanitize(in, out);
    }
    return out;
}

static void tf_metrics_free_strings(char **v, size_t n) {
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* Sanitized copies of `n` strings (a NULL array or entry reads as "").
 * Caller owns the result; free with tf_metrics_free_strings(). */
static char **tf_metrics_dup_strings(const char *const *v, size_t n) {
    char **out = calloc(n > 0 ? n : 1, sizeof(*out));

    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = tf_metrics_sanitized_dup(v != NULL ? v[i] : NULL);
        if (out[i] == NULL) {
            tf_metrics_free_strings(out, i);
            return NULL;
        }
    }
    return out;
}

/* ---- name validation ----------------------------------------------------- */

/* [a-zA-Z_:][a-zA-Z0-9_:]*, without the colons unless `allow_colon`. */
static int tf_metrics_name_valid(const char *name, int allow_colon) {
    if (name == NULL || name[0] == '\0') {
        return 0;
    }
    for (size_t i = 0; name[i] != '\0'; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (c == ':' && allow_colon) || (i > 0 && c >= '0' && c <= '9');
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int tf_metrics_labels_valid(tf_metric_kind_t kind, const char *const *names, size_t n) {
    if (n > 0 && names == NULL) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!tf_metrics_name_valid(names[i], 0) || strncmp(names[i], "__", 2) == 0) {
            return 0;
        }
        if (kind == TF_METRIC_HISTOGRAM && strcmp(names[i], "le") == 0) {
            return 0;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(names[i], names[j]) == 0) {
                return 0;
            }
        }
    }
    return 1;
}

static int tf_metrics_bounds_valid(const double *bounds, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
            return 0;
        }
    }
    return 1;
}

/* ---- children ------------------------------------------------------------ */

/* FNV-1a over the values, each followed by 0xFF, a byte valid UTF-8 never
 * holds, so ("ab","") and ("a","b") hash apart. */
static uint64_t tf_metrics_hash(const char *const *values, size_t n) {
    uint64_t h = 14695981039346656037ULL;

    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p != '\0'; p++) {
            h = (h ^ *p) * 1099511628211ULL;
        }
        h = (h ^ 0xFFu) * 1099511628211ULL;
    }
    return h;
}

/* A zeroed child of `family`.  Takes ownership of `values`, even on failure.
 * Caller owns the result; the family frees it in tf_metrics_family_free(). */
static tf_metric_t *tf_metrics_child_new(tf_metric_family_t *family, char **values, uint64_t hash) {
    size_t nbuckets = family->kind == TF_METRIC_HISTOGRAM ? family->nbounds + 1 : 0;
    tf_metric_t *m = malloc(sizeof(*m) + nbuckets * sizeof(m->buckets[0]));

    if (m == NULL) {
        tf_metrics_free_strings(values, family->nlabels);
        return NULL;
    }
    m->family = family;
    m->label_values = values;
    m->hash = hash;
    m->hash_next = NULL;
    m->next_created = NULL;
    atomic_init(&m->value, tf_metrics_bits(0.0));
    for (size_t i = 0; i < nbuckets; i++) {
        atomic_init(&m->buckets[i], 0);
    }
    return m;
}

/* Doubles the hash table when it is as full as it has slots, so there is
 * room for one more child.  Family lock held. */
static int tf_metrics_slots_grow(tf_metric_family_t *family) {
    if (family->nchildren < family->nslots) {
        return 0;
    }
    size_t nslots = family->nslots > 0 ? family->nslots * 2 : 8;
    tf_metric_t **slots = calloc(nslots, sizeof(*slots));
    if (slots == NULL) {
        return TF_ENOMEM;
    }
    for (tf_metric_t *m = family->first_child; m != NULL; m = m->next_created) {
        m->hash_next = slots[m->hash & (nslots - 1)];
        slots[m->hash & (nslots - 1)] = m;
    }
    free(family->slots);
    family->slots = slots;
    family->nslots = nslots;
    return 0;
}

static tf_metric_t *tf_metrics_find(const tf_metric_family_t *family, const char *const *values,
                                    uint64_t hash) {
    if (family->nslots == 0) {
        return NULL;
    }
    for (tf_metric_t *m = family->slots[hash & (family->nslots - 1)]; m != NULL; m = m->hash_next) {
        size_t i = 0;
        while (m->hash == hash && i < family->nlabels &&
               strcmp(m->label_values[i], values[i]) == 0) {
            i++;
        }
        if (m->hash == hash && i == family->nlabels) {
            return m;
        }
    }
    return NULL;
}

/* Finds or creates the child for the already sanitized `values`.  Family
 * lock held.  NULL when out of memory. */
static tf_metric_t *tf_metrics_find_or_add(tf_metric_family_t *family, const char *const *values) {
    uint64_t hash = tf_metrics_hash(values, family->nlabels);
    tf_metric_t *m = tf_metrics_find(family, values, hash);

    if (m != NULL) {
        return m;
    }
    if (tf_metrics_slots_grow(family) != 0) {
        return NULL;
    }
    char **copy = tf_metrics_dup_strings(values, family->nlabels);
    if (copy == NULL) {
        return NULL;
    }
    m = tf_metrics_child_new(family, copy, hash);
    if (m == NULL) {
        return NULL;
    }
    if (family->last_child != NULL) {
        family->last_child->next_created = m;
    } else {
        family->first_child = m;
    }
    family->last_child = m;
    family->nchildren++;
    m->hash_next = family->slots[hash & (family->nslots - 1)];
    family->slots[hash & (family->nslots - 1)] = m;
    return m;
}

tf_metric_t *tf_metric_get(tf_metric_family_t *family, const char *const *label_values) {
    static const char *const no_values[1] = {""};
    char **sanitized = NULL;
    const char *const *values = label_values;

    if (family == NULL) {
        return NULL;
    }
    if (family->nlabels == 0) {
        values = no_values;
    } else {
        int clean = label_values != NULL;
        for (size_t i = 0; clean && i < family->nlabels; i++) {
            clean = label_values[i] != NULL &&
                    tf_metrics_sanitize(label_values[i], NULL) == strlen(label_values[i]);
        }
        if (!clean) {
            sanitized = tf_metrics_dup_strings(label_values, family->nlabels);
            if (sanitized == NULL) {
                return NULL;
            }
            values = (const char *const *)sanitized;
        }
    }
    pthread_mutex_lock(&family->lock);
    tf_metric_t *m = tf_metrics_find_or_add(family, values);
    pthread_mutex_unlock(&family->lock);
    tf_metrics_free_strings(sanitized, family->nlabels);
    return m;
}

/* ---- updates ------------------------------------------------------------- */

void tf_metric_inc(tf_metric_t *m) {
    tf_metric_add(m, 1.0);
}

/* Counters only go up: a negative or NaN delta is ignored. */
void tf_metric_add(tf_metric_t *m, double value) {
    if (m == NULL || m->family->kind == TF_METRIC_HISTOGRAM) {
        return;
    }
    if (m->family->kind == TF_METRIC_COUNTER && !(value >= 0)) {
        return;
    }
    tf_metrics_atomic_add(&m->value, value);
}

void tf_metric_set(tf_metric_t *m, double value) {
    if (m == NULL || m->family->kind != TF_METRIC_GAUGE) {
        return;
    }
    atomic_store_explicit(&m->value, tf_metrics_bits(value), memory_order_relaxed);
}

/* A value lands in the first bucket whose bound is >= it.  NaN compares false
 * with every bound, so like values above them all it lands in +Inf (and
 * makes the sum NaN, as in the reference Go client). */
void tf_metric_observe(tf_metric_t *m, double value) {
    if (m == NULL || m->family->kind != TF_METRIC_HISTOGRAM) {
        return;
    }
    const tf_metric_family_t *family = m->family;
    size_t lo = 0, hi = family->nbounds; /* first bound >= value, by bisection */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (value <= family->bounds[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    atomic_fetch_add_explicit(&m->buckets[lo], 1, memory_order_relaxed);
    tf_metrics_atomic_add(&m->value, value);
}

/* ---- families ------------------------------------------------------------ */

/* What a registration asks for; bounds already defaulted for histograms. */
typedef struct {
    tf_metric_kind_t kind;
    const char *name;
    const char *help;
    const char *const *label_names;
    size_t nlabels;
    const double *bounds;
    size_t nbounds;
} tf_metrics_spec_t;

static void tf_metrics_family_free(tf_metric_family_t *family) {
    if (family == NULL) {
        return;
    }
    tf_metric_t *m = family->first_child;
    while (m != NULL) {
        tf_metric_t *next = m->next_created;
        tf_metrics_free_strings(m->label_values, family->nlabels);
        free(m);
        m = next;
    }
    free(family->slots);
    pthread_mutex_destroy(&family->lock);
    free(family->bounds);
    tf_metrics_free_strings(family->label_names, family->nlabels);
    free(family->help);
    free(family->name);
    free(family);
}

/* Copies the spec into a new family, which is not yet in the registry.  A
 * family without labels gets its only child now, so it renders as 0 before
 * the first update.  Caller owns the result; free with
 * tf_metrics_family_free(). */
static tf_metric_family_t *tf_metrics_family_new(const tf_metrics_spec_t *spec) {
    tf_metric_family_t *family = calloc(1, sizeof(*family));

    if (family == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&family->lock, NULL) != 0) {
        free(family);
        return NULL;
    }
    family->kind = spec->kind;
    family->nlabels = spec->nlabels;
    family->nbounds = spec->nbounds;
    family->name = tf_metrics_sanitized_dup(spec->name);
    family->help = tf_metrics_sanitized_dup(spec->help);
    family->label_names = tf_metrics_dup_strings(spec->label_names, spec->nlabels);
    family->bounds = malloc((spec->nbounds > 0 ? spec->nbounds : 1) * sizeof(double));
    if (family->name == NULL || family->help == NULL || family->label_names == NULL ||
        family->bounds == NULL) {
        goto fail;
    }
    if (spec->nbounds > 0) {
        memcpy(family->bounds, spec->bounds, spec->nbounds * sizeof(double));
    }
    if (spec->nlabels == 0 && tf_metric_get(family, NULL) == NULL) {
        goto fail;
    }
    return family;

fail:
    tf_metrics_family_free(family);
    return NULL;
}

/* True when `full` is `base` followed by one of a histogram's suffixes. */
static int tf_metrics_is_histogram_series(const char *full, const char *base) {
    size_t n = strlen(base);

    if (strncmp(full, base, n) != 0) {
        return 0;
    }
    for (size_t i = 0; i < TF_METRICS_NSUFFIXES; i++) {
        if (strcmp(full + n, tf_metrics_histogram_suffixes[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Whether `family` is exactly what `spec` registers (help text aside). */
static int tf_metrics_same_shape(const tf_metric_family_t *family, const tf_metrics_spec_t *spec) {
    if (family->kind != spec->kind || family->nlabels != spec->nlabels ||
        family->nbounds != spec->nbounds) {
        return 0;
    }
    for (size_t i = 0; i < spec->nlabels; i++) {
        if (strcmp(family->label_names[i], spec->label_names[i]) != 0) {
            return 0;
        }
    }
    for (size_t i = 0; i < spec->nbounds; i++) {
        if (family->bounds[i] != spec->bounds[i]) {
            return 0;
        }
    }
    return 1;
}

/* Looks for a family that `spec` repeats or clashes with.  Registry lock
 * held.  Returns 0 with *existing set (or NULL when the name is free), or
 * TF_ECONFLICT. */
static int tf_metrics_check_clash(const tf_metrics_t *reg, const tf_metrics_spec_t *spec,
                                  tf_metric_family_t **existing) {
    *existing = NULL;
    for (tf_metric_family_t *f = reg->first; f != NULL; f = f->next) {
        if (strcmp(f->name, spec->name) == 0) {
            if (!tf_metrics_same_shape(f, spec)) {
                return TF_ECONFLICT;
            }
            *existing = f;
            return 0;
        }
        if ((f->kind == TF_METRIC_HISTOGRAM &&
             tf_metrics_is_histogram_series(spec->name, f->name)) ||
            (spec->kind == TF_METRIC_HISTOGRAM &&
             tf_metrics_is_histogram_series(f->name, spec->name))) {
            return TF_ECONFLICT;
        }
    }
    return 0;
}

static int tf_metrics_register(tf_metrics_t *reg, const tf_metrics_spec_t *spec,
                               tf_metric_family_t **out) {
    tf_metric_family_t *family = NULL;
    int rc;

    if (reg == NULL || out == NULL || !tf_metrics_name_valid(spec->name, 1) ||
        !tf_metrics_labels_valid(spec->kind, spec->label_names, spec->nlabels) ||
        !tf_metrics_bounds_valid(spec->bounds, spec->nbounds)) {
        return TF_EINVAL;
    }
    pthread_mutex_lock(&reg->lock);
    rc = tf_metrics_check_clash(reg, spec, &family);
    if (rc != 0 || family != NULL) {
        goto done;
    }
    family = tf_metrics_family_new(spec);
    if (family == NULL) {
        rc = TF_ENOMEM;
        goto done;
    }
    if (reg->last != NULL) {
        reg->last->next = family;
    } else {
        reg->first = family;
    }
    reg->last = family;

done:
    pthread_mutex_unlock(&reg->lock);
    if (rc == 0) {
        *out = family;
    }
    return rc;
}

int tf_metrics_counter(tf_metrics_t *reg, const char *name, const char *help,
                       const char *const *label_names, size_t nlabels, tf_metric_family_t **out) {
    tf_metrics_spec_t spec = {TF_METRIC_COUNTER, name, help, label_names, nlabels, NULL, 0};
    return tf_metrics_register(reg, &spec, out);
}

int tf_metrics_gauge(tf_metrics_t *reg, const char *name, const char *help,
                     const char *const *label_names, size_t nlabels, tf_metric_family_t **out) {
    tf_metrics_spec_t spec = {TF_METRIC_GAUGE, name, help, label_names, nlabels, NULL, 0};
    return tf_metrics_register(reg, &spec, out);
}

int tf_metrics_histogram(tf_metrics_t *reg, const char *name, const char *help,
                         const char *const *label_names, size_t nlabels, const double *bounds,
                         size_t nbounds, tf_metric_family_t **out) {
    tf_metrics_spec_t spec = {
        TF_METRIC_HISTOGRAM, name, help, label_names, nlabels, bounds, nbounds};
    if (bounds == NULL || nbounds == 0) {
        spec.bounds = tf_metrics_default_bounds;
        spec.nbounds = sizeof(tf_metrics_default_bounds) / sizeof(tf_metrics_default_bounds[0]);
    }
    return tf_metrics_register(reg, &spec, out);
}

int tf_metrics_create(tf_metrics_t **out) {
    if (out == NULL) {
        return TF_EINVAL;
    }
    tf_metrics_t *reg = calloc(1, sizeof(*reg));
    if (reg == NULL) {
        return TF_ENOMEM;
    }
    if (pthread_mutex_init(&reg->lock, NULL) != 0) {
        goto fail_free;
    }
    *out = reg;
    return 0;

fail_free:
    free(reg);
    return TF_ENOMEM;
}

void tf_metrics_destroy(tf_metrics_t *reg) {
    if (reg == NULL) {
        return;
    }
    tf_metric_family_t *family = reg->first;
    while (family != NULL) {
        tf_metric_family_t *next = family->next;
        tf_metrics_family_free(family);
        family = next;
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

/* ---- rendering ----------------------------------------------------------- */

/* A growing output buffer; `failed` sticks after the first allocation
 * failure so callers check once at the end. */
typedef struct {
    char *buf;
    size_t len;
    size_t cap;
    int failed;
} tf_metrics_out_t;

static void tf_metrics_put(tf_metrics_out_t *o, const char *s, size_t n) {
    if (o->failed) {
        return;
    }
    if (n + 1 > o->cap - o->len) {
        size_t cap = o->cap > 0 ? o->cap : 4096;
        while (n + 1 > cap - o->len) {
            cap *= 2;
        }
        char *buf = realloc(o->buf, cap);
        if (buf == NULL) {
            o->failed = 1;
            return;
        }
        o->buf = buf;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void tf_metrics_puts(tf_metrics_out_t *o, const char *s) {
    tf_metrics_put(o, s, strlen(s));
}

/* Writes each string argument in turn, up to a NULL. */
static void tf_metrics_putv(tf_metrics_out_t *o, ...) {
    va_list ap;

    va_start(ap, o);
    for (const char *s = va_arg(ap, const char *); s != NULL; s = va_arg(ap, const char *)) {
        tf_metrics_puts(o, s);
    }
    va_end(ap);
}

/* Writes `s` escaping backslash and newline, and the double quote too when
 * `quote` is set (label values; HELP text leaves quotes alone). */
static void tf_metrics_put_escaped(tf_metrics_out_t *o, const char *s, int quote) {
    const char *run = s;

    for (; *s != '\0'; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : NULL;
        if (quote && *s == '"') {
            esc = "\\\"";
        }
        if (esc != NULL) {
            tf_metrics_put(o, run, (size_t)(s - run));
            tf_metrics_puts(o, esc);
            run = s + 1;
        }
    }
    tf_metrics_put(o, run, (size_t)(s - run));
}

/* Formats `d` as Prometheus reads floats: NaN, +Inf, -Inf, or the shortest
 * decimal that reads back exactly. */
static void tf_metrics_format_double(double d, char out[32]) {
    if (isnan(d)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(d)) {
        strcpy(out, d > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(out, 32, "%.*g", precision, d);
        if (strtod(out, NULL) == d) {
            break;
        }
    }
    for (char *c = out; *c != '\0'; c++) {
        if (*c == ',') { /* a locale with a decimal comma */
            *c = '.';
        }
    }
}

/* Writes {a="x",b="y"} (and le="..." when `le` is set), or nothing for a
 * child without labels. */
static void tf_metrics_put_labels(tf_metrics_out_t *o, const tf_metric_t *m, const char *le) {
    const tf_metric_family_t *family = m->family;

    if (family->nlabels == 0 && le == NULL) {
        return;
    }
    tf_metrics_puts(o, "{");
    for (size_t i = 0; i < family->nlabels; i++) {
        tf_metrics_putv(o, i > 0 ? "," : "", family->label_names[i], "=\"", NULL);
        tf_metrics_put_escaped(o, m->label_values[i], 1);
        tf_metrics_puts(o, "\"");
    }
    if (le != NULL) {
        tf_metrics_putv(o, family->nlabels > 0 ? "," : "", "le=\"", le, "\"", NULL);
    }
    tf_metrics_puts(o, "}");
}

/* Writes one sample line: name+suffix, labels, a space, value. */
static void tf_metrics_put_sample(tf_metrics_out_t *o, const tf_metric_t *m, const char *suffix,
                                  const char *le, const char *value) {
    tf_metrics_putv(o, m->family->name, suffix, NULL);
    tf_metrics_put_labels(o, m, le);
    tf_metrics_putv(o, " ", value, "\n", NULL);
}

static void tf_metrics_put_histogram(tf_metrics_out_t *o, const tf_metric_t *m) {
    const tf_metric_family_t *family = m->family;
    char le[32], value[32];
    uint64_t cumulative = 0;

    for (size_t i = 0; i <= family->nbounds; i++) {
        cumulative += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        if (i < family->nbounds) {
            tf_metrics_format_double(family->bounds[i], le);
        } else {
            strcpy(le, "+Inf");
        }
        snprintf(value, sizeof(value), "%" PRIu64, cumulative);
        tf_metrics_put_sample(o, m, "_bucket", le, value);
    }
    tf_metrics_format_double(
        tf_metrics_double(atomic_load_explicit(&m->value, memory_order_relaxed)), value);
    tf_metrics_put_sample(o, m, "_sum", NULL, value);
    snprintf(value, sizeof(value), "%" PRIu64, cumulative);
    tf_metrics_put_sample(o, m, "_count", NULL, value);
}

/* Writes a family's HELP, TYPE and samples.  Takes the family lock. */
static void tf_metrics_put_family(tf_metrics_out_t *o, tf_metric_family_t *family) {
    char value[32];

    tf_metrics_putv(o, "# HELP ", family->name, " ", NULL);
    tf_metrics_put_escaped(o, family->help, 0);
    tf_metrics_putv(o, "\n# TYPE ", family->name, " ", tf_metrics_kind_names[family->kind], "\n",
                    NULL);
    pthread_mutex_lock(&family->lock);
    for (const tf_metric_t *m = family->first_child; m != NULL; m = m->next_created) {
        if (family->kind == TF_METRIC_HISTOGRAM) {
            tf_metrics_put_histogram(o, m);
            continue;
        }
        tf_metrics_format_double(
            tf_metrics_double(atomic_load_explicit(&m->value, memory_order_relaxed)), value);
        tf_metrics_put_sample(o, m, "", NULL, value);
    }
    pthread_mutex_unlock(&family->lock);
}

int tf_metrics_render(tf_metrics_t *reg, char **out, size_t *len) {
    tf_metrics_out_t o = {0};

    if (reg == NULL || out == NULL) {
        return TF_EINVAL;
    }
    tf_metrics_put(&o, "", 0); /* an empty registry still renders "" */
    pthread_mutex_lock(&reg->lock);
    for (tf_metric_family_t *family = reg->first; family != NULL; family = family->next) {
        tf_metrics_put_family(&o, family);
    }
    pthread_mutex_unlock(&reg->lock);
    if (o.failed) {
        free(o.buf);
        return TF_ENOMEM;
    }
    *out = o.buf;
    if (len != NULL) {
        *len = o.len;
    }
    return 0;
}
