/*
 * cron.c - cron rules firing (see cron.h).
 */
#include "adapters/usecases/cron.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/usecases/events.h"
#include "engine/cronplan.h"
#include "engine/error.h"
#include "engine/jsonstr.h"
#include "engine/timefmt.h"

#define KEY_LEN (TF_TIME_STR_LEN + 6) /* "cron:<time>" */

typedef struct tick tick_t;

/* One taken rule and what becomes of its due fire times. */
typedef struct {
    tick_t *tick;
    tf_rule_t rule; /* strings owned (below) */
    char id[TF_ID_LEN], tenant_id[TF_ID_LEN];
    char *name, *source, *state, *cron_expr, *timezone, *tenant_json;
    tf_cron_t cron;
    const tf_tz_t *tz;
    tf_cron_zone_t zone;
    int broken;                 /* the schedule or zone cannot be read: never fires again */
    int platform;               /* a platform rule: fired once per tenant */
    char *ev, key[KEY_LEN];     /* the firing's event and dedup key */
    char (*tenants)[TF_ID_LEN]; /* platform: the page of tenants being fired */
    size_t ntenants, itenant;
    char after[TF_ID_LEN]; /* platform: the last tenant of the page */
    int ready;             /* dealt with: `done` is to be written */
    tf_rule_cron_done_t done;
    char (*ids)[TF_ID_LEN], (*keys)[KEY_LEN]; /* of `done`'s skipped runs */
    const char **ptrs;
    int64_t *times;
    tf_cron_plan_t due, overlap; /* 8 KiB each: items are heap-allocated */
} item_t;

struct tick {
    tf_uc_t *uc;
    tf_uc_cron_cb cb;
    void *arg;
    char node[256];
    item_t **items;
    size_t n, next, active, parallel;
    int starting; /* in start_more(): items that end at once do not recurse */
    int status;
    tf_uc_cron_result_t result;
};

static void item_free(item_t *it) {
    if (it == NULL) {
        return;
    }
    free(it->name), free(it->source), free(it->state), free(it->cron_expr), free(it->timezone);
    free(it->ev), free(it->tenants), free(it->tenant_json);
    free(it->ids), free(it->keys), free(it->ptrs), free(it->times);
    free(it);
}

static void tick_free(tick_t *t) {
    for (size_t i = 0; i < t->n; i++) {
        item_free(t->items[i]);
    }
    free(t->items);
    free(t);
}

static void start_more(tick_t *t);

/* An item is done (status: how its last step went). */
static void item_done(item_t *it, int status) {
    tick_t *t = it->tick;
    if (status != 0) {
        t->result.failed++;
        if (t->status == 0) {
            t->status = status;
        }
    }
    t->active--;
    start_more(t);
}

static const char *skip_message(const item_t *it, tf_cron_skip_t why) {
    switch (why) {
    case TF_CRON_SKIP_DISABLED:
        return "the rule was disabled at this fire time";
    case TF_CRON_SKIP_OVERLAP:
        return "the rule's previous firing was still running at this fire time";
    case TF_CRON_SKIP_CATCH_UP:
        break;
    }
    return it->rule.catch_up != NULL && strcmp(it->rule.catch_up, "none") == 0
               ? "missed while no node could fire the rule; catch_up \"none\" fires no missed time"
               : "missed while no node could fire the rule; catch_up \"latest\" fires only the "
                 "most recent missed time";
}

static void key_of(int64_t ms, char out[KEY_LEN]) {
    char at[TF_TIME_STR_LEN + 1] = "";
    tf_time_format(ms, at);
    snprintf(out, KEY_LEN, "cron:%s", at);
}

/* What became of the item's due times (both plans' skipped times and the
 * next fire time), kept for the tick's one release statement. */
