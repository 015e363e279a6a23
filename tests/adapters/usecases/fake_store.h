/*
 * fake_store.h - fake ports for the use-case tests (tests/adapters/usecases):
 * a job store (engine/store.h) that records every call and queues its
 * callback, a settable clock (engine/clock.h) and a seeded UUID generator,
 * wired into one tf_uc_t by fake_env_new().
 *
 * The store keeps the port's contract on its side: an operation returns 0
 * and queues its callback, which fires only when the test delivers it with
 * the result it chooses (fake_deliver_*(), oldest call of that operation
 * first), so a test sees what the use case does between the call and the
 * answer, and that it never answers before the store did.  Setting
 * store.rc[FK_X] makes operation X fail at once with that code (recorded,
 * nothing queued).  What a test inspects afterwards is deep-copied at call
 * time (strings, arrays, finish items, the events buffer, claim plans), so
 * it survives the use case freeing or reusing its memory.  A use case that
 * calls one operation more than FAKE_MAX_CALLS times in one test (e.g. a
 * submitter spinning on a failing store) fails the test instead of hanging.
 *
 * Header-only; every function is static inline so each test includes what
 * it needs without unused-function warnings.  No global state.
 */
#ifndef TF_TESTS_ADAPTERS_USECASES_FAKE_STORE_H
#define TF_TESTS_ADAPTERS_USECASES_FAKE_STORE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/usecases/usecases.h"
#include "engine/error.h"
#include "engine/events.h"
#include "engine/store.h"
#include "engine/uuid.h"

#define FAKE_MAX_CALLS 32   /* calls of one operation per test */
#define FAKE_MAX_PENDING 64 /* callbacks waiting for delivery */

typedef enum {
    FK_SUBMIT = 0,
    FK_GET,
    FK_GET_BY_KEY,
    FK_GET_MANY,
    FK_LIST,
    FK_ATTEMPTS,
    FK_TRANSITIONS,
    FK_CANCEL,
    FK_RETRY,
    FK_REQUEUE,
    FK_CANDIDATES,
    FK_CLAIM,
    FK_FAILED_JOBS,
    FK_FINISH,
    FK_HEARTBEAT,
    FK_PROMOTE,
    FK_EXPIRED,
    FK_RELEASE,
    FK_NEXT_DUE,
    FK_BUILTIN_QUEUES,
    FK_PING,
    FK_GAUGES,
    FK_OP_COUNT
} fk_op_t;

static inline const char *fk_op_name(fk_op_t op) {
    static const char *const names[FK_OP_COUNT] = {
        [FK_SUBMIT] = "submit",
        [FK_GET] = "get",
        [FK_GET_BY_KEY] = "get_by_key",
        [FK_GET_MANY] = "get_many",
        [FK_LIST] = "list",
        [FK_ATTEMPTS] = "attempts",
        [FK_TRANSITIONS] = "transitions",
        [FK_CANCEL] = "cancel",
        [FK_RETRY] = "retry",
        [FK_REQUEUE] = "requeue",
        [FK_CANDIDATES] = "candidates",
        [FK_CLAIM] = "claim",
        [FK_FAILED_JOBS] = "failed_jobs",
        [FK_FINISH] = "finish",
        [FK_HEARTBEAT] = "heartbeat",
        [FK_PROMOTE] = "promote",
        [FK_EXPIRED] = "expired",
        [FK_RELEASE] = "release",
        [FK_NEXT_DUE] = "next_due",
        [FK_BUILTIN_QUEUES] = "builtin_queues",
        [FK_PING] = "ping",
        [FK_GAUGES] = "gauges",
    };
    return (unsigned)op < FK_OP_COUNT ? names[op] : "?";
}

/* ---- what each call recorded ---- */

typedef struct {
    size_t n;
    int all_or_nothing;
    const tf_new_job_t **jobs; /* the pointers as passed */
    char (*ids)[TF_ID_LEN];
    char **tenants, **keys, **hashes;
} fake_submit_call_t;

/* get, get_by_key, attempts, transitions: `what` is the job id or the key. */
typedef struct {
    char *tenant_id, *what;
} fake_get_call_t;

typedef struct {
    char *tenant_id;
    size_t n;
    char **ids;
} fake_get_many_call_t;

typedef struct {
    tf_job_query_t q; /* its strings point at the copies below */
    char *tenant_id, *queue, *type, *correlation_id, *rule_id;
} fake_list_call_t;

