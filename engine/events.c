/*
 * events.c - domain events of the job lifecycle and the event port (see
 * events.h).
 *
 * Role: names the events and checks them on their way to an adapter's sink.
 * Invariant: event_states below is the one table that ties an event kind to
 * its terminal state; the mapping both ways reads it.
 * Pure constant data; any thread.
 */
#include "engine/events.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "engine/error.h"

static const char *const event_names[TF_EVENT_KIND_COUNT] = {
    [TF_EVENT_JOB_SUCCEEDED] = "job.succeeded",
    [TF_EVENT_JOB_FAILED] = "job.failed",
    [TF_EVENT_JOB_DEAD] = "job.dead",
    [TF_EVENT_JOB_CANCELLED] = "job.cancelled",
};

/* The terminal state each event kind stands for. */
static const tf_job_state_t event_states[TF_EVENT_KIND_COUNT] = {
    [TF_EVENT_JOB_SUCCEEDED] = TF_JOB_SUCCEEDED,
    [TF_EVENT_JOB_FAILED] = TF_JOB_FAILED,
    [TF_EVENT_JOB_DEAD] = TF_JOB_DEAD,
    [TF_EVENT_JOB_CANCELLED] = TF_JOB_CANCELLED,
};

/* Enums may be unsigned or signed; casting makes one comparison cover both ends. */
static bool event_kind_valid(tf_domain_event_kind_t kind) {
    return (unsigned)kind < TF_EVENT_KIND_COUNT;
}

static bool event_text_present(const char *text) {
    return text != NULL && text[0] != '\0';
}

int tf_event_for_state(tf_job_state_t terminal_state, tf_domain_event_kind_t *out) {
    if (out == NULL) {
        return TF_EINVAL;
    }
    for (int kind = 0; kind < TF_EVENT_KIND_COUNT; kind++) {
        if (event_states[kind] == terminal_state) {
            *out = (tf_domain_event_kind_t)kind;
            return 0;
        }
    }
    return TF_EINVAL;
}

tf_job_state_t tf_domain_event_state(tf_domain_event_kind_t kind) {
    return event_kind_valid(kind) ? event_states[kind] : TF_JOB_STATE_COUNT;
}

const char *tf_domain_event_name(tf_domain_event_kind_t kind) {
    return event_kind_valid(kind) ? event_names[kind] : NULL;
}

int tf_domain_event_parse(const char *name, tf_domain_event_kind_t *out) {
    if (name == NULL || out == NULL) {
        return TF_EINVAL;
    }
    for (int kind = 0; kind < TF_EVENT_KIND_COUNT; kind++) {
        if (strcmp(name, event_names[kind]) == 0) {
            *out = (tf_domain_event_kind_t)kind;
            return 0;
        }
    }
    return TF_EINVAL;
}

int tf_event_emit(const tf_event_sink_t *sink, const tf_domain_event_t *ev) {
    if (ev == NULL || !event_kind_valid(ev->kind) || event_states[ev->kind] != ev->state ||
        !event_text_present(ev->tenant_id) || !event_text_present(ev->job_id)) {
        return TF_EINVAL;
    }
    if (sink == NULL || sink->emit == NULL) {
        return 0;
    }
    return sink->emit(sink->ctx, ev);
}

static int buf_emit(void *ctx, const tf_domain_event_t *ev) {
    tf_event_buf_t *buf = ctx;
    if (buf->n >= buf->cap) {
        return TF_ERANGE;
    }
    buf->items[buf->n++] = *ev;
    return 0;
}

void tf_event_buf_init(tf_event_buf_t *buf, tf_domain_event_t *storage, size_t cap) {
    buf->items = storage;
    buf->n = 0;
    buf->cap = storage != NULL ? cap : 0;
}

tf_event_sink_t tf_event_buf_sink(tf_event_buf_t *buf) {
    return (tf_event_sink_t){.emit = buf_emit, .ctx = buf};
}

const tf_domain_event_t *tf_event_buf_find(const tf_event_buf_t *buf, const char *job_id) {
    for (size_t i = 0; buf != NULL && job_id != NULL && i < buf->n; i++) {
        if (strcmp(buf->items[i].job_id, job_id) == 0) {
            return &buf->items[i];
        }
    }
    return NULL;
}
