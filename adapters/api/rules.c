/*
 * rules.c - a tenant's automation rules (docs/api.md, "Automation rules"):
 *
 *   POST   /v1/rules                 body: the Lua source (text/x-lua)
 *          201 Rule (a webhook rule with "hook_url" and, this once,
 *          "hook_secret"); 422 with the Lua error and its line, what the
 *          table lacks, or an unknown time zone; 409 when the name is taken
 *   PUT    /v1/rules/{id}            a new version: 200 Rule; 409 when the
 *          name is another rule's or the trigger's kind would change
 *   GET    /v1/rules                 {"rules": [Rule...]}
 *   GET    /v1/rules/{id}            Rule with "source" and "versions"
 *   DELETE /v1/rules/{id}            204; its versions are kept
 *   POST   /v1/rules/{id}/enable     200 Rule
 *   POST   /v1/rules/{id}/disable    200 Rule
 *   POST   /v1/rules/{id}/test       body {"event": {...}} (optional): a dry
 *          run of the current version, nothing written: 200 {"condition",
 *          "jobs", "state", "error", "logs"}; on /v1/admin/rules/{id}/test
 *          the body also names the tenant to run as ("tenant_id", required)
 *   GET    /v1/rules/{id}/runs       {"runs": [RuleRun...], "next_cursor"}:
 *          newest first; ?limit=, ?cursor= (the last run's id), ?outcome=
 *   POST   /v1/events                {"name", "data"?, "id"?}: 202 {"runs":
 *          [...]} for the tenant's enabled rules triggered by that name
 *   POST   /v1/hooks/{key}           no credentials: the body's signature by
 *          the rule's scheme; 202 {"run_id", "jobs"}; 401 bad, missing or
 *          stale signature (the body never echoed), or no such enabled
 *          hook; 400 not JSON
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "adapters/api/routes.h"
#include "adapters/usecases/events.h"
#include "adapters/usecases/rules.h"
#include "engine/error.h"
#include "engine/hex.h"
#include "engine/uuid.h"

#define NO_RULE "no such rule"

/* The rules a principal manages: its tenant's, or for the operator on the
 * /v1/admin/rules routes (tenant_id "") the platform's (NULL). */
#define OWNER(tenant_id) ((tenant_id)[0] != '\0' ? (tenant_id) : NULL)

/* The members of a Rule (`rule` 1) or of one of its versions. */
static int write_fields(tf_jbuf_t *b, const tf_rule_t *r, int rule) {
    int rc = 0;
    if (rule) {
        tf_jbuf_key(b, "id");
        tf_jbuf_str(b, r->id);
        tf_jbuf_key(b, "name");
        tf_jbuf_str(b, r->name);
    }
    tf_jbuf_key(b, "version");
    tf_jbuf_int(b, r->version);
    if (rule) {
        tf_jbuf_key(b, "enabled");
        tf_jbuf_bool(b, r->enabled);
    }
    tf_jbuf_key(b, "trigger");
    tf_jbuf_raw(b, r->trigger_json);
    if (rule && r->cron != NULL) {
        tf_jbuf_key(b, "next_fire_at");
        rc |= tf_api_time(b, r->enabled ? r->next_fire_ms : TF_TIME_NONE);
    }
    if (rule && r->hook_key != NULL) {
        char url[TF_RULE_HOOK_KEY_LEN + 16];
        snprintf(url, sizeof(url), "/v1/hooks/%s", r->hook_key);
        tf_jbuf_key(b, "hook_url");
        tf_jbuf_str(b, url);
    }
    tf_jbuf_key(b, "sha256");
    tf_jbuf_str(b, r->sha256);
    tf_jbuf_key(b, "created_by");
    tf_jbuf_str(b, r->created_by);
    tf_jbuf_key(b, "created_at");
    rc |= tf_api_time(b, r->created_at_ms);
    if (rule) {
        tf_jbuf_key(b, "updated_at");
        rc |= tf_api_time(b, r->updated_at_ms);
    }
    if (r->source != NULL) {
        tf_jbuf_key(b, "source");
        tf_jbuf_strn(b, r->source, r->source_len);
    }
    return rc != 0 ? TF_EIO : 0;
}

static int write_rule(tf_jbuf_t *b, const tf_rule_t *r, int rule) {
    tf_jbuf_obj_open(b);
    int rc = write_fields(b, r, rule);
    tf_jbuf_obj_close(b);
    return rc;
}

/* ---- POST, PUT ---- */

static void uploaded(void *arg, int status, const char *message, const tf_rule_t *rule, int created,
                     const char *hook_secret) {
    tf_http_req_t *req = arg;
    if (status == TF_EINVAL) {
        tf_api_invalid(req, "source", message);
    } else if (status == TF_ECONFLICT || status == TF_ESTATE) {
        tf_http_respond_error(req, 409, "conflict", message, NULL);
    } else if (status == TF_ENOTFOUND) {
        tf_http_respond_error(req, 404, "not_found", NO_RULE, NULL);
    } else if (status != 0) {
        tf_api_respond_status(req, status);
    } else {
        tf_jbuf_t b;
        tf_jbuf_init(&b);
        tf_jbuf_obj_open(&b);
        int rc = write_fields(&b, rule, 1);
        if (hook_secret != NULL) {
            tf_jbuf_key(&b, "hook_secret");
            tf_jbuf_str(&b, hook_secret);
        }
        tf_jbuf_obj_close(&b);
        tf_api_respond_built(req, created ? 201 : 200, &b, rc);
    }
}

