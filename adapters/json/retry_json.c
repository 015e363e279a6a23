/*
 * retry_json.c - reading and writing the API's `retry_policy` object
 * (see retry_json.h).
 *
 * Role: the only translation between jansson values and tf_retry_policy_t.
 * Invariants: type errors are found here; every range rule lives in
 * tf_retry_policy_validate() alone, so an out-of-range integer is clamped into
 * the C field (still out of range) and left for validation to name.  All
 * messages start with the full "retry_policy.<field>" name.
 * No shared state; any thread.
 */
#include "adapters/json/retry_json.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "engine/error.h"

/* Where a failure is reported: the caller's err buffer and field pointer. */
typedef struct {
    char *err;
    size_t errlen;
    const char **field;
} retry_json_report_t;

/* Records a failure naming `field` and formats the message.  Returns TF_EINVAL. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
retry_json_fail(const retry_json_report_t *report, const char *field, const char *format, ...) {
    if (report->field != NULL) {
        *report->field = field;
    }
    if (report->err != NULL && report->errlen > 0) {
        va_list args;
        va_start(args, format);
        vsnprintf(report->err, report->errlen, format, args);
        va_end(args);
    }
    return TF_EINVAL;
}

/*
 * Reads an integral JSON number (integer, or a real with no fraction) into
 * `*out`, clamped to [min, max]: the clamped value is as out of range as the
 * original, and validation reports it with the range.  Returns false for
 * anything that is not an integral number.
 */
static bool retry_json_integer(const json_t *value, int64_t min, int64_t max, int64_t *out) {
    int64_t number;
    if (json_is_integer(value)) {
        number = (int64_t)json_integer_value(value);
    } else if (json_is_real(value)) {
        const double real = json_real_value(value);
        /* Beyond +-2^63 every double is integral; clamp without converting. */
        if (real >= 9223372036854775808.0 || real < -9223372036854775808.0) {
            number = real < 0 ? INT64_MIN : INT64_MAX;
        } else {
            number = (int64_t)real;
            if ((double)number != real) {
                return false;
            }
        }
    } else {
        return false;
    }
    *out = number < min ? min : number > max ? max : number;
    return true;
}

static int read_max_attempts(const json_t *value, tf_retry_policy_t *out,
                             const retry_json_report_t *report) {
    static const char field[] = "retry_policy.max_attempts";
    int64_t number;
    if (!retry_json_integer(value, INT_MIN, INT_MAX, &number)) {
        return retry_json_fail(report, field, "%s must be an integer", field);
    }
    out->max_attempts = (int)number;
    return 0;
}

static int read_base_delay_ms(const json_t *value, tf_retry_policy_t *out,
                              const retry_json_report_t *report) {
    static const char field[] = "retry_policy.base_delay_ms";
    if (!retry_json_integer(value, INT64_MIN, INT64_MAX, &out->base_delay_ms)) {
        return retry_json_fail(report, field, "%s must be an integer", field);
    }
    return 0;
}

static int read_max_delay_ms(const json_t *value, tf_retry_policy_t *out,
                             const retry_json_report_t *report) {
    static const char field[] = "retry_policy.max_delay_ms";
    if (!retry_json_integer(value, INT64_MIN, INT64_MAX, &out->max_delay_ms)) {
        return retry_json_fail(report, field, "%s must be an integer", field);
    }
    return 0;
}

static int read_strategy(const json_t *value, tf_retry_policy_t *out,
                         const retry_json_report_t *report) {
    static const char field[] = "retry_policy.strategy";
    if (!json_is_string(value) ||
        tf_retry_strategy_parse(json_string_value(value), &out->strategy) != 0) {
        return retry_json_fail(report, field,
                               "%s must be one of \"fixed\", \"linear\", \"exponential\"", field);
    }
    return 0;
}

static int read_jitter(const json_t *value, tf_retry_policy_t *out,
                       const retry_json_report_t *report) {
    static const char field[] = "retry_policy.jitter";
    if (!json_is_string(value) ||
        tf_retry_jitter_parse(json_string_value(value), &out->jitter) != 0) {
        return retry_json_fail(report, field, "%s must be one of \"none\", \"full\", \"equal\"",
                               field);
    }
    return 0;
}

