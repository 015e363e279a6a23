/*
 * trigger.h - what fires an automation rule (issue 9; docs/lua.md,
 * "Rule triggers"): a cron schedule in a time zone, a signed webhook, a
 * custom event by name, or an internal job event, as a rule script builds
 * it with tf.cron, tf.webhook, tf.event or tf.on.
 *
 * The checks here are the syntactic ones every layer shares; whether a
 * time zone exists is the zones adapter's to say (adapters/clock/zones.h).
 * Pure; any thread.
 */
#ifndef TF_ENGINE_TRIGGER_H
#define TF_ENGINE_TRIGGER_H

#include <stddef.h>

#include "engine/cron.h"

#define TF_TRIGGER_NAME_MAX 128 /* event names, job type and queue filters */
#define TF_ZONE_NAME_MAX 64     /* IANA time zone names */
#define TF_WEBHOOK_SCHEME_MAX 24

typedef enum {
    TF_TRIGGER_CRON = 1,
    TF_TRIGGER_WEBHOOK,
    TF_TRIGGER_EVENT, /* POST /v1/events {"name": ...} */
    TF_TRIGGER_JOB,   /* job.succeeded, job.failed, job.dead, job.cancelled */
} tf_trigger_kind_t;

typedef enum {
    TF_CATCH_UP_LATEST = 0, /* after downtime the most recent missed time fires */
    TF_CATCH_UP_NONE,       /* missed times are recorded as skipped */
} tf_catch_up_t;

typedef struct {
    tf_trigger_kind_t kind;
    /* cron */
    char cron[TF_CRON_EXPR_MAX + 1];
    char timezone[TF_ZONE_NAME_MAX + 1]; /* default "UTC" */
    tf_catch_up_t catch_up;
    /* event: its name; job: "job.succeeded" etc. */
    char event[TF_TRIGGER_NAME_MAX + 1];
    /* job: only jobs of this type and queue ("": any) */
    char type[TF_TRIGGER_NAME_MAX + 1];
    char queue[TF_TRIGGER_NAME_MAX + 1];
    /* webhook: "taskflow" (default), "standard-webhooks", "stripe", "github" */
    char scheme[TF_WEBHOOK_SCHEME_MAX + 1];
} tf_trigger_t;

/* The trigger as JSON into out[cap]: {"kind": "cron", "cron": ...,
 * "timezone": ..., "catch_up": ...}, {"kind": "webhook", "scheme": ...},
 * {"kind": "event", "event": ...} or {"kind": "job", "event": ..., "type":
 * ... or null, "queue": ... or null}.  Returns 0, or TF_ERANGE when it
 * does not fit (1 KiB always does). */
int tf_trigger_json(const tf_trigger_t *t, char *out, size_t cap);

/* "cron", "webhook", "event", "job"; NULL for anything else. */
const char *tf_trigger_kind_name(tf_trigger_kind_t kind);

/* An IANA zone name by its syntax: 1 to 64 bytes of segments of
 * [A-Za-z0-9_+-] separated by single '/', none starting with '.' or '-'
 * ("Europe/Oslo", "Etc/GMT+5", "UTC"). */
int tf_zone_name_valid(const char *name);

/* One of the four internal job events. */
int tf_job_event_valid(const char *name);

/* One of the four webhook signature schemes. */
int tf_webhook_scheme_valid(const char *scheme);

#endif
