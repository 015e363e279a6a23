/*
 * timefmt.h - RFC 3339 timestamps with millisecond precision.
 *
 * TaskFlow's API writes every time as UTC with exactly three fraction
 * digits: 2026-11-26T07:00:00.000Z.  Parsing accepts what RFC 3339 allows
 * (any number of fraction digits, 'Z' or a numeric offset, 't'/'z' in either
 * case) and rejects everything else, including impossible dates (Feb 30) and
 * out-of-range fields.  Times are int64 milliseconds since the Unix epoch.
 * Pure, no locale, no libc time zone state; any thread.
 */
#ifndef TF_ENGINE_TIMEFMT_H
#define TF_ENGINE_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define TF_TIME_STR_LEN 24 /* "2026-11-26T07:00:00.000Z" without the NUL */

/* Formats `unix_ms` into `out` (TF_TIME_STR_LEN + 1 bytes).  Years outside
 * 0000-9999 give TF_ERANGE. */
int tf_time_format(int64_t unix_ms, char out[TF_TIME_STR_LEN + 1]);

/* Parses `len` bytes of `text`.  Fractions beyond milliseconds are truncated.
 * Returns 0 or TF_EINVAL. */
int tf_time_parse(const char *text, size_t len, int64_t *out_unix_ms);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t tf_days_from_civil(int64_t year, int month, int day);
void tf_civil_from_days(int64_t days, int64_t *year, int *month, int *day);

/* The day of the week of `days` since 1970-01-01: 0 Sunday .. 6 Saturday. */
int tf_weekday(int64_t days);

#endif
