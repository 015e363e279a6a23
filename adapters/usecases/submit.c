/*
 * submit.c - the submit use case (see submit.h).  Loop thread only.
 */
#include "adapters/usecases/submit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

void tf_uc_job_stamp(tf_uc_t *uc, tf_new_job_t *job, int64_t run_at_ms, int64_t delay_ms) {
    tf_uuid_t id;
    tf_uuid_v7(uc->uuids, (uint64_t)tf_uc_now(uc), &id);
    tf_uuid_format(&id, job->id);
    job->created_at_ms = (int64_t)tf_uuid_v7_unix_ms(&id);
    job->run_at_ms = run_at_ms != TF_TIME_NONE ? run_at_ms
                     : delay_ms >= 0           ? job->created_at_ms + delay_ms
                                               : job->created_at_ms;
}

static int same_key(const tf_new_job_t *a, const tf_new_job_t *b) {
    return a->idempotency_key != NULL && b->idempotency_key != NULL &&
           strcmp(a->idempotency_key, b->idempotency_key) == 0 &&
           strcmp(a->tenant_id, b->tenant_id) == 0;
}

static int same_request(const tf_new_job_t *a, const tf_new_job_t *b) {
    return a->request_hash != NULL && b->request_hash != NULL &&
           strcmp(a->request_hash, b->request_hash) == 0;
}

/* ---- answering one submission ---- */

typedef struct sub sub_t;
struct sub {
    sub_t *next; /* queue link */
    sub_t *dups; /* same tenant and key, folded into this one */
    const tf_new_job_t *job;
    tf_uc_submit_cb cb;
    void *arg;
    tf_submitter_t *owner;
};

