/*
 * admin.c - the operator's API (docs/openapi.json): tenants, their API
 * keys, queues and per-tenant queue caps under /v1/admin/.
 *
 * Every route takes the admin token only (the route table says so), then
 * checks the whole request (path, query, body) before it calls its use
 * case (adapters/usecases/tenants.h), so a bad request changes nothing, and
 * answers from the use case's callback, so a write is never reported
 * before it was committed.  Bodies are checked against a table of field
 * rules per operation; an unknown field is refused by name.
 *
 * Loop thread of the request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "adapters/api/cursor.h"
#include "adapters/jobspec/job_input.h"
#include "adapters/api/routes.h"
#include "adapters/usecases/tenants.h"
#include "engine/error.h"

/* Elements of a constant table, and the table with its count as two
 * arguments. */
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define TABLE(a) (a), COUNT(a)

/* The cursor scope of the tenant listing (cursor.h). */
static const char TENANT_SCOPE[] = "tenants";

/* ---- request bodies ---- */

typedef enum { F_TEXT, F_INT, F_INT_OR_NULL, F_OBJECT, F_BOOL } field_kind_t;

typedef struct {
    const char *name;
    field_kind_t kind;
    long long min, max; /* bytes of F_TEXT, value of F_INT and F_INT_OR_NULL */
    int required;
} field_rule_t;

#define MAX_RUNNING_RULE                                                                           \
    { "max_running", F_INT_OR_NULL, 0, 2147483647, 0 }

static const field_rule_t TENANT_CREATE_RULES[] = {
    {"name", F_TEXT, 1, 128, 1},       {"plan", F_TEXT, 1, 128, 0},
    {"weight", F_INT, 1, 1000, 0},     MAX_RUNNING_RULE,
    {"attributes", F_OBJECT, 0, 0, 0},
};
static const field_rule_t TENANT_PATCH_RULES[] = {
    {"name", F_TEXT, 1, 128, 0},       {"plan", F_TEXT, 1, 128, 0},
    {"weight", F_INT, 1, 1000, 0},     MAX_RUNNING_RULE,
    {"attributes", F_OBJECT, 0, 0, 0},
};
static const field_rule_t KEY_CREATE_RULES[] = {
    {"name", F_TEXT, 1, 128, 0},
};
static const field_rule_t QUEUE_PUT_RULES[] = {
    MAX_RUNNING_RULE,
    {"paused", F_BOOL, 0, 0, 0},
};
static const field_rule_t TENANT_QUEUE_PUT_RULES[] = {
    {"max_running", F_INT_OR_NULL, 0, 2147483647, 1},
};

/* Checks one value against its rule; writes why not into `msg`. */
static int value_ok(const field_rule_t *r, const json_t *v, char *msg, size_t len) {
    switch (r->kind) {
    case F_TEXT:
        if (json_is_string(v) && (long long)json_string_length(v) >= r->min &&
            (long long)json_string_length(v) <= r->max) {
            return 1;
        }
        snprintf(msg, len, "%s must be a string of %lld to %lld bytes", r->name, r->min, r->max);
        return 0;
    case F_INT:
    case F_INT_OR_NULL:
        if ((r->kind == F_INT_OR_NULL && json_is_null(v)) ||
            (json_is_integer(v) && json_integer_value(v) >= r->min &&
             json_integer_value(v) <= r->max)) {
            return 1;
        }
        snprintf(msg, len, "%s must be an integer from %lld to %lld%s", r->name, r->min, r->max,
                 r->kind == F_INT_OR_NULL ? " or null" : "");
        return 0;
    case F_OBJECT:
        snprintf(msg, len, "%s must be a JSON object", r->name);
        return json_is_object(v);
    case F_BOOL:
        snprintf(msg, len, "%s must be true or false", r->name);
        return json_is_boolean(v);
    }
    return 0;
}

/* Checks `body` (an object, or NULL for an absent optional body) against
 * `rules`.  Returns 0, or answers 422 naming the field and returns -1. */
