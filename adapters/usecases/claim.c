/*
 * claim.c - the claim use case (see claim.h).
 */
#include "adapters/usecases/claim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/claim_plan.h"
#include "engine/error.h"

typedef struct {
    tf_uc_t *uc;
    tf_uc_claim_t req;
    char queue[160], worker[160];
    tf_store_claimed_cb cb;
    void *arg;
} claim_t;

static void claimed(void *arg, int status, const tf_claimed_job_t *jobs, size_t n) {
    claim_t *c = arg;
    c->cb(c->arg, status, jobs, n);
    free(c);
}

static int send_claim(claim_t *c, size_t ntenants, const char *const *tenants, const int *quotas,
                      const double *vtimes, double vclock) {
    tf_claim_t claim = {
        .queue = c->queue,
        .builtin = c->req.builtin,
        .worker_id = c->worker,
        .lease_ms = c->req.lease_ms,
        .now_ms = tf_uc_now(c->uc),
        .ntenants = ntenants,
        .tenants = tenants,
        .quotas = quotas,
        .vtimes = vtimes,
        .vclock = vclock,
    };
    return c->uc->store->claim(c->uc->store->ctx, &claim, claimed, c);
}

/* Plans the claim among the candidates and sends it for the tenants the
 * plan serves.  The new virtual times are stored only when two or more
 * tenants have ready work: a tenant alone in the queue competes with nobody,
 * and storing its virtual time and V with every claim made every claim of
 * the queue wait for the previous one's commit (one row; bench/README.md).
 * Left behind, its virtual time and V stay where the last contest left
 * them, which is where a tenant arriving later starts from either way
 * (start tags are max(vtime, V): idle time is never banked). */
static int plan_and_send(claim_t *c, const tf_candidate_t *cands, size_t n, double vclock) {
    tf_plan_tenant_t *tenants = calloc(n, sizeof(*tenants));
    tf_plan_grant_t *grants = calloc(n, sizeof(*grants));
    const char **ids = calloc(n, sizeof(*ids));
    int *quotas = calloc(n, sizeof(*quotas));
    double *vtimes = calloc(n, sizeof(*vtimes));
    int rc = tenants && grants && ids && quotas && vtimes ? 0 : TF_ENOMEM;
    size_t ready = 0; /* tenants with ready work */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        ready += cands[i].backlog > 0;
        rc = tf_uuid_parse(cands[i].tenant_id, &tenants[i].tenant_id);
        tenants[i].weight = cands[i].weight;
        tenants[i].backlog = cands[i].backlog;
        /* Caps are applied by the store under its locks. */
        tenants[i].cap_headroom = TF_PLAN_UNLIMITED;
        tenants[i].rate_headroom = TF_PLAN_UNLIMITED;
        tenants[i].vtime = cands[i].vtime;
    }
    tf_plan_input_t in = {.budget = c->req.max_jobs, .vclock = vclock};
    tf_plan_result_t result;
    if (rc == 0) {
        rc = tf_claim_plan(&in, tenants, n, grants, &result);
    }
    size_t served = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (grants[i].quota > 0) {
            ids[served] = cands[i].tenant_id;
            quotas[served] = grants[i].quota;
            vtimes[served] = grants[i].vtime;
            served++;
        }
    }
    if (rc == 0) {
        rc = send_claim(c, served, ids, quotas, ready > 1 ? vtimes : NULL, result.vclock);
    }
    free(tenants), free(grants), free(ids), free(quotas), free(vtimes);
    return rc;
}

static void candidates_read(void *arg, int status, const tf_candidate_t *tenants, size_t n,
                            double vclock) {
    claim_t *c = arg;
    if (status == 0 && n == 0) {
        claimed(c, 0, NULL, 0); /* nothing ready */
        return;
    }
    if (status == 0) {
        status = plan_and_send(c, tenants, n, vclock);
    }
    if (status != 0) {
        claimed(c, status, NULL, 0);
    }
}

int tf_uc_claim(tf_uc_t *uc, const tf_uc_claim_t *req, tf_store_claimed_cb cb, void *arg) {
    if (req->queue == NULL || req->worker_id == NULL || req->max_jobs < 1 ||
        req->max_jobs > TF_CLAIM_MAX_JOBS || req->lease_ms < TF_LEASE_MIN_MS ||
        req->lease_ms > TF_LEASE_MAX_MS) {
        return TF_EINVAL;
    }
    claim_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return TF_ENOMEM;
    }
    c->uc = uc;
    c->req = *req;
    c->cb = cb;
    c->arg = arg;
    snprintf(c->queue, sizeof(c->queue), "%s", req->queue);
    snprintf(c->worker, sizeof(c->worker), "%s", req->worker_id);
    int rc;
    if (req->tenant_id != NULL) {
        /* One tenant claims its own jobs: no planning, one round trip. */
        const char *tenants[1] = {req->tenant_id};
        int quotas[1] = {req->max_jobs};
        rc = send_claim(c, 1, tenants, quotas, NULL, 0);
    } else {
        rc = uc->store->candidates(uc->store->ctx, c->queue, req->builtin, candidates_read, c);
    }
    if (rc != 0) {
        free(c);
    }
    return rc;
}