/* cancel and retry. */
typedef struct {
    char *tenant_id, *job_id, *actor;
    tf_job_state_set_t from;
    tf_job_state_t to;
    int64_t now_ms;
} fake_action_call_t;

typedef struct {
    char *tenant_id, *queue, *actor;
    size_t nids;
    char **ids; /* NULL when passed NULL */
    int limit;
    tf_job_state_set_t from;
    tf_job_state_t to;
    int64_t now_ms;
} fake_requeue_call_t;

typedef struct {
    char *queue;
    int builtin;
} fake_candidates_call_t;

typedef struct {
    char *queue, *worker_id;
    int builtin, lease_ms;
    int64_t now_ms;
    size_t ntenants;
    char **tenants;
    int *quotas;
    int has_vtimes; /* vtimes was not NULL */
    double *vtimes;
    double vclock;
} fake_claim_call_t;

typedef struct {
    size_t n;
    char **tenants; /* entries NULL when passed NULL */
    char **ids;
} fake_failed_jobs_call_t;

typedef struct {
    char *tenant_id, *job_id, *lease_token, *worker, *actor, *result;
    char *error_type, *error_message, *reason;
    tf_job_state_t to;
    int64_t run_at_ms, ended_at_ms;
    tf_attempt_outcome_t attempt_outcome;
    tf_dependants_action_t dependants;
} fake_finish_item_t;

typedef struct {
    tf_domain_event_kind_t kind;
    char *tenant_id, *job_id, *reason;
    tf_job_state_t state;
} fake_event_t;

typedef struct {
    size_t n;
    fake_finish_item_t *items;
    int has_events; /* the events pointer was not NULL */
    size_t nevents;
    fake_event_t *events;
    int64_t now_ms;
} fake_finish_call_t;

typedef struct {
    char *tenant_id, *job_id, *lease_token;
    int lease_ms;
    int64_t now_ms;
} fake_heartbeat_call_t;

/* promote, expired (limit), next_due, gauges (limit 0). */
typedef struct {
    int limit;
    int64_t now_ms;
} fake_limit_call_t;

typedef struct {
    char *worker_id;
    size_t n;
    char **job_ids, **lease_tokens;
    int64_t now_ms;
} fake_release_call_t;

/* ---- queued callbacks ---- */

typedef void (*fake_fn_t)(void);

typedef struct {
    fk_op_t op;
    int call; /* index of the call in its record */
    fake_fn_t fn;
    void *arg;
} fake_pending_t;

typedef struct fake_block fake_block_t;
struct fake_block {
    fake_block_t *next;
    max_align_t data[];
};

typedef struct {
    tf_job_store_t port;
    int rc[FK_OP_COUNT];    /* nonzero: the operation fails at once with it */
    int calls[FK_OP_COUNT]; /* every call, failed ones included */

    fake_submit_call_t submit[FAKE_MAX_CALLS];
    fake_get_call_t get[FAKE_MAX_CALLS], get_by_key[FAKE_MAX_CALLS];
    fake_get_call_t attempts[FAKE_MAX_CALLS], transitions[FAKE_MAX_CALLS];
    fake_get_many_call_t get_many[FAKE_MAX_CALLS];
    fake_list_call_t list[FAKE_MAX_CALLS];
    fake_action_call_t cancel[FAKE_MAX_CALLS], retry[FAKE_MAX_CALLS];
    fake_requeue_call_t requeue[FAKE_MAX_CALLS];
    fake_candidates_call_t candidates[FAKE_MAX_CALLS];
    fake_claim_call_t claim[FAKE_MAX_CALLS];
    fake_failed_jobs_call_t failed_jobs[FAKE_MAX_CALLS];
    fake_finish_call_t finish[FAKE_MAX_CALLS];
    fake_heartbeat_call_t heartbeat[FAKE_MAX_CALLS];
    fake_limit_call_t promote[FAKE_MAX_CALLS], expired[FAKE_MAX_CALLS];
    fake_limit_call_t next_due[FAKE_MAX_CALLS], gauges[FAKE_MAX_CALLS];
    fake_release_call_t release[FAKE_MAX_CALLS];

    fake_pending_t pending[FAKE_MAX_PENDING];
    size_t npending;
    int delivering; /* a delivery is running (its callback may call the store) */

    fake_block_t *blocks; /* the copies, freed with the store */
} fake_store_t;

