/*
 * events.c - custom events firing the tenant's rules (see events.h).
 *
 * An event's rules fire side by side, up to FIRE_WINDOW at a time: each
 * is evaluated, then its run is recorded with its jobs and state (the
 * store commits the runs that arrive together in one transaction).  The
 * answer lists them in the order the rules were given.
 *
 * Firings of one rule run side by side until one finds the rule's state
 * changed under it (another firing committed first).  From then on, on this
 * loop, that rule's firings for that tenant wait in a line and go one at a
 * time, each reading the state the one before left, until the line is
 * empty: a burst of deliveries to a rule that keeps ctx.state evaluates each
 * about once instead of colliding again and again.
 */
#include "adapters/usecases/events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/usecases/rules.h"
#include "engine/error.h"
#include "engine/jsonstr.h"
#include "engine/names.h"
#include "engine/utf8.h"

enum {
    TF_RULE_STATE_TRIES = 50, /* evaluations of one firing whose state keeps changing */
    FIRE_WINDOW = 16          /* an event's rules being fired at once */
};

typedef struct post post_t;

/* A rule the event fires, copied out of the store's answer. */
typedef struct target {
    post_t *post;
    char id[TF_ID_LEN], name[TF_SCRIPT_NAME_MAX + 1];
    int version, has_condition;
    char *source, *state;
    int64_t state_version;
    int64_t started_ms;
    int tries;   /* evaluations: the state changed under the earlier ones */
    int in_line; /* its turn in its rule's line: the line waits for it */
    size_t source_len;
    struct target *wait_next; /* in its rule's line */
} target_t;

/* The firings of one rule for one tenant that take turns (see the top). */
typedef struct tf_uc_rule_line {
    struct tf_uc_rule_line *next;
    char tenant_id[TF_ID_LEN], rule_id[TF_ID_LEN];
    int busy;    /* a firing has its turn */
    int pumping; /* line_pump() is running */
    target_t *head, *tail;
} line_t;

/* What became of one rule, with its strings owned. */
typedef struct {
    tf_uc_fired_t out;
    char run_id[TF_ID_LEN];
    char **job_ids;
    size_t nids; /* job_ids kept (freed), whatever out.njobs says */
    char *error_type, *error_message;
    char *first_jobs; /* a duplicate: the first run's jobs */
} fired_t;

struct post {
    tf_uc_t *uc;
    tf_uc_event_cb cb;
    void *arg;
    char tenant_id[TF_ID_LEN], correlation_id[TF_ID_LEN + TF_EVENT_ID_MAX];
    char name[TF_SCRIPT_NAME_MAX + 1];
    char *trigger, *event, *tenant, *id;
    target_t *targets;
    fired_t *fired;
    size_t n, started, in_flight;
    int status;         /* the first failure: no more rules start */
    int pumping, again; /* pump() is running; a rule ended meanwhile */
    int given;          /* the rules to fire were given: no lookup by event name */
};

static void post_free(post_t *p) {
    for (size_t i = 0; i < p->n; i++) {
        free(p->targets[i].source);
        free(p->targets[i].state);
        for (size_t k = 0; p->fired != NULL && k < p->fired[i].nids; k++) {
            free(p->fired[i].job_ids[k]);
        }
        if (p->fired != NULL) {
            free(p->fired[i].job_ids);
            free(p->fired[i].error_type);
            free(p->fired[i].error_message);
            free(p->fired[i].first_jobs);
        }
    }
    free(p->targets);
    free(p->fired);
    free(p->trigger);
    free(p->event);
    free(p->tenant);
    free(p->id);
    free(p);
}

static void answer(post_t *p, int status) {
    tf_uc_fired_t *out = status == 0 && p->n > 0 ? calloc(p->n, sizeof(*out)) : NULL;
    if (status == 0 && p->n > 0 && out == NULL) {
        status = TF_ENOMEM;
    }
    for (size_t i = 0; out != NULL && i < p->n; i++) {
        out[i] = p->fired[i].out;
    }
    p->cb(p->arg, status, out, status == 0 ? p->n : 0);
    free(out);
    post_free(p);
}

static void pump(post_t *p);
static void fire_one(target_t *t);
static void target_done(target_t *t, int status);

static char *dup_or_null(const char *s) {
    return s != NULL ? strdup(s) : NULL;
}

/* ---- lines ---- */

/* The line of `rule_id` for `tenant_id` on this loop; with `create`, a new
 * empty one when there is none (NULL when out of memory). */