static void upload(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who,
                   const char *id) {
    tf_uc_rule_upload_t up = {.tenant_id = OWNER(who->tenant_id), .id = id, .actor = who->actor};
    if (tf_api_lua_body(req, "rule", &up.source, &up.len) != 0) {
        return;
    }
    /* A new rule's hook key and secret, used when its trigger is a webhook. */
    uint8_t random[TF_RULE_HOOK_KEY_LEN / 2 + TF_RULE_HOOK_SECRET_LEN / 2];
    char key[TF_RULE_HOOK_KEY_LEN + 1], secret[TF_RULE_HOOK_SECRET_LEN + 1];
    if (id == NULL) {
        if (RAND_bytes(random, sizeof(random)) != 1) {
            tf_http_respond_error(req, 500, "internal", "no random bytes for the hook", NULL);
            return;
        }
        tf_hex_encode(random, TF_RULE_HOOK_KEY_LEN / 2, key);
        tf_hex_encode(random + TF_RULE_HOOK_KEY_LEN / 2, TF_RULE_HOOK_SECRET_LEN / 2, secret);
        up.hook_key = key;
        up.hook_secret = secret;
    }
    char err[200];
    int rc = tf_uc_rule_upload(lp->uc, &up, uploaded, req, err, sizeof(err));
    tf_api_upload_refused(req, rc, "source", err);
}

static void post_rule(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    upload(req, lp, who, NULL);
}

static void put_rule(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    char id[TF_ID_LEN];
    if (tf_api_path_id(req, "id", NO_RULE, id) == 0) {
        upload(req, lp, who, id);
    }
}

/* ---- GET one ---- */

typedef struct {
    tf_http_req_t *req;
    tf_api_loop_t *lp;
    char tenant_id[TF_ID_LEN], id[TF_ID_LEN];
    tf_jbuf_t b; /* the rule so far: its object is open */
} get_t;

static void versions_read(void *arg, int status, const tf_rule_t *list, size_t n) {
    get_t *g = arg;
    int rc = status;
    if (rc == 0) {
        tf_jbuf_key(&g->b, "versions");
        tf_jbuf_arr_open(&g->b);
        for (size_t i = 0; i < n && rc == 0; i++) {
            rc = write_rule(&g->b, &list[i], 0);
        }
        tf_jbuf_arr_close(&g->b);
        tf_jbuf_obj_close(&g->b);
    }
    if (status != 0) {
        tf_jbuf_free(&g->b);
        tf_api_respond_status(g->req, status);
    } else {
        tf_api_respond_built(g->req, 200, &g->b, rc);
    }
    free(g);
}

/* With `g` NULL, the rule alone is the answer (enable, disable). */
static void rule_read(void *arg, int status, const tf_rule_t *rule) {
    get_t *g = arg;
    if (status != 0 || rule == NULL) {
        if (status != 0) {
            tf_api_respond_status(g->req, status);
        } else {
            tf_http_respond_error(g->req, 404, "not_found", NO_RULE, NULL);
        }
        free(g);
        return;
    }
    tf_jbuf_init(&g->b);
    tf_jbuf_obj_open(&g->b);
    int rc = write_fields(&g->b, rule, 1);
    const tf_rule_store_t *s = g->lp->uc->rules;
    if (rc == 0) {
        rc = s->versions(s->ctx, OWNER(g->tenant_id), g->id, versions_read, g);
    }
    if (rc != 0) {
        tf_jbuf_free(&g->b);
        tf_api_respond_status(g->req, rc);
        free(g);
    }
}

/* Answers the rule `id` of `who` with its source and versions. */
static void answer_rule(tf_http_req_t *req, tf_api_loop_t *lp, const char *tenant_id,
                        const char *id) {
    const tf_rule_store_t *s = lp->uc->rules;
    get_t *g = s != NULL ? calloc(1, sizeof(*g)) : NULL;
    if (g == NULL) {
        tf_api_respond_status(req, s == NULL ? TF_EUNAVAIL : TF_ENOMEM);
        return;
    }
    g->req = req;
    g->lp = lp;
    snprintf(g->tenant_id, sizeof(g->tenant_id), "%s", tenant_id);
    snprintf(g->id, sizeof(g->id), "%s", id);
    int rc = s->get(s->ctx, OWNER(tenant_id), id, rule_read, g);
    if (rc != 0) {
        free(g);
        tf_api_respond_status(req, rc);
    }
}

static void get_rule(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    char id[TF_ID_LEN];
    if (tf_api_path_id(req, "id", NO_RULE, id) == 0) {
        answer_rule(req, lp, who->tenant_id, id);
    }
}

/* ---- list ---- */

static void listed(void *arg, int status, const tf_rule_t *list, size_t n) {
    tf_http_req_t *req = arg;
    if (status != 0) {
        tf_api_respond_status(req, status);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "rules");
    tf_jbuf_arr_open(&b);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = write_rule(&b, &list[i], 1);
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_obj_close(&b);
    tf_api_respond_built(req, 200, &b, rc);
}

static void list_rules(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    const tf_rule_store_t *s = lp->uc->rules;
    int rc = s != NULL ? s->list(s->ctx, OWNER(who->tenant_id), listed, req) : TF_EUNAVAIL;
    if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
}

/* ---- enable, disable, delete ---- */

typedef struct {
    tf_http_req_t *req;
    tf_api_loop_t *lp;
    char tenant_id[TF_ID_LEN], id[TF_ID_LEN];
    int answer_rule; /* 1: answer the rule; 0: 204 */
} change_t;

static void changed(void *arg, int status) {
    change_t *c = arg;
    if (status == TF_ENOTFOUND) {
        tf_http_respond_error(c->req, 404, "not_found", NO_RULE, NULL);
    } else if (status != 0) {
        tf_api_respond_status(c->req, status);
    } else if (c->answer_rule) {
        answer_rule(c->req, c->lp, c->tenant_id, c->id);
    } else {
        tf_http_respond(c->req, 204, NULL, NULL, 0);
    }
    free(c);
}

