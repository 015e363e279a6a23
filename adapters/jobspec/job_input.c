/*
 * job_input.c - strict reading of a job submission (see job_input.h).
 *
 * The reader walks the object once: each known key has a small reader that
 * checks its JSON type and range; an unknown key is an error naming it.
 * Cross-field rules (run_at vs delay_ms) run after the walk.
 */
#include "adapters/jobspec/job_input.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/json/retry_json.h"
#include "engine/error.h"
#include "engine/names.h"
#include "engine/timefmt.h"

/* Fills `err` with "<prefix><field> <what>" and, when `arg` is not NULL,
 * " '<arg>'" after it. */
static int verr(tf_verr_t *err, const char *prefix, const char *field, const char *what,
                const char *arg) {
    snprintf(err->field, sizeof(err->field), "%s%s", prefix, field);
    snprintf(err->message, sizeof(err->message), "%s%s %s%s%.100s%s", prefix, field, what,
             arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
    return TF_EINVAL;
}

/* An integral JSON number within [min, max]. */
static int read_int(const json_t *v, int64_t min, int64_t max, int64_t *out) {
    double d;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < min || i > max) {
            return TF_ERANGE;
        }
        *out = (int64_t)i;
        return 0;
    }
    if (!json_is_real(v)) {
        return TF_EINVAL;
    }
    d = json_real_value(v);
    if (d != floor(d)) {
        return TF_EINVAL;
    }
    if (d < (double)min || d > (double)max) {
        return TF_ERANGE;
    }
    *out = (int64_t)d;
    return 0;
}

static int int_field(const json_t *v, const char *prefix, const char *name, int64_t min,
                     int64_t max, int64_t *out, tf_verr_t *err) {
    int rc = read_int(v, min, max, out);
    if (rc == TF_EINVAL) {
        return verr(err, prefix, name, "must be an integer", NULL);
    }
    if (rc == TF_ERANGE) {
        char range[96];
        snprintf(range, sizeof(range), "must be between %lld and %lld", (long long)min,
                 (long long)max);
        return verr(err, prefix, name, range, NULL);
    }
    return 0;
}

static int text_field(const json_t *v, const char *prefix, const char *name, size_t max,
                      const char **out, tf_verr_t *err) {
    if (!json_is_string(v)) {
        return verr(err, prefix, name, "must be a string", NULL);
    }
    size_t len = json_string_length(v);
    if (len == 0 || len > max) {
        char why[64];
        snprintf(why, sizeof(why), "must be 1 to %zu bytes long", max);
        return verr(err, prefix, name, why, NULL);
    }
    *out = json_string_value(v);
    return 0;
}

int tf_queue_name_valid(const char *name) {
    return tf_name_valid(name, TF_JOB_NAME_MAX);
}

