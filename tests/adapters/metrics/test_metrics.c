/*
 * test_metrics.c - tests for adapters/metrics/metrics.c.
 *
 * Checks values and the exact rendered text of counters, gauges and
 * histograms, escaping, name validation, duplicate registration, exact totals
 * under four concurrent updaters, and that `promtool check metrics` accepts a
 * rendering with every kind of family.  promtool is required: the test fails
 * when it is missing.  Each test owns its registry; the concurrency tests run
 * worker threads against it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapters/metrics/metrics.h"
#include "engine/error.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>

static int setup(void **state) {
    tf_metrics_t *reg = NULL;
    assert_int_equal(tf_metrics_create(&reg), 0);
    *state = reg;
    return 0;
}

static int teardown(void **state) {
    tf_metrics_destroy(*state);
    return 0;
}

/* Renders `reg` and compares the whole text with `want`. */
static void assert_render(tf_metrics_t *reg, const char *want) {
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(tf_metrics_render(reg, &text, &len), 0);
    assert_int_equal(len, strlen(text));
    assert_string_equal(text, want);
    free(text);
}

/* Renders `reg` and checks that `line` appears as a whole line. */
static void assert_has_line(tf_metrics_t *reg, const char *line) {
    char *text = NULL;
    assert_int_equal(tf_metrics_render(reg, &text, NULL), 0);
    size_t n = strlen(line);
    const char *p = text;
    while ((p = strstr(p, line)) != NULL && !((p == text || p[-1] == '\n') && p[n] == '\n')) {
        p++;
    }
    if (p == NULL) {
        fail_msg("line not found: %s\nin:\n%s", line, text);
    }
    free(text);
}

static void test_metrics__counter_only_goes_up(void **state) {
    tf_metrics_t *reg = *state;
    tf_metric_family_t *fam = NULL;

    assert_int_equal(tf_metrics_counter(reg, "tf_jobs_total", "Jobs seen.", NULL, 0, &fam), 0);
    assert_render(reg, "# HELP tf_jobs_total Jobs seen.\n"
                       "# TYPE tf_jobs_total counter\n"
                       "tf_jobs_total 0\n");
    tf_metric_t *m = tf_metric_get(fam, NULL);
    assert_non_null(m);
    tf_metric_inc(m);
    tf_metric_add(m, 2.5);
    tf_metric_add(m, -1);  /* ignored: counters never go down */
    tf_metric_add(m, NAN); /* ignored */
    tf_metric_set(m, 100); /* ignored: set is for gauges */
    tf_metric_observe(m, 1);
    assert_render(reg, "# HELP tf_jobs_total Jobs seen.\n"
                       "# TYPE tf_jobs_total counter\n"
                       "tf_jobs_total 3.5\n");
}

static void test_metrics__gauge_sets_adds_and_special_values(void **state) {
    tf_metrics_t *reg = *state;
    tf_metric_family_t *fam = NULL;
    const char *labels[] = {"queue"};

    assert_int_equal(tf_metrics_gauge(reg, "tf_queue_depth", "Ready jobs.", labels, 1, &fam), 0);
    assert_render(reg, "# HELP tf_queue_depth Ready jobs.\n# TYPE tf_queue_depth gauge\n");
    tf_metric_t *a = tf_metric_get(fam, (const char *[]){"a"});
    tf_metric_set(a, 10);
    tf_metric_add(a, -12.25);
    tf_metric_inc(a);
    tf_metric_set(tf_metric_get(fam, (const char *[]){"inf"}), INFINITY);
    tf_metric_set(tf_metric_get(fam, (const char *[]){"ninf"}), -INFINITY);
    tf_metric_set(tf_metric_get(fam, (const char *[]){"nan"}), NAN);
    tf_metric_set(tf_metric_get(fam, (const char *[]){"tiny"}), 0.1);
    tf_metric_set(tf_metric_get(fam, (const char *[]){"huge"}), 1e300);
    tf_metric_set(tf_metric_get(fam, (const char *[]){"third"}), 1.0 / 3);
    assert_render(reg, "# HELP tf_queue_depth Ready jobs.\n"
                       "# TYPE tf_queue_depth gauge\n"
                       "tf_queue_depth{queue=\"a\"} -1.25\n"
                       "tf_queue_depth{queue=\"inf\"} +Inf\n"
                       "tf_queue_depth{queue=\"ninf\"} -Inf\n"
                       "tf_queue_depth{queue=\"nan\"} NaN\n"
                       "tf_queue_depth{queue=\"tiny\"} 0.1\n"
                       "tf_queue_depth{queue=\"huge\"} 1e+300\n"
                       "tf_queue_depth{queue=\"third\"} 0.3333333333333333\n");
}

