/*
 * read.c - the read use cases of the jobs API (see read.h).
 */
#include "adapters/usecases/read.h"

#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

#define UUID_MS_MAX ((INT64_C(1) << 48) - 1)

int tf_uc_get_job(tf_uc_t *uc, const char *tenant_id, const char *job_id, tf_store_job_cb cb,
                  void *arg) {
    return uc->store->get(uc->store->ctx, tenant_id, job_id, cb, arg);
}

int tf_uc_get_attempts(tf_uc_t *uc, const char *tenant_id, const char *job_id,
                       tf_store_attempts_cb cb, void *arg) {
    return uc->store->attempts(uc->store->ctx, tenant_id, job_id, cb, arg);
}

int tf_uc_get_transitions(tf_uc_t *uc, const char *tenant_id, const char *job_id,
                          tf_store_transitions_cb cb, void *arg) {
    return uc->store->transitions(uc->store->ctx, tenant_id, job_id, cb, arg);
}

/* ---- id ranges ---- */

typedef struct {
    tf_uuid_t lower, upper;
    int empty;
} range_t;

/* The id with Unix milliseconds `ms` and every other bit set to `fill`. */
static void uuid_at(int64_t ms, uint8_t fill, tf_uuid_t *out) {
    memset(out->bytes, fill, sizeof(out->bytes));
    for (int i = 0; i < 6; i++) {
        out->bytes[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
    }
}

static void range_above(range_t *r, const tf_uuid_t *id) {
    if (memcmp(id->bytes, r->lower.bytes, 16) > 0) {
        r->lower = *id;
    }
}

static void range_below(range_t *r, const tf_uuid_t *id) {
    if (memcmp(id->bytes, r->upper.bytes, 16) < 0) {
        r->upper = *id;
    }
}

/* Ids strictly after `last` (a cursor's last id). */
static void range_after_id(range_t *r, const tf_uuid_t *last) {
    tf_uuid_t next = *last;
    int i = 15;
    while (i >= 0 && ++next.bytes[i] == 0) {
        i--;
    }
    if (i < 0) {
        r->empty = 1; /* `last` was the greatest id */
    } else {
        range_above(r, &next);
    }
}

/* Jobs created strictly after `ms`: ids from the first id of ms + 1. */
static void range_created_after(range_t *r, int64_t ms) {
    if (ms >= UUID_MS_MAX) {
        r->empty = 1;
    } else if (ms >= 0) {
        tf_uuid_t id;
        uuid_at(ms + 1, 0x00, &id);
        range_above(r, &id);
    }
}

/* Jobs created strictly before `ms`: ids up to the last id of ms - 1. */
static void range_created_before(range_t *r, int64_t ms) {
    if (ms <= 0) {
        r->empty = 1;
    } else if (ms <= UUID_MS_MAX) {
        tf_uuid_t id;
        uuid_at(ms - 1, 0xff, &id);
        range_below(r, &id);
    }
}

/* ---- a page ---- */

typedef struct {
    tf_uc_page_cb cb;
    void *arg;
    int limit;
} page_t;

static void page_read(void *arg, int status, const tf_job_t *jobs, size_t n) {
    page_t *p = arg;
    size_t shown = n > (size_t)p->limit ? (size_t)p->limit : n;
    p->cb(p->arg, status, status == 0 ? jobs : NULL, status == 0 ? shown : 0,
          status == 0 && n > shown);
    free(p);
}

int tf_uc_list_jobs(tf_uc_t *uc, const tf_uc_list_t *list, tf_uc_page_cb cb, void *arg) {
    if (list->limit < 1 || list->limit > 1000) {
        return TF_EINVAL;
    }
    range_t r = {.empty = 0};
    memset(r.lower.bytes, 0x00, 16);
    memset(r.upper.bytes, 0xff, 16);
    if (list->has_after) {
        range_created_after(&r, list->after_ms);
    }
    if (list->has_before) {
        range_created_before(&r, list->before_ms);
    }
    if (list->after_id != NULL) {
        range_after_id(&r, list->after_id);
    }
    if (r.empty || memcmp(r.lower.bytes, r.upper.bytes, 16) > 0) {
        return TF_ERANGE;
    }
    page_t *p = malloc(sizeof(*p));
    if (p == NULL) {
        return TF_ENOMEM;
    }
    *p = (page_t){.cb = cb, .arg = arg, .limit = list->limit};
    tf_job_query_t q = {
        .tenant_id = list->tenant_id,
        .dead_letter = list->dead_letter,
        .lower = r.lower,
        .upper = r.upper,
        .states = list->states,
        .queue = list->queue,
        .type = list->type,
        .correlation_id = list->correlation_id,
        .rule_id = list->rule_id,
        .rows = list->limit + 1, /* one more says whether a page follows */
    };
    int rc = uc->store->list(uc->store->ctx, &q, page_read, p);
    if (rc != 0) {
        free(p);
    }
    return rc;
}
