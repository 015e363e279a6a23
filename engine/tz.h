/*
 * tz.h - time zones from TZif data (RFC 8536), for cron schedules.
 *
 * A zone is parsed from the bytes of a TZif file (versions 1 to 4: the
 * system's tzdata, /usr/share/zoneinfo; reading the file is an adapter's
 * job).  It answers the UTC offset at an instant and the next instant the
 * offset changes, from the file's transitions and, past the last one, from
 * its POSIX TZ footer ("CET-1CEST,M3.5.0,M10.5.0/3"), so that fat and slim
 * files answer alike for any year.  Leap-second ("right/") files are
 * refused.  Pure: no I/O, no libc time zone state; a parsed zone is
 * read-only and may be shared between threads.
 */
#ifndef TF_ENGINE_TZ_H
#define TF_ENGINE_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "engine/cron.h"

typedef struct tf_tz tf_tz_t;

/* Parses `len` bytes of TZif data into *out (free with tf_tz_free).
 * Returns 0, TF_EINVAL (not TZif, truncated, inconsistent, leap seconds,
 * a footer that is not a POSIX TZ string) or TF_ENOMEM. */
int tf_tz_parse(const unsigned char *data, size_t len, tf_tz_t **out);

void tf_tz_free(tf_tz_t *tz);

/* Seconds east of UTC at Unix time `t` (seconds). */
int32_t tf_tz_offset(const tf_tz_t *tz, int64_t t);

/* The first Unix time > `t` at which the offset differs from the offset at
 * `t`; INT64_MAX when it never changes again. */
int64_t tf_tz_next_change(const tf_tz_t *tz, int64_t t);

/* The zone as cron schedules see it (borrows `tz`). */
tf_cron_zone_t tf_tz_cron_zone(const tf_tz_t *tz);

/* The zones port: zones by IANA name (adapters/clock/zones.h).  `get`
 * returns 0 with the zone (kept by the source), TF_EINVAL (not a zone
 * name) or TF_ENOTFOUND (no such zone). */
typedef struct {
    void *ctx;
    int (*get)(void *ctx, const char *name, const tf_tz_t **out);
} tf_zone_source_t;

#endif