/* ---- memory for the copies ---- */

static inline void *fake_alloc(fake_store_t *fs, size_t size) {
    fake_block_t *b = calloc(1, sizeof(*b) + (size > 0 ? size : 1));
    assert_non_null(b);
    b->next = fs->blocks;
    fs->blocks = b;
    return b->data;
}

static inline char *fake_strdup(fake_store_t *fs, const char *s) {
    if (s == NULL) {
        return NULL;
    }
    size_t len = strlen(s) + 1;
    char *copy = fake_alloc(fs, len);
    memcpy(copy, s, len);
    return copy;
}

static inline char **fake_strdupv(fake_store_t *fs, const char *const *v, size_t n) {
    if (v == NULL) {
        return NULL;
    }
    char **copy = fake_alloc(fs, n * sizeof(*copy));
    for (size_t i = 0; i < n; i++) {
        copy[i] = fake_strdup(fs, v[i]);
    }
    return copy;
}

/* ---- recording and queueing ---- */

/* Counts a call of `op` and returns its index in the op's record, or -1
 * when the op is set to fail (nothing to queue then). */
static inline int fake_begin(fake_store_t *fs, fk_op_t op) {
    if (fs->calls[op] >= FAKE_MAX_CALLS) {
        fail_msg("store->%s called more than %d times (spinning?)", fk_op_name(op), FAKE_MAX_CALLS);
    }
    return fs->calls[op]++;
}

static inline int fake_queue(fake_store_t *fs, fk_op_t op, int call, fake_fn_t fn, void *arg) {
    if (fs->rc[op] != 0) {
        return fs->rc[op];
    }
    assert_non_null(fn);
    if (fs->npending >= FAKE_MAX_PENDING) {
        fail_msg("more than %d store callbacks pending", FAKE_MAX_PENDING);
    }
    fs->pending[fs->npending++] = (fake_pending_t){.op = op, .call = call, .fn = fn, .arg = arg};
    return 0;
}

/* Removes and returns the oldest pending callback of `op`; fails the test
 * when there is none. */
static inline fake_pending_t fake_take(fake_store_t *fs, fk_op_t op) {
    for (size_t i = 0; i < fs->npending; i++) {
        if (fs->pending[i].op == op) {
            fake_pending_t p = fs->pending[i];
            memmove(&fs->pending[i], &fs->pending[i + 1],
                    (fs->npending - i - 1) * sizeof(fs->pending[0]));
            fs->npending--;
            return p;
        }
    }
    fail_msg("no pending store->%s callback to deliver", fk_op_name(op));
    return (fake_pending_t){0}; /* not reached */
}

static inline size_t fake_pending_count(const fake_store_t *fs, fk_op_t op) {
    size_t n = 0;
    for (size_t i = 0; i < fs->npending; i++) {
        n += fs->pending[i].op == op;
    }
    return n;
}

/* ---- the port's operations ---- */

static inline int fake_submit(void *ctx, const tf_new_job_t *const *jobs, size_t n,
                              int all_or_nothing, tf_store_submit_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_SUBMIT);
    if (n < 1 || n > 1000) {
        fail_msg("store->submit with n = %zu (1..1000)", n);
    }
    fake_submit_call_t *r = &fs->submit[c];
    r->n = n;
    r->all_or_nothing = all_or_nothing;
    r->jobs = fake_alloc(fs, n * sizeof(*r->jobs));
    r->ids = fake_alloc(fs, n * sizeof(*r->ids));
    r->tenants = fake_alloc(fs, n * sizeof(char *));
    r->keys = fake_alloc(fs, n * sizeof(char *));
    r->hashes = fake_alloc(fs, n * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        r->jobs[i] = jobs[i];
        memcpy(r->ids[i], jobs[i]->id, TF_ID_LEN);
        r->tenants[i] = fake_strdup(fs, jobs[i]->tenant_id);
        r->keys[i] = fake_strdup(fs, jobs[i]->idempotency_key);
        r->hashes[i] = fake_strdup(fs, jobs[i]->request_hash);
    }
    return fake_queue(fs, FK_SUBMIT, c, (fake_fn_t)cb, arg);
}