/* enabled: 1 enable, 0 disable, -1 delete. */
static void change(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who, int enabled) {
    const tf_rule_store_t *s = lp->uc->rules;
    change_t *c = calloc(1, sizeof(*c));
    if (c == NULL || tf_api_path_id(req, "id", NO_RULE, c->id) != 0) {
        if (c == NULL) {
            tf_api_respond_status(req, TF_ENOMEM);
        }
        free(c);
        return;
    }
    c->req = req;
    c->lp = lp;
    c->answer_rule = enabled >= 0;
    snprintf(c->tenant_id, sizeof(c->tenant_id), "%s", who->tenant_id);
    int64_t now = tf_uc_now(lp->uc);
    int rc = s == NULL ? TF_EUNAVAIL
             : enabled >= 0
                 ? s->set_enabled(s->ctx, OWNER(c->tenant_id), c->id, enabled, now, changed, c)
                 : s->remove(s->ctx, OWNER(c->tenant_id), c->id, now, changed, c);
    if (rc != 0) {
        free(c);
        tf_api_respond_status(req, rc);
    }
}

static void enable_rule(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    change(req, lp, who, 1);
}

static void disable_rule(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    change(req, lp, who, 0);
}

static void delete_rule(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    change(req, lp, who, -1);
}

/* ---- the dry run ---- */

/* A job the action would create. */
static int write_job(tf_jbuf_t *b, const tf_new_job_t *j) {
    tf_jbuf_obj_open(b);
    tf_jbuf_key(b, "id");
    tf_jbuf_str(b, j->id);
    tf_jbuf_key(b, "type");
    tf_jbuf_str(b, j->type);
    tf_jbuf_key(b, "queue");
    tf_jbuf_str(b, j->queue);
    tf_jbuf_key(b, "priority");
    tf_jbuf_int(b, j->priority);
    tf_jbuf_key(b, "payload");
    tf_jbuf_raw(b, j->payload != NULL ? j->payload : "null");
    tf_jbuf_key(b, "max_attempts");
    tf_jbuf_int(b, j->max_attempts);
    tf_jbuf_key(b, "executor");
    tf_jbuf_raw(b, j->executor != NULL ? j->executor : "null");
    tf_jbuf_key(b, "rule_id");
    tf_jbuf_str(b, j->rule_id);
    tf_jbuf_key(b, "correlation_id");
    tf_jbuf_str(b, j->correlation_id);
    tf_jbuf_key(b, "run_at");
    int rc = tf_api_time(b, j->run_at_ms);
    tf_jbuf_obj_close(b);
    return rc;
}

static void tested(void *arg, int status, const tf_rule_outcome_t *o) {
    tf_http_req_t *req = arg;
    if (status == TF_ENOTFOUND) {
        tf_http_respond_error(req, 404, "not_found", NO_RULE, NULL);
        return;
    }
    if (status == TF_EINVAL) { /* a platform rule's dry run as an unknown tenant */
        tf_api_invalid(req, "tenant_id", "no such tenant");
        return;
    }
    if (status != 0) {
        tf_api_respond_status(req, status);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "condition");
    tf_jbuf_bool(&b, o->condition);
    tf_jbuf_key(&b, "jobs");
    tf_jbuf_arr_open(&b);
    int rc = 0;
    for (size_t i = 0; i < o->njobs && rc == 0; i++) {
        rc = write_job(&b, o->jobs[i]);
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_key(&b, "state");
    tf_jbuf_raw(&b, o->state_json != NULL ? o->state_json : "null");
    tf_jbuf_key(&b, "error");
    if (o->ok) {
        tf_jbuf_null(&b);
    } else {
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "type");
        tf_jbuf_str(&b, o->error_type);
        tf_jbuf_key(&b, "message");
        tf_jbuf_str(&b, o->error_message);
        tf_jbuf_obj_close(&b);
    }
    tf_jbuf_key(&b, "logs");
    tf_jbuf_raw(&b, o->logs_json != NULL ? o->logs_json : "[]");
    tf_jbuf_obj_close(&b);
    tf_api_respond_built(req, 200, &b, rc);
}

static void test_rule(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    char id[TF_ID_LEN];
    if (tf_api_path_id(req, "id", NO_RULE, id) != 0) {
        return;
    }
    int answered = 0;
    json_t *body = tf_api_body(req, 0, &answered);
    if (answered) {
        return;
    }
    /* A platform rule runs as the tenant the operator names, as its firing
     * for that tenant would. */
    int platform = OWNER(who->tenant_id) == NULL;
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value) {
        if (strcmp(key, "event") != 0 && (!platform || strcmp(key, "tenant_id") != 0)) {
            tf_api_invalid(req, key,
                           platform ? "unknown field (known: tenant_id, event)"
                                    : "unknown field (known: event)");
            json_decref(body); /* after: `key` is the body's */
            return;
        }
    }
    json_t *event = json_object_get(body, "event");
    if (event != NULL && !json_is_object(event)) {
        json_decref(body);
        tf_api_invalid(req, "event", "event must be an object");
        return;
    }
    char tenant[TF_ID_LEN];
    tf_uuid_t tenant_uuid;
    const char *tenant_text = json_string_value(json_object_get(body, "tenant_id"));
    if (platform && (tenant_text == NULL || tf_uuid_parse(tenant_text, &tenant_uuid) != 0)) {
        json_decref(body);
        tf_api_invalid(req, "tenant_id",
                       "a platform rule's dry run needs tenant_id: the id of the tenant to run as");
        return;
    }
    if (platform) {
        tf_uuid_format(&tenant_uuid, tenant);
    } else {
        snprintf(tenant, sizeof(tenant), "%s", who->tenant_id);
    }
    char *event_json = event != NULL ? json_dumps(event, JSON_COMPACT) : NULL;
    json_decref(body);
    int rc =
        event != NULL && event_json == NULL
            ? TF_ENOMEM
            : tf_uc_rule_test(lp->uc, tenant, OWNER(who->tenant_id), id, event_json, tested, req);
    free(event_json);
    if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
}