static void test_metrics__histogram_buckets_are_cumulative(void **state) {
    tf_metrics_t *reg = *state;
    tf_metric_family_t *fam = NULL;
    const char *labels[] = {"route"};
    const double bounds[] = {0.1, 1};

    assert_int_equal(tf_metrics_histogram(reg, "tf_http_request_duration_seconds", "Latency.",
                                          labels, 1, bounds, 2, &fam),
                     0);
    tf_metric_t *m = tf_metric_get(fam, (const char *[]){"/jobs"});
    tf_metric_observe(m, 0.05);
    tf_metric_observe(m, 0.1); /* le is inclusive */
    tf_metric_observe(m, 0.5);
    tf_metric_observe(m, 5);
    tf_metric_inc(m); /* ignored on a histogram */
    tf_metric_set(m, 3);
    assert_render(reg, "# HELP tf_http_request_duration_seconds Latency.\n"
                       "# TYPE tf_http_request_duration_seconds histogram\n"
                       "tf_http_request_duration_seconds_bucket{route=\"/jobs\",le=\"0.1\"} 2\n"
                       "tf_http_request_duration_seconds_bucket{route=\"/jobs\",le=\"1\"} 3\n"
                       "tf_http_request_duration_seconds_bucket{route=\"/jobs\",le=\"+Inf\"} 4\n"
                       "tf_http_request_duration_seconds_sum{route=\"/jobs\"} 5.65\n"
                       "tf_http_request_duration_seconds_count{route=\"/jobs\"} 4\n");
}