struct tf_submitter {
    tf_uc_t *uc;
    sub_t *head, *tail; /* waiting for a group write */
    int pending;
    int in_flight, max_in_flight;
    int lookups; /* key lookups in flight */
    int closing;
    void (*on_group)(void *ctx, size_t jobs);
    void *on_group_ctx;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

static void flush(tf_submitter_t *s);

static void maybe_closed(tf_submitter_t *s) {
    if (s->closing && s->in_flight == 0 && s->pending == 0 && s->lookups == 0) {
        void (*cb)(void *) = s->closed_cb;
        void *arg = s->closed_arg;
        free(s);
        if (cb != NULL) {
            cb(arg);
        }
    }
}

static void answer(sub_t *sub, int status, const tf_uc_submitted_t *r) {
    sub->cb(sub->arg, status, status == 0 ? r : NULL);
    free(sub);
}

/* The job holding sub's key was read: the same request answers with it,
 * another request is a conflict, none means its writer has not committed. */
static void by_key_done(void *arg, int status, const tf_job_t *job, const char *request_hash) {
    sub_t *sub = arg;
    tf_submitter_t *s = sub->owner;
    tf_uc_submitted_t r = {.outcome = TF_UC_SUBMIT_KEY_BUSY};
    if (status == 0 && job != NULL) {
        int same = request_hash != NULL && sub->job->request_hash != NULL &&
                   strcmp(request_hash, sub->job->request_hash) == 0;
        r.outcome = same ? TF_UC_SUBMIT_EXISTING : TF_UC_SUBMIT_KEY_CONFLICT;
        r.existing = same ? job : NULL;
    }
    answer(sub, status, &r);
    s->lookups--;
    maybe_closed(s);
}

static void answer_by_key(tf_submitter_t *s, sub_t *sub) {
    int rc = s->uc->store->get_by_key(s->uc->store->ctx, sub->job->tenant_id,
                                      sub->job->idempotency_key, by_key_done, sub);
    if (rc != 0) {
        answer(sub, rc, NULL);
        return;
    }
    s->lookups++;
}

static void answer_dups(tf_submitter_t *s, sub_t *lead) {
    for (sub_t *d = lead->dups, *next; d != NULL; d = next) {
        next = d->next;
        answer_by_key(s, d);
    }
    lead->dups = NULL;
}

static void fail_all(sub_t *list, int status) {
    while (list != NULL) {
        sub_t *next = list->next;
        for (sub_t *d = list->dups, *dn; d != NULL; d = dn) {
            dn = d->next;
            answer(d, status, NULL);
        }
        answer(list, status, NULL);
        list = next;
    }
}

/* ---- the group write ---- */

typedef struct {
    tf_submitter_t *owner;
    sub_t *subs; /* in the order of the write */
    size_t count;
} group_t;

static void group_done(void *arg, int status, const tf_submit_result_t *results, size_t n,
                       int failed) {
    (void)failed; /* groups are not all-or-nothing */
    group_t *g = arg;
    tf_submitter_t *s = g->owner;
    if (status != 0 || n != g->count) {
        fail_all(g->subs, status != 0 ? status : TF_EIO);
    } else {
        sub_t *sub = g->subs;
        for (size_t i = 0; sub != NULL; i++) {
            sub_t *next = sub->next;
            sub->next = NULL;
            answer_dups(s, sub);
            const tf_submit_result_t *r = &results[i];
            if (r->outcome == TF_SUBMIT_CREATED) {
                answer(sub, 0,
                       &(tf_uc_submitted_t){.outcome = TF_UC_SUBMIT_CREATED,
                                            .state = r->state,
                                            .executor = r->executor});
            } else if (r->outcome == TF_SUBMIT_MISSING) {
                answer(sub, 0,
                       &(tf_uc_submitted_t){.outcome = TF_UC_SUBMIT_MISSING_PARENT,
                                            .missing = r->missing});
            } else {
                /* The key exists (or a concurrent request is writing it):
                 * read that job and compare requests. */
                answer_by_key(s, sub);
            }
            sub = next;
        }
    }
    s->in_flight--;
    free(g);
    flush(s);
    maybe_closed(s);
}

/* Takes up to TF_SUBMIT_GROUP_MAX queued submissions into one write.
 * Returns 0, or a TF_E* code after answering what it took (so the caller
 * stops instead of spinning on a queue it cannot drain). */
static int flush_one(tf_submitter_t *s) {
    size_t take = s->pending < TF_SUBMIT_GROUP_MAX ? (size_t)s->pending : TF_SUBMIT_GROUP_MAX;
    group_t *g = calloc(1, sizeof(*g));
    const tf_new_job_t **jobs = calloc(take, sizeof(*jobs));
    sub_t *last = NULL;
    while (s->head != NULL && g != NULL && g->count < take) {
        sub_t *sub = s->head;
        s->head = sub->next;
        s->pending--;
        sub->next = NULL;
        if (last == NULL) {
            g->subs = sub;
        } else {
            last->next = sub;
        }
        last = sub;
        if (jobs != NULL) {
            jobs[g->count] = sub->job;
        }
        g->count++;
    }
    if (s->head == NULL) {
        s->tail = NULL;
    }
    int rc = g != NULL && jobs != NULL ? 0 : TF_ENOMEM;
    if (rc == 0) {
        g->owner = s;
        rc = s->uc->store->submit(s->uc->store->ctx, jobs, g->count, 0, group_done, g);
    }
    if (rc == 0) {
        s->in_flight++;
        if (s->on_group != NULL) {
            s->on_group(s->on_group_ctx, g->count);
        }
    } else if (g != NULL) {
        fail_all(g->subs, rc);
        free(g);
    } else {
        /* Not even the group: answer everything queued, so nothing waits on
         * memory that may not come back. */
        sub_t *all = s->head;
        s->head = s->tail = NULL;
        s->pending = 0;
        fail_all(all, rc);
    }
    free(jobs);
    return rc;
}

static void flush(tf_submitter_t *s) {
    while (s->pending > 0 && s->in_flight < s->max_in_flight) {
        if (flush_one(s) != 0) {
            return;
        }
    }
}

int tf_submitter_create(tf_uc_t *uc, int max_in_flight, void (*on_group)(void *ctx, size_t jobs),
                        void *ctx, tf_submitter_t **out) {
    tf_submitter_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return TF_ENOMEM;
    }
    s->uc = uc;
    s->max_in_flight = max_in_flight > 0 ? max_in_flight : 1;
    s->on_group = on_group;
    s->on_group_ctx = ctx;
    *out = s;
    return 0;
}

