/*
 * events.h - the domain events of the job lifecycle and the event port.
 *
 * When a job reaches a terminal state (job.h) the use case that moved it
 * emits one domain event through a tf_event_sink_t, the port that
 * ARCHITECTURE.md calls the event sink.  Adapters implement the sink
 * (rule triggers, webhooks, metrics, logs); tests fake it.  The engine only
 * says which event a state means and checks an event before handing it on.
 *
 *   SUCCEEDED -> job.succeeded     FAILED    -> job.failed
 *   DEAD      -> job.dead          CANCELLED -> job.cancelled
 *
 * The names are stable: rules subscribe to them and they appear in logs.
 * Pure; events are plain values that borrow their strings; any thread (a
 * sink is used on the thread that emits through it).
 */
#ifndef TF_ENGINE_EVENTS_H
#define TF_ENGINE_EVENTS_H

#include <stddef.h>

#include "engine/job.h"

/* Values are stable. */
typedef enum {
    TF_EVENT_JOB_SUCCEEDED = 0,
    TF_EVENT_JOB_FAILED,
    TF_EVENT_JOB_DEAD,
    TF_EVENT_JOB_CANCELLED,
    TF_EVENT_KIND_COUNT
} tf_domain_event_kind_t;

/* One domain event.  A plain value: it borrows its strings, which stay
 * valid only as long as the emitter says (for tf_event_emit(): the call). */
typedef struct {
    tf_domain_event_kind_t kind;
    const char *tenant_id; /* the tenant's id as text; non-empty */
    const char *job_id;    /* the job's id as text; non-empty */
    tf_job_state_t state;  /* the terminal state reached; tf_event_for_state(state) == kind */
    const char *reason;    /* why, for people and rules ("timeout: ...", "cancelled by API");
                              NULL or "" when there is none */
} tf_domain_event_t;

/* The event port.  emit() receives `ctx` and an event that is valid for the
 * duration of the call only (a sink that keeps it copies the strings), and
 * returns 0 or a negative TF_E* code.  A zeroed sink (emit NULL) drops
 * every event. */
typedef struct {
    int (*emit)(void *ctx, const tf_domain_event_t *ev);
    void *ctx;
} tf_event_sink_t;

/* A sink that collects the events of one unit of work: the use case that
 * decides a set of transitions emits their events into it, and the store
 * that applies the transitions records in the same transaction those whose
 * transition applied (the outbox, adapters/pg).  Events are copied as they
 * are (their strings stay borrowed: they must outlive the unit of work).
 * Storage is the caller's; emitting beyond `cap` fails with TF_ERANGE. */
typedef struct {
    tf_domain_event_t *items;
    size_t n, cap;
} tf_event_buf_t;

/* Starts an empty buffer over `storage` (`cap` entries). */
void tf_event_buf_init(tf_event_buf_t *buf, tf_domain_event_t *storage, size_t cap);

/* The sink that appends to `buf`. */
tf_event_sink_t tf_event_buf_sink(tf_event_buf_t *buf);

/* The buffered event of job `job_id`, or NULL. */
const tf_domain_event_t *tf_event_buf_find(const tf_event_buf_t *buf, const char *job_id);

/* The event that reaching `terminal_state` means.  Returns 0, or TF_EINVAL
 * when the state is not terminal (PENDING, SCHEDULED, RUNNING), not a
 * valid state, or `out` is NULL; `*out` is untouched on failure. */
int tf_event_for_state(tf_job_state_t terminal_state, tf_domain_event_kind_t *out);

/* The terminal state behind `kind`; TF_JOB_STATE_COUNT for an invalid kind. */
tf_job_state_t tf_domain_event_state(tf_domain_event_kind_t kind);

/* The name of `kind` ("job.succeeded", "job.failed", "job.dead",
 * "job.cancelled"), a static string; NULL for an invalid kind. */
const char *tf_domain_event_name(tf_domain_event_kind_t kind);

/* Parses an exact name from tf_domain_event_name() (NUL-terminated).
 * Returns 0, or TF_EINVAL for NULL or anything else ("JOB.DEAD",
 * "job.dead ", ""); `*out` is untouched on failure. */
int tf_domain_event_parse(const char *name, tf_domain_event_kind_t *out);

/* Checks `ev` and hands it to `sink`.  Returns 0 when the sink accepted it
 * or there is no sink (`sink` NULL or its emit NULL), what emit() returned
 * when it failed, or TF_EINVAL without calling emit() when `ev` is NULL, its
 * kind is invalid, its state is not the kind's state, or an id is NULL or
 * empty.  The event is checked even without a sink, so a wrong event shows
 * up in tests that do not wire one.  The sink borrows `ev` for the call. */
int tf_event_emit(const tf_event_sink_t *sink, const tf_domain_event_t *ev);

#endif
