/*
 * events.h - custom events (POST /v1/events): the tenant's enabled rules
 * triggered by the event's name each run (condition, then action) and are
 * recorded as a run with the jobs they created and their new ctx.state,
 * in one transaction per rule (engine/rules.h).  An event with an id fires
 * each rule at most once: a repeat records and creates nothing.
 * Loop thread of the use-case context only.
 */
#ifndef TF_ADAPTERS_USECASES_EVENTS_H
#define TF_ADAPTERS_USECASES_EVENTS_H

#include <stddef.h>

#include "adapters/usecases/usecases.h"
#include "engine/rules.h"

#define TF_EVENT_ID_MAX 255 /* bytes of an event's id */

/* What became of one rule. */
typedef struct {
    const char *rule_id, *run_id;
    tf_rule_run_outcome_t outcome;
    int duplicate; /* the rule already ran for this event id: nothing done;
                      run_id and jobs_json are that first run's (NULL if unread) */
    const char *jobs_json;
    int condition; /* -1: not evaluated */
    const char *const *job_ids;
    size_t njobs;
    const char *error_type, *error_message; /* failed */
} tf_uc_fired_t;

/* status 0 with one entry per rule the event triggers (none: n 0);
 * TF_ESTALE: a rule's ctx.state changed under its firing
 * TF_RULE_STATE_TRIES times (nothing of the event recorded); other TF_E*
 * codes: the store or the evaluator failed. */
typedef void (*tf_uc_event_cb)(void *arg, int status, const tf_uc_fired_t *runs, size_t n);

typedef struct {
    const char *tenant_id;
    const char *name;      /* [A-Za-z0-9_.:-]{1,128}, not "job.*" */
    const char *data_json; /* ev.data (NULL: null) */
    const char *id;        /* NULL: none (no de-duplication) */
} tf_uc_event_t;

/* Returns 0 and calls `cb` later, or a TF_E* code (TF_EINVAL with why in
 * `err`) and never calls it. */
int tf_uc_event_post(tf_uc_t *uc, const tf_uc_event_t *ev, tf_uc_event_cb cb, void *arg, char *err,
                     size_t errlen);

/* What fires rules without POST /v1/events: a webhook delivery (whose
 * signature the caller checked), a cron fire time, a job event. */
typedef struct {
    const char *tenant_id;
    const tf_rule_t *rules; /* each needs its id, name, version, has_condition, source and
                               state_json */
    size_t n;
    const char *trigger;        /* "webhook", "cron", "job.succeeded", ... */
    const char *event_json;     /* ev */
    const char *dedup_key;      /* at most one run per rule and key; NULL: none */
    const char *correlation_id; /* of the jobs created; NULL: the dedup key, else a new id */
    const char *tenant_json;    /* ctx.tenant when the caller has it; NULL: read */
} tf_uc_fire_t;

/* Fires the rules side by side (up to 16 at once); `cb` gets one entry per
 * rule, in the order given. */
int tf_uc_rules_fire(tf_uc_t *uc, const tf_uc_fire_t *fire, tf_uc_event_cb cb, void *arg);

#endif
