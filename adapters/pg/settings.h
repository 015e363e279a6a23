/*
 * settings.h - the operator's `settings` table, read and written on a
 * plain blocking connection while a node starts (before any loop runs):
 * the admin token's hash and the cursor key live there (see
 * adapters/serve/bootstrap.h).  Main thread only.
 */
#ifndef TF_ADAPTERS_PG_SETTINGS_H
#define TF_ADAPTERS_PG_SETTINGS_H

#include <stddef.h>

typedef struct tf_pg_settings tf_pg_settings_t;

/* Connects to `conninfo`.  Returns 0, or TF_EUNAVAIL with libpq's reason
 * in `err`.  Caller owns the result; close with tf_pg_settings_close(). */
int tf_pg_settings_open(const char *conninfo, tf_pg_settings_t **out, char *err, size_t errlen);
void tf_pg_settings_close(tf_pg_settings_t *s);

/* The value of `key` into `out` (`cap` bytes).  Returns 0, TF_ENOTFOUND,
 * TF_ERANGE (longer than cap - 1) or TF_EIO. */
int tf_pg_settings_get(tf_pg_settings_t *s, const char *key, char *out, size_t cap);

/* Stores `value` under `key` unless a value is there already.  Returns 1
 * when this call stored it, 0 when one was there (another node won), or
 * TF_EIO. */
int tf_pg_settings_put_new(tf_pg_settings_t *s, const char *key, const char *value);

/* The last error libpq reported on the connection (static until the next
 * call). */
const char *tf_pg_settings_error(const tf_pg_settings_t *s);

#endif