/* ---- runs ---- */

static const char *const outcome_names[] = {"fired", "not_matched", "failed", "skipped"};

static void write_error(tf_jbuf_t *b, const char *type, const char *message) {
    tf_jbuf_key(b, "error");
    if (type == NULL) {
        tf_jbuf_null(b);
        return;
    }
    tf_jbuf_obj_open(b);
    tf_jbuf_key(b, "type");
    tf_jbuf_str(b, type);
    tf_jbuf_key(b, "message");
    tf_jbuf_str(b, message);
    tf_jbuf_obj_close(b);
}

static void write_condition(tf_jbuf_t *b, int condition) {
    tf_jbuf_key(b, "condition");
    if (condition < 0) {
        tf_jbuf_null(b);
    } else {
        tf_jbuf_bool(b, condition);
    }
}

typedef struct {
    tf_http_req_t *req;
    tf_api_loop_t *lp;
    char tenant_id[TF_ID_LEN], id[TF_ID_LEN], cursor[TF_ID_LEN];
    int outcome, limit;
} runs_t;

static void runs_read(void *arg, int status, const tf_rule_run_row_t *runs, size_t n) {
    runs_t *q = arg;
    if (status != 0) {
        tf_api_respond_status(q->req, status);
        free(q);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "runs");
    tf_jbuf_arr_open(&b);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const tf_rule_run_row_t *r = &runs[i];
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "id");
        tf_jbuf_str(&b, r->id);
        tf_jbuf_key(&b, "rule_id");
        tf_jbuf_str(&b, r->rule_id);
        if (q->tenant_id[0] == '\0') { /* the operator: a platform rule's runs, every tenant's */
            tf_jbuf_key(&b, "tenant_id");
            tf_jbuf_str(&b, r->tenant_id);
        }
        tf_jbuf_key(&b, "version");
        tf_jbuf_int(&b, r->version);
        tf_jbuf_key(&b, "trigger");
        tf_jbuf_str(&b, r->trigger);
        tf_jbuf_key(&b, "event_id");
        tf_jbuf_str(&b, r->dedup_key);
        tf_jbuf_key(&b, "at");
        rc = tf_api_time(&b, r->at_ms);
        tf_jbuf_key(&b, "outcome");
        tf_jbuf_str(&b, outcome_names[r->outcome]);
        write_condition(&b, r->condition);
        tf_jbuf_key(&b, "jobs");
        tf_jbuf_raw(&b, r->jobs_json);
        write_error(&b, r->error_type, r->error_message);
        tf_jbuf_key(&b, "duration_ms");
        tf_jbuf_int(&b, r->duration_ms);
        tf_jbuf_obj_close(&b);
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_key(&b, "next_cursor");
    tf_jbuf_str(&b, n == (size_t)q->limit ? runs[n - 1].id : NULL);
    tf_jbuf_obj_close(&b);
    tf_api_respond_built(q->req, 200, &b, rc);
    free(q);
}

/* The rule must be live and the tenant's: then its runs. */
static void runs_rule_read(void *arg, int status, const tf_rule_t *rule) {
    runs_t *q = arg;
    const tf_rule_store_t *s = q->lp->uc->rules;
    if (status == 0 && rule == NULL) {
        tf_http_respond_error(q->req, 404, "not_found", NO_RULE, NULL);
        free(q);
        return;
    }
    if (status == 0) {
        status =
            s->runs(s->ctx, OWNER(q->tenant_id), q->id, q->cursor[0] != '\0' ? q->cursor : NULL,
                    q->outcome, q->limit, runs_read, q);
    }
    if (status != 0) {
        tf_api_respond_status(q->req, status);
        free(q);
    }
}

static void list_runs(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    const tf_rule_store_t *s = lp->uc->rules;
    runs_t *q = calloc(1, sizeof(*q));
    if (q == NULL || s == NULL) {
        free(q);
        tf_api_respond_status(req, s == NULL ? TF_EUNAVAIL : TF_ENOMEM);
        return;
    }
    q->req = req;
    q->lp = lp;
    q->outcome = -1;
    snprintf(q->tenant_id, sizeof(q->tenant_id), "%s", who->tenant_id);
    if (tf_api_path_id(req, "id", NO_RULE, q->id) != 0 || (q->limit = tf_api_limit(req)) < 0) {
        free(q);
        return;
    }
    const char *cursor = tf_http_req_query(req, "cursor");
    tf_uuid_t parsed;
    if (cursor != NULL && tf_uuid_parse(cursor, &parsed) != 0) {
        free(q);
        tf_api_invalid(req, "cursor", "cursor must be the next_cursor of the previous page");
        return;
    }
    if (cursor != NULL) {
        tf_uuid_format(&parsed, q->cursor);
    }
    const char *outcome = tf_http_req_query(req, "outcome");
    for (int i = 0; outcome != NULL && i <= TF_RULE_RUN_SKIPPED; i++) {
        q->outcome = strcmp(outcome, outcome_names[i]) == 0 ? i : q->outcome;
    }
    if (outcome != NULL && q->outcome < 0) {
        free(q);
        tf_api_invalid(req, "outcome", "outcome must be fired, not_matched, failed or skipped");
        return;
    }
    int rc = s->get(s->ctx, OWNER(q->tenant_id), q->id, runs_rule_read, q);
    if (rc != 0) {
        free(q);
        tf_api_respond_status(req, rc);
    }
}

