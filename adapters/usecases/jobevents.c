/*
 * jobevents.c - job events firing rules (see jobevents.h).
 */
#include "adapters/usecases/jobevents.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/usecases/events.h"
#include "engine/error.h"

typedef struct page page_t;

typedef struct {
    page_t *page;
    char *tenant_id, *name, *type, *queue, *correlation_id, *ev;
    char key[48]; /* "job-event:<id>" */
} item_t;

struct page {
    tf_uc_t *uc;
    tf_uc_job_events_cb cb;
    void *arg;
    char node[256], position[64];
    item_t *items;
    size_t n, next, active, parallel;
    int status;
    tf_uc_job_events_result_t result;
};

static void page_free(page_t *p) {
    for (size_t i = 0; i < p->n; i++) {
        item_t *it = &p->items[i];
        free(it->tenant_id), free(it->name), free(it->type), free(it->queue);
        free(it->correlation_id), free(it->ev);
    }
    free(p->items);
    free(p);
}

static void finish(page_t *p, int status) {
    p->cb(p->arg, status, &p->result);
    page_free(p);
}

static void moved(void *arg, int status) {
    finish(arg, status == TF_ENOTFOUND ? 0 : status); /* lost the lease: the next holder goes on */
}

static void start_more(page_t *p);

static void item_done(item_t *it, int status) {
    page_t *p = it->page;
    if (status != 0 && p->status == 0) {
        p->status = status;
    }
    p->active--;
    start_more(p);
}

static void fired(void *arg, int status, const tf_uc_fired_t *runs, size_t n) {
    item_t *it = arg;
    (void)runs;
    it->page->result.runs += status == 0 ? n : 0;
    item_done(it, status);
}

static void rules_read(void *arg, int status, const tf_rule_t *rules, size_t n) {
    item_t *it = arg;
    if (status != 0 || n == 0) { /* n 0: the rule went away since the page was read */
        item_done(it, status);
        return;
    }
    tf_uc_fire_t fire = {.tenant_id = it->tenant_id,
                         .rules = rules,
                         .n = n,
                         .trigger = it->name,
                         .event_json = it->ev,
                         .dedup_key = it->key,
                         .correlation_id = it->correlation_id};
    int rc = tf_uc_rules_fire(it->page->uc, &fire, fired, it);
    if (rc != 0) {
        item_done(it, rc);
    }
}

static void start_more(page_t *p) {
    while (p->next < p->n && p->active < p->parallel && p->status == 0) {
        item_t *it = &p->items[p->next++];
        p->active++;
        const tf_rule_store_t *s = p->uc->rules;
        int rc = s->job_rules(s->ctx, it->tenant_id, it->name, it->type, it->queue, rules_read, it);
        if (rc != 0) {
            p->active--;
            p->status = rc;
        }
    }
    if (p->active > 0 || (p->next < p->n && p->status == 0)) {
        return;
    }
    if (p->status != 0) { /* the cursor stays: the page fires again, its runs deduplicated */
        finish(p, p->status);
        return;
    }
    int rc = p->uc->rules->job_events_done(p->uc->rules->ctx, p->node, p->position, moved, p);
    if (rc != 0) {
        finish(p, rc);
    }
}

static char *dup_or_null(const char *s) {
    return s != NULL ? strdup(s) : NULL;
}

static void events_read(void *arg, int status, int held, const tf_rule_job_event_t *events,
                        size_t n, const char *position) {
    page_t *p = arg;
    p->result.held = held;
    p->items = status == 0 && n > 0 ? calloc(n, sizeof(*p->items)) : NULL;
    if (status == 0 && n > 0 && p->items == NULL) {
        status = TF_ENOMEM;
    }
    for (size_t i = 0; status == 0 && i < n; i++) {
        item_t *it = &p->items[p->n++];
        const tf_rule_job_event_t *e = &events[i];
        it->page = p;
        it->tenant_id = strdup(e->tenant_id);
        it->name = strdup(e->name);
        it->type = strdup(e->job_type);
        it->queue = strdup(e->job_queue);
        it->correlation_id = dup_or_null(e->correlation_id);
        it->ev = strdup(e->event_json);
        snprintf(it->key, sizeof(it->key), "job-event:%lld", (long long)e->id);
        if (!it->tenant_id || !it->name || !it->type || !it->queue || !it->ev ||
            (e->correlation_id && !it->correlation_id)) {
            status = TF_ENOMEM;
        }
    }
    p->result.events = n;
    if (status != 0 || !held) {
        finish(p, status);
        return;
    }
    snprintf(p->position, sizeof(p->position), "%s", position);
    start_more(p);
}

int tf_uc_job_events_tick(tf_uc_t *uc, const char *node, int limit, int parallel,
                          tf_uc_job_events_cb cb, void *arg) {
    if (uc->rules == NULL || uc->evaluator == NULL || uc->tenants == NULL) {
        return TF_EUNAVAIL;
    }
    page_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return TF_ENOMEM;
    }
    p->uc = uc;
    p->cb = cb;
    p->arg = arg;
    p->parallel = parallel > 0 ? (size_t)parallel : 1;
    snprintf(p->node, sizeof(p->node), "%s", node);
    int rc = uc->rules->job_events(uc->rules->ctx, p->node, tf_uc_now(uc), TF_JOB_EVENTS_LEASE_MS,
                                   limit > 0 ? limit : 1, events_read, p);
    if (rc != 0) {
        free(p);
    }
    return rc;
}