static line_t *line_find(tf_uc_t *uc, const char *tenant_id, const char *rule_id, int create) {
    for (line_t *l = uc->rule_lines; l != NULL; l = l->next) {
        if (strcmp(l->rule_id, rule_id) == 0 && strcmp(l->tenant_id, tenant_id) == 0) {
            return l;
        }
    }
    line_t *l = create ? calloc(1, sizeof(*l)) : NULL;
    if (l != NULL) {
        snprintf(l->tenant_id, sizeof(l->tenant_id), "%s", tenant_id);
        snprintf(l->rule_id, sizeof(l->rule_id), "%s", rule_id);
        l->next = uc->rule_lines;
        uc->rule_lines = l;
    }
    return l;
}

static void line_push(line_t *l, target_t *t, int front) {
    t->wait_next = NULL;
    if (l->head == NULL) {
        l->head = l->tail = t;
    } else if (front) {
        t->wait_next = l->head;
        l->head = t;
    } else {
        l->tail->wait_next = t;
        l->tail = t;
    }
}

static void state_reread(void *arg, int status, const char *state_json, int64_t version);

/* Gives the turn to the first firing waiting while none has it (it reads
 * the state as it is now, then is evaluated); frees the line when nobody
 * waits or has the turn.  A turn that ends inside the loop makes it go round
 * instead of recursing. */
static void line_pump(tf_uc_t *uc, line_t *l) {
    if (l->pumping) {
        return;
    }
    l->pumping = 1;
    while (!l->busy && l->head != NULL) {
        target_t *t = l->head;
        l->head = t->wait_next;
        if (l->head == NULL) {
            l->tail = NULL;
        }
        l->busy = 1;
        t->in_line = 1;
        post_t *p = t->post;
        int rc = uc->rules->state(uc->rules->ctx, p->tenant_id, t->id, state_reread, t);
        if (rc != 0) {
            target_done(t, rc); /* ends the turn: busy is 0 again */
        }
    }
    l->pumping = 0;
    if (!l->busy && l->head == NULL) {
        for (line_t **at = &uc->rule_lines; *at != NULL; at = &(*at)->next) {
            if (*at == l) {
                *at = l->next;
                break;
            }
        }
        free(l);
    }
}

/* Ends `t`'s turn in its line, if it had one. */
static void line_turn_end(target_t *t) {
    if (!t->in_line) {
        return;
    }
    tf_uc_t *uc = t->post->uc;
    line_t *l = line_find(uc, t->post->tenant_id, t->id, 0);
    t->in_line = 0;
    if (l != NULL) {
        l->busy = 0;
        line_pump(uc, l);
    }
}

/* Rule `t` is done (status 0) or failed: the next may start. */
static void target_done(target_t *t, int status) {
    post_t *p = t->post;
    line_turn_end(t);
    p->in_flight--;
    if (status != 0 && p->status == 0) {
        p->status = status;
    }
    pump(p);
}

/* Starts rules while fewer than FIRE_WINDOW are being fired; answers when
 * all are done, or when one failed and the others in flight are done.  A
 * rule that ends inside fire_one() makes the loop go round again instead of
 * recursing. */
static void pump(post_t *p) {
    if (p->pumping) {
        p->again = 1;
        return;
    }
    p->pumping = 1;
    do {
        p->again = 0;
        while (p->status == 0 && p->started < p->n && p->in_flight < FIRE_WINDOW) {
            p->in_flight++;
            fire_one(&p->targets[p->started++]);
        }
    } while (p->again);
    p->pumping = 0;
    if (p->in_flight == 0 && (p->status != 0 || p->started == p->n)) {
        answer(p, p->status);
    }
}

/* The rule's state as it is now: evaluate the rule again. */
static void state_reread(void *arg, int status, const char *state_json, int64_t version) {
    target_t *t = arg;
    char *state = dup_or_null(state_json);
    if (status == 0 && state_json != NULL && state == NULL) {
        status = TF_ENOMEM;
    }
    if (status != 0) {
        free(state);
        target_done(t, status);
        return;
    }
    free(t->state);
    t->state = state;
    t->state_version = version;
    fire_one(t);
}