/* ---- events ---- */

/* "jobs": what the run created, or for a duplicate what the first run did. */
static void write_fired_jobs(tf_jbuf_t *b, const tf_uc_fired_t *r) {
    tf_jbuf_key(b, "jobs");
    if (r->duplicate) {
        tf_jbuf_raw(b, r->jobs_json != NULL ? r->jobs_json : "[]");
        return;
    }
    tf_jbuf_arr_open(b);
    for (size_t k = 0; k < r->njobs; k++) {
        tf_jbuf_str(b, r->job_ids[k]);
    }
    tf_jbuf_arr_close(b);
}

/* A firing that failed as a whole: nothing of it was recorded. */
static void respond_unfired(tf_http_req_t *req, int status) {
    if (status == TF_ESTALE) { /* events.h: the state changed under it every time */
        tf_http_respond_error(req, 503, "unavailable",
                              "a rule's ctx.state kept changing under this firing (other firings "
                              "of it committed first); nothing was recorded: retry",
                              NULL);
        return;
    }
    tf_api_respond_status(req, status);
}

static void events_fired(void *arg, int status, const tf_uc_fired_t *runs, size_t n) {
    tf_http_req_t *req = arg;
    if (status != 0) {
        respond_unfired(req, status);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "runs");
    tf_jbuf_arr_open(&b);
    for (size_t i = 0; i < n; i++) {
        const tf_uc_fired_t *r = &runs[i];
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "rule_id");
        tf_jbuf_str(&b, r->rule_id);
        tf_jbuf_key(&b, "run_id");
        tf_jbuf_str(&b, r->run_id);
        tf_jbuf_key(&b, "outcome");
        tf_jbuf_str(&b, r->duplicate ? "duplicate" : outcome_names[r->outcome]);
        write_condition(&b, r->duplicate ? -1 : r->condition);
        write_fired_jobs(&b, r);
        write_error(&b, r->duplicate ? NULL : r->error_type, r->error_message);
        tf_jbuf_obj_close(&b);
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_obj_close(&b);
    tf_api_respond_jbuf(req, 202, &b);
}

static void post_event(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    json_t *body = tf_api_object_body(req, "an event {\"name\", \"data\", \"id\"}");
    if (body == NULL) {
        return;
    }
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value) {
        if (strcmp(key, "name") != 0 && strcmp(key, "data") != 0 && strcmp(key, "id") != 0) {
            tf_api_invalid(req, key, "unknown field (known: name, data, id)");
            json_decref(body); /* after: `key` is the body's */
            return;
        }
    }
    json_t *name = json_object_get(body, "name"), *id = json_object_get(body, "id");
    json_t *data = json_object_get(body, "data");
    if (!json_is_string(name) || (id != NULL && !json_is_string(id))) {
        tf_api_invalid(req, json_is_string(name) ? "id" : "name",
                       json_is_string(name) ? "id must be a string" : "name must be a string");
        json_decref(body);
        return;
    }
    char *data_text = data != NULL ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    tf_uc_event_t ev = {.tenant_id = who->tenant_id,
                        .name = json_string_value(name),
                        .data_json = data_text,
                        .id = id != NULL ? json_string_value(id) : NULL};
    char err[200];
    int rc = data != NULL && data_text == NULL
                 ? TF_ENOMEM
                 : tf_uc_event_post(lp->uc, &ev, events_fired, req, err, sizeof(err));
    if (rc == TF_EINVAL) {
        /* The use case names the field first: "an event's id ..." or name. */
        tf_api_invalid(req, strncmp(err, "an event's id", 13) == 0 ? "id" : "name", err);
    } else if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
    free(data_text);
    json_decref(body);
}

/* ---- webhooks ---- */

#define HOOK_TOLERANCE_S 300 /* signatures older or newer than this are stale */
/* A key that names no enabled webhook rule answers as a bad signature
 * does: the answer says nothing about which keys exist. */
#define NO_HOOK "no enabled webhook rule has this key, or the signature is bad"

/* HMAC-SHA256 of `parts` (concatenated) under `key`, into mac[32]. */
static int hmac_parts(const uint8_t *key, size_t keylen, const char *const *parts,
                      const size_t *lens, size_t n, uint8_t mac[32]) {
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t out = 0;
    int ok = c != NULL && EVP_MAC_init(c, key, keylen, params) == 1;
    for (size_t i = 0; ok && i < n; i++) {
        ok = EVP_MAC_update(c, (const unsigned char *)parts[i], lens[i]) == 1;
    }
    ok = ok && EVP_MAC_final(c, mac, &out, 32) == 1 && out == 32;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    return ok ? 0 : -1;
}

/* 1 when some "<prefix><hex>" item of the comma list `header` carries
 * `mac` (constant-time compare). */
static int hex_listed(const char *header, const char *prefix, const uint8_t mac[32]) {
    char want[65];
    tf_hex_encode(mac, 32, want);
    size_t plen = strlen(prefix);
    for (const char *p = header; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        size_t len = strcspn(p, ",");
        if (len == plen + 64 && strncmp(p, prefix, plen) == 0 &&
            CRYPTO_memcmp(p + plen, want, 64) == 0) {
            return 1;
        }
        p += len;
    }
    return 0;
}