static void test_metrics__histogram_default_buckets(void **state) {
    tf_metrics_t *reg = *state;
    tf_metric_family_t *fam = NULL;
    static const char *const les[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                      "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                      "1",      "2.5",   "5",      "10",    "+Inf"};
    char line[128];

    assert_int_equal(
        tf_metrics_histogram(reg, "tf_claim_seconds", "Claim time.", NULL, 0, NULL, 0, &fam), 0);
    tf_metric_observe(tf_metric_get(fam, NULL), 0.003);
    tf_metric_observe(tf_metric_get(fam, NULL), 20);
    tf_metric_observe(tf_metric_get(fam, NULL), NAN); /* lands in +Inf */
    for (size_t i = 0; i < sizeof(les) / sizeof(les[0]); i++) {
        snprintf(line, sizeof(line), "tf_claim_seconds_bucket{le=\"%s\"} %d", les[i],
                 i < 3    ? 0
                 : i < 14 ? 1
                          : 3);
        assert_has_line(reg, line);
    }
    assert_has_line(reg, "tf_claim_seconds_sum NaN");
    assert_has_line(reg, "tf_claim_seconds_count 3");
}

static void test_metrics__label_values_and_help_are_escaped(void **state) {
    tf_metrics_t *reg = *state;
    tf_metric_family_t *fam = NULL;
    const char *labels[] = {"tenant", "queue"};

    assert_int_equal(tf_metrics_counter(reg, "tf_claims_total", "Claims \"per\" tenant\\queue\nok.",
                                        labels, 2, &fam),
                     0);
    tf_metric_inc(tf_metric_get(fam, (const char *[]){"a\"b\\c\nd", ""}));
    tf_metric_inc(tf_metric_get(fam, (const char *[]){"caf\xC3\xA9 \xF0\x9F\x9A\x80", "q{x}=,"}));
    assert_render(reg,
                  "# HELP tf_claims_total Claims \"per\" tenant\\\\queue\\nok.\n"
                  "# TYPE tf_claims_total counter\n"
                  "tf_claims_total{tenant=\"a\\\"b\\\\c\\nd\",queue=\"\"} 1\n"
                  "tf_claims_total{tenant=\"caf\xC3\xA9 \xF0\x9F\x9A\x80\",queue=\"q{x}=,\"} 1\n");
}

static void test_metrics__invalid_utf8_label_values_are_replaced(void **state) {
    tf_metrics_t *reg = *state;
    tf_metric_family_t *fam = NULL;
    const char *labels[] = {"tenant"};

    assert_int_equal(tf_metrics_counter(reg, "tf_bad_total", "Bad \xff help.", labels, 1, &fam), 0);
    tf_metric_t *a = tf_metric_get(fam, (const char *[]){"x\xff"});
    tf_metric_t *b = tf_metric_get(fam, (const char *[]){"x\xfe"});
    tf_metric_t *c = tf_metric_get(fam, (const char *[]){"x\xEF\xBF\xBD"});
    tf_metric_t *d = tf_metric_get(fam, (const char *[]){NULL});
    assert_ptr_equal(a, b); /* both sanitize to x U+FFFD, one series */
    assert_ptr_equal(a, c);
    assert_ptr_equal(d, tf_metric_get(fam, (const char *[]){""}));
    tf_metric_inc(a);
    tf_metric_inc(b);
    assert_render(reg, "# HELP tf_bad_total Bad \xEF\xBF\xBD help.\n"
                       "# TYPE tf_bad_total counter\n"
                       "tf_bad_total{tenant=\"x\xEF\xBF\xBD\"} 2\n"
                       "tf_bad_total{tenant=\"\"} 0\n");
}

static void test_metrics__bad_names_are_rejected(void **state) {
    tf_metrics_t *reg = *state;
    tf_metric_family_t *fam = NULL;
    static const char *const bad_names[] = {"", "1abc", "a-b", "a b", "caf\xC3\xA9", "a.b", "a{"};
    static const char *const bad_labels[] = {"", "1a", "a:b", "__name", "__", "a-b", "\xC3\xA9"};

    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        assert_int_equal(tf_metrics_counter(reg, bad_names[i], "h", NULL, 0, &fam), TF_EINVAL);
        assert_int_equal(tf_metrics_gauge(reg, bad_names[i], "h", NULL, 0, &fam), TF_EINVAL);
        assert_int_equal(tf_metrics_histogram(reg, bad_names[i], "h", NULL, 0, NULL, 0, &fam),
                         TF_EINVAL);
    }
    assert_int_equal(tf_metrics_counter(reg, NULL, "h", NULL, 0, &fam), TF_EINVAL);
    for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++) {
        const char *labels[] = {"ok", bad_labels[i]};
        assert_int_equal(tf_metrics_gauge(reg, "tf_g", "h", labels, 2, &fam), TF_EINVAL);
    }
    const char *le[] = {"le"}, *dup[] = {"a", "a"}, *null_label[] = {NULL};
    assert_int_equal(tf_metrics_histogram(reg, "tf_h_seconds", "h", le, 1, NULL, 0, &fam),
                     TF_EINVAL);
    assert_int_equal(tf_metrics_counter(reg, "tf_c_total", "h", dup, 2, &fam), TF_EINVAL);
    assert_int_equal(tf_metrics_counter(reg, "tf_c_total", "h", null_label, 1, &fam), TF_EINVAL);
    assert_int_equal(tf_metrics_counter(reg, "tf_c_total", "h", NULL, 1, &fam), TF_EINVAL);
    assert_int_equal(tf_metrics_counter(NULL, "tf_c_total", "h", NULL, 0, &fam), TF_EINVAL);
    assert_int_equal(tf_metrics_counter(reg, "tf_c_total", "h", NULL, 0, NULL), TF_EINVAL);
    assert_render(reg, ""); /* nothing was registered */

    /* Colons are fine in metric names; "le" is an ordinary label elsewhere. */
    assert_int_equal(tf_metrics_gauge(reg, "tf:rule:ratio", "h", NULL, 0, &fam), 0);
    assert_int_equal(tf_metrics_gauge(reg, "_x9", "h", le, 1, &fam), 0);
}

