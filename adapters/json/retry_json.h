/*
 * retry_json.h - the API's `retry_policy` object <-> tf_retry_policy_t.
 *
 * Role: the HTTP handlers (POST /v1/jobs, batch) and the job repository use
 * these to read a client's retry policy and to write one back out.  Reading
 * is strict: only the keys API.md defines, the right JSON type for each, and
 * then tf_retry_policy_validate(); any failure names the field with the
 * "retry_policy." prefix, so handlers can answer 422 validation_failed with
 * it.  Keys a client leaves out keep the defaults of engine/retry.h.
 * No shared state; any thread.
 */
#ifndef TF_ADAPTERS_JSON_RETRY_JSON_H
#define TF_ADAPTERS_JSON_RETRY_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "engine/retry.h"

/* Reads the `retry_policy` object `obj` into `*out`, starting from the
 * defaults.  Accepted keys: max_attempts, strategy, base_delay_ms,
 * max_delay_ms, jitter (integers, or names as in engine/retry.h),
 * non_retryable_errors (array of strings), cooldown (object of
 * error type -> ms).  Integers must be integral JSON numbers (3 and 3.0, not
 * 1.5); null counts as a wrong type.
 *
 * Returns 0, TF_EINVAL for bad input, or TF_ENOMEM.  On TF_EINVAL, `*field`
 * (if `field` is not NULL) points to a static string naming the field, e.g.
 * "retry_policy.max_attempts" ("retry_policy" itself when `obj` is not an
 * object or has an unknown key), and `err` (if not NULL and errlen > 0) holds
 * a sentence starting with the full field name, e.g.
 * "retry_policy.max_attempts must be an integer" or
 * "retry_policy.foo is not a known field".
 * Does not take a reference to `obj`.  On success the caller owns `*out`'s
 * lists; free with tf_retry_policy_free().  On failure `*out` owns nothing. */
int tf_retry_policy_from_json(const json_t *obj, tf_retry_policy_t *out, char *err, size_t errlen,
                              const char **field);

/* Writes `policy` as a `retry_policy` object with every key present
 * (non_retryable_errors as an array, cooldown as an object, both possibly
 * empty).  Returns a new reference the caller owns (json_decref()), or NULL
 * when out of memory, when `policy` holds an invalid strategy or jitter, or
 * when an error type is not valid UTF-8 (possible only for policies not read
 * from JSON). */
json_t *tf_retry_policy_to_json(const tf_retry_policy_t *policy);

/* The `retry_policy` object of the default policy, as compact JSON text
 * (what tf_retry_policy_to_json() writes for tf_retry_policy_init_default()).
 * Jobs with the default policy store none and show this. */
#define TF_RETRY_POLICY_DEFAULT_JSON                                                               \
    "{\"max_attempts\":3,\"strategy\":\"exponential\",\"base_delay_ms\":1000,"                     \
    "\"max_delay_ms\":3600000,\"jitter\":\"none\",\"non_retryable_errors\":[],\"cooldown\":{}}"

#endif