static void finish(item_t *it) {
    tick_t *t = it->tick;
    size_t n = it->due.nskipped + it->overlap.nskipped;
    int64_t next = it->due.fire != TF_CRON_NEVER ? it->overlap.next : it->due.next;
    it->ids = n > 0 ? calloc(n, sizeof(*it->ids)) : NULL;
    it->keys = n > 0 ? calloc(n, sizeof(*it->keys)) : NULL;
    it->ptrs = n > 0 ? calloc(4 * n, sizeof(*it->ptrs)) : NULL;
    it->times = n > 0 ? calloc(n, sizeof(*it->times)) : NULL;
    if (n > 0 && (!it->ids || !it->keys || !it->ptrs || !it->times)) {
        item_done(it, TF_ENOMEM);
        return;
    }
    const char **id_p = it->ptrs, **key_p = it->ptrs + n, **reasons = it->ptrs + 2 * n,
               **messages = it->ptrs + 3 * n;
    for (size_t i = 0; i < n; i++) {
        const tf_cron_plan_t *p = i < it->due.nskipped ? &it->due : &it->overlap;
        size_t k = i < it->due.nskipped ? i : i - it->due.nskipped;
        it->times[i] = p->skipped[k] * 1000;
        tf_uc_new_id_at(t->uc, it->times[i], it->ids[i]); /* listed among runs by its time */
        key_of(it->times[i], it->keys[i]);
        id_p[i] = it->ids[i];
        key_p[i] = it->keys[i];
        reasons[i] = tf_cron_skip_name(p->why);
        messages[i] = skip_message(it, p->why);
    }
    it->done = (tf_rule_cron_done_t){.rule_id = it->id,
                                     .tenant_id = it->platform ? NULL : it->tenant_id,
                                     .version = it->rule.version,
                                     .due_ms = it->rule.next_fire_ms,
                                     .next_ms = next != TF_CRON_NEVER ? next * 1000 : TF_TIME_NONE,
                                     .nskipped = n,
                                     .run_ids = id_p,
                                     .dedup_keys = key_p,
                                     .reasons = reasons,
                                     .messages = messages,
                                     .skipped_ms = it->times};
    it->ready = 1;
    item_done(it, 0);
}

/* The fire time was fired (for every tenant, a platform rule's): skip the
 * times that passed meanwhile, then release the rule. */
static void fire_done(item_t *it) {
    it->tick->result.fired++;
    int64_t end = tf_uc_now(it->tick->uc);
    tf_cron_plan_overlap(&it->cron, it->tz != NULL ? &it->zone : NULL, it->due.fire,
                         end / 1000 - (end % 1000 < 0), &it->overlap);
    finish(it);
}

/* ev = {"kind": "cron", "at": ..., "cron": ..., "timezone": ..., "late_ms": ...}. */
static char *cron_event(const item_t *it, int64_t fire_ms, int64_t now_ms) {
    char at[TF_TIME_STR_LEN + 1] = "", late[32];
    tf_time_format(fire_ms, at);
    snprintf(late, sizeof(late), "%lld", (long long)(now_ms - fire_ms));
    size_t len = 0, cap = 0;
    char *out = NULL;
    for (int pass = 0; pass < 2; pass++) {
        len = 0;
        tf_json_raw(out, cap, &len, "{\"kind\":\"cron\",\"at\":");
        tf_json_quote(out, cap, &len, at);
        tf_json_raw(out, cap, &len, ",\"cron\":");
        tf_json_quote(out, cap, &len, it->cron_expr);
        tf_json_raw(out, cap, &len, ",\"timezone\":");
        tf_json_quote(out, cap, &len, it->timezone != NULL ? it->timezone : "UTC");
        tf_json_raw(out, cap, &len, ",\"late_ms\":");
        tf_json_raw(out, cap, &len, late);
        tf_json_raw(out, cap, &len, "}");
        if (pass == 0 && (out = malloc(cap = len + 1)) == NULL) {
            return NULL;
        }
    }
    return out;
}

static void fired(void *arg, int status, const tf_uc_fired_t *runs, size_t n) {
    item_t *it = arg;
    (void)runs, (void)n;
    if (status != 0) { /* the lease runs out; the rule is taken again then */
        item_done(it, status);
        return;
    }
    fire_done(it);
}