static void test_metrics__bad_bounds_are_rejected(void **state) {
    tf_metrics_t *reg = *state;
    tf_metric_family_t *fam = NULL;
    const double equal[] = {1, 1}, down[] = {2, 1}, nan[] = {1, NAN}, inf[] = {1, INFINITY},
                 ninf[] = {-INFINITY, 1}, ok[] = {-1, 0, 1e-9};

    assert_int_equal(tf_metrics_histogram(reg, "tf_h", "h", NULL, 0, equal, 2, &fam), TF_EINVAL);
    assert_int_equal(tf_metrics_histogram(reg, "tf_h", "h", NULL, 0, down, 2, &fam), TF_EINVAL);
    assert_int_equal(tf_metrics_histogram(reg, "tf_h", "h", NULL, 0, nan, 2, &fam), TF_EINVAL);
    assert_int_equal(tf_metrics_histogram(reg, "tf_h", "h", NULL, 0, inf, 2, &fam), TF_EINVAL);
    assert_int_equal(tf_metrics_histogram(reg, "tf_h", "h", NULL, 0, ninf, 2, &fam), TF_EINVAL);
    assert_int_equal(tf_metrics_histogram(reg, "tf_h", "h", NULL, 0, ok, 3, &fam), 0);
    tf_metric_observe(tf_metric_get(fam, NULL), -5);
    assert_has_line(reg, "tf_h_bucket{le=\"-1\"} 1");
    assert_has_line(reg, "tf_h_bucket{le=\"1e-09\"} 1");
}

static void test_metrics__duplicate_registration(void **state) {
    tf_metrics_t *reg = *state;
    tf_metric_family_t *a = NULL, *b = NULL;
    const char *ab[] = {"a", "b"}, *ba[] = {"b", "a"}, *a_only[] = {"a"};
    const double b1[] = {1, 2}, b2[] = {1, 3};

    assert_int_equal(tf_metrics_counter(reg, "tf_x_total", "h", ab, 2, &a), 0);
    assert_int_equal(tf_metrics_counter(reg, "tf_x_total", "other help", ab, 2, &b), 0);
    assert_ptr_equal(a, b);
    assert_int_equal(tf_metrics_gauge(reg, "tf_x_total", "h", ab, 2, &b), TF_ECONFLICT);
    assert_int_equal(tf_metrics_counter(reg, "tf_x_total", "h", ba, 2, &b), TF_ECONFLICT);
    assert_int_equal(tf_metrics_counter(reg, "tf_x_total", "h", a_only, 1, &b), TF_ECONFLICT);
    assert_int_equal(tf_metrics_counter(reg, "tf_x_total", "h", NULL, 0, &b), TF_ECONFLICT);

    assert_int_equal(tf_metrics_histogram(reg, "tf_h_seconds", "h", NULL, 0, b1, 2, &a), 0);
    assert_int_equal(tf_metrics_histogram(reg, "tf_h_seconds", "h", NULL, 0, b1, 2, &b), 0);
    assert_ptr_equal(a, b);
    assert_int_equal(tf_metrics_histogram(reg, "tf_h_seconds", "h", NULL, 0, b2, 2, &b),
                     TF_ECONFLICT);
    assert_int_equal(tf_metrics_histogram(reg, "tf_h_seconds", "h", NULL, 0, NULL, 0, &b),
                     TF_ECONFLICT);
    assert_int_equal(tf_metrics_histogram(reg, "tf_d_seconds", "h", NULL, 0, NULL, 0, &a), 0);
    assert_int_equal(tf_metrics_histogram(reg, "tf_d_seconds", "h", NULL, 0, NULL, 0, &b), 0);
    assert_ptr_equal(a, b);

    /* A histogram's series names are taken too, in both directions. */
    assert_int_equal(tf_metrics_gauge(reg, "tf_h_seconds_count", "h", NULL, 0, &b), TF_ECONFLICT);
    assert_int_equal(tf_metrics_counter(reg, "tf_h_seconds_sum", "h", NULL, 0, &b), TF_ECONFLICT);
    assert_int_equal(tf_metrics_gauge(reg, "tf_h_seconds_bucket", "h", NULL, 0, &b), TF_ECONFLICT);
    assert_int_equal(tf_metrics_gauge(reg, "tf_h_seconds_max", "h", NULL, 0, &b), 0);
    assert_int_equal(tf_metrics_gauge(reg, "tf_y_sum", "h", NULL, 0, &b), 0);
    assert_int_equal(tf_metrics_histogram(reg, "tf_y", "h", NULL, 0, NULL, 0, &b), TF_ECONFLICT);
}