static int check_body(tf_http_req_t *req, json_t *body, const field_rule_t *rules, size_t nrules) {
    char msg[160];
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value) {
        const field_rule_t *rule = NULL;
        for (size_t i = 0; i < nrules && rule == NULL; i++) {
            rule = strcmp(rules[i].name, key) == 0 ? &rules[i] : NULL;
        }
        if (rule == NULL) {
            /* A long name is left to details.field (no cut UTF-8 here). */
            snprintf(msg, sizeof(msg), "unknown field%s%s", strlen(key) <= 64 ? " " : "",
                     strlen(key) <= 64 ? key : "");
        }
        if (rule == NULL || !value_ok(rule, value, msg, sizeof(msg))) {
            tf_api_invalid(req, key, msg);
            return -1;
        }
    }
    for (size_t i = 0; i < nrules; i++) {
        if (rules[i].required && json_object_get(body, rules[i].name) == NULL) {
            snprintf(msg, sizeof(msg), "%s is required", rules[i].name);
            tf_api_invalid(req, rules[i].name, msg);
            return -1;
        }
    }
    return 0;
}

/* Reads the body and checks it against `rules`.  Returns 0 with *out (NULL
 * for an absent optional body; caller owns it), or -1 when the request was
 * answered (415, 400 or 422). */
static int read_body(tf_http_req_t *req, int required, const field_rule_t *rules, size_t nrules,
                     json_t **out) {
    int answered = 0;
    json_t *body = tf_api_body(req, required, &answered);
    if (answered) {
        return -1;
    }
    if (check_body(req, body, rules, nrules) != 0) {
        json_decref(body);
        return -1;
    }
    *out = body;
    return 0;
}