static void recorded(void *arg, int status, const tf_rule_recorded_t *r) {
    target_t *t = arg;
    post_t *p = t->post;
    if (status != 0) {
        target_done(t, status);
        return;
    }
    fired_t *f = &p->fired[t - p->targets];
    if (r->stale) { /* another run of the rule changed its state first */
        free(f->error_type), free(f->error_message);
        for (size_t k = 0; k < f->nids; k++) {
            free(f->job_ids[k]);
        }
        free(f->job_ids);
        memset(f, 0, sizeof(*f));
        if (t->tries >= TF_RULE_STATE_TRIES) { /* the state it read went stale every time */
            target_done(t, TF_ESTALE);
            return;
        }
        /* Into the rule's line: first when it had the turn, else last. */
        line_t *l = line_find(p->uc, p->tenant_id, t->id, 1);
        if (l == NULL) {
            target_done(t, TF_ENOMEM);
            return;
        }
        int had_turn = t->in_line;
        t->in_line = 0;
        if (had_turn) {
            l->busy = 0;
        }
        line_push(l, t, had_turn);
        line_pump(p->uc, l);
        return;
    }
    const char *first_run_id = r->first_run_id, *first_jobs_json = r->first_jobs_json;
    int done = r->recorded;
    f->out.duplicate = !done;
    if (!done) { /* the rule already ran for this event id: its first run */
        snprintf(f->run_id, sizeof(f->run_id), "%s", first_run_id != NULL ? first_run_id : "");
        f->out.run_id = first_run_id != NULL ? f->run_id : NULL;
        f->out.njobs = 0;
        f->first_jobs = dup_or_null(first_jobs_json);
        f->out.jobs_json = f->first_jobs;
    }
    target_done(t, 0);
}

/* Whether the action left a state other than the one read: a rule that
 * never touches ctx.state writes nothing and never waits for another run
 * of itself. */
static int state_changed(const target_t *t, const char *state_json) {
    if (state_json == NULL) {
        return 0;
    }
    return t->state != NULL ? strcmp(t->state, state_json) != 0 : strcmp(state_json, "{}") != 0;
}

static void evaluated(void *arg, int status, const tf_rule_outcome_t *o) {
    target_t *t = arg;
    post_t *p = t->post;
    if (status != 0) {
        target_done(t, status);
        return;
    }
    fired_t *f = &p->fired[t - p->targets];
    tf_uc_new_id_at(p->uc, t->started_ms, f->run_id); /* runs sort by when they began */
    tf_rule_run_outcome_t outcome = !o->ok         ? TF_RULE_RUN_FAILED
                                    : o->condition ? TF_RULE_RUN_FIRED
                                                   : TF_RULE_RUN_NOT_MATCHED;
    size_t njobs = outcome == TF_RULE_RUN_FIRED ? o->njobs : 0;
    f->job_ids = njobs > 0 ? calloc(njobs, sizeof(char *)) : NULL;
    f->error_type = dup_or_null(o->error_type);
    f->error_message = dup_or_null(o->error_message);
    int rc = (njobs > 0 && f->job_ids == NULL) || (o->error_type != NULL && !f->error_type) ||
                     (o->error_message != NULL && !f->error_message)
                 ? TF_ENOMEM
                 : 0;
    for (size_t i = 0; rc == 0 && i < njobs; i++) {
        f->job_ids[i] = strdup(o->jobs[i]->id);
        rc = f->job_ids[i] != NULL ? 0 : TF_ENOMEM;
        f->nids += rc == 0;
    }
    f->out = (tf_uc_fired_t){.rule_id = t->id,
                             .run_id = f->run_id,
                             .outcome = outcome,
                             .condition = o->ok || o->condition ? o->condition : -1,
                             .job_ids = (const char *const *)f->job_ids,
                             .njobs = f->nids,
                             .error_type = f->error_type,
                             .error_message = f->error_message};
    if (rc != 0) {
        target_done(t, rc);
        return;
    }
    int64_t now = tf_uc_now(p->uc);
    tf_rule_run_t run = {
        .tenant_id = p->tenant_id,
        .id = f->run_id,
        .rule_id = t->id,
        .version = t->version,
        .trigger = p->trigger,
        .dedup_key = p->id,
        .at_ms = t->started_ms,
        .outcome = outcome,
        .condition = f->out.condition,
        .error_type = o->error_type,
        .error_message = o->error_message,
        .duration_ms = now > t->started_ms ? now - t->started_ms : 0,
        .state_json =
            outcome == TF_RULE_RUN_FIRED && state_changed(t, o->state_json) ? o->state_json : NULL,
        .state_version = t->state_version,
        .jobs = njobs > 0 ? o->jobs : NULL,
        .njobs = njobs};
    rc = p->uc->rules->record_run(p->uc->rules->ctx, &run, recorded, t);
    if (rc != 0) {
        target_done(t, rc);
    }
}

