/*
 * zones.h - time zones by IANA name, from the system's tzdata ($TZDIR, or
 * /usr/share/zoneinfo: Debian's tzdata package), for cron triggers.
 *
 * A zone's file is read and parsed (engine/tz.h) the first time it is
 * asked for and kept until tf_zones_destroy: names that are not zones are
 * never kept, so hostile names cannot grow the cache.  Names are checked
 * by their syntax first (engine/trigger.h: no '.', so no way out of the
 * directory).  Thread-safe.
 */
#ifndef TF_ADAPTERS_CLOCK_ZONES_H
#define TF_ADAPTERS_CLOCK_ZONES_H

#include "engine/tz.h"

typedef struct tf_zones tf_zones_t;

/* `dir` NULL: $TZDIR when set, else /usr/share/zoneinfo.  Returns 0,
 * TF_ENOMEM. */
int tf_zones_create(const char *dir, tf_zones_t **out);
void tf_zones_destroy(tf_zones_t *zones);

/* The zone `name` in *out (kept by `zones`).  Returns 0, TF_EINVAL (not a
 * zone name), TF_ENOTFOUND (no such zone, or its file is not a usable
 * TZif zone, e.g. a leap-second one) or TF_ENOMEM. */
int tf_zones_get(tf_zones_t *zones, const char *name, const tf_tz_t **out);

/* `zones` as the engine's zones port. */
tf_zone_source_t tf_zones_source(tf_zones_t *zones);

#endif