/* An integer member (absent or null: `fallback`). */
static int64_t int_member(const json_t *body, const char *key, int64_t fallback) {
    const json_t *v = json_object_get(body, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : fallback;
}

/* ---- answers ---- */

static void key_cap(tf_jbuf_t *b, int64_t max_running) {
    tf_jbuf_key(b, "max_running");
    if (max_running == TF_NO_CAP) {
        tf_jbuf_null(b);
    } else {
        tf_jbuf_int(b, max_running);
    }
}

static int key_time(tf_jbuf_t *b, const char *key, int64_t ms) {
    tf_jbuf_key(b, key);
    return tf_api_time(b, ms);
}

static int write_tenant(tf_jbuf_t *b, const tf_tenant_t *t) {
    tf_jbuf_obj_open(b);
    tf_jbuf_key(b, "id");
    tf_jbuf_str(b, t->id);
    tf_jbuf_key(b, "name");
    tf_jbuf_str(b, t->name);
    tf_jbuf_key(b, "plan");
    tf_jbuf_str(b, t->plan);
    tf_jbuf_key(b, "weight");
    tf_jbuf_int(b, t->weight);
    key_cap(b, t->max_running);
    tf_jbuf_key(b, "attributes");
    tf_jbuf_raw(b, t->attributes != NULL ? t->attributes : "{}");
    int rc = key_time(b, "created_at", t->created_at_ms);
    rc |= key_time(b, "updated_at", t->updated_at_ms);
    tf_jbuf_obj_close(b);
    return rc != 0 ? TF_EIO : 0;
}

static int write_queue_members(tf_jbuf_t *b, const tf_queue_t *q) {
    tf_jbuf_key(b, "name");
    tf_jbuf_str(b, q->name);
    key_cap(b, q->max_running);
    tf_jbuf_key(b, "paused");
    tf_jbuf_bool(b, q->paused);
    int rc = key_time(b, "created_at", q->created_at_ms);
    rc |= key_time(b, "updated_at", q->updated_at_ms);
    return rc != 0 ? TF_EIO : 0;
}

static int write_status(tf_jbuf_t *b, const tf_queue_status_t *s) {
    tf_jbuf_obj_open(b);
    int rc = write_queue_members(b, &s->queue);
    tf_jbuf_key(b, "counts");
    tf_jbuf_obj_open(b);
    for (int state = 0; state < TF_JOB_STATE_COUNT; state++) {
        tf_jbuf_key(b, tf_job_state_name((tf_job_state_t)state));
        tf_jbuf_int(b, s->counts[state]);
    }
    tf_jbuf_obj_close(b);
    tf_jbuf_key(b, "running_by_tenant");
    tf_jbuf_raw(b, s->running_by_tenant != NULL ? s->running_by_tenant : "{}");
    tf_jbuf_key(b, "oldest_ready_age_seconds");
    if (s->has_ready) {
        char age[48];
        snprintf(age, sizeof(age), "%.3f", s->oldest_ready_age_s);
        tf_jbuf_raw(b, age);
    } else {
        tf_jbuf_null(b);
    }
    tf_jbuf_obj_close(b);
    return rc;
}

static void not_found(tf_http_req_t *req, const char *what) {
    tf_http_respond_error(req, 404, "not_found", what, NULL);
}

/* Reads the {name} path parameter; answers 422 and returns NULL when it is
 * not a valid queue name. */
static const char *queue_param(tf_http_req_t *req) {
    const char *name = tf_http_req_param(req, "name");
    if (name == NULL || !tf_queue_name_valid(name)) {
        tf_api_invalid(req, "name", "a queue name is 1 to 128 bytes of A-Z a-z 0-9 _ . : -");
        return NULL;
    }
    return name;
}

/* The JSON text of the "attributes" member into *out (NULL when absent).
 * Returns 0, or answers 500 and returns -1. */
static int attributes_param(tf_http_req_t *req, const json_t *body, char **out) {
    const json_t *attributes = json_object_get(body, "attributes");
    *out = attributes != NULL ? json_dumps(attributes, JSON_COMPACT) : NULL;
    if (attributes != NULL && *out == NULL) {
        tf_api_respond_status(req, TF_ENOMEM);
        return -1;
    }
    return 0;
}

/* ---- tenants ---- */

typedef struct {
    tf_http_req_t *req;
    int status; /* the answer on success */
} answer_t;

static answer_t *answer_new(tf_http_req_t *req, int status) {
    answer_t *a = malloc(sizeof(*a));
    if (a == NULL) {
        tf_api_respond_status(req, TF_ENOMEM);
        return NULL;
    }
    *a = (answer_t){.req = req, .status = status};
    return a;
}

/* Starts a use case with answer `a`; answers itself when it cannot start. */
static void started(answer_t *a, int rc) {
    if (rc != 0) {
        tf_api_respond_status(a->req, rc);
        free(a);
    }
}

/* One tenant: `status` with it, 404 without, 409 when its name is taken
 * (the only unique value admin writes). */
static void tenant_done(void *arg, int status, const tf_tenant_t *tenant) {
    answer_t *a = arg;
    if (status == TF_ECONFLICT) {
        tf_http_respond_error(a->req, 409, "conflict", "another tenant has this name",
                              "{\"field\":\"name\"}");
    } else if (status != 0) {
        tf_api_respond_status(a->req, status);
    } else if (tenant == NULL) {
        not_found(a->req, "no such tenant");
    } else {
        tf_jbuf_t b;
        tf_jbuf_init(&b);
        tf_api_respond_built(a->req, a->status, &b, write_tenant(&b, tenant));
    }
    free(a);
}

static void create_tenant(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    json_t *body = NULL;
    char *attributes = NULL;
    uint8_t secret[32];
    if (read_body(req, 1, TABLE(TENANT_CREATE_RULES), &body) != 0) {
        return;
    }
    if (attributes_param(req, body, &attributes) != 0) {
        goto done;
    }
    if (RAND_bytes(secret, sizeof(secret)) != 1) {
        tf_http_respond_error(req, 500, "internal", "no random bytes for the signing secret", NULL);
        goto done;
    }
    tf_uc_tenant_spec_t spec = {
        .name = json_string_value(json_object_get(body, "name")),
        .plan = json_string_value(json_object_get(body, "plan")),
        .weight = (int)int_member(body, "weight", 1),
        .max_running = int_member(body, "max_running", TF_NO_CAP),
        .attributes = attributes,
        .signing_secret = secret,
        .signing_secret_len = sizeof(secret),
    };
    answer_t *a = answer_new(req, 201);
    if (a != NULL) {
        started(a, tf_uc_tenant_create(lp->uc, &spec, tenant_done, a));
    }
done:
    OPENSSL_cleanse(secret, sizeof(secret));
    free(attributes);
    json_decref(body);
}

static void get_tenant(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    char id[TF_ID_LEN];
    answer_t *a = NULL;
    if (tf_api_path_id(req, "id", "no such tenant", id) == 0 && (a = answer_new(req, 200))) {
        started(a, tf_uc_tenant_get(lp->uc, id, tenant_done, a));
    }
}

static void patch_tenant(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    char id[TF_ID_LEN];
    json_t *body = NULL;
    char *attributes = NULL;
    if (tf_api_path_id(req, "id", "no such tenant", id) != 0 ||
        read_body(req, 1, TABLE(TENANT_PATCH_RULES), &body) != 0) {
        return;
    }
    if (attributes_param(req, body, &attributes) == 0) {
        tf_tenant_patch_t patch = {
            .id = id,
            .name = json_string_value(json_object_get(body, "name")),
            .plan = json_string_value(json_object_get(body, "plan")),
            .weight = (int)int_member(body, "weight", 0),
            .set_max_running = json_object_get(body, "max_running") != NULL,
            .max_running = int_member(body, "max_running", TF_NO_CAP),
            .attributes = attributes,
        };
        answer_t *a = answer_new(req, 200);
        if (a != NULL) {
            started(a, tf_uc_tenant_patch(lp->uc, &patch, tenant_done, a));
        }
    }
    free(attributes);
    json_decref(body);
}

typedef struct {
    tf_http_req_t *req;
    const tf_api_env_t *env;
    const tf_clock_t *clock;
    int limit;
} list_t;

static void tenants_done(void *arg, int status, const tf_tenant_t *tenants, size_t n) {
    list_t *l = arg;
    if (status != 0) {
        tf_api_respond_status(l->req, status);
        free(l);
        return;
    }
    size_t shown = n > (size_t)l->limit ? (size_t)l->limit : n;
    int rc = 0;
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "tenants");
    tf_jbuf_arr_open(&b);
    for (size_t i = 0; i < shown && rc == 0; i++) {
        rc = write_tenant(&b, &tenants[i]);
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_key(&b, "next_cursor");
    tf_uuid_t last;
    if (n > shown && rc == 0 && (rc = tf_uuid_parse(tenants[shown - 1].id, &last)) == 0) {
        char cursor[TF_CURSOR_TEXT_LEN];
        tf_cursor_encode(l->env->cursor_key, TENANT_SCOPE, &last, tf_clock_now(l->clock), cursor);
        tf_jbuf_str(&b, cursor);
    } else {
        tf_jbuf_null(&b);
    }
    tf_jbuf_obj_close(&b);
    tf_api_respond_built(l->req, 200, &b, rc);
    free(l);
}

static void list_tenants(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    int limit = tf_api_limit(req);
    if (limit < 0) {
        return;
    }
    tf_uuid_t after = {{0}}; /* the first page starts after the nil UUID */
    const char *cursor = tf_http_req_query(req, "cursor");
    const char *why = NULL;
    if (cursor != NULL && tf_cursor_decode(lp->env->cursor_key, TENANT_SCOPE, cursor,
                                           tf_clock_now(lp->uc->clock), &after, &why) != 0) {
        tf_api_invalid(req, "cursor", why);
        return;
    }
    char after_text[TF_ID_LEN];
    tf_uuid_format(&after, after_text);
    list_t *l = malloc(sizeof(*l));
    if (l == NULL) {
        tf_api_respond_status(req, TF_ENOMEM);
        return;
    }
    *l = (list_t){.req = req, .env = lp->env, .clock = lp->uc->clock, .limit = limit};
    /* One more says whether a page follows. */
    int rc = tf_uc_tenant_list(lp->uc, after_text, limit + 1, tenants_done, l);
    if (rc != 0) {
        tf_api_respond_status(req, rc);
        free(l);
    }
}

/* ---- API keys ---- */

typedef struct {
    tf_http_req_t *req;
    const tf_api_env_t *env;
    char token[64]; /* the new key's token, shown once */
} key_op_t;

static void key_op_free(key_op_t *op) {
    OPENSSL_cleanse(op->token, sizeof(op->token));
    free(op);
}

static void key_done(void *arg, int status, const tf_api_key_t *key) {
    key_op_t *op = arg;
    if (status != 0) {
        tf_api_respond_status(op->req, status);
    } else if (key == NULL) {
        not_found(op->req, "no such tenant");
    } else {
        tf_jbuf_t b;
        tf_jbuf_init(&b);
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "token");
        tf_jbuf_str(&b, op->token);
        tf_jbuf_key(&b, "id");
        tf_jbuf_str(&b, key->id);
        tf_jbuf_key(&b, "tenant_id");
        tf_jbuf_str(&b, key->tenant_id);
        int rc = key_time(&b, "created_at", key->created_at_ms);
        tf_jbuf_obj_close(&b);
        tf_api_respond_built(op->req, 201, &b, rc);
    }
    key_op_free(op);
}