/* The integer after "t=" in a "t=...,v1=..." header; -1 when absent. */
static long long header_time(const char *header) {
    for (const char *p = header; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        if (p[0] == 't' && p[1] == '=') {
            char *end = NULL;
            long long t = strtoll(p + 2, &end, 10);
            return end != p + 2 && (*end == ',' || *end == '\0') ? t : -1;
        }
        p += strcspn(p, ",");
    }
    return -1;
}

static int fresh(long long t, int64_t now_ms) {
    long long now = (long long)(now_ms / 1000);
    return t >= 0 && t >= now - HOOK_TOLERANCE_S && t <= now + HOOK_TOLERANCE_S;
}

/* Checks the request's signature by `scheme` under the rule's hex
 * `secret`; sets *id to the sender's delivery id (header, or NULL).
 * Returns NULL when it holds, else why not (never echoing the body). */
static const char *verify(tf_http_req_t *req, const char *scheme, const char *secret,
                          const char *body, size_t len, int64_t now_ms, const char **id) {
    uint8_t mac[32];
    size_t klen = strlen(secret);
    *id = NULL;
    if (strcmp(scheme, "github") == 0) {
        const char *sig = tf_http_req_header(req, "x-hub-signature-256");
        const char *parts[1] = {body};
        size_t lens[1] = {len};
        *id = tf_http_req_header(req, "x-github-delivery");
        if (sig == NULL) {
            return "missing X-Hub-Signature-256";
        }
        if (hmac_parts((const uint8_t *)secret, klen, parts, lens, 1, mac) != 0) {
            return "cannot compute the signature";
        }
        return hex_listed(sig, "sha256=", mac) ? NULL : "bad signature";
    }
    if (strcmp(scheme, "standard-webhooks") == 0) {
        const char *wid = tf_http_req_header(req, "webhook-id");
        const char *ts = tf_http_req_header(req, "webhook-timestamp");
        const char *sigs = tf_http_req_header(req, "webhook-signature");
        if (wid == NULL || ts == NULL || sigs == NULL) {
            return "missing webhook-id, webhook-timestamp or webhook-signature";
        }
        *id = wid;
        char *end = NULL;
        long long t = strtoll(ts, &end, 10);
        if (end == ts || *end != '\0' || !fresh(t, now_ms)) {
            return "stale or malformed webhook-timestamp";
        }
        uint8_t key[64];
        int kl = tf_hex_decode(secret, key, sizeof(key));
        const char *parts[5] = {wid, ".", ts, ".", body};
        size_t lens[5] = {strlen(wid), 1, strlen(ts), 1, len};
        if (kl < 0 || hmac_parts(key, (size_t)kl, parts, lens, 5, mac) != 0) {
            return "cannot compute the signature";
        }
        unsigned char want[64];
        int wl = EVP_EncodeBlock(want, mac, 32);
        for (const char *p = sigs; *p != '\0';) { /* "v1,<base64> v1,<base64>" */
            while (*p == ' ') {
                p++;
            }
            size_t n = strcspn(p, " ");
            if (n == (size_t)wl + 3 && strncmp(p, "v1,", 3) == 0 &&
                CRYPTO_memcmp(p + 3, want, (size_t)wl) == 0) {
                return NULL;
            }
            p += n;
        }
        return "bad signature";
    }
    /* taskflow and stripe: "t=<unix>,v1=<hex HMAC(secret, t + '.' + body)>" */
    int stripe = strcmp(scheme, "stripe") == 0;
    const char *sig = tf_http_req_header(req, stripe ? "stripe-signature" : "taskflow-signature");
    if (sig == NULL) {
        return stripe ? "missing Stripe-Signature" : "missing TaskFlow-Signature";
    }
    *id = stripe ? NULL : tf_http_req_header(req, "taskflow-event-id");
    long long t = header_time(sig);
    if (!fresh(t, now_ms)) {
        return "stale or missing timestamp (t=) in the signature";
    }
    char tbuf[24];
    snprintf(tbuf, sizeof(tbuf), "%lld", t);
    const char *parts[3] = {tbuf, ".", body};
    size_t lens[3] = {strlen(tbuf), 1, len};
    if (hmac_parts((const uint8_t *)secret, klen, parts, lens, 3, mac) != 0) {
        return "cannot compute the signature";
    }
    return hex_listed(sig, "v1=", mac) ? NULL : "bad signature";
}

typedef struct {
    tf_http_req_t *req;
    tf_api_loop_t *lp;
} hook_t;

static void hook_fired(void *arg, int status, const tf_uc_fired_t *runs, size_t n) {
    tf_http_req_t *req = arg;
    if (status != 0 || n != 1) {
        respond_unfired(req, status != 0 ? status : TF_EIO);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "run_id");
    tf_jbuf_str(&b, runs[0].run_id);
    tf_jbuf_key(&b, "outcome");
    tf_jbuf_str(&b, runs[0].duplicate ? "duplicate" : outcome_names[runs[0].outcome]);
    write_fired_jobs(&b, &runs[0]);
    write_error(&b, runs[0].duplicate ? NULL : runs[0].error_type, runs[0].error_message);
    tf_jbuf_obj_close(&b);
    tf_api_respond_jbuf(req, 202, &b);
}

