/*
 * zones.c - time zones from the system's tzdata (see zones.h).
 */
#include "adapters/clock/zones.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "engine/error.h"
#include "engine/trigger.h"

#define DEFAULT_DIR "/usr/share/zoneinfo"
#define FILE_MAX ((size_t)1 << 20) /* real TZif files are a few KiB */

typedef struct zone {
    struct zone *next;
    char name[TF_ZONE_NAME_MAX + 1];
    tf_tz_t *tz;
} zone_t;

struct tf_zones {
    uv_mutex_t lock;
    char *dir;
    zone_t *zones;
};

int tf_zones_create(const char *dir, tf_zones_t **out) {
    tf_zones_t *z = calloc(1, sizeof(*z));
    if (dir == NULL) {
        dir = getenv("TZDIR") != NULL && getenv("TZDIR")[0] != '\0' ? getenv("TZDIR") : DEFAULT_DIR;
    }
    if (z == NULL || (z->dir = strdup(dir)) == NULL || uv_mutex_init(&z->lock) != 0) {
        free(z != NULL ? z->dir : NULL);
        free(z);
        return TF_ENOMEM;
    }
    *out = z;
    return 0;
}

void tf_zones_destroy(tf_zones_t *z) {
    if (z == NULL) {
        return;
    }
    for (zone_t *e = z->zones, *next; e != NULL; e = next) {
        next = e->next;
        tf_tz_free(e->tz);
        free(e);
    }
    uv_mutex_destroy(&z->lock);
    free(z->dir);
    free(z);
}

/* Reads and parses the zone's file. */
static int load(const tf_zones_t *z, const char *name, tf_tz_t **out) {
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", z->dir, name) >= (int)sizeof(path)) {
        return TF_ENOTFOUND;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return TF_ENOTFOUND;
    }
    unsigned char *buf = malloc(FILE_MAX);
    size_t len = buf != NULL ? fread(buf, 1, FILE_MAX, f) : 0;
    int rc = buf == NULL ? TF_ENOMEM : ferror(f) || len == FILE_MAX ? TF_ENOTFOUND : 0;
    fclose(f);
    if (rc == 0) {
        rc = tf_tz_parse(buf, len, out);
        rc = rc == TF_EINVAL ? TF_ENOTFOUND : rc; /* a directory, not TZif, leap seconds */
    }
    free(buf);
    return rc;
}

int tf_zones_get(tf_zones_t *z, const char *name, const tf_tz_t **out) {
    if (!tf_zone_name_valid(name)) {
        return TF_EINVAL;
    }
    uv_mutex_lock(&z->lock);
    for (zone_t *e = z->zones; e != NULL; e = e->next) {
        if (strcmp(e->name, name) == 0) {
            *out = e->tz;
            uv_mutex_unlock(&z->lock);
            return 0;
        }
    }
    uv_mutex_unlock(&z->lock);
    tf_tz_t *tz = NULL;
    int rc = load(z, name, &tz);
    if (rc != 0) {
        return rc;
    }
    zone_t *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        tf_tz_free(tz);
        return TF_ENOMEM;
    }
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->tz = tz;
    uv_mutex_lock(&z->lock);
    for (zone_t *other = z->zones; other != NULL; other = other->next) {
        if (strcmp(other->name, name) == 0) { /* another thread was first */
            tf_tz_free(tz);
            free(e);
            *out = other->tz;
            uv_mutex_unlock(&z->lock);
            return 0;
        }
    }
    e->next = z->zones;
    z->zones = e;
    *out = tz;
    uv_mutex_unlock(&z->lock);
    return 0;
}

static int source_get(void *ctx, const char *name, const tf_tz_t **out) {
    return tf_zones_get(ctx, name, out);
}

tf_zone_source_t tf_zones_source(tf_zones_t *zones) {
    return (tf_zone_source_t){.ctx = zones, .get = source_get};
}