/* Evaluates rule `t` (again, when its state changed under it). */
static void fire_one(target_t *t) {
    post_t *p = t->post;
    line_t *l = t->in_line ? NULL : line_find(p->uc, p->tenant_id, t->id, 0);
    if (l != NULL) { /* the rule's firings take turns: wait for one */
        line_push(l, t, 0);
        line_pump(p->uc, l);
        return;
    }
    t->tries++;
    t->started_ms = tf_uc_now(p->uc);
    char head[400];
    snprintf(head, sizeof(head),
             "{\"rule\":{\"id\":\"%s\",\"name\":\"%s\",\"version\":%d},\"now\":%lld,\"tenant\":",
             t->id, t->name, t->version, (long long)t->started_ms);
    const char *state = t->state != NULL ? t->state : "{}";
    size_t need = strlen(head) + strlen(p->tenant) + strlen(state) + 16;
    char *ctx = malloc(need);
    if (ctx == NULL) {
        target_done(t, TF_ENOMEM);
        return;
    }
    snprintf(ctx, need, "%s%s,\"state\":%s}", head, p->tenant, state);
    tf_rule_eval_t req = {.tenant_id = p->tenant_id,
                          .rule_id = t->id,
                          .rule_name = t->name,
                          .version = t->version,
                          .source = t->source,
                          .source_len = t->source_len,
                          .has_condition = t->has_condition,
                          .event_json = p->event,
                          .ctx_json = ctx,
                          .correlation_id = p->correlation_id};
    const tf_rule_evaluator_t *ev = p->uc->evaluator;
    int rc = ev->evaluate(ev->ctx, &req, evaluated, t);
    free(ctx);
    if (rc != 0) {
        target_done(t, rc);
    }
}

/* Copies the rules to fire into the targets.  Returns 0 or TF_ENOMEM. */
static int take_targets(post_t *p, const tf_rule_t *rules, size_t n) {
    p->targets = n > 0 ? calloc(n, sizeof(*p->targets)) : NULL;
    p->fired = n > 0 ? calloc(n, sizeof(*p->fired)) : NULL;
    if (n > 0 && (p->targets == NULL || p->fired == NULL)) {
        return TF_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        target_t *t = &p->targets[i];
        t->post = p;
        p->n++;
        snprintf(t->id, sizeof(t->id), "%s", rules[i].id);
        snprintf(t->name, sizeof(t->name), "%s", rules[i].name);
        t->version = rules[i].version;
        t->has_condition = rules[i].has_condition;
        t->source = malloc(rules[i].source_len + 1);
        t->state = dup_or_null(rules[i].state_json);
        t->state_version = rules[i].state_version;
        if (t->source == NULL || (rules[i].state_json != NULL && t->state == NULL)) {
            return TF_ENOMEM;
        }
        memcpy(t->source, rules[i].source, rules[i].source_len);
        t->source[rules[i].source_len] = '\0';
        t->source_len = rules[i].source_len;
    }
    return 0;
}

static void rules_read(void *arg, int status, const tf_rule_t *rules, size_t n) {
    post_t *p = arg;
    if (status == 0) {
        status = take_targets(p, rules, n);
    }
    if (status != 0) {
        answer(p, status);
        return;
    }
    pump(p);
}

static void tenant_read(void *arg, int status, const tf_tenant_t *tenant) {
    post_t *p = arg;
    if (status == 0 && tenant == NULL) {
        status = TF_ENOTFOUND;
    }
    if (status == 0 && (p->tenant = tf_uc_tenant_json(tenant)) == NULL) {
        status = TF_ENOMEM;
    }
    if (status == 0 && p->given) { /* the rules are the caller's */
        pump(p);
        return;
    }
    if (status == 0) {
        status = p->uc->rules->event_rules(p->uc->rules->ctx, p->tenant_id, p->name, rules_read, p);
    }
    if (status != 0) {
        answer(p, status);
    }
}