static inline int fake_get_common(fake_store_t *fs, fk_op_t op, fake_get_call_t *rec,
                                  const char *tenant_id, const char *what, fake_fn_t cb,
                                  void *arg) {
    int c = fake_begin(fs, op);
    rec[c] =
        (fake_get_call_t){.tenant_id = fake_strdup(fs, tenant_id), .what = fake_strdup(fs, what)};
    return fake_queue(fs, op, c, cb, arg);
}

static inline int fake_get(void *ctx, const char *tenant_id, const char *job_id, tf_store_job_cb cb,
                           void *arg) {
    fake_store_t *fs = ctx;
    return fake_get_common(fs, FK_GET, fs->get, tenant_id, job_id, (fake_fn_t)cb, arg);
}

static inline int fake_get_by_key(void *ctx, const char *tenant_id, const char *key,
                                  tf_store_job_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    return fake_get_common(fs, FK_GET_BY_KEY, fs->get_by_key, tenant_id, key, (fake_fn_t)cb, arg);
}

static inline int fake_attempts(void *ctx, const char *tenant_id, const char *job_id,
                                tf_store_attempts_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    return fake_get_common(fs, FK_ATTEMPTS, fs->attempts, tenant_id, job_id, (fake_fn_t)cb, arg);
}

static inline int fake_transitions(void *ctx, const char *tenant_id, const char *job_id,
                                   tf_store_transitions_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    return fake_get_common(fs, FK_TRANSITIONS, fs->transitions, tenant_id, job_id, (fake_fn_t)cb,
                           arg);
}

static inline int fake_get_many(void *ctx, const char *tenant_id, const char *const *ids, size_t n,
                                tf_store_jobs_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_GET_MANY);
    fs->get_many[c] = (fake_get_many_call_t){
        .tenant_id = fake_strdup(fs, tenant_id), .n = n, .ids = fake_strdupv(fs, ids, n)};
    return fake_queue(fs, FK_GET_MANY, c, (fake_fn_t)cb, arg);
}

static inline int fake_list(void *ctx, const tf_job_query_t *query, tf_store_jobs_cb cb,
                            void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_LIST);
    fake_list_call_t *r = &fs->list[c];
    r->q = *query;
    r->tenant_id = fake_strdup(fs, query->tenant_id);
    r->queue = fake_strdup(fs, query->queue);
    r->type = fake_strdup(fs, query->type);
    r->correlation_id = fake_strdup(fs, query->correlation_id);
    r->rule_id = fake_strdup(fs, query->rule_id);
    r->q.tenant_id = r->tenant_id;
    r->q.queue = r->queue;
    r->q.type = r->type;
    r->q.correlation_id = r->correlation_id;
    r->q.rule_id = r->rule_id;
    return fake_queue(fs, FK_LIST, c, (fake_fn_t)cb, arg);
}

static inline int fake_action_common(fake_store_t *fs, fk_op_t op, fake_action_call_t *rec,
                                     const char *tenant_id, const char *job_id,
                                     tf_job_state_set_t from, tf_job_state_t to, const char *actor,
                                     int64_t now_ms, tf_store_action_cb cb, void *arg) {
    int c = fake_begin(fs, op);
    rec[c] = (fake_action_call_t){.tenant_id = fake_strdup(fs, tenant_id),
                                  .job_id = fake_strdup(fs, job_id),
                                  .actor = fake_strdup(fs, actor),
                                  .from = from,
                                  .to = to,
                                  .now_ms = now_ms};
    return fake_queue(fs, op, c, (fake_fn_t)cb, arg);
}

static inline int fake_cancel(void *ctx, const char *tenant_id, const char *job_id,
                              tf_job_state_set_t from, tf_job_state_t to, const char *actor,
                              int64_t now_ms, tf_store_action_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    return fake_action_common(fs, FK_CANCEL, fs->cancel, tenant_id, job_id, from, to, actor, now_ms,
                              cb, arg);
}

static inline int fake_retry(void *ctx, const char *tenant_id, const char *job_id,
                             tf_job_state_set_t from, tf_job_state_t to, const char *actor,
                             int64_t now_ms, tf_store_action_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    return fake_action_common(fs, FK_RETRY, fs->retry, tenant_id, job_id, from, to, actor, now_ms,
                              cb, arg);
}

