/*
 * jobs_read.c - the read side of the jobs API (see jobs.h): one job, the
 * filtered job listing, a job's attempts and events, and the dead letter.
 *
 * Every route checks the whole request before it calls its use case
 * (adapters/usecases/read.h), which is one round trip scoped to the
 * caller's tenant: another tenant's job is simply not found (404), and so
 * is an id that is not a UUID.
 *
 * Listings are keyset pages over the job id (read.h explains the ranges).
 * Cursors are signed (cursor.h) with a scope of the tenant and the
 * canonical filters, so a cursor is refused (422) in any other query.
 * Unknown or repeated query parameters of a listing are refused with 422,
 * so that a misspelt filter never silently widens the answer.
 *
 * Loop thread of the request; the per-request state of a listing lives in
 * one heap-allocated page_t that the use case's callback frees.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/api/cursor.h"
#include "adapters/jobspec/job_input.h"
#include "adapters/api/job_json.h"
#include "adapters/api/jobs.h"
#include "adapters/usecases/read.h"
#include "engine/error.h"
#include "engine/job.h"
#include "engine/timefmt.h"
#include "engine/utf8.h"

#define SCOPE_MAX 1024
#define CORRELATION_MAX 255

static void not_found(tf_http_req_t *req) {
    tf_http_respond_error(req, 404, "not_found", "no such job", NULL);
}

/* ---- GET /v1/jobs/{id} ---- */

static void job_read(void *arg, int status, const tf_job_t *job, const char *request_hash) {
    (void)request_hash;
    tf_http_req_t *req = arg;
    if (status != 0) {
        tf_api_respond_status(req, status);
    } else if (job == NULL) {
        not_found(req);
    } else {
        tf_jbuf_t b;
        tf_jbuf_init(&b);
        tf_api_respond_built(req, 200, &b, tf_job_json_write(&b, job));
    }
}

void tf__api_get_job(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    char id[TF_ID_LEN];
    if (tf_api_path_id(req, "id", "no such job", id) != 0) {
        return;
    }
    int rc = tf_uc_get_job(lp->uc, who->tenant_id, id, job_read, req);
    if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
}

/* ---- GET /v1/jobs/{id}/attempts and /events ---- */

/* Answers {"<key>": [...]}: one element per item, written by `write`; not
 * found is 404. */
static void answer_history(tf_http_req_t *req, int status, int found, const char *key,
                           const void *items, size_t size, size_t n,
                           int (*write)(tf_jbuf_t *b, const void *item)) {
    if (status != 0) {
        tf_api_respond_status(req, status);
        return;
    }
    if (!found) {
        not_found(req);
        return;
    }
    tf_jbuf_t b;
    int rc = 0;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, key);
    tf_jbuf_arr_open(&b);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = write(&b, (const char *)items + i * size);
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_obj_close(&b);
    tf_api_respond_built(req, 200, &b, rc);
}

static int write_attempt(tf_jbuf_t *b, const void *item) {
    return tf_job_json_attempt(b, item);
}

static int write_transition(tf_jbuf_t *b, const void *item) {
    return tf_job_json_transition(b, item);
}

static void attempts_read(void *arg, int status, int found, const tf_attempt_t *attempts,
                          size_t n) {
    answer_history(arg, status, found, "attempts", attempts, sizeof(*attempts), n, write_attempt);
}

static void transitions_read(void *arg, int status, int found, const tf_transition_t *list,
                             size_t n) {
    answer_history(arg, status, found, "events", list, sizeof(*list), n, write_transition);
}

void tf__api_job_attempts(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    char id[TF_ID_LEN];
    if (tf_api_path_id(req, "id", "no such job", id) != 0) {
        return;
    }
    int rc = tf_uc_get_attempts(lp->uc, who->tenant_id, id, attempts_read, req);
    if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
}

void tf__api_job_events(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    char id[TF_ID_LEN];
    if (tf_api_path_id(req, "id", "no such job", id) != 0) {
        return;
    }
    int rc = tf_uc_get_transitions(lp->uc, who->tenant_id, id, transitions_read, req);
    if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
}

/* ---- listings: query parameters ---- */

/* The filters of GET /v1/jobs and GET /v1/dead-letter.  Strings point into
 * the request (valid until it is answered). */
typedef struct {
    int dead_letter; /* which route: only queue, limit and cursor exist there */
    tf_job_state_set_t states;
    const char *queue, *type, *correlation_id, *cursor, *limit;
    int has_rule, has_after, has_before;
    tf_uuid_t rule_id;
    int64_t after_ms, before_ms;
    const char *bad_field; /* the first problem found */
    char message[200];
} filters_t;