int tf_submitter_submit(tf_submitter_t *s, const tf_new_job_t *job, tf_uc_submit_cb cb, void *arg) {
    if (s->closing) {
        return TF_ESHUTDOWN;
    }
    sub_t *sub = calloc(1, sizeof(*sub));
    if (sub == NULL) {
        return TF_ENOMEM;
    }
    sub->job = job;
    sub->cb = cb;
    sub->arg = arg;
    sub->owner = s;
    /* Fold into a queued submission of the same key: it is answered by
     * reading the job that one writes. */
    for (sub_t *q = s->head; job->idempotency_key != NULL && q != NULL; q = q->next) {
        if (same_key(q->job, job)) {
            sub->next = q->dups;
            q->dups = sub;
            return 0;
        }
    }
    if (s->tail == NULL) {
        s->head = sub;
    } else {
        s->tail->next = sub;
    }
    s->tail = sub;
    s->pending++;
    flush(s);
    return 0;
}

void tf_submitter_close(tf_submitter_t *s, void (*closed_cb)(void *arg), void *arg) {
    s->closing = 1;
    s->closed_cb = closed_cb;
    s->closed_arg = arg;
    sub_t *all = s->head;
    s->head = s->tail = NULL;
    s->pending = 0;
    fail_all(all, TF_ESHUTDOWN);
    maybe_closed(s);
}

/* ---- batches ---- */

int tf_uc_batch_repeats_key(const tf_new_job_t *const *jobs, size_t i) {
    for (size_t k = 0; jobs[i]->idempotency_key != NULL && k < i; k++) {
        if (same_key(jobs[k], jobs[i])) {
            return !same_request(jobs[k], jobs[i]);
        }
    }
    return 0;
}

typedef struct {
    tf_uc_t *uc;
    tf_uc_batch_cb cb;
    void *arg;
    size_t n;       /* jobs asked for */
    size_t nunique; /* jobs written */
    size_t *alias;  /* alias[i]: the written job input i is (its index in `unique`) */
    const tf_new_job_t **unique;
    tf_job_state_t *states;          /* per input */
    char **resolved;                 /* per written job: the executor its type gave it */
    const char **executors;          /* per input: resolved[alias[i]] */
    const tf_job_t **existing;       /* per input */
    char (*existing_ids)[TF_ID_LEN]; /* per written job: the replayed job's id, "" */
} batch_t;

static void batch_free(batch_t *b) {
    free(b->alias);
    free(b->unique);
    free(b->states);
    for (size_t u = 0; b->resolved != NULL && u < b->nunique; u++) {
        free(b->resolved[u]);
    }
    free(b->resolved);
    free(b->executors);
    free(b->existing);
    free(b->existing_ids);
    free(b);
}

static void batch_answer(batch_t *b, int status, const tf_uc_batch_t *r) {
    b->cb(b->arg, status, status == 0 ? r : NULL);
    batch_free(b);
}

/* The earlier jobs the replays point at were read: answer every input. */
static void replays_read(void *arg, int status, const tf_job_t *jobs, size_t n) {
    batch_t *b = arg;
    for (size_t i = 0; status == 0 && i < b->n; i++) {
        const char *want = b->existing_ids[b->alias[i]];
        if (want[0] == '\0') {
            continue;
        }
        for (size_t k = 0; k < n && b->existing[i] == NULL; k++) {
            if (strcmp(jobs[k].id, want) == 0) {
                b->existing[i] = &jobs[k];
            }
        }
        if (b->existing[i] == NULL) {
            status = TF_EIO; /* a replayed job vanished between two reads */
        }
    }
    tf_uc_batch_t r = {.failed = -1,
                           .n = b->n,
                           .states = b->states,
                           .existing = b->existing,
                           .executors = b->executors};
    batch_answer(b, status, &r);
}