/* ev = {"name": ..., "data": ..., "id": ... or null}. */
static char *event_json(const tf_uc_event_t *ev) {
    size_t len = 0, cap = 0;
    char *out = NULL;
    for (int pass = 0; pass < 2; pass++) {
        len = 0;
        tf_json_raw(out, cap, &len, "{\"name\":");
        tf_json_quote(out, cap, &len, ev->name);
        tf_json_raw(out, cap, &len, ",\"data\":");
        tf_json_raw(out, cap, &len, ev->data_json != NULL ? ev->data_json : "null");
        tf_json_raw(out, cap, &len, ",\"id\":");
        if (ev->id != NULL) {
            tf_json_quote(out, cap, &len, ev->id);
        } else {
            tf_json_raw(out, cap, &len, "null");
        }
        tf_json_raw(out, cap, &len, "}");
        if (pass == 0 && (out = malloc(cap = len + 1)) == NULL) {
            return NULL;
        }
    }
    return out;
}

/* A firing of the tenant's rules for `trigger` with event `event_json`;
 * NULL when out of memory. */
static post_t *post_new(tf_uc_t *uc, const char *tenant_id, const char *trigger,
                        const char *event_json, const char *dedup_key, tf_uc_event_cb cb,
                        void *arg) {
    post_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->uc = uc;
    p->cb = cb;
    p->arg = arg;
    snprintf(p->tenant_id, sizeof(p->tenant_id), "%s", tenant_id);
    if (dedup_key != NULL) {
        snprintf(p->correlation_id, sizeof(p->correlation_id), "%s", dedup_key);
    } else {
        tf_uc_new_id(uc, p->correlation_id);
    }
    p->trigger = strdup(trigger);
    p->event = strdup(event_json);
    p->id = dup_or_null(dedup_key);
    if (p->trigger == NULL || p->event == NULL || (dedup_key != NULL && p->id == NULL)) {
        post_free(p);
        return NULL;
    }
    return p;
}

static int post_start(post_t *p) {
    int rc = p->uc->tenants->tenant_get(p->uc->tenants->ctx, p->tenant_id, tenant_read, p);
    if (rc != 0) {
        post_free(p);
    }
    return rc;
}

static int rules_available(const tf_uc_t *uc) {
    return uc->rules != NULL && uc->evaluator != NULL && uc->tenants != NULL;
}

int tf_uc_event_post(tf_uc_t *uc, const tf_uc_event_t *ev, tf_uc_event_cb cb, void *arg, char *err,
                     size_t errlen) {
    if (ev->name == NULL || !tf_name_valid(ev->name, TF_SCRIPT_NAME_MAX) ||
        strncmp(ev->name, "job.", 4) == 0) {
        snprintf(err, errlen,
                 "an event's name is 1 to 128 characters of letters, digits and "
                 "_ . : -, not starting with \"job.\"");
        return TF_EINVAL;
    }
    if (ev->id != NULL && (ev->id[0] == '\0' || strlen(ev->id) > TF_EVENT_ID_MAX ||
                           !tf_utf8_valid(ev->id, strlen(ev->id)))) {
        snprintf(err, errlen, "an event's id is 1 to %d bytes of UTF-8", TF_EVENT_ID_MAX);
        return TF_EINVAL;
    }
    if (!rules_available(uc)) {
        snprintf(err, errlen, "automation rules are not available on this node");
        return TF_EUNAVAIL;
    }
    char trigger[TF_SCRIPT_NAME_MAX + 8];
    snprintf(trigger, sizeof(trigger), "event:%s", ev->name);
    char *event = event_json(ev);
    post_t *p = event != NULL ? post_new(uc, ev->tenant_id, trigger, event, ev->id, cb, arg) : NULL;
    free(event);
    if (p == NULL) {
        return TF_ENOMEM;
    }
    snprintf(p->name, sizeof(p->name), "%s", ev->name);
    return post_start(p);
}

int tf_uc_rules_fire(tf_uc_t *uc, const tf_uc_fire_t *fire, tf_uc_event_cb cb, void *arg) {
    if (!rules_available(uc)) {
        return TF_EUNAVAIL;
    }
    post_t *p =
        post_new(uc, fire->tenant_id, fire->trigger, fire->event_json, fire->dedup_key, cb, arg);
    if (p == NULL) {
        return TF_ENOMEM;
    }
    if (fire->correlation_id != NULL) {
        snprintf(p->correlation_id, sizeof(p->correlation_id), "%s", fire->correlation_id);
    }
    if (take_targets(p, fire->rules, fire->n) != 0) {
        post_free(p);
        return TF_ENOMEM;
    }
    p->given = 1;
    if (fire->tenant_json != NULL) { /* no need to read the tenant */
        p->tenant = strdup(fire->tenant_json);
        if (p->tenant == NULL) {
            post_free(p);
            return TF_ENOMEM;
        }
        pump(p);
        return 0;
    }
    return post_start(p);
}