/* Only the token's SHA-256 is stored, with its first characters ("tf_" and
 * 8 more) as a prefix people can recognise it by. */
static void create_key(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    char tenant[TF_ID_LEN], prefix[12];
    json_t *body = NULL;
    if (tf_api_path_id(req, "id", "no such tenant", tenant) != 0 ||
        read_body(req, 0, TABLE(KEY_CREATE_RULES), &body) != 0) {
        return;
    }
    key_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        tf_api_respond_status(req, TF_ENOMEM);
    } else if (tf_token_generate("tf_", op->token, sizeof(op->token)) != 0) {
        tf_http_respond_error(req, 500, "internal", "no random bytes for the token", NULL);
        key_op_free(op);
    } else {
        op->req = req;
        op->env = lp->env;
        uint8_t hash[TF_TOKEN_HASH_LEN];
        tf_token_hash(op->token, strlen(op->token), hash);
        snprintf(prefix, sizeof(prefix), "%.11s", op->token);
        int rc = tf_uc_key_create(lp->uc, tenant, hash, prefix,
                                  json_string_value(json_object_get(body, "name")), key_done, op);
        if (rc != 0) {
            tf_api_respond_status(req, rc);
            key_op_free(op);
        }
    }
    json_decref(body);
}

typedef struct {
    tf_http_req_t *req;
    const tf_api_env_t *env;
} revoke_t;