static void test_metrics__children_are_reused_and_ordered(void **state) {
    tf_metrics_t *reg = *state;
    tf_metric_family_t *first = NULL, *second = NULL;
    const char *labels[] = {"a", "b"};
    tf_metric_t *kids[40];
    char va[16], vb[16];

    assert_int_equal(tf_metrics_gauge(reg, "tf_zz", "Registered first.", labels, 2, &first), 0);
    assert_int_equal(tf_metrics_gauge(reg, "tf_aa", "Registered second.", NULL, 0, &second), 0);
    for (int i = 0; i < 40; i++) { /* enough to grow the hash table twice */
        snprintf(va, sizeof(va), "%d", 39 - i);
        snprintf(vb, sizeof(vb), "v%d", i % 3);
        kids[i] = tf_metric_get(first, (const char *[]){va, vb});
        assert_non_null(kids[i]);
        tf_metric_set(kids[i], i);
    }
    for (int i = 0; i < 40; i++) {
        snprintf(va, sizeof(va), "%d", 39 - i);
        snprintf(vb, sizeof(vb), "v%d", i % 3);
        assert_ptr_equal(tf_metric_get(first, (const char *[]){va, vb}), kids[i]);
    }
    /* ("ab","") and ("a","b") are different children. */
    assert_ptr_not_equal(tf_metric_get(first, (const char *[]){"ab", ""}),
                         tf_metric_get(first, (const char *[]){"a", "b"}));
    assert_ptr_equal(tf_metric_get(second, NULL), tf_metric_get(second, NULL));

    char *text = NULL;
    assert_int_equal(tf_metrics_render(reg, &text, NULL), 0);
    const char *prev = strstr(text, "# HELP tf_zz ");
    assert_non_null(prev);
    for (int i = 0; i < 40; i++) {
        char line[64];
        snprintf(line, sizeof(line), "\ntf_zz{a=\"%d\",b=\"v%d\"} %d\n", 39 - i, i % 3, i);
        const char *at = strstr(text, line);
        assert_non_null(at);
        assert_true(at > prev); /* creation order */
        prev = at;
    }
    assert_true(strstr(text, "# HELP tf_aa ") > prev); /* registration order */
    free(text);
}

static void test_metrics__null_child_and_family_are_ignored(void **state) {
    (void)state;
    tf_metric_inc(NULL);
    tf_metric_add(NULL, 1);
    tf_metric_set(NULL, 1);
    tf_metric_observe(NULL, 1);
    assert_null(tf_metric_get(NULL, NULL));
    tf_metrics_destroy(NULL);
    assert_int_equal(tf_metrics_create(NULL), TF_EINVAL);
    assert_int_equal(tf_metrics_render(NULL, &(char *){NULL}, NULL), TF_EINVAL);
}

/* ---- concurrency ---------------------------------------------------------- */

enum { THREADS = 4, ITERATIONS = 100000, OWN_CHILD_EVERY = 400 };

typedef struct {
    tf_metric_family_t *ops;
    tf_metric_family_t *level;
    tf_metric_family_t *latency;
    int id;
} worker_arg_t;

/* Every worker looks the shared children up itself (racing to create them),
 * hammers them, and creates children of its own while others do the same. */
