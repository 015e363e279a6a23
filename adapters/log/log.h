/*
 * log.h - structured logs: one JSON object per line.
 *
 * Each line has "ts" (RFC 3339 UTC, milliseconds), "level", "msg" and any
 * context fields the caller passes (request_id, tenant_id, job_id, ...).
 * Fields whose key names a secret (token, authorization, password, secret,
 * api_key) are written as "[redacted]", so a secret never reaches a log even
 * by mistake.  A logger is safe to use from every loop thread: each line is
 * formatted into a local buffer and written with one write(2).
 */
#ifndef TF_ADAPTERS_LOG_H
#define TF_ADAPTERS_LOG_H

#include <stddef.h>

typedef enum {
    TF_LOG_DEBUG = 0,
    TF_LOG_INFO = 1,
    TF_LOG_WARN = 2,
    TF_LOG_ERROR = 3,
} tf_log_level_t;

typedef enum {
    TF_LOG_FIELD_STR,
    TF_LOG_FIELD_INT,
    TF_LOG_FIELD_DOUBLE,
    TF_LOG_FIELD_BOOL,
} tf_log_field_kind_t;

typedef struct {
    const char *key;
    tf_log_field_kind_t kind;
    const char *s; /* TF_LOG_FIELD_STR; NULL is written as null */
    long long i;   /* TF_LOG_FIELD_INT and TF_LOG_FIELD_BOOL */
    double d;      /* TF_LOG_FIELD_DOUBLE */
} tf_log_field_t;

#define TF_LF_STR(k, v) ((tf_log_field_t){.key = (k), .kind = TF_LOG_FIELD_STR, .s = (v)})
#define TF_LF_INT(k, v)                                                                            \
    ((tf_log_field_t){.key = (k), .kind = TF_LOG_FIELD_INT, .i = (long long)(v)})
#define TF_LF_DBL(k, v)                                                                            \
    ((tf_log_field_t){.key = (k), .kind = TF_LOG_FIELD_DOUBLE, .d = (double)(v)})
#define TF_LF_BOOL(k, v) ((tf_log_field_t){.key = (k), .kind = TF_LOG_FIELD_BOOL, .i = !!(v)})

typedef struct tf_log tf_log_t;

/* Creates a logger writing to `fd` (not closed by the logger) at `level` and
 * above.  Caller owns the result; free with tf_log_destroy(). */
int tf_log_create(int fd, tf_log_level_t level, tf_log_t **out);
void tf_log_destroy(tf_log_t *log);

/* Parses "debug", "info", "warn" or "error".  Returns TF_EINVAL otherwise. */
int tf_log_level_parse(const char *text, tf_log_level_t *out);

/* True when a line at `level` would be written. */
int tf_log_enabled(const tf_log_t *log, tf_log_level_t level);

/* Writes one line.  `fields` may be NULL when `nfields` is 0.  A NULL `log`
 * writes nothing (convenient in tests). */
void tf_log_emit(tf_log_t *log, tf_log_level_t level, const char *msg, const tf_log_field_t *fields,
                 size_t nfields);

/* Convenience: tf_log_info(log, "msg", TF_LF_STR("k", v), ...) */
#define TF_LOG_FIELDS_(...) ((const tf_log_field_t[]){__VA_ARGS__})
#define TF_LOG_NFIELDS_(...) (sizeof(TF_LOG_FIELDS_(__VA_ARGS__)) / sizeof(tf_log_field_t))
#define tf_log_at(log, level, msg, ...)                                                            \
    tf_log_emit((log), (level), (msg), TF_LOG_FIELDS_(__VA_ARGS__), TF_LOG_NFIELDS_(__VA_ARGS__))
#define tf_log_debug(log, msg, ...) tf_log_at(log, TF_LOG_DEBUG, msg, __VA_ARGS__)
#define tf_log_info(log, msg, ...) tf_log_at(log, TF_LOG_INFO, msg, __VA_ARGS__)
#define tf_log_warn(log, msg, ...) tf_log_at(log, TF_LOG_WARN, msg, __VA_ARGS__)
#define tf_log_error(log, msg, ...) tf_log_at(log, TF_LOG_ERROR, msg, __VA_ARGS__)

#endif