static tf_uc_submit_outcome_t batch_problem(tf_submit_outcome_t outcome) {
    return outcome == TF_SUBMIT_MISSING  ? TF_UC_SUBMIT_MISSING_PARENT
           : outcome == TF_SUBMIT_EXISTS ? TF_UC_SUBMIT_KEY_CONFLICT
                                         : TF_UC_SUBMIT_KEY_BUSY;
}

static void batch_written(void *arg, int status, const tf_submit_result_t *results, size_t n,
                          int failed) {
    batch_t *b = arg;
    if (status != 0 || n != b->nunique) {
        batch_answer(b, status != 0 ? status : TF_EIO, NULL);
        return;
    }
    if (failed >= 0) {
        size_t index = 0; /* the first input that is the refused job */
        while (index < b->n && b->alias[index] != (size_t)failed) {
            index++;
        }
        tf_uc_batch_t r = {.failed = (long)index,
                           .problem = batch_problem(results[failed].outcome),
                           .missing = results[failed].missing,
                           .n = b->n};
        batch_answer(b, 0, &r);
        return;
    }
    size_t replays = 0;
    for (size_t u = 0; u < n; u++) {
        if (results[u].outcome == TF_SUBMIT_EXISTS && results[u].existing_id != NULL) {
            snprintf(b->existing_ids[u], TF_ID_LEN, "%s", results[u].existing_id);
            replays++;
        }
    }
    for (size_t u = 0; u < n; u++) {
        if (results[u].executor != NULL && (b->resolved[u] = strdup(results[u].executor)) == NULL) {
            batch_answer(b, TF_ENOMEM, NULL);
            return;
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        b->states[i] = results[b->alias[i]].state;
        b->executors[i] = b->resolved[b->alias[i]];
    }
    if (replays == 0) {
        tf_uc_batch_t r = {.failed = -1,
                           .n = b->n,
                           .states = b->states,
                           .existing = b->existing,
                           .executors = b->executors};
        batch_answer(b, 0, &r);
        return;
    }
    const char **ids = calloc(replays, sizeof(*ids));
    int rc = ids != NULL ? 0 : TF_ENOMEM;
    for (size_t u = 0, k = 0; rc == 0 && u < n; u++) {
        if (b->existing_ids[u][0] != '\0') {
            ids[k++] = b->existing_ids[u];
        }
    }
    if (rc == 0) {
        rc = b->uc->store->get_many(b->uc->store->ctx, b->unique[0]->tenant_id, ids, replays,
                                    replays_read, b);
    }
    free(ids);
    if (rc != 0) {
        batch_answer(b, rc, NULL);
    }
}

int tf_uc_submit_batch(tf_uc_t *uc, const tf_new_job_t *const *jobs, size_t n, tf_uc_batch_cb cb,
                       void *arg) {
    if (n < 1 || n > TF_SUBMIT_BATCH_MAX) {
        return TF_EINVAL;
    }
    batch_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return TF_ENOMEM;
    }
    *b = (batch_t){.uc = uc, .cb = cb, .arg = arg, .n = n};
    b->alias = calloc(n, sizeof(*b->alias));
    b->unique = calloc(n, sizeof(*b->unique));
    b->states = calloc(n, sizeof(*b->states));
    b->resolved = calloc(n, sizeof(*b->resolved));
    b->executors = calloc(n, sizeof(*b->executors));
    b->existing = calloc(n, sizeof(*b->existing));
    b->existing_ids = calloc(n, TF_ID_LEN);
    if (!b->alias || !b->unique || !b->states || !b->resolved || !b->executors || !b->existing ||
        !b->existing_ids) {
        batch_free(b);
        return TF_ENOMEM;
    }
    /* Jobs repeating a key with the same request are one job. */
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < i && !(same_key(jobs[k], jobs[i]) && same_request(jobs[k], jobs[i]))) {
            k++;
        }
        if (k < i) {
            b->alias[i] = b->alias[k];
        } else {
            b->alias[i] = b->nunique;
            b->unique[b->nunique++] = jobs[i];
        }
    }
    int rc = uc->store->submit(uc->store->ctx, b->unique, b->nunique, 1, batch_written, b);
    if (rc != 0) {
        batch_free(b);
    }
    return rc;
}