static inline int fake_requeue(void *ctx, const char *tenant_id, const char *const *ids,
                               size_t nids, const char *queue, int limit, tf_job_state_set_t from,
                               tf_job_state_t to, const char *actor, int64_t now_ms,
                               tf_store_jobs_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_REQUEUE);
    fs->requeue[c] = (fake_requeue_call_t){.tenant_id = fake_strdup(fs, tenant_id),
                                           .queue = fake_strdup(fs, queue),
                                           .actor = fake_strdup(fs, actor),
                                           .nids = nids,
                                           .ids = fake_strdupv(fs, ids, nids),
                                           .limit = limit,
                                           .from = from,
                                           .to = to,
                                           .now_ms = now_ms};
    return fake_queue(fs, FK_REQUEUE, c, (fake_fn_t)cb, arg);
}

static inline int fake_candidates(void *ctx, const char *queue, int builtin,
                                  tf_store_candidates_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_CANDIDATES);
    fs->candidates[c] =
        (fake_candidates_call_t){.queue = fake_strdup(fs, queue), .builtin = builtin};
    return fake_queue(fs, FK_CANDIDATES, c, (fake_fn_t)cb, arg);
}

static inline int fake_claim(void *ctx, const tf_claim_t *claim, tf_store_claimed_cb cb,
                             void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_CLAIM);
    fake_claim_call_t *r = &fs->claim[c];
    *r = (fake_claim_call_t){.queue = fake_strdup(fs, claim->queue),
                             .worker_id = fake_strdup(fs, claim->worker_id),
                             .builtin = claim->builtin,
                             .lease_ms = claim->lease_ms,
                             .now_ms = claim->now_ms,
                             .ntenants = claim->ntenants,
                             .has_vtimes = claim->vtimes != NULL,
                             .vclock = claim->vclock};
    r->tenants = fake_strdupv(fs, claim->tenants, claim->ntenants);
    r->quotas = fake_alloc(fs, claim->ntenants * sizeof(int));
    r->vtimes = fake_alloc(fs, claim->ntenants * sizeof(double));
    for (size_t i = 0; i < claim->ntenants; i++) {
        r->quotas[i] = claim->quotas[i];
        if (claim->vtimes != NULL) {
            r->vtimes[i] = claim->vtimes[i];
        }
    }
    return fake_queue(fs, FK_CLAIM, c, (fake_fn_t)cb, arg);
}

static inline int fake_failed_jobs(void *ctx, const char *const *tenants, const char *const *ids,
                                   size_t n, tf_store_failed_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_FAILED_JOBS);
    assert_non_null(tenants);
    assert_non_null(ids);
    fs->failed_jobs[c] = (fake_failed_jobs_call_t){
        .n = n, .tenants = fake_strdupv(fs, tenants, n), .ids = fake_strdupv(fs, ids, n)};
    return fake_queue(fs, FK_FAILED_JOBS, c, (fake_fn_t)cb, arg);
}

static inline int fake_finish(void *ctx, const tf_finish_t *items, size_t n,
                              const tf_event_buf_t *events, int64_t now_ms, tf_store_finished_cb cb,
                              void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_FINISH);
    if (n < 1 || n > 1000) {
        fail_msg("store->finish with n = %zu (1..1000)", n);
    }
    fake_finish_call_t *r = &fs->finish[c];
    *r = (fake_finish_call_t){.n = n, .has_events = events != NULL, .now_ms = now_ms};
    r->items = fake_alloc(fs, n * sizeof(*r->items));
    for (size_t i = 0; i < n; i++) {
        const tf_finish_t *f = &items[i];
        r->items[i] = (fake_finish_item_t){
            .tenant_id = fake_strdup(fs, f->tenant_id),
            .job_id = fake_strdup(fs, f->job_id),
            .lease_token = fake_strdup(fs, f->lease_token),
            .worker = fake_strdup(fs, f->worker),
            .actor = fake_strdup(fs, f->actor),
            .result = fake_strdup(fs, f->result),
            .error_type = fake_strdup(fs, f->error_type),
            .error_message = fake_strdup(fs, f->error_message),
            .reason = fake_strdup(fs, f->reason),
            .to = f->to,
            .run_at_ms = f->run_at_ms,
            .ended_at_ms = f->ended_at_ms,
            .attempt_outcome = f->attempt_outcome,
            .dependants = f->dependants,
        };
    }
    if (events != NULL) {
        r->nevents = events->n;
        r->events = fake_alloc(fs, events->n * sizeof(*r->events));
        for (size_t i = 0; i < events->n; i++) {
            const tf_domain_event_t *e = &events->items[i];
            r->events[i] = (fake_event_t){.kind = e->kind,
                                          .tenant_id = fake_strdup(fs, e->tenant_id),
                                          .job_id = fake_strdup(fs, e->job_id),
                                          .reason = fake_strdup(fs, e->reason),
                                          .state = e->state};
        }
    }
    return fake_queue(fs, FK_FINISH, c, (fake_fn_t)cb, arg);
}