/* ---- platform rules: once per tenant, a page of tenants at a time ---- */

enum { TENANT_PAGE = 100 };
#define TF_NIL_ID "00000000-0000-0000-0000-000000000000" /* before every tenant id */

static void fire_tenant(item_t *it);

static void tenant_fired(void *arg, int status, const tf_uc_fired_t *runs, size_t n) {
    item_t *it = arg;
    (void)runs, (void)n;
    if (status != 0) { /* the lease runs out; the tenants fired are deduplicated then */
        item_done(it, status);
        return;
    }
    it->itenant++;
    fire_tenant(it);
}

static void tenant_state_read(void *arg, int status, const char *state_json, int64_t version) {
    item_t *it = arg;
    free(it->state);
    it->state = state_json != NULL ? strdup(state_json) : NULL;
    if (status == 0 && state_json != NULL && it->state == NULL) {
        status = TF_ENOMEM;
    }
    if (status != 0) {
        item_done(it, status);
        return;
    }
    it->rule.state_json = it->state;
    it->rule.state_version = version;
    tf_uc_fire_t fire = {.tenant_id = it->tenants[it->itenant],
                         .rules = &it->rule,
                         .n = 1,
                         .trigger = "cron",
                         .event_json = it->ev,
                         .dedup_key = it->key};
    int rc = tf_uc_rules_fire(it->tick->uc, &fire, tenant_fired, it);
    if (rc != 0) {
        item_done(it, rc);
    }
}

static void tenants_read(void *arg, int status, const tf_tenant_t *tenants, size_t n) {
    item_t *it = arg;
    free(it->tenants);
    it->tenants = status == 0 && n > 0 ? calloc(n, sizeof(*it->tenants)) : NULL;
    if (status == 0 && n > 0 && it->tenants == NULL) {
        status = TF_ENOMEM;
    }
    if (status != 0) {
        item_done(it, status);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(it->tenants[i], TF_ID_LEN, "%s", tenants[i].id);
    }
    it->ntenants = n;
    it->itenant = 0;
    if (n == 0) { /* every tenant is fired */
        fire_done(it);
        return;
    }
    snprintf(it->after, sizeof(it->after), "%s", it->tenants[n - 1]);
    fire_tenant(it);
}

static void fire_tenant(item_t *it) {
    const tf_uc_t *uc = it->tick->uc;
    int rc = it->itenant < it->ntenants
                 ? uc->rules->state(uc->rules->ctx, it->tenants[it->itenant], it->id,
                                    tenant_state_read, it)
                 : uc->tenants->tenant_list(uc->tenants->ctx,
                                            it->after[0] != '\0' ? it->after : TF_NIL_ID,
                                            TENANT_PAGE, tenants_read, it);
    if (rc != 0) {
        item_done(it, rc);
    }
}

static void start_item(item_t *it) {
    tick_t *t = it->tick;
    int64_t now = tf_uc_now(t->uc);
    int64_t due_s = it->rule.next_fire_ms / 1000 - (it->rule.next_fire_ms % 1000 < 0);
    tf_catch_up_t catch_up = it->rule.catch_up != NULL && strcmp(it->rule.catch_up, "none") == 0
                                 ? TF_CATCH_UP_NONE
                                 : TF_CATCH_UP_LATEST;
    it->overlap.nskipped = 0;
    if (it->broken) {
        it->due = (tf_cron_plan_t){.fire = TF_CRON_NEVER, .next = TF_CRON_NEVER};
        finish(it);
        return;
    }
    tf_cron_plan_due(&it->cron, it->tz != NULL ? &it->zone : NULL, due_s,
                     now / 1000 - (now % 1000 < 0), it->rule.enabled, catch_up,
                     TF_CRON_ON_TIME_MS / 1000, &it->due);
    if (it->due.fire == TF_CRON_NEVER) {
        finish(it);
        return;
    }
    key_of(it->due.fire * 1000, it->key);
    it->ev = cron_event(it, it->due.fire * 1000, now);
    if (it->ev == NULL) {
        item_done(it, TF_ENOMEM);
        return;
    }
    if (it->platform) {
        it->after[0] = '\0';
        it->ntenants = it->itenant = 0;
        fire_tenant(it); /* from the first page of tenants */
        return;
    }
    tf_uc_fire_t fire = {.tenant_id = it->tenant_id,
                         .rules = &it->rule,
                         .n = 1,
                         .trigger = "cron",
                         .event_json = it->ev,
                         .dedup_key = it->key,
                         .tenant_json = it->tenant_json};
    int rc = tf_uc_rules_fire(t->uc, &fire, fired, it);
    if (rc != 0) {
        item_done(it, rc);
    }
}