/* True for a JSON string with no NUL inside (error types are C strings). */
static bool retry_json_plain_string(const json_t *value) {
    return json_is_string(value) && strlen(json_string_value(value)) == json_string_length(value);
}

static int read_non_retryable(const json_t *value, tf_retry_policy_t *out,
                              const retry_json_report_t *report) {
    static const char field[] = "retry_policy.non_retryable_errors";
    if (!json_is_array(value)) {
        return retry_json_fail(report, field, "%s must be an array of strings", field);
    }
    /* Checked before copying so a huge array is refused without allocating. */
    if (json_array_size(value) > TF_RETRY_LIST_MAX) {
        return retry_json_fail(report, field, "%s must have at most %d entries", field,
                               TF_RETRY_LIST_MAX);
    }
    for (size_t i = 0; i < json_array_size(value); i++) {
        const json_t *entry = json_array_get(value, i);
        if (!retry_json_plain_string(entry)) {
            return retry_json_fail(report, field, "%s[%zu] must be a string without NUL characters",
                                   field, i);
        }
        if (tf_retry_policy_add_non_retryable(out, json_string_value(entry)) != 0) {
            return TF_ENOMEM;
        }
    }
    return 0;
}

static int read_cooldown(const json_t *value, tf_retry_policy_t *out,
                         const retry_json_report_t *report) {
    static const char field[] = "retry_policy.cooldown";
    if (!json_is_object(value)) {
        return retry_json_fail(report, field, "%s must be an object of error type to ms", field);
    }
    if (json_object_size(value) > TF_RETRY_LIST_MAX) {
        return retry_json_fail(report, field, "%s must have at most %d entries", field,
                               TF_RETRY_LIST_MAX);
    }
    json_t *object = (json_t *)value; /* jansson's iterators take non-const */
    for (void *iter = json_object_iter(object); iter != NULL;
         iter = json_object_iter_next(object, iter)) {
        const char *key = json_object_iter_key(iter);
        if (strlen(key) != json_object_iter_key_len(iter)) {
            return retry_json_fail(report, field, "%s keys must not contain NUL characters", field);
        }
        int64_t ms;
        if (!retry_json_integer(json_object_iter_value(iter), INT64_MIN, INT64_MAX, &ms)) {
            return retry_json_fail(report, field, "%s.%s must be an integer", field, key);
        }
        if (tf_retry_policy_add_cooldown(out, key, ms) != 0) {
            return TF_ENOMEM;
        }
    }
    return 0;
}

typedef int (*retry_json_reader_t)(const json_t *value, tf_retry_policy_t *out,
                                   const retry_json_report_t *report);

/* The keys of API.md's retry_policy, with the engine's field name for each. */
static const struct {
    const char *key;
    const char *field; /* prefixed name reported for validation failures */
    retry_json_reader_t read;
} retry_json_keys[] = {
    {"max_attempts", "retry_policy.max_attempts", read_max_attempts},
    {"strategy", "retry_policy.strategy", read_strategy},
    {"base_delay_ms", "retry_policy.base_delay_ms", read_base_delay_ms},
    {"max_delay_ms", "retry_policy.max_delay_ms", read_max_delay_ms},
    {"jitter", "retry_policy.jitter", read_jitter},
    {"non_retryable_errors", "retry_policy.non_retryable_errors", read_non_retryable},
    {"cooldown", "retry_policy.cooldown", read_cooldown},
};

#define RETRY_JSON_KEY_COUNT (sizeof retry_json_keys / sizeof retry_json_keys[0])

