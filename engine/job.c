/*
 * job.c - the job lifecycle transition table (see job.h).
 *
 * Role: decides every state change of a job; adapters only apply it.
 * Invariant: job_transitions below is the single source of truth for which
 * transitions exist; tf_job_transition() and tf_job_event_sources() only read
 * it.  The table is a dozen rows, so a linear scan is all the lookup needs.
 * Pure constant data; any thread.
 */
#include "engine/job.h"

#include <stddef.h>
#include <string.h>

#include "engine/error.h"

/* One allowed transition.  A (from, event) pair that is not listed has none. */
typedef struct {
    tf_job_state_t from;
    tf_job_event_t event;
    tf_job_state_t to;
} job_transition_t;

/* The lifecycle, one row per allowed transition; each (from, event) pair at most once. */
static const job_transition_t job_transitions[] = {
    {TF_JOB_PENDING, TF_JOB_EV_CLAIM, TF_JOB_RUNNING},
    {TF_JOB_RUNNING, TF_JOB_EV_SUCCEED, TF_JOB_SUCCEEDED},
    {TF_JOB_RUNNING, TF_JOB_EV_FAIL_RETRY, TF_JOB_SCHEDULED},
    {TF_JOB_RUNNING, TF_JOB_EV_FAIL_FINAL, TF_JOB_FAILED},
    {TF_JOB_RUNNING, TF_JOB_EV_FAIL_EXHAUSTED, TF_JOB_DEAD},
    {TF_JOB_SCHEDULED, TF_JOB_EV_DUE, TF_JOB_PENDING},
    {TF_JOB_PENDING, TF_JOB_EV_CANCEL, TF_JOB_CANCELLED},
    {TF_JOB_SCHEDULED, TF_JOB_EV_CANCEL, TF_JOB_CANCELLED},
    {TF_JOB_RUNNING, TF_JOB_EV_CANCEL, TF_JOB_CANCELLED},
    {TF_JOB_FAILED, TF_JOB_EV_RETRY, TF_JOB_PENDING},
    {TF_JOB_DEAD, TF_JOB_EV_RETRY, TF_JOB_PENDING},
    {TF_JOB_CANCELLED, TF_JOB_EV_RETRY, TF_JOB_PENDING},
    {TF_JOB_RUNNING, TF_JOB_EV_RELEASE, TF_JOB_PENDING},
};

#define JOB_TRANSITION_COUNT (sizeof job_transitions / sizeof job_transitions[0])

static const char *const job_state_names[TF_JOB_STATE_COUNT] = {
    [TF_JOB_PENDING] = "PENDING",     [TF_JOB_SCHEDULED] = "SCHEDULED",
    [TF_JOB_RUNNING] = "RUNNING",     [TF_JOB_SUCCEEDED] = "SUCCEEDED",
    [TF_JOB_FAILED] = "FAILED",       [TF_JOB_DEAD] = "DEAD",
    [TF_JOB_CANCELLED] = "CANCELLED",
};

static const char *const job_event_names[TF_JOB_EVENT_COUNT] = {
    [TF_JOB_EV_CLAIM] = "claim",
    [TF_JOB_EV_SUCCEED] = "succeed",
    [TF_JOB_EV_FAIL_RETRY] = "fail_retry",
    [TF_JOB_EV_FAIL_FINAL] = "fail_final",
    [TF_JOB_EV_FAIL_EXHAUSTED] = "fail_exhausted",
    [TF_JOB_EV_DUE] = "due",
    [TF_JOB_EV_CANCEL] = "cancel",
    [TF_JOB_EV_RETRY] = "retry",
    [TF_JOB_EV_RELEASE] = "release",
};

/* Enums may be unsigned or signed; casting makes one comparison cover both ends. */
static bool job_state_valid(tf_job_state_t state) {
    return (unsigned)state < TF_JOB_STATE_COUNT;
}

static bool job_event_valid(tf_job_event_t ev) {
    return (unsigned)ev < TF_JOB_EVENT_COUNT;
}

int tf_job_transition(tf_job_state_t from, tf_job_event_t ev, tf_job_state_t *to) {
    if (!job_state_valid(from) || !job_event_valid(ev) || to == NULL) {
        return TF_EINVAL;
    }
    for (size_t i = 0; i < JOB_TRANSITION_COUNT; i++) {
        if (job_transitions[i].from == from && job_transitions[i].event == ev) {
            *to = job_transitions[i].to;
            return 0;
        }
    }
    return TF_ESTATE;
}

tf_job_state_set_t tf_job_event_sources(tf_job_event_t ev) {
    if (!job_event_valid(ev)) {
        return 0;
    }
    tf_job_state_set_t sources = 0;
    for (size_t i = 0; i < JOB_TRANSITION_COUNT; i++) {
        if (job_transitions[i].event == ev) {
            sources |= TF_JOB_STATE_BIT(job_transitions[i].from);
        }
    }
    return sources;
}

const char *tf_job_state_name(tf_job_state_t state) {
    return job_state_valid(state) ? job_state_names[state] : NULL;
}

int tf_job_state_parse(const char *name, tf_job_state_t *out) {
    if (name == NULL || out == NULL) {
        return TF_EINVAL;
    }
    for (int state = 0; state < TF_JOB_STATE_COUNT; state++) {
        if (strcmp(name, job_state_names[state]) == 0) {
            *out = (tf_job_state_t)state;
            return 0;
        }
    }
    return TF_EINVAL;
}

const char *tf_job_event_name(tf_job_event_t ev) {
    return job_event_valid(ev) ? job_event_names[ev] : NULL;
}

bool tf_job_state_is_terminal(tf_job_state_t state) {
    return state == TF_JOB_SUCCEEDED || state == TF_JOB_FAILED || state == TF_JOB_DEAD ||
           state == TF_JOB_CANCELLED;
}

tf_dependants_action_t tf_job_dependants_action(tf_job_state_t parent_state) {
    switch (parent_state) {
    case TF_JOB_SUCCEEDED:
        return TF_DEPENDANTS_RELEASE;
    case TF_JOB_FAILED:
    case TF_JOB_DEAD:
    case TF_JOB_CANCELLED:
        return TF_DEPENDANTS_CANCEL;
    default:
        return TF_DEPENDANTS_KEEP;
    }
}