static void all_released(void *arg, int status, size_t released) {
    tick_t *t = arg;
    (void)released; /* the others another node holds now: it records what it finds */
    if (status != 0 && t->status == 0) {
        t->status = status;
    }
    if (status != 0) { /* the leases run out; the rules are taken again then */
        t->result.skipped = 0;
    }
    t->cb(t->arg, t->status, &t->result);
    tick_free(t);
}

/* Every item dealt with: one transaction records the skipped runs and
 * moves and releases the rules. */
static void release_all(tick_t *t) {
    tf_rule_cron_done_t *done = t->n > 0 ? calloc(t->n, sizeof(*done)) : NULL;
    size_t m = 0;
    for (size_t i = 0; done != NULL && i < t->n; i++) {
        if (t->items[i]->ready) {
            done[m++] = t->items[i]->done;
            t->result.skipped += t->items[i]->done.nskipped;
        }
    }
    int rc = t->n > 0 && done == NULL ? TF_ENOMEM : 0;
    if (rc == 0 && m > 0) {
        rc = t->uc->rules->cron_done(t->uc->rules->ctx, t->node, done, m, all_released, t);
        free(done);
        if (rc == 0) {
            return;
        }
    }
    free(done);
    all_released(t, rc, 0);
}

static void start_more(tick_t *t) {
    if (t->starting) {
        return; /* an item ended at once, inside the loop below: it goes on */
    }
    t->starting = 1;
    while (t->next < t->n && t->active < t->parallel) {
        t->active++;
        start_item(t->items[t->next++]);
    }
    t->starting = 0;
    if (t->active == 0 && t->next == t->n) {
        release_all(t);
    }
}

static char *dup_or_null(const char *s) {
    return s != NULL ? strdup(s) : NULL;
}

/* A copy of a taken rule, its schedule parsed and its zone found. */
static item_t *take(tick_t *t, const tf_rule_t *r, int *rc) {
    item_t *it = calloc(1, sizeof(*it));
    if (it == NULL) {
        *rc = TF_ENOMEM;
        return NULL;
    }
    it->tick = t;
    it->rule = *r;
    snprintf(it->id, sizeof(it->id), "%s", r->id);
    it->platform = r->tenant_id == NULL;
    snprintf(it->tenant_id, sizeof(it->tenant_id), "%s", it->platform ? "" : r->tenant_id);
    it->name = strdup(r->name);
    it->source = malloc(r->source_len + 1);
    it->state = dup_or_null(r->state_json);
    it->cron_expr = dup_or_null(r->cron);
    it->timezone = dup_or_null(r->timezone);
    it->tenant_json = dup_or_null(r->tenant_json);
    if (it->name == NULL || it->source == NULL || (r->state_json && !it->state) ||
        (r->cron && !it->cron_expr) || (r->timezone && !it->timezone) ||
        (r->tenant_json && !it->tenant_json)) {
        *rc = TF_ENOMEM;
        item_free(it);
        return NULL;
    }
    memcpy(it->source, r->source, r->source_len);
    it->source[r->source_len] = '\0';
    it->rule.id = it->id;
    it->rule.tenant_id = it->tenant_id;
    it->rule.name = it->name;
    it->rule.source = it->source;
    it->rule.state_json = it->state;
    it->rule.cron = it->cron_expr;
    it->rule.timezone = it->timezone;
    it->rule.catch_up = NULL; /* read below, not kept */
    it->rule.trigger_json = it->rule.hook_key = it->rule.hook_secret = NULL;
    it->rule.sha256 = it->rule.created_by = it->rule.last_outcome = NULL;
    it->rule.tenant_json = it->tenant_json;
    if (r->catch_up != NULL && strcmp(r->catch_up, "none") == 0) {
        it->rule.catch_up = "none";
    }
    /* A schedule that no longer parses, or a zone gone from tzdata, cannot
     * be planned: the rule is moved to "never" (its trigger shows why). */
    if (it->cron_expr == NULL || tf_cron_parse(it->cron_expr, &it->cron, NULL, 0) != 0) {
        *rc = TF_EINVAL;
    } else if (it->timezone != NULL && strcmp(it->timezone, "UTC") != 0 &&
               (t->uc->zones == NULL ||
                t->uc->zones->get(t->uc->zones->ctx, it->timezone, &it->tz) != 0)) {
        *rc = TF_EINVAL;
    } else {
        *rc = 0;
    }
    if (it->tz != NULL) {
        it->zone = tf_tz_cron_zone(it->tz);
    }
    return it;
}

