/*
 * actions.c - cancel, retry and requeue (see actions.h).
 */
#include "adapters/usecases/actions.h"

#include <stdlib.h>

#include "engine/error.h"

tf_job_state_set_t tf_uc_action_sources(tf_job_event_t ev, tf_job_state_set_t only,
                                        tf_job_state_t *to) {
    tf_job_state_set_t set = tf_job_event_sources(ev) & only;
    *to = TF_JOB_STATE_COUNT;
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        if (set & TF_JOB_STATE_BIT(s)) {
            /* Every source of one event leads to the same state. */
            tf_job_transition((tf_job_state_t)s, ev, to);
        }
    }
    return set;
}

typedef struct {
    tf_uc_action_cb cb;
    void *arg;
} action_t;

static void action_done(void *arg, int status, const tf_action_result_t *result) {
    action_t *a = arg;
    tf_uc_action_t r = {.outcome = TF_UC_ACTION_NOT_FOUND};
    if (status == 0 && result->found) {
        r.outcome = result->job != NULL ? TF_UC_ACTION_DONE : TF_UC_ACTION_REFUSED;
        r.job = result->job;
        r.state = result->before;
    }
    a->cb(a->arg, status, status == 0 ? &r : NULL);
    free(a);
}

typedef int (*store_action_fn)(void *ctx, const char *tenant_id, const char *job_id,
                               tf_job_state_set_t from, tf_job_state_t to, const char *actor,
                               int64_t now_ms, tf_store_action_cb cb, void *arg);

static int act(tf_uc_t *uc, store_action_fn fn, tf_job_event_t ev, const char *tenant_id,
               const char *job_id, const char *actor, tf_uc_action_cb cb, void *arg) {
    tf_job_state_t to;
    tf_job_state_set_t from = tf_uc_action_sources(ev, ~(tf_job_state_set_t)0, &to);
    action_t *a = malloc(sizeof(*a));
    if (a == NULL) {
        return TF_ENOMEM;
    }
    *a = (action_t){.cb = cb, .arg = arg};
    int rc = fn(uc->store->ctx, tenant_id, job_id, from, to, actor, tf_uc_now(uc), action_done, a);
    if (rc != 0) {
        free(a);
    }
    return rc;
}

int tf_uc_cancel(tf_uc_t *uc, const char *tenant_id, const char *job_id, const char *actor,
                 tf_uc_action_cb cb, void *arg) {
    return act(uc, uc->store->cancel, TF_JOB_EV_CANCEL, tenant_id, job_id, actor, cb, arg);
}

int tf_uc_retry(tf_uc_t *uc, const char *tenant_id, const char *job_id, const char *actor,
                tf_uc_action_cb cb, void *arg) {
    return act(uc, uc->store->retry, TF_JOB_EV_RETRY, tenant_id, job_id, actor, cb, arg);
}

int tf_uc_requeue(tf_uc_t *uc, const char *tenant_id, const char *const *ids, size_t nids,
                  const char *queue, int limit, const char *actor, tf_store_jobs_cb cb, void *arg) {
    tf_job_state_t to;
    tf_job_state_set_t from =
        tf_uc_action_sources(TF_JOB_EV_RETRY, TF_JOB_STATE_BIT(TF_JOB_DEAD), &to);
    return uc->store->requeue(uc->store->ctx, tenant_id, ids, nids, queue, limit, from, to, actor,
                              tf_uc_now(uc), cb, arg);
}