static inline int fake_heartbeat(void *ctx, const char *tenant_id, const char *job_id,
                                 const char *lease_token, int lease_ms, int64_t now_ms,
                                 tf_store_heartbeat_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_HEARTBEAT);
    fs->heartbeat[c] = (fake_heartbeat_call_t){.tenant_id = fake_strdup(fs, tenant_id),
                                               .job_id = fake_strdup(fs, job_id),
                                               .lease_token = fake_strdup(fs, lease_token),
                                               .lease_ms = lease_ms,
                                               .now_ms = now_ms};
    return fake_queue(fs, FK_HEARTBEAT, c, (fake_fn_t)cb, arg);
}

static inline int fake_promote(void *ctx, int limit, int64_t now_ms, tf_store_count_cb cb,
                               void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_PROMOTE);
    fs->promote[c] = (fake_limit_call_t){.limit = limit, .now_ms = now_ms};
    return fake_queue(fs, FK_PROMOTE, c, (fake_fn_t)cb, arg);
}

static inline int fake_expired(void *ctx, int limit, int64_t now_ms, tf_store_expired_cb cb,
                               void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_EXPIRED);
    fs->expired[c] = (fake_limit_call_t){.limit = limit, .now_ms = now_ms};
    return fake_queue(fs, FK_EXPIRED, c, (fake_fn_t)cb, arg);
}

static inline int fake_release(void *ctx, const char *worker_id, const char *const *job_ids,
                               const char *const *lease_tokens, size_t n, int64_t now_ms,
                               tf_store_count_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_RELEASE);
    fs->release[c] = (fake_release_call_t){.worker_id = fake_strdup(fs, worker_id),
                                           .n = n,
                                           .job_ids = fake_strdupv(fs, job_ids, n),
                                           .lease_tokens = fake_strdupv(fs, lease_tokens, n),
                                           .now_ms = now_ms};
    return fake_queue(fs, FK_RELEASE, c, (fake_fn_t)cb, arg);
}

static inline int fake_next_due(void *ctx, int64_t now_ms, tf_store_next_due_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_NEXT_DUE);
    fs->next_due[c] = (fake_limit_call_t){.now_ms = now_ms};
    return fake_queue(fs, FK_NEXT_DUE, c, (fake_fn_t)cb, arg);
}

static inline int fake_builtin_queues(void *ctx, tf_store_names_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_BUILTIN_QUEUES);
    return fake_queue(fs, FK_BUILTIN_QUEUES, c, (fake_fn_t)cb, arg);
}

static inline int fake_ping(void *ctx, tf_store_status_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_PING);
    return fake_queue(fs, FK_PING, c, (fake_fn_t)cb, arg);
}

static inline int fake_gauges(void *ctx, int64_t now_ms, tf_store_gauges_cb cb, void *arg) {
    fake_store_t *fs = ctx;
    int c = fake_begin(fs, FK_GAUGES);
    fs->gauges[c] = (fake_limit_call_t){.now_ms = now_ms};
    return fake_queue(fs, FK_GAUGES, c, (fake_fn_t)cb, arg);
}

/* ---- delivering answers (the oldest pending call of the op first) ---- */

static inline void fake_deliver_submit(fake_store_t *fs, int status,
                                       const tf_submit_result_t *results, size_t n, int failed) {
    fake_pending_t p = fake_take(fs, FK_SUBMIT);
    ((tf_store_submit_cb)p.fn)(p.arg, status, results, n, failed);
}

/* get or get_by_key. */
static inline void fake_deliver_job(fake_store_t *fs, fk_op_t op, int status, const tf_job_t *job,
                                    const char *request_hash) {
    assert_true(op == FK_GET || op == FK_GET_BY_KEY);
    fake_pending_t p = fake_take(fs, op);
    ((tf_store_job_cb)p.fn)(p.arg, status, job, request_hash);
}