/* Index into retry_json_keys of a key `len` bytes long, or -1. */
static int retry_json_key_index(const char *key, size_t len) {
    for (size_t i = 0; i < RETRY_JSON_KEY_COUNT; i++) {
        if (strlen(retry_json_keys[i].key) == len &&
            memcmp(retry_json_keys[i].key, key, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Runs the engine's validation and re-reports its failure with the prefix. */
static int retry_json_validate(const tf_retry_policy_t *policy, const retry_json_report_t *report) {
    char message[256];
    const char *engine_field = NULL;
    if (tf_retry_policy_validate(policy, message, sizeof message, &engine_field) == 0) {
        return 0;
    }
    const char *field = "retry_policy";
    for (size_t i = 0; engine_field != NULL && i < RETRY_JSON_KEY_COUNT; i++) {
        if (strcmp(retry_json_keys[i].key, engine_field) == 0) {
            field = retry_json_keys[i].field;
        }
    }
    return retry_json_fail(report, field, "retry_policy.%s", message);
}

static int retry_json_read_keys(const json_t *obj, tf_retry_policy_t *out,
                                const retry_json_report_t *report) {
    json_t *object = (json_t *)obj; /* jansson's iterators take non-const */
    for (void *iter = json_object_iter(object); iter != NULL;
         iter = json_object_iter_next(object, iter)) {
        const char *key = json_object_iter_key(iter);
        const int index = retry_json_key_index(key, json_object_iter_key_len(iter));
        if (index < 0) {
            return retry_json_fail(report, "retry_policy", "retry_policy.%s is not a known field",
                                   key);
        }
        const int rc = retry_json_keys[index].read(json_object_iter_value(iter), out, report);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int tf_retry_policy_from_json(const json_t *obj, tf_retry_policy_t *out, char *err, size_t errlen,
                              const char **field) {
    const retry_json_report_t report = {.err = err, .errlen = errlen, .field = field};
    tf_retry_policy_init_default(out);
    if (!json_is_object(obj)) {
        return retry_json_fail(&report, "retry_policy", "retry_policy must be an object");
    }
    int rc = retry_json_read_keys(obj, out, &report);
    if (rc == 0) {
        rc = retry_json_validate(out, &report);
    }
    if (rc != 0) {
        goto fail;
    }
    return 0;

fail:
    tf_retry_policy_free(out);
    return rc;
}

/* Adds the two lists to `obj`.  Returns 0 or -1 when out of memory. */
static int retry_json_put_lists(json_t *obj, const tf_retry_policy_t *policy) {
    json_t *errors = json_array();
    if (json_object_set_new(obj, "non_retryable_errors", errors) != 0) {
        return -1;
    }
    for (size_t i = 0; i < policy->non_retryable_count; i++) {
        if (json_array_append_new(errors, json_string(policy->non_retryable_errors[i])) != 0) {
            return -1;
        }
    }
    json_t *cooldown = json_object();
    if (json_object_set_new(obj, "cooldown", cooldown) != 0) {
        return -1;
    }
    for (size_t i = 0; i < policy->cooldown_count; i++) {
        const tf_retry_cooldown_t *entry = &policy->cooldowns[i];
        if (json_object_set_new(cooldown, entry->error_type, json_integer(entry->ms)) != 0) {
            return -1;
        }
    }
    return 0;
}

json_t *tf_retry_policy_to_json(const tf_retry_policy_t *policy) {
    const char *strategy = tf_retry_strategy_name(policy->strategy);
    const char *jitter = tf_retry_jitter_name(policy->jitter);
    if (strategy == NULL || jitter == NULL) {
        return NULL;
    }
    json_t *obj = json_object();
    if (obj == NULL) {
        goto fail_object;
    }
    if (json_object_set_new(obj, "max_attempts", json_integer(policy->max_attempts)) != 0 ||
        json_object_set_new(obj, "strategy", json_string(strategy)) != 0 ||
        json_object_set_new(obj, "base_delay_ms", json_integer(policy->base_delay_ms)) != 0 ||
        json_object_set_new(obj, "max_delay_ms", json_integer(policy->max_delay_ms)) != 0 ||
        json_object_set_new(obj, "jitter", json_string(jitter)) != 0 ||
        retry_json_put_lists(obj, policy) != 0) {
        goto fail_fields;
    }
    return obj;

fail_fields:
    json_decref(obj);
fail_object:
    return NULL;
}
