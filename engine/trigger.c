/*
 * trigger.c - rule triggers (see trigger.h).
 */
#include "engine/trigger.h"

#include <string.h>

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