/* get_many, list or requeue. */
static inline void fake_deliver_jobs(fake_store_t *fs, fk_op_t op, int status, const tf_job_t *jobs,
                                     size_t n) {
    assert_true(op == FK_GET_MANY || op == FK_LIST || op == FK_REQUEUE);
    fake_pending_t p = fake_take(fs, op);
    ((tf_store_jobs_cb)p.fn)(p.arg, status, jobs, n);
}

static inline void fake_deliver_attempts(fake_store_t *fs, int status, int found,
                                         const tf_attempt_t *attempts, size_t n) {
    fake_pending_t p = fake_take(fs, FK_ATTEMPTS);
    ((tf_store_attempts_cb)p.fn)(p.arg, status, found, attempts, n);
}

static inline void fake_deliver_transitions(fake_store_t *fs, int status, int found,
                                            const tf_transition_t *transitions, size_t n) {
    fake_pending_t p = fake_take(fs, FK_TRANSITIONS);
    ((tf_store_transitions_cb)p.fn)(p.arg, status, found, transitions, n);
}

/* cancel or retry. */
static inline void fake_deliver_action(fake_store_t *fs, fk_op_t op, int status,
                                       const tf_action_result_t *result) {
    assert_true(op == FK_CANCEL || op == FK_RETRY);
    fake_pending_t p = fake_take(fs, op);
    ((tf_store_action_cb)p.fn)(p.arg, status, result);
}

static inline void fake_deliver_candidates(fake_store_t *fs, int status,
                                           const tf_candidate_t *tenants, size_t n, double vclock) {
    fake_pending_t p = fake_take(fs, FK_CANDIDATES);
    ((tf_store_candidates_cb)p.fn)(p.arg, status, tenants, n, vclock);
}

static inline void fake_deliver_claimed(fake_store_t *fs, int status, const tf_claimed_job_t *jobs,
                                        size_t n) {
    fake_pending_t p = fake_take(fs, FK_CLAIM);
    ((tf_store_claimed_cb)p.fn)(p.arg, status, jobs, n);
}

static inline void fake_deliver_failed_jobs(fake_store_t *fs, int status,
                                            const tf_failed_job_t *jobs, size_t n) {
    fake_pending_t p = fake_take(fs, FK_FAILED_JOBS);
    ((tf_store_failed_cb)p.fn)(p.arg, status, jobs, n);
}

static inline void fake_deliver_finished(fake_store_t *fs, int status, const tf_finished_t *results,
                                         size_t n) {
    fake_pending_t p = fake_take(fs, FK_FINISH);
    ((tf_store_finished_cb)p.fn)(p.arg, status, results, n);
}

static inline void fake_deliver_heartbeat(fake_store_t *fs, int status, int64_t expires_at_ms) {
    fake_pending_t p = fake_take(fs, FK_HEARTBEAT);
    ((tf_store_heartbeat_cb)p.fn)(p.arg, status, expires_at_ms);
}

/* promote or release. */
static inline void fake_deliver_count(fake_store_t *fs, fk_op_t op, int status, int64_t count) {
    assert_true(op == FK_PROMOTE || op == FK_RELEASE);
    fake_pending_t p = fake_take(fs, op);
    ((tf_store_count_cb)p.fn)(p.arg, status, count);
}

static inline void fake_deliver_expired(fake_store_t *fs, int status, const tf_expired_t *list,
                                        size_t n) {
    fake_pending_t p = fake_take(fs, FK_EXPIRED);
    ((tf_store_expired_cb)p.fn)(p.arg, status, list, n);
}

static inline void fake_deliver_next_due(fake_store_t *fs, int status, int any, int64_t due_in_ms) {
    fake_pending_t p = fake_take(fs, FK_NEXT_DUE);
    ((tf_store_next_due_cb)p.fn)(p.arg, status, any, due_in_ms);
}

static inline void fake_deliver_names(fake_store_t *fs, int status, const char *const *names,
                                      size_t n) {
    fake_pending_t p = fake_take(fs, FK_BUILTIN_QUEUES);
    ((tf_store_names_cb)p.fn)(p.arg, status, names, n);
}

/* ---- set-up ---- */