static void due_read(void *arg, int status, const tf_rule_t *rules, size_t n) {
    tick_t *t = arg;
    t->items = status == 0 && n > 0 ? calloc(n, sizeof(*t->items)) : NULL;
    if (status == 0 && n > 0 && t->items == NULL) {
        status = TF_ENOMEM;
    }
    for (size_t i = 0; status == 0 && i < n; i++) {
        int rc = 0;
        item_t *it = take(t, &rules[i], &rc);
        if (it == NULL) {
            status = rc;
            break;
        }
        it->broken = rc != 0; /* fires nothing, skips nothing, never again */
        t->items[t->n++] = it;
    }
    t->result.taken = t->n;
    if (status != 0) {
        t->cb(t->arg, status, &t->result);
        tick_free(t);
        return;
    }
    start_more(t);
}

int tf_uc_cron_tick(tf_uc_t *uc, const char *node, int limit, int parallel, tf_uc_cron_cb cb,
                    void *arg) {
    if (uc->rules == NULL || uc->evaluator == NULL || uc->tenants == NULL) {
        return TF_EUNAVAIL;
    }
    tick_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return TF_ENOMEM;
    }
    t->uc = uc;
    t->cb = cb;
    t->arg = arg;
    t->parallel = parallel > 0 ? (size_t)parallel : 1;
    snprintf(t->node, sizeof(t->node), "%s", node);
    int rc = uc->rules->cron_due(uc->rules->ctx, t->node, tf_uc_now(uc), TF_CRON_LEASE_MS,
                                 limit > 0 ? limit : 1, due_read, t);
    if (rc != 0) {
        free(t);
    }
    return rc;
}

int64_t tf_uc_cron_next(const tf_uc_t *uc, const char *cron, const char *timezone,
                        int64_t after_ms) {
    tf_cron_t c;
    const tf_tz_t *tz = NULL;
    if (cron == NULL || tf_cron_parse(cron, &c, NULL, 0) != 0) {
        return TF_TIME_NONE;
    }
    if (timezone != NULL && strcmp(timezone, "UTC") != 0 &&
        (uc->zones == NULL || uc->zones->get(uc->zones->ctx, timezone, &tz) != 0)) {
        return TF_TIME_NONE;
    }
    tf_cron_zone_t zone = tz != NULL ? tf_tz_cron_zone(tz) : (tf_cron_zone_t){0};
    int64_t next = 0, after_s = after_ms / 1000 - (after_ms % 1000 < 0);
    return tf_cron_next(&c, tz != NULL ? &zone : NULL, after_s, &next) == 0 ? next * 1000
                                                                            : TF_TIME_NONE;
}