/* Revoked: every loop of this process forgets its cached keys at once (other
 * nodes within TF_AUTH_CACHE_TTL_MS). */
static void revoke_done(void *arg, int status) {
    revoke_t *r = arg;
    if (status == TF_ENOTFOUND) {
        not_found(r->req, "no such API key, or it was already revoked");
    } else if (status != 0) {
        tf_api_respond_status(r->req, status);
    } else {
        tf_auth_invalidate(&r->env->auth);
        tf_http_respond(r->req, 204, NULL, NULL, 0);
    }
    free(r);
}

static void revoke_key(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    char tenant[TF_ID_LEN], key_id[TF_ID_LEN];
    if (tf_api_path_id(req, "id", "no such tenant", tenant) != 0 ||
        tf_api_path_id(req, "key_id", "no such API key", key_id) != 0) {
        return;
    }
    revoke_t *r = malloc(sizeof(*r));
    if (r == NULL) {
        tf_api_respond_status(req, TF_ENOMEM);
        return;
    }
    *r = (revoke_t){.req = req, .env = lp->env};
    int rc = tf_uc_key_revoke(lp->uc, tenant, key_id, revoke_done, r);
    if (rc != 0) {
        tf_api_respond_status(req, rc);
        free(r);
    }
}

/* ---- queues ---- */

static void queue_done(void *arg, int status, const tf_queue_t *q) {
    answer_t *a = arg;
    if (status != 0) {
        tf_api_respond_status(a->req, status);
    } else {
        tf_jbuf_t b;
        tf_jbuf_init(&b);
        tf_jbuf_obj_open(&b);
        int rc = write_queue_members(&b, q);
        tf_jbuf_obj_close(&b);
        tf_api_respond_built(a->req, 200, &b, rc);
    }
    free(a);
}

static void put_queue(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    json_t *body = NULL;
    const char *name = queue_param(req);
    if (name == NULL || read_body(req, 1, TABLE(QUEUE_PUT_RULES), &body) != 0) {
        return;
    }
    const json_t *paused = json_object_get(body, "paused");
    answer_t *a = answer_new(req, 200);
    if (a != NULL) {
        started(a, tf_uc_queue_put(lp->uc, name, json_object_get(body, "max_running") != NULL,
                                   int_member(body, "max_running", TF_NO_CAP),
                                   paused == NULL ? -1 : json_is_true(paused), queue_done, a));
    }
    json_decref(body);
}