static void *worker_main(void *p) {
    worker_arg_t *arg = p;
    const char *const shared[] = {"shared"};
    tf_metric_t *ops = tf_metric_get(arg->ops, shared);
    tf_metric_t *level = tf_metric_get(arg->level, shared);
    tf_metric_t *latency = tf_metric_get(arg->latency, shared);
    char name[32];

    for (int i = 0; i < ITERATIONS; i++) {
        tf_metric_inc(ops);
        tf_metric_add(level, 2.0);
        tf_metric_observe(latency, i % 2 ? 2.0 : 0.5);
        if (i % OWN_CHILD_EVERY == 0) {
            snprintf(name, sizeof(name), "t%d-%d", arg->id, i);
            tf_metric_inc(tf_metric_get(arg->ops, (const char *const[]){name}));
        }
    }
    return NULL;
}

typedef struct {
    tf_metrics_t *reg;
    int stop;
    pthread_mutex_t lock;
    int renders;
} render_arg_t;

static void *render_main(void *p) {
    render_arg_t *arg = p;
    for (;;) {
        pthread_mutex_lock(&arg->lock);
        int stop = arg->stop;
        pthread_mutex_unlock(&arg->lock);
        if (stop && arg->renders > 0) {
            return NULL;
        }
        char *text = NULL;
        assert_int_equal(tf_metrics_render(arg->reg, &text, NULL), 0);
        free(text);
        arg->renders++;
    }
}