static void hook_read(void *arg, int status, const tf_rule_t *rule) {
    hook_t *h = arg;
    tf_http_req_t *req = h->req;
    tf_api_loop_t *lp = h->lp;
    free(h);
    if (status != 0) {
        tf_api_respond_status(req, status);
        return;
    }
    if (rule == NULL || rule->hook_secret == NULL) {
        tf_http_respond_error(req, 401, "unauthorized", NO_HOOK, NULL);
        return;
    }
    json_t *trigger = json_loads(rule->trigger_json, 0, NULL);
    const char *scheme = json_string_value(json_object_get(trigger, "scheme"));
    size_t len = 0;
    const char *body = tf_http_req_body(req, &len);
    body = body != NULL ? body : "";
    const char *id = NULL;
    int64_t now = tf_uc_now(lp->uc);
    const char *why = scheme != NULL ? verify(req, scheme, rule->hook_secret, body, len, now, &id)
                                     : "the rule has no signature scheme";
    if (why != NULL && scheme != NULL && rule->hook_secret_previous != NULL &&
        now < rule->hook_previous_until_ms &&
        verify(req, scheme, rule->hook_secret_previous, body, len, now, &id) == NULL) {
        why = NULL; /* signed with the secret before the rotation, still in its grace period */
    }
    json_t *parsed = why == NULL ? json_loadb(body, len, 0, NULL) : NULL;
    if (why != NULL) {
        tf_http_respond_error(req, 401, "unauthorized", why, NULL);
    } else if (parsed == NULL) {
        tf_http_respond_error(req, 400, "invalid_json", "the body is not JSON", NULL);
    }
    if (why != NULL || parsed == NULL) {
        json_decref(trigger);
        return;
    }
    if (id == NULL && strcmp(scheme, "stripe") == 0) { /* Stripe's event id is in the body */
        id = json_string_value(json_object_get(parsed, "id"));
    }
    json_t *headers = json_object();
    static const char *const shown[] = {
        "content-type",      "user-agent", "x-github-event", "x-github-delivery", "webhook-id",
        "taskflow-event-id", NULL};
    for (size_t i = 0; shown[i] != NULL; i++) {
        const char *v = tf_http_req_header(req, shown[i]);
        if (v != NULL) {
            json_object_set_new(headers, shown[i], json_string(v));
        }
    }
    json_t *ev = json_pack("{s:o,s:o,s:s,s:s?}", "body", parsed, "headers", headers, "scheme",
                           scheme, "id", id);
    char *ev_text = ev != NULL ? json_dumps(ev, JSON_COMPACT) : NULL;
    char dedup[300];
    if (id != NULL) {
        snprintf(dedup, sizeof(dedup), "%.255s", id);
    }
    tf_uc_fire_t fire = {.tenant_id = rule->tenant_id,
                         .rules = rule,
                         .n = 1,
                         .trigger = "webhook",
                         .event_json = ev_text,
                         .tenant_json = rule->tenant_json,
                         .dedup_key = id != NULL ? dedup : NULL};
    int rc = ev_text == NULL ? TF_ENOMEM : tf_uc_rules_fire(lp->uc, &fire, hook_fired, req);
    if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
    free(ev_text);
    json_decref(ev);
    json_decref(trigger);
}

static void post_hook(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    const char *key = tf_http_req_param(req, "key");
    const tf_rule_store_t *s = lp->uc->rules;
    size_t klen = key != NULL ? strlen(key) : 0;
    if (klen != TF_RULE_HOOK_KEY_LEN || strspn(key, "0123456789abcdef") != klen) {
        tf_http_respond_error(req, 401, "unauthorized", NO_HOOK, NULL);
        return;
    }
    hook_t *h = s != NULL ? calloc(1, sizeof(*h)) : NULL;
    if (h == NULL) {
        tf_api_respond_status(req, s == NULL ? TF_EUNAVAIL : TF_ENOMEM);
        return;
    }
    h->req = req;
    h->lp = lp;
    int rc = s->hook_rule(s->ctx, key, hook_read, h);
    if (rc != 0) {
        free(h);
        tf_api_respond_status(req, rc);
    }
}

/* ---- rotating a webhook rule's secret ---- */

#define GRACE_DEFAULT_S 86400   /* the old secret stays valid a day by default */
#define GRACE_MAX_S (7 * 86400) /* and at most a week */

typedef struct {
    tf_http_req_t *req;
    char secret[TF_RULE_HOOK_SECRET_LEN + 1];
    int64_t until_ms;
} rotate_t;

static void secret_rotated(void *arg, int status) {
    rotate_t *r = arg;
    if (status == TF_ENOTFOUND) {
        tf_http_respond_error(r->req, 404, "not_found", NO_RULE, NULL);
    } else if (status == TF_ESTATE) {
        tf_http_respond_error(r->req, 409, "conflict", "only a webhook rule has a secret", NULL);
    } else if (status != 0) {
        tf_api_respond_status(r->req, status);
    } else {
        tf_jbuf_t b;
        tf_jbuf_init(&b);
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "hook_secret");
        tf_jbuf_str(&b, r->secret);
        tf_jbuf_key(&b, "previous_secret_valid_until");
        int rc = tf_api_time(&b, r->until_ms);
        tf_jbuf_obj_close(&b);
        tf_api_respond_built(r->req, 200, &b, rc);
    }
    free(r);
}

/* POST /v1/rules/{id}/rotate-secret {"grace_seconds"?}: a new secret,
 * shown once; the old one keeps working for the grace period. */