/* Notes the first problem ("<field> <what>"); returns 1 to stop reading. */
static int refuse(filters_t *f, const char *field, const char *what) {
    f->bad_field = field;
    snprintf(f->message, sizeof(f->message), "%.64s %s", field, what);
    return 1;
}

/* state=A,B (and repeated): each name must be one of the seven. */
static int read_states(filters_t *f, const char *value) {
    for (const char *p = value;; p++) {
        size_t len = strcspn(p, ",");
        char name[16];
        tf_job_state_t state;
        if (len > 0 && len < sizeof(name)) {
            memcpy(name, p, len);
            name[len] = '\0';
        }
        if (len == 0 || len >= sizeof(name) || tf_job_state_parse(name, &state) != 0) {
            return refuse(f, "state",
                          "must name job states: PENDING, SCHEDULED, RUNNING, "
                          "SUCCEEDED, FAILED, DEAD or CANCELLED");
        }
        f->states |= TF_JOB_STATE_BIT(state);
        p += len;
        if (*p == '\0') {
            return 0;
        }
    }
}

/* A text filter of 1..max bytes of UTF-8, given at most once. */
static int read_text(filters_t *f, const char *name, const char *value, size_t max,
                     const char **out) {
    char what[48];
    snprintf(what, sizeof(what), "must be 1 to %zu bytes of UTF-8", max);
    if (*out != NULL) {
        return refuse(f, name, "may be given only once");
    }
    size_t len = strlen(value);
    if (len == 0 || len > max || !tf_utf8_valid(value, len)) {
        return refuse(f, name, what);
    }
    *out = value;
    return 0;
}

static int read_time(filters_t *f, const char *name, const char *value, int *has, int64_t *ms) {
    if (*has || tf_time_parse(value, strlen(value), ms) != 0) {
        return refuse(f, name,
                      *has ? "may be given only once"
                           : "must be an RFC 3339 time like 2026-11-26T07:00:00.000Z");
    }
    *has = 1;
    return 0;
}

/* The filters only GET /v1/jobs has; -1 for an unknown name. */
static int read_job_filter(filters_t *f, const char *name, const char *value) {
    if (strcmp(name, "state") == 0) {
        return read_states(f, value);
    }
    if (strcmp(name, "type") == 0) {
        return read_text(f, name, value, TF_JOB_NAME_MAX, &f->type);
    }
    if (strcmp(name, "correlation_id") == 0) {
        return read_text(f, name, value, CORRELATION_MAX, &f->correlation_id);
    }
    if (strcmp(name, "rule_id") == 0) {
        if (f->has_rule || tf_uuid_parse(value, &f->rule_id) != 0) {
            return refuse(f, name, "must be one UUID");
        }
        f->has_rule = 1;
        return 0;
    }
    if (strcmp(name, "created_after") == 0) {
        return read_time(f, name, value, &f->has_after, &f->after_ms);
    }
    if (strcmp(name, "created_before") == 0) {
        return read_time(f, name, value, &f->has_before, &f->before_ms);
    }
    return -1;
}

/* tf_http_req_query_each() callback: one query parameter.  `limit` is only
 * noted here; tf_api_limit() reads it. */
static int read_param(const char *name, const char *value, void *arg) {
    filters_t *f = arg;
    if (strcmp(name, "queue") == 0) {
        int rc = read_text(f, name, value, TF_JOB_NAME_MAX, &f->queue);
        if (rc == 0 && !tf_queue_name_valid(value)) {
            return refuse(f, name, "may hold only letters, digits and _ . : -");
        }
        return rc;
    }
    if (strcmp(name, "cursor") == 0 || strcmp(name, "limit") == 0) {
        const char **seen = name[0] == 'c' ? &f->cursor : &f->limit;
        if (*seen != NULL) {
            return refuse(f, name, "may be given only once");
        }
        *seen = value;
        return 0;
    }
    int rc = f->dead_letter ? -1 : read_job_filter(f, name, value);
    return rc < 0 ? refuse(f, name, "is not a query parameter of this route") : rc;
}

/* Appends `value` to the scope as "<tag><length>:<value>|" (NULL as
 * "<tag>-|"), so that no two filter sets give the same text. */
static void scope_add(char *scope, const char *tag, const char *value) {
    size_t used = strlen(scope);
    if (value == NULL) {
        snprintf(scope + used, SCOPE_MAX - used, "%s-|", tag);
    } else {
        snprintf(scope + used, SCOPE_MAX - used, "%s%zu:%s|", tag, strlen(value), value);
    }
}

