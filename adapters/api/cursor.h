/*
 * cursor.h - opaque, signed pagination cursors.
 *
 * A list is ordered by id (UUIDv7, so by creation); its cursor carries the
 * last id of the page, a digest of the query it belongs to (tenant and
 * filters), the time it was issued, and an HMAC-SHA256 under the
 * deployment's cursor key (bootstrap.h), as base64url.  So a forged or
 * altered cursor, a cursor of another query or tenant, or one older than
 * TF_CURSOR_MAX_AGE_MS is refused (the handler answers 422), and pages stay
 * stable while rows are inserted: the next page is "id > last id".
 * Pure functions of their arguments; any thread.
 */
#ifndef TF_ADAPTERS_API_CURSOR_H
#define TF_ADAPTERS_API_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "engine/uuid.h"

#define TF_CURSOR_MAX_AGE_MS (INT64_C(7) * 24 * 3600 * 1000)
#define TF_CURSOR_TEXT_LEN 68 /* with the NUL */

/* Writes a cursor for "after `last_id`" in the query described by `scope`
 * (any text that differs between queries: tenant id, filters). */
void tf_cursor_encode(const uint8_t key[32], const char *scope, const tf_uuid_t *last_id,
                      int64_t now_ms, char out[TF_CURSOR_TEXT_LEN]);

/* Checks and opens `text`.  Returns 0 with *last_id set, or TF_EINVAL with a
 * one-line reason in *why (static text). */
int tf_cursor_decode(const uint8_t key[32], const char *scope, const char *text, int64_t now_ms,
                     tf_uuid_t *last_id, const char **why);

#endif