static void rotate_secret(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    char id[TF_ID_LEN];
    if (tf_api_path_id(req, "id", NO_RULE, id) != 0) {
        return;
    }
    int answered = 0;
    json_t *body = tf_api_body(req, 0, &answered);
    if (answered) {
        return;
    }
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value) {
        if (strcmp(key, "grace_seconds") != 0) {
            tf_api_invalid(req, key, "unknown field (known: grace_seconds)");
            json_decref(body);
            return;
        }
    }
    json_t *grace = json_object_get(body, "grace_seconds");
    json_int_t seconds =
        grace != NULL && json_is_integer(grace) ? json_integer_value(grace) : GRACE_DEFAULT_S;
    int bad = grace != NULL && (!json_is_integer(grace) || seconds < 0 || seconds > GRACE_MAX_S);
    json_decref(body);
    if (bad) {
        tf_api_invalid(req, "grace_seconds",
                       "grace_seconds must be an integer from 0 to 604800 (a week)");
        return;
    }
    const tf_rule_store_t *s = lp->uc->rules;
    rotate_t *r = s != NULL ? calloc(1, sizeof(*r)) : NULL;
    uint8_t random[TF_RULE_HOOK_SECRET_LEN / 2];
    if (r == NULL || RAND_bytes(random, sizeof(random)) != 1) {
        free(r);
        tf_api_respond_status(req, s == NULL ? TF_EUNAVAIL : TF_ENOMEM);
        return;
    }
    r->req = req;
    tf_hex_encode(random, sizeof(random), r->secret);
    int64_t now = tf_uc_now(lp->uc);
    r->until_ms = now + (int64_t)seconds * 1000;
    int rc = s->rotate_secret(s->ctx, who->tenant_id, id, r->secret, r->until_ms, now,
                              secret_rotated, r);
    if (rc != 0) {
        free(r);
        tf_api_respond_status(req, rc);
    }
}

/* ---- the operator: every tenant's rules, and the platform's ---- */

static void admin_listed(void *arg, int status, const tf_rule_t *list, size_t n) {
    tf_http_req_t *req = arg;
    int limit = tf_api_limit(req); /* valid: it was read before */
    if (status != 0) {
        tf_api_respond_status(req, status);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "rules");
    tf_jbuf_arr_open(&b);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const tf_rule_t *r = &list[i];
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "tenant_id"); /* null: a platform rule */
        tf_jbuf_str(&b, r->tenant_id);
        rc = write_fields(&b, r, 1);
        tf_jbuf_key(&b, "last_run");
        if (r->last_outcome != NULL) {
            tf_jbuf_obj_open(&b);
            tf_jbuf_key(&b, "outcome");
            tf_jbuf_str(&b, r->last_outcome);
            tf_jbuf_key(&b, "at");
            rc |= tf_api_time(&b, r->last_run_ms);
            tf_jbuf_obj_close(&b);
        } else {
            tf_jbuf_null(&b);
        }
        tf_jbuf_obj_close(&b);
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_key(&b, "next_cursor");
    tf_jbuf_str(&b, n > 0 && n == (size_t)limit ? list[n - 1].id : NULL);
    tf_jbuf_obj_close(&b);
    tf_api_respond_built(req, 200, &b, rc);
}

static void admin_list_rules(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    const tf_rule_store_t *s = lp->uc->rules;
    int limit = tf_api_limit(req);
    if (limit < 0) {
        return;
    }
    const char *cursor = tf_http_req_query(req, "cursor");
    tf_uuid_t parsed;
    char after[TF_ID_LEN];
    if (cursor != NULL && tf_uuid_parse(cursor, &parsed) != 0) {
        tf_api_invalid(req, "cursor", "cursor must be the next_cursor of the previous page");
        return;
    }
    if (cursor != NULL) {
        tf_uuid_format(&parsed, after);
    }
    int rc = s != NULL
                 ? s->admin_list(s->ctx, cursor != NULL ? after : NULL, limit, admin_listed, req)
                 : TF_EUNAVAIL;
    if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
}

const tf_api_route_t tf_api_rule_routes[] = {
    {"POST", "/v1/rules", TF_ROUTE_TENANT, post_rule},
    {"GET", "/v1/rules", TF_ROUTE_TENANT, list_rules},
    {"PUT", "/v1/rules/{id}", TF_ROUTE_TENANT, put_rule},
    {"GET", "/v1/rules/{id}", TF_ROUTE_TENANT, get_rule},
    {"DELETE", "/v1/rules/{id}", TF_ROUTE_TENANT, delete_rule},
    {"POST", "/v1/rules/{id}/enable", TF_ROUTE_TENANT, enable_rule},
    {"POST", "/v1/rules/{id}/disable", TF_ROUTE_TENANT, disable_rule},
    {"POST", "/v1/rules/{id}/test", TF_ROUTE_TENANT, test_rule},
    {"GET", "/v1/rules/{id}/runs", TF_ROUTE_TENANT, list_runs},
    {"POST", "/v1/rules/{id}/rotate-secret", TF_ROUTE_TENANT, rotate_secret},
    {"POST", "/v1/events", TF_ROUTE_TENANT, post_event},
    {"POST", "/v1/hooks/{key}", TF_ROUTE_PUBLIC, post_hook},
    /* the operator's: platform rules, evaluated for every tenant */
    {"POST", "/v1/admin/rules", TF_ROUTE_ADMIN, post_rule},
    {"GET", "/v1/admin/rules", TF_ROUTE_ADMIN, admin_list_rules},
    {"PUT", "/v1/admin/rules/{id}", TF_ROUTE_ADMIN, put_rule},
    {"GET", "/v1/admin/rules/{id}", TF_ROUTE_ADMIN, get_rule},
    {"DELETE", "/v1/admin/rules/{id}", TF_ROUTE_ADMIN, delete_rule},
    {"POST", "/v1/admin/rules/{id}/enable", TF_ROUTE_ADMIN, enable_rule},
    {"POST", "/v1/admin/rules/{id}/disable", TF_ROUTE_ADMIN, disable_rule},
    {"GET", "/v1/admin/rules/{id}/runs", TF_ROUTE_ADMIN, list_runs},
    {"POST", "/v1/admin/rules/{id}/test", TF_ROUTE_ADMIN, test_rule},
};
const size_t tf_api_rule_routes_count = sizeof(tf_api_rule_routes) / sizeof(tf_api_rule_routes[0]);
