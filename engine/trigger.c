/*
 * trigger.c - rule triggers (see trigger.h).
 */
#include "engine/trigger.h"

#include <stdio.h>
#include <string.h>

#include "engine/error.h"
#include "engine/jsonstr.h"

const char *tf_trigger_kind_name(tf_trigger_kind_t kind) {
    switch (kind) {
    case TF_TRIGGER_CRON:
        return "cron";
    case TF_TRIGGER_WEBHOOK:
        return "webhook";
    case TF_TRIGGER_EVENT:
        return "event";
    case TF_TRIGGER_JOB:
        return "job";
    }
    return NULL;
}

int tf_zone_name_valid(const char *name) {
    size_t len = name != NULL ? strlen(name) : 0;
    if (len == 0 || len > TF_ZONE_NAME_MAX) {
        return 0;
    }
    int segment_start = 1;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '/') {
            if (segment_start) {
                return 0; /* empty segment */
            }
            segment_start = 1;
            continue;
        }
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '+' || c == '-';
        if (!ok || (segment_start && c == '-')) {
            return 0;
        }
        segment_start = 0;
    }
    return !segment_start;
}

static int one_of(const char *s, const char *const *list) {
    for (size_t i = 0; s != NULL && list[i] != NULL; i++) {
        if (strcmp(s, list[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

int tf_job_event_valid(const char *name) {
    static const char *const events[] = {"job.succeeded", "job.failed", "job.dead", "job.cancelled",
                                         NULL};
    return one_of(name, events);
}

int tf_webhook_scheme_valid(const char *scheme) {
    static const char *const schemes[] = {"taskflow", "standard-webhooks", "stripe", "github",
                                          NULL};
    return one_of(scheme, schemes);
}

typedef struct {
    char *out;
    size_t cap, len;
} sink_t;

static void put(sink_t *s, const char *text) {
    tf_json_raw(s->out, s->cap, &s->len, text);
}

/* ,"key":"v" (null for an empty `v` when `null_empty`). */
static void put_field(sink_t *s, const char *key, const char *v, int null_empty) {
    put(s, ",\"");
    put(s, key);
    put(s, "\":");
    if (null_empty && v[0] == '\0') {
        put(s, "null");
    } else {
        tf_json_quote(s->out, s->cap, &s->len, v);
    }
}

int tf_trigger_json(const tf_trigger_t *t, char *out, size_t cap) {
    const char *kind = tf_trigger_kind_name(t->kind);
    if (kind == NULL || cap == 0) {
        return TF_ERANGE;
    }
    sink_t s = {out, cap, 0};
    out[0] = '\0';
    put(&s, "{\"kind\":");
    tf_json_quote(out, cap, &s.len, kind);
    switch (t->kind) {
    case TF_TRIGGER_CRON:
        put_field(&s, "cron", t->cron, 0);
        put_field(&s, "timezone", t->timezone, 0);
        put_field(&s, "catch_up", t->catch_up == TF_CATCH_UP_NONE ? "none" : "latest", 0);
        break;
    case TF_TRIGGER_WEBHOOK:
        put_field(&s, "scheme", t->scheme, 0);
        break;
    case TF_TRIGGER_EVENT:
        put_field(&s, "event", t->event, 0);
        break;
    case TF_TRIGGER_JOB:
        put_field(&s, "event", t->event, 0);
        put_field(&s, "type", t->type, 1);
        put_field(&s, "queue", t->queue, 1);
        break;
    }
    put(&s, "}");
    return s.len < cap ? 0 : TF_ERANGE;
}