static int read_executor(const json_t *v, const char *prefix, tf_verr_t *err) {
    if (!json_is_object(v)) {
        return verr(err, prefix, "executor", "must be an object", NULL);
    }
    const char *kind = json_string_value(json_object_get(v, "kind"));
    if (kind == NULL) {
        return verr(err, prefix, "executor.kind", "must be \"http\" or \"lua\"", NULL);
    }
    const char *key;
    const json_t *val;
    if (strcmp(kind, "lua") == 0) {
        json_object_foreach((json_t *)v, key, val) {
            if (strcmp(key, "kind") != 0 && strcmp(key, "name") != 0) {
                return verr(err, prefix, "executor", "has an unknown field", key);
            }
        }
        const char *name;
        json_t *n = json_object_get(v, "name");
        return n == NULL ? verr(err, prefix, "executor.name", "is required", NULL)
                         : text_field(n, prefix, "executor.name", TF_JOB_NAME_MAX, &name, err);
    }
    if (strcmp(kind, "http") != 0) {
        return verr(err, prefix, "executor.kind", "must be \"http\" or \"lua\", not", kind);
    }
    json_object_foreach((json_t *)v, key, val) {
        if (strcmp(key, "kind") == 0) {
            continue;
        }
        if (strcmp(key, "url") == 0) {
            const char *url = json_string_value(val);
            if (url == NULL ||
                (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
                strlen(url) > 2048 || strlen(url) < 10) {
                return verr(err, prefix, "executor.url", "must be an http:// or https:// URL",
                            NULL);
            }
        } else if (strcmp(key, "method") == 0) {
            const char *m = json_string_value(val);
            static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
            int ok = 0;
            for (size_t i = 0; m != NULL && i < 5; i++) {
                ok |= strcmp(m, methods[i]) == 0;
            }
            if (!ok) {
                return verr(err, prefix, "executor.method",
                            "must be GET, POST, PUT, PATCH or DELETE", NULL);
            }
        } else if (strcmp(key, "headers") == 0) {
            const char *hk;
            const json_t *hv;
            if (!json_is_object(val)) {
                return verr(err, prefix, "executor.headers", "must be an object", NULL);
            }
            json_object_foreach((json_t *)val, hk, hv) {
                if (!json_is_string(hv) || strpbrk(json_string_value(hv), "\r\n") != NULL ||
                    hk[0] == '\0' || strpbrk(hk, " :\r\n") != NULL) {
                    return verr(err, prefix, "executor.headers",
                                "must map header names to single-line strings; bad header", hk);
                }
            }
        } else {
            return verr(err, prefix, "executor", "has an unknown field", key);
        }
    }
    if (json_object_get(v, "url") == NULL) {
        return verr(err, prefix, "executor.url", "is required", NULL);
    }
    return 0;
}

static int read_depends(const json_t *v, const char *prefix, tf_job_input_t *out, tf_verr_t *err) {
    if (!json_is_array(v)) {
        return verr(err, prefix, "depends_on", "must be an array of job ids", NULL);
    }
    size_t n = json_array_size(v);
    if (n > TF_JOB_DEPENDS_MAX) {
        return verr(err, prefix, "depends_on", "may name at most 100 jobs", NULL);
    }
    if (n == 0) {
        return 0;
    }
    out->depends_on = calloc(n, sizeof(tf_uuid_t));
    if (out->depends_on == NULL) {
        return TF_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(v, i));
        char field[48];
        snprintf(field, sizeof(field), "depends_on[%zu]", i);
        if (s == NULL || tf_uuid_parse(s, &out->depends_on[i]) != 0) {
            return verr(err, prefix, field, "must be a job id (UUID)", NULL);
        }
        for (size_t k = 0; k < i; k++) {
            if (memcmp(&out->depends_on[k], &out->depends_on[i], sizeof(tf_uuid_t)) == 0) {
                return verr(err, prefix, field, "repeats an earlier job id", NULL);
            }
        }
    }
    out->depends_count = n;
    return 0;
}

static int read_run_at(const json_t *v, const char *prefix, tf_job_input_t *out, tf_verr_t *err) {
    const char *s = json_string_value(v);
    if (s == NULL || tf_time_parse(s, json_string_length(v), &out->run_at_ms) != 0) {
        return verr(err, prefix, "run_at",
                    "must be an RFC 3339 time such as 2026-11-26T07:00:00.000Z", NULL);
    }
    out->has_run_at = 1;
    return 0;
}

static int read_policy(const json_t *v, const char *prefix, tf_job_input_t *out, tf_verr_t *err) {
    char msg[256] = "";
    const char *field = "retry_policy";
    tf_retry_policy_free(&out->retry_policy);
    int rc = tf_retry_policy_from_json(v, &out->retry_policy, msg, sizeof(msg), &field);
    if (rc == TF_EINVAL) {
        snprintf(err->field, sizeof(err->field), "%s%s", prefix, field);
        snprintf(err->message, sizeof(err->message), "%s%s", prefix, msg);
    }
    if (rc != 0) {
        tf_retry_policy_init_default(&out->retry_policy);
    }
    return rc;
}