/* One status (`a->status` 200 and n 1) or the list {"queues": [...]}. */
static void status_done(void *arg, int status, const tf_queue_status_t *queues, size_t n) {
    answer_t *a = arg;
    int one = a->status == 1;
    if (status != 0 || (one && n != 1)) {
        tf_api_respond_status(a->req, status != 0 ? status : TF_EIO);
        free(a);
        return;
    }
    tf_jbuf_t b;
    int rc = 0;
    tf_jbuf_init(&b);
    if (one) {
        rc = write_status(&b, &queues[0]);
    } else {
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "queues");
        tf_jbuf_arr_open(&b);
        for (size_t i = 0; i < n && rc == 0; i++) {
            rc = write_status(&b, &queues[i]);
        }
        tf_jbuf_arr_close(&b);
        tf_jbuf_obj_close(&b);
    }
    tf_api_respond_built(a->req, 200, &b, rc);
    free(a);
}

static void get_queue(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    const char *name = queue_param(req);
    answer_t *a = NULL;
    if (name != NULL && (a = answer_new(req, 1)) != NULL) {
        started(a, tf_uc_queue_status(lp->uc, name, status_done, a));
    }
}

static void list_queues(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    answer_t *a = answer_new(req, 0);
    if (a != NULL) {
        started(a, tf_uc_queue_status(lp->uc, NULL, status_done, a));
    }
}

static void tenant_queue_done(void *arg, int status, const tf_tenant_queue_t *row) {
    answer_t *a = arg;
    if (status != 0) {
        tf_api_respond_status(a->req, status);
    } else if (row == NULL) {
        not_found(a->req, "no such tenant");
    } else {
        tf_jbuf_t b;
        tf_jbuf_init(&b);
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "tenant_id");
        tf_jbuf_str(&b, row->tenant_id);
        tf_jbuf_key(&b, "queue");
        tf_jbuf_str(&b, row->queue);
        key_cap(&b, row->max_running);
        tf_jbuf_obj_close(&b);
        tf_api_respond_jbuf(a->req, 200, &b);
    }
    free(a);
}

static void put_tenant_queue(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    char tenant[TF_ID_LEN];
    json_t *body = NULL;
    const char *name = NULL;
    if (tf_api_path_id(req, "id", "no such tenant", tenant) != 0 ||
        (name = queue_param(req)) == NULL ||
        read_body(req, 1, TABLE(TENANT_QUEUE_PUT_RULES), &body) != 0) {
        return;
    }
    answer_t *a = answer_new(req, 200);
    if (a != NULL) {
        started(a, tf_uc_tenant_queue_put(lp->uc, tenant, name,
                                          int_member(body, "max_running", TF_NO_CAP),
                                          tenant_queue_done, a));
    }
    json_decref(body);
}

/* ---- routes ---- */

const tf_api_route_t tf_api_admin_routes[] = {
    {"POST", "/v1/admin/tenants", TF_ROUTE_ADMIN, create_tenant},
    {"GET", "/v1/admin/tenants", TF_ROUTE_ADMIN, list_tenants},
    {"GET", "/v1/admin/tenants/{id}", TF_ROUTE_ADMIN, get_tenant},
    {"PATCH", "/v1/admin/tenants/{id}", TF_ROUTE_ADMIN, patch_tenant},
    {"POST", "/v1/admin/tenants/{id}/keys", TF_ROUTE_ADMIN, create_key},
    {"DELETE", "/v1/admin/tenants/{id}/keys/{key_id}", TF_ROUTE_ADMIN, revoke_key},
    {"PUT", "/v1/admin/tenants/{id}/queues/{name}", TF_ROUTE_ADMIN, put_tenant_queue},
    {"GET", "/v1/admin/queues", TF_ROUTE_ADMIN, list_queues},
    {"GET", "/v1/admin/queues/{name}", TF_ROUTE_ADMIN, get_queue},
    {"PUT", "/v1/admin/queues/{name}", TF_ROUTE_ADMIN, put_queue},
};
const size_t tf_api_admin_routes_count = COUNT(tf_api_admin_routes);
