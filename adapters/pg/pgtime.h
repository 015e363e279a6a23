/*
 * pgtime.h - PostgreSQL timestamptz text <-> TaskFlow's RFC 3339 form.
 *
 * PostgreSQL writes timestamptz in the ISO DateStyle as
 * "2026-11-26 07:00:00.123456+00" (offset in the session's TimeZone, which
 * may be anything, "+05:30" included).  TaskFlow's API always answers in UTC
 * with exactly milliseconds: "2026-11-26T07:00:00.123Z".  Pure; any thread.
 */
#ifndef TF_ADAPTERS_PG_PGTIME_H
#define TF_ADAPTERS_PG_PGTIME_H

#include <stdint.h>

#include "engine/timefmt.h"

/* Parses PostgreSQL's timestamptz text into Unix milliseconds.  Returns 0 or
 * TF_EINVAL (including 'infinity' and BC dates). */
int tf_pgtime_parse(const char *text, int64_t *out_ms);

/* Rewrites PostgreSQL's timestamptz text as TaskFlow's RFC 3339 UTC form in
 * `out`.  Returns 0 or TF_EINVAL. */
int tf_pgtime_to_rfc3339(const char *text, char out[TF_TIME_STR_LEN + 1]);

#endif