/* Reads one member; TF_EINVAL names it when unknown or bad. */
static int read_member(const char *key, const json_t *v, const char *prefix, tf_job_input_t *out,
                       tf_verr_t *err) {
    int64_t n;
    int rc;
    if (strcmp(key, "type") == 0) {
        return text_field(v, prefix, "type", TF_JOB_NAME_MAX, &out->type, err);
    }
    if (strcmp(key, "queue") == 0) {
        rc = text_field(v, prefix, "queue", TF_JOB_NAME_MAX, &out->queue, err);
        if (rc == 0 && !tf_queue_name_valid(out->queue)) {
            return verr(err, prefix, "queue", "may hold only letters, digits and _ . : -", NULL);
        }
        return rc;
    }
    if (strcmp(key, "payload") == 0) {
        out->payload = v;
        return 0;
    }
    if (strcmp(key, "priority") == 0) {
        rc = int_field(v, prefix, "priority", -TF_JOB_PRIORITY_MAX, TF_JOB_PRIORITY_MAX, &n, err);
        out->priority = (int)n;
        return rc;
    }
    if (strcmp(key, "run_at") == 0) {
        return read_run_at(v, prefix, out, err);
    }
    if (strcmp(key, "delay_ms") == 0) {
        return int_field(v, prefix, "delay_ms", 0, TF_JOB_DELAY_MAX_MS, &out->delay_ms, err);
    }
    if (strcmp(key, "retry_policy") == 0) {
        return read_policy(v, prefix, out, err);
    }
    if (strcmp(key, "timeout_ms") == 0) {
        return int_field(v, prefix, "timeout_ms", 1, TF_JOB_TIMEOUT_MAX_MS, &out->timeout_ms, err);
    }
    if (strcmp(key, "executor") == 0) {
        out->executor = v;
        return read_executor(v, prefix, err);
    }
    if (strcmp(key, "idempotency_key") == 0) {
        return text_field(v, prefix, "idempotency_key", TF_JOB_KEY_MAX, &out->idempotency_key, err);
    }
    if (strcmp(key, "correlation_id") == 0) {
        return text_field(v, prefix, "correlation_id", TF_JOB_KEY_MAX, &out->correlation_id, err);
    }
    if (strcmp(key, "depends_on") == 0) {
        return read_depends(v, prefix, out, err);
    }
    if (strcmp(key, "metadata") == 0) {
        if (!json_is_object(v)) {
            return verr(err, prefix, "metadata", "must be an object", NULL);
        }
        out->metadata = v;
        return 0;
    }
    return verr(err, prefix, key, "is not a known field", NULL);
}

int tf_job_input_parse(const json_t *obj, const char *prefix, tf_job_input_t *out, tf_verr_t *err) {
    memset(out, 0, sizeof(*out));
    tf_retry_policy_init_default(&out->retry_policy);
    out->queue = "default";
    out->delay_ms = -1;
    out->timeout_ms = TF_JOB_TIMEOUT_DEFAULT_MS;
    if (!json_is_object(obj)) {
        snprintf(err->field, sizeof(err->field), "%s", prefix[0] ? prefix : "body");
        size_t len = strlen(err->field);
        if (len > 0 && err->field[len - 1] == '.') {
            err->field[len - 1] = '\0';
        }
        snprintf(err->message, sizeof(err->message), "%s must be a JSON object", err->field);
        return TF_EINVAL;
    }
    const char *key;
    const json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)obj, key, v) {
        if ((rc = read_member(key, v, prefix, out, err)) != 0) {
            tf_job_input_free(out);
            return rc;
        }
    }
    if (out->type == NULL) {
        rc = verr(err, prefix, "type", "is required", NULL);
    } else if (out->has_run_at && out->delay_ms >= 0) {
        rc = verr(err, prefix, "run_at", "and delay_ms cannot both be given", NULL);
    }
    if (rc != 0) {
        tf_job_input_free(out);
    }
    return rc;
}

void tf_job_input_free(tf_job_input_t *in) {
    tf_retry_policy_free(&in->retry_policy);
    free(in->depends_on);
    in->depends_on = NULL;
    in->depends_count = 0;
}
