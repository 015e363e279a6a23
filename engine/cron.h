/*
 * cron.h - cron expressions and their fire times in a time zone.
 *
 * Five fields, minute hour day-of-month month day-of-week, each a list of
 * `*`, values and ranges with optional steps (`*\/15`, `1-5`, `MON-FRI`,
 * `0-23/3`, `5/10` meaning 5-max/10), month names JAN-DEC and day names
 * SUN-SAT in any case, Sunday as 0 or 7; or one of @hourly @daily
 * (@midnight) @weekly @monthly @yearly (@annually).  When both day fields are
 * restricted a day matches either (classic cron); when one starts with `*`
 * only the other counts.
 *
 * Fire times are local wall-clock minutes of a zone, resolved to instants
 * (as issue 9 of the rules work specifies):
 *   - a local time that does not exist (the clock springs forward over it)
 *     fires once, at the first instant after the gap;
 *   - a local time that occurs twice (the clock falls back) fires once, at
 *     its first occurrence;
 *   - except that a schedule whose hour field is `*` or has a step follows
 *     absolute time: it fires at every local time that exists, both
 *     occurrences of a repeated one included, and skips those in a gap.
 *
 * The zone is a port (tf_cron_zone_t): its UTC offset at an instant and its
 * next offset change; NULL is UTC.  Pure, no allocation; any thread.
 */
#ifndef TF_ENGINE_CRON_H
#define TF_ENGINE_CRON_H

#include <stddef.h>
#include <stdint.h>

#define TF_CRON_EXPR_MAX 256 /* bytes of an expression, at most */

typedef struct {
    uint64_t minutes;             /* bit m: minute m (0-59) */
    uint32_t hours;               /* bit h: hour h (0-23) */
    uint32_t mdays;               /* bit d: day of month d (1-31) */
    uint16_t months;              /* bit m: month m (1-12) */
    uint8_t wdays;                /* bit d: day of week d (0-6, Sunday 0) */
    uint8_t mday_star, wday_star; /* the field started with '*' */
    uint8_t hour_floats;          /* the hour field is '*' or has a step */
} tf_cron_t;

/* A time zone as the schedule sees it. */
typedef struct {
    /* Seconds east of UTC at Unix time `t` (seconds). */
    int32_t (*offset_at)(const void *zone, int64_t t);
    /* The first Unix time > `t` at which the offset changes; INT64_MAX when
     * it never does again. */
    int64_t (*next_change)(const void *zone, int64_t t);
    const void *zone;
} tf_cron_zone_t;

/* Parses `expr`.  Returns 0, or TF_EINVAL with a message naming the field
 * and the fault in `err` (e.g. "hour: 24 is out of range 0-23"). */
int tf_cron_parse(const char *expr, tf_cron_t *out, char *err, size_t errlen);

/* The first fire time strictly after Unix time `after` (seconds) in `zone`
 * (NULL: UTC), in *next.  Returns 0, or TF_ENOTFOUND when the schedule
 * never fires within 28 years (e.g. "0 0 30 2 *"). */
int tf_cron_next(const tf_cron_t *cron, const tf_cron_zone_t *zone, int64_t after, int64_t *next);

#endif