static inline void fake_store_init(fake_store_t *fs) {
    memset(fs, 0, sizeof(*fs));
    fs->port = (tf_job_store_t){
        .ctx = fs,
        .submit = fake_submit,
        .get = fake_get,
        .get_by_key = fake_get_by_key,
        .get_many = fake_get_many,
        .list = fake_list,
        .attempts = fake_attempts,
        .transitions = fake_transitions,
        .cancel = fake_cancel,
        .retry = fake_retry,
        .requeue = fake_requeue,
        .candidates = fake_candidates,
        .claim = fake_claim,
        .failed_jobs = fake_failed_jobs,
        .finish = fake_finish,
        .heartbeat = fake_heartbeat,
        .promote = fake_promote,
        .expired = fake_expired,
        .release = fake_release,
        .next_due = fake_next_due,
        .builtin_queues = fake_builtin_queues,
        .ping = fake_ping,
        .gauges = fake_gauges,
    };
}

static inline void fake_store_free(fake_store_t *fs) {
    while (fs->blocks != NULL) {
        fake_block_t *next = fs->blocks->next;
        free(fs->blocks);
        fs->blocks = next;
    }
}

/* Calls of every operation but `op` (0 when the use case touched nothing
 * else). */
static inline int fake_calls_except(const fake_store_t *fs, fk_op_t op) {
    int n = 0;
    for (int i = 0; i < FK_OP_COUNT; i++) {
        n += i != (int)op ? fs->calls[i] : 0;
    }
    return n;
}

static inline int fake_calls_total(const fake_store_t *fs) {
    return fake_calls_except(fs, FK_OP_COUNT);
}

/* ---- the clock ---- */

typedef struct {
    int64_t now;
    tf_clock_t port;
} fake_clock_t;

static inline int64_t fake_clock_now_ms(void *ctx) {
    return ((fake_clock_t *)ctx)->now;
}

static inline int fake_clock_set_ms(void *ctx, int64_t ms) {
    ((fake_clock_t *)ctx)->now = ms;
    return 0;
}

static inline void fake_clock_init(fake_clock_t *clock, int64_t now) {
    clock->now = now;
    clock->port =
        (tf_clock_t){.now_ms = fake_clock_now_ms, .set_ms = fake_clock_set_ms, .ctx = clock};
}

/* ---- one use-case context on fake ports ---- */

#define FAKE_T0_MS INT64_C(1795676400000) /* 2026-11-26T07:00:00.000Z */
#define FAKE_SEED UINT64_C(42)

typedef struct {
    fake_store_t store;
    fake_clock_t clock;
    tf_uuid_gen_t uuids;
    tf_uc_t uc;
} fake_env_t;

/* Heap-allocated: the ports point into it. */
static inline fake_env_t *fake_env_new(void) {
    fake_env_t *env = calloc(1, sizeof(*env));
    assert_non_null(env);
    fake_store_init(&env->store);
    fake_clock_init(&env->clock, FAKE_T0_MS);
    tf_uuid_gen_init(&env->uuids, FAKE_SEED);
    env->uc = (tf_uc_t){.store = &env->store.port,
                        .tenants = NULL,
                        .clock = &env->clock.port,
                        .uuids = &env->uuids};
    return env;
}

static inline void fake_env_free(fake_env_t *env) {
    if (env != NULL) {
        fake_store_free(&env->store);
        free(env);
    }
}

/* For a test's teardown: every store call the test made was answered (a
 * pending one would keep the use case's memory alive). */
static inline void fake_store_assert_idle(const fake_store_t *fs) {
    if (fs->npending != 0) {
        fail_msg("%zu store callback(s) never delivered (first: %s)", fs->npending,
                 fk_op_name(fs->pending[0].op));
    }
}

/* ---- small helpers for assertions ---- */

/* a == b for doubles, with the values in the message. */
#define fake_assert_double_equal(a, b)                                                             \
    do {                                                                                           \
        double fake_a_ = (a), fake_b_ = (b);                                                       \
        if (!(fake_a_ == fake_b_)) {                                                               \
            fail_msg("%s == %.17g, expected %.17g", #a, fake_a_, fake_b_);                         \
        }                                                                                          \
    } while (0)

/* Copies `src` (NULL allowed) into a fixed buffer, "(null)" for NULL. */
static inline void fake_copy_text(char *dst, size_t size, const char *src) {
    const char *text = src != NULL ? src : "(null)";
    size_t len = strlen(text);
    if (len >= size) {
        len = size - 1;
    }
    memcpy(dst, text, len);
    dst[len] = '\0';
}

#endif