static void test_metrics__concurrent_updates_are_exact(void **state) {
    tf_metrics_t *reg = *state;
    const char *labels[] = {"kind"};
    const double bounds[] = {1};
    worker_arg_t args[THREADS];
    pthread_t workers[THREADS], renderer;
    render_arg_t render = {.reg = reg};

    pthread_mutex_init(&render.lock, NULL);
    assert_int_equal(tf_metrics_counter(reg, "tf_ops_total", "Ops.", labels, 1, &args[0].ops), 0);
    assert_int_equal(tf_metrics_gauge(reg, "tf_level", "Level.", labels, 1, &args[0].level), 0);
    assert_int_equal(tf_metrics_histogram(reg, "tf_op_seconds", "Op time.", labels, 1, bounds, 1,
                                          &args[0].latency),
                     0);
    assert_int_equal(pthread_create(&renderer, NULL, render_main, &render), 0);
    for (int t = 0; t < THREADS; t++) {
        args[t] = args[0];
        args[t].id = t;
        assert_int_equal(pthread_create(&workers[t], NULL, worker_main, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(workers[t], NULL);
    }
    pthread_mutex_lock(&render.lock);
    render.stop = 1;
    pthread_mutex_unlock(&render.lock);
    pthread_join(renderer, NULL);
    pthread_mutex_destroy(&render.lock);

    assert_has_line(reg, "tf_ops_total{kind=\"shared\"} 400000");
    assert_has_line(reg, "tf_level{kind=\"shared\"} 800000");
    assert_has_line(reg, "tf_op_seconds_bucket{kind=\"shared\",le=\"1\"} 200000");
    assert_has_line(reg, "tf_op_seconds_bucket{kind=\"shared\",le=\"+Inf\"} 400000");
    assert_has_line(reg, "tf_op_seconds_sum{kind=\"shared\"} 500000");
    assert_has_line(reg, "tf_op_seconds_count{kind=\"shared\"} 400000");
    assert_has_line(reg, "tf_ops_total{kind=\"t3-99600\"} 1");
    char *text = NULL;
    assert_int_equal(tf_metrics_render(reg, &text, NULL), 0);
    size_t series = 0;
    for (const char *p = text; (p = strstr(p, "\ntf_ops_total{")) != NULL; p++) {
        series++;
    }
    assert_int_equal(series, 1 + THREADS * (ITERATIONS / OWN_CHILD_EVERY));
    free(text);
}

/* ---- promtool ------------------------------------------------------------- */

/* Builds a registry with every kind of family, labels and values that need
 * escaping or special spelling. */
static void fill_everything(tf_metrics_t *reg) {
    tf_metric_family_t *fam = NULL;
    const char *tq[] = {"tenant", "queue"}, *route[] = {"route", "method"}, *state_l[] = {"state"};
    const double bounds[] = {0.001, 0.5, 100};

    assert_int_equal(
        tf_metrics_counter(reg, "tf_jobs_total", "Jobs by \"state\"\\\nline.", tq, 2, &fam), 0);
    tf_metric_add(tf_metric_get(fam, (const char *[]){"acme", "default"}), 3);
    tf_metric_inc(tf_metric_get(fam, (const char *[]){"we\"ird\\na\nme", "caf\xC3\xA9"}));
    tf_metric_inc(tf_metric_get(fam, (const char *[]){"bad\xff", ""}));
    tf_metric_add(tf_metric_get(fam, (const char *[]){"inf", "x"}), INFINITY);
    assert_int_equal(tf_metrics_counter(reg, "tf_restarts_total", "Restarts.", NULL, 0, &fam), 0);
    assert_int_equal(tf_metrics_gauge(reg, "tf_jobs", "Jobs by state.", state_l, 1, &fam), 0);
    tf_metric_set(tf_metric_get(fam, (const char *[]){"pending"}), 12);
    tf_metric_set(tf_metric_get(fam, (const char *[]){"nan"}), NAN);
    tf_metric_set(tf_metric_get(fam, (const char *[]){"inf"}), INFINITY);
    tf_metric_set(tf_metric_get(fam, (const char *[]){"ninf"}), -INFINITY);
    tf_metric_set(tf_metric_get(fam, (const char *[]){"tiny"}), -4.9e-324);
    assert_int_equal(tf_metrics_gauge(reg, "tf_unused", "Never set.", state_l, 1, &fam), 0);
    assert_int_equal(tf_metrics_gauge(reg, "tf_capacity_bytes", "Huge.", NULL, 0, &fam), 0);
    tf_metric_set(tf_metric_get(fam, NULL), 1e300);
    assert_int_equal(tf_metrics_histogram(reg, "tf_http_request_duration_seconds", "Latency.",
                                          route, 2, NULL, 0, &fam),
                     0);
    tf_metric_observe(tf_metric_get(fam, (const char *[]){"/v1/jobs", "GET"}), 0.02);
    tf_metric_observe(tf_metric_get(fam, (const char *[]){"/v1/jobs", "POST"}), 42);
    assert_int_equal(
        tf_metrics_histogram(reg, "tf_payload_bytes", "Sizes.", NULL, 0, bounds, 3, &fam), 0);
    tf_metric_observe(tf_metric_get(fam, NULL), 0.25);
}

static void test_metrics__promtool_accepts_everything(void **state) {
    tf_metrics_t *reg = *state;
    char *text = NULL;
    size_t len = 0;
    struct sigaction ignore = {.sa_handler = SIG_IGN}, old;

    fill_everything(reg);
    assert_int_equal(tf_metrics_render(reg, &text, &len), 0);
    /* A missing promtool must fail the test, not kill it with SIGPIPE. */
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &old);
    FILE *p = popen("promtool check metrics", "w");
    assert_non_null(p);
    size_t written = fwrite(text, 1, len, p);
    int status = pclose(p);
    sigaction(SIGPIPE, &old, NULL);
    int ok = written == len && status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) {
        fprintf(stderr, "promtool was given:\n%s", text);
    }
    free(text);
    if (!ok) {
        fail_msg("promtool check metrics exited with %d (127: promtool is missing)",
                 status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics__counter_only_goes_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics__gauge_sets_adds_and_special_values, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics__histogram_buckets_are_cumulative, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics__histogram_default_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics__label_values_and_help_are_escaped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics__invalid_utf8_label_values_are_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics__bad_names_are_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics__bad_bounds_are_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics__duplicate_registration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics__children_are_reused_and_ordered, setup,
                                        teardown),
        cmocka_unit_test(test_metrics__null_child_and_family_are_ignored),
        cmocka_unit_test_setup_teardown(test_metrics__concurrent_updates_are_exact, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics__promtool_accepts_everything, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