/* The cursor scope: the route, the tenant and the canonical filters. */
static void scope_build(const filters_t *f, const char *tenant_id, char scope[SCOPE_MAX]) {
    char rule[TF_UUID_STR_LEN + 1], after[24], before[24];
    snprintf(scope, SCOPE_MAX, "%s|%s|s%u|", f->dead_letter ? "dead" : "jobs", tenant_id,
             (unsigned)f->states);
    tf_uuid_format(&f->rule_id, rule);
    snprintf(after, sizeof(after), "%lld", (long long)f->after_ms);
    snprintf(before, sizeof(before), "%lld", (long long)f->before_ms);
    scope_add(scope, "q", f->queue);
    scope_add(scope, "t", f->type);
    scope_add(scope, "c", f->correlation_id);
    scope_add(scope, "r", f->has_rule ? rule : NULL);
    scope_add(scope, "a", f->has_after ? after : NULL);
    scope_add(scope, "b", f->has_before ? before : NULL);
}

/* ---- listings: the page ---- */

/* One listing request, from its query to its answer. */
typedef struct {
    tf_http_req_t *req;
    const tf_api_env_t *env;
    const tf_clock_t *clock;
    char scope[SCOPE_MAX];
} page_t;

/* Writes {"jobs": [...], "next_cursor": ...}; the next page starts after
 * the last job shown. */
static void page_read(void *arg, int status, const tf_job_t *jobs, size_t n, int more) {
    page_t *page = arg;
    tf_http_req_t *req = page->req;
    if (status != 0) {
        tf_api_respond_status(req, status);
        free(page);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "jobs");
    int rc = tf_job_json_write_all(&b, jobs, n);
    tf_jbuf_key(&b, "next_cursor");
    tf_uuid_t last;
    if (rc == 0 && more && n > 0 && tf_uuid_parse(jobs[n - 1].id, &last) == 0) {
        char cursor[TF_CURSOR_TEXT_LEN];
        tf_cursor_encode(page->env->cursor_key, page->scope, &last, tf_clock_now(page->clock),
                         cursor);
        tf_jbuf_str(&b, cursor);
    } else if (rc == 0 && more) {
        rc = TF_EIO;
    } else {
        tf_jbuf_null(&b);
    }
    tf_jbuf_obj_close(&b);
    tf_api_respond_built(req, 200, &b, rc);
    free(page);
}

/* GET /v1/jobs and GET /v1/dead-letter, told apart by the route. */
void tf__api_list_jobs(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    filters_t f = {.dead_letter = strcmp(tf_http_req_route(req), "/v1/dead-letter") == 0};
    if (tf_http_req_query_each(req, read_param, &f) != 0) {
        tf_api_invalid(req, f.bad_field, f.message);
        return;
    }
    int limit = tf_api_limit(req);
    if (limit < 0) {
        return;
    }
    if (f.states == (TF_JOB_STATE_BIT(TF_JOB_STATE_COUNT) - 1)) {
        f.states = 0; /* every state: the same query as none */
    }
    page_t *page = malloc(sizeof(*page));
    if (page == NULL) {
        tf_api_respond_status(req, TF_ENOMEM);
        return;
    }
    *page = (page_t){.req = req, .env = lp->env, .clock = lp->uc->clock};
    scope_build(&f, who->tenant_id, page->scope);
    tf_uuid_t last;
    if (f.cursor != NULL) {
        const char *why = NULL;
        if (tf_cursor_decode(lp->env->cursor_key, page->scope, f.cursor,
                             tf_clock_now(lp->uc->clock), &last, &why) != 0) {
            tf_api_invalid(req, "cursor", why);
            free(page);
            return;
        }
    }
    char rule[TF_ID_LEN];
    tf_uuid_format(&f.rule_id, rule);
    tf_uc_list_t list = {
        .tenant_id = who->tenant_id,
        .dead_letter = f.dead_letter,
        .states = f.states,
        .queue = f.queue,
        .type = f.type,
        .correlation_id = f.correlation_id,
        .rule_id = f.has_rule ? rule : NULL,
        .has_after = f.has_after,
        .after_ms = f.after_ms,
        .has_before = f.has_before,
        .before_ms = f.before_ms,
        .after_id = f.cursor != NULL ? &last : NULL,
        .limit = limit,
    };
    int rc = tf_uc_list_jobs(lp->uc, &list, page_read, page);
    if (rc == TF_ERANGE) {
        static const char body[] = "{\"jobs\":[],\"next_cursor\":null}";
        tf_http_respond(req, 200, "application/json", body, sizeof(body) - 1);
    } else if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
    if (rc != 0) {
        free(page);
    }
}
