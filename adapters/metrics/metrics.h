/*
 * metrics.h - a small Prometheus metrics registry.
 *
 * Families (counter, gauge, histogram) are registered once at start-up with
 * their label names; a child is one combination of label values.  Looking up
 * a child takes the family's lock; updating a child is lock-free (C11
 * atomics), so hot paths look a child up once and keep the pointer.  Every
 * function is safe to call from any loop thread.  tf_metrics_render() writes
 * the Prometheus text exposition format (version 0.0.4), which
 * `promtool check metrics` accepts.
 *
 * Names follow Prometheus conventions: base units (seconds, bytes), counters
 * end in _total, histograms of time in _seconds.
 */
#ifndef TF_ADAPTERS_METRICS_H
#define TF_ADAPTERS_METRICS_H

#include <stddef.h>

typedef struct tf_metrics tf_metrics_t;
typedef struct tf_metric_family tf_metric_family_t;
typedef struct tf_metric tf_metric_t; /* one child: a family with label values */

/* Caller owns the result; free with tf_metrics_destroy(), after every thread
 * stopped updating it. */
int tf_metrics_create(tf_metrics_t **out);
void tf_metrics_destroy(tf_metrics_t *reg);

/* Register a family.  `label_names` has `nlabels` entries (may be 0).  The
 * strings are copied.  Registering the same name twice with the same kind and
 * labels returns the existing family; otherwise TF_ECONFLICT.  Bad names
 * (not [a-zA-Z_:][a-zA-Z0-9_:]*) give TF_EINVAL.  The family is owned by the
 * registry. */
int tf_metrics_counter(tf_metrics_t *reg, const char *name, const char *help,
                       const char *const *label_names, size_t nlabels, tf_metric_family_t **out);
int tf_metrics_gauge(tf_metrics_t *reg, const char *name, const char *help,
                     const char *const *label_names, size_t nlabels, tf_metric_family_t **out);
/* `bounds` are the upper bounds of the buckets, strictly increasing, without
 * +Inf (added automatically).  NULL/0 gives the default latency buckets
 * (0.0005 s to 10 s). */
int tf_metrics_histogram(tf_metrics_t *reg, const char *name, const char *help,
                         const char *const *label_names, size_t nlabels, const double *bounds,
                         size_t nbounds, tf_metric_family_t **out);

/* The child for `label_values` (nlabels entries, copied), created on first
 * use.  Returns NULL only when out of memory.  Owned by the registry. */
tf_metric_t *tf_metric_get(tf_metric_family_t *family, const char *const *label_values);

void tf_metric_inc(tf_metric_t *m);                   /* counter or gauge: += 1 */
void tf_metric_add(tf_metric_t *m, double value);     /* counter (value >= 0) or gauge */
void tf_metric_set(tf_metric_t *m, double value);     /* gauge */
void tf_metric_observe(tf_metric_t *m, double value); /* histogram */

/* Renders every family.  Caller owns *out (NUL-terminated); free with free(). */
int tf_metrics_render(tf_metrics_t *reg, char **out, size_t *len);

#endif
