/*
 * executors.c - a tenant's Lua executors (docs/api.md, docs/lua.md):
 *
 *   PUT    /v1/executors/{name}   body: the Lua source (text/x-lua)
 *          201 a new executor, 200 a new version; 422 with the Lua error
 *          and its line, or what the returned table lacks; 409 when a job
 *          type it handles is another executor's; 413 past 256 KiB
 *   GET    /v1/executors          {"executors": [Executor...]}
 *   GET    /v1/executors/{name}   Executor with "source" and "versions";
 *                                 ?version=N: that version's source
 *   DELETE /v1/executors/{name}   204; its versions are kept
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/api/routes.h"
#include "adapters/usecases/executors.h"
#include "engine/error.h"

/* The members of an Executor (or, `executor` 0, of one of its versions). */
static int write_fields(tf_jbuf_t *b, const tf_script_t *s, int executor) {
    if (executor) {
        tf_jbuf_key(b, "name");
        tf_jbuf_str(b, s->name);
    }
    tf_jbuf_key(b, "version");
    tf_jbuf_int(b, s->version);
    tf_jbuf_key(b, "handles");
    tf_jbuf_arr_open(b);
    for (size_t i = 0; i < s->nhandles; i++) {
        tf_jbuf_str(b, s->handles[i]);
    }
    tf_jbuf_arr_close(b);
    tf_jbuf_key(b, "timeout_ms");
    if (s->timeout_ms > 0) {
        tf_jbuf_int(b, s->timeout_ms);
    } else {
        tf_jbuf_null(b);
    }
    tf_jbuf_key(b, "sha256");
    tf_jbuf_str(b, s->sha256);
    tf_jbuf_key(b, "created_by");
    tf_jbuf_str(b, s->created_by);
    tf_jbuf_key(b, "created_at");
    int rc = tf_api_time(b, s->created_at_ms);
    if (executor) {
        tf_jbuf_key(b, "updated_at");
        rc |= tf_api_time(b, s->updated_at_ms);
    }
    if (s->source != NULL) {
        tf_jbuf_key(b, "source");
        tf_jbuf_strn(b, s->source, s->source_len);
    }
    return rc != 0 ? TF_EIO : 0;
}

static int write_script(tf_jbuf_t *b, const tf_script_t *s, int executor) {
    tf_jbuf_obj_open(b);
    int rc = write_fields(b, s, executor);
    tf_jbuf_obj_close(b);
    return rc;
}

/* The path's name; answers 404 and returns NULL when it cannot name one. */
static const char *path_name(tf_http_req_t *req) {
    const char *name = tf_http_req_param(req, "name");
    if (name == NULL || !tf_uc_executor_name_valid(name)) {
        tf_http_respond_error(req, 404, "not_found", "no such executor", NULL);
        return NULL;
    }
    return name;
}

/* ---- PUT ---- */

static void uploaded(void *arg, int status, const char *message, const tf_script_t *script,
                     int created) {
    tf_http_req_t *req = arg;
    if (status == TF_EINVAL) {
        tf_api_invalid(req, "source", message);
        return;
    }
    if (status == TF_ECONFLICT) {
        tf_http_respond_error(req, 409, "conflict", message, NULL);
        return;
    }
    if (status != 0) {
        tf_api_respond_status(req, status);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    int rc = write_script(&b, script, 1);
    tf_api_respond_built(req, created ? 201 : 200, &b, rc);
}

static void put_executor(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    const char *name = tf_http_req_param(req, "name");
    size_t len = 0;
    const char *body = NULL;
    if (tf_api_lua_body(req, "executor", &body, &len) != 0) {
        return;
    }
    tf_uc_upload_t up = {.tenant_id = who->tenant_id,
                         .name = name != NULL ? name : "",
                         .source = body != NULL ? body : "",
                         .len = body != NULL ? len : 0,
                         .actor = who->actor};
    char err[200];
    int rc = tf_uc_executor_upload(lp->uc, &up, uploaded, req, err, sizeof(err));
    tf_api_upload_refused(req, rc, tf_uc_executor_name_valid(up.name) ? "source" : "name", err);
}

/* ---- GET one ---- */

typedef struct {
    tf_http_req_t *req;
    tf_api_loop_t *lp;
    char tenant_id[TF_ID_LEN];
    char name[TF_SCRIPT_NAME_MAX + 1];
    tf_jbuf_t b; /* the executor so far: its object is open */
} get_t;

static void versions_read(void *arg, int status, const tf_script_t *list, size_t n) {
    get_t *g = arg;
    if (status != 0) {
        tf_jbuf_free(&g->b);
        tf_api_respond_status(g->req, status);
        free(g);
        return;
    }
    int rc = 0;
    tf_jbuf_key(&g->b, "versions");
    tf_jbuf_arr_open(&g->b);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = write_script(&g->b, &list[i], 0);
    }
    tf_jbuf_arr_close(&g->b);
    tf_jbuf_obj_close(&g->b);
    tf_api_respond_built(g->req, 200, &g->b, rc);
    free(g);
}

static void executor_read(void *arg, int status, const tf_script_t *script) {
    get_t *g = arg;
    if (status != 0 || script == NULL) {
        if (status != 0) {
            tf_api_respond_status(g->req, status);
        } else {
            tf_http_respond_error(g->req, 404, "not_found", "no such executor or version", NULL);
        }
        free(g);
        return;
    }
    tf_jbuf_init(&g->b);
    tf_jbuf_obj_open(&g->b);
    int rc = write_fields(&g->b, script, 1);
    const tf_script_store_t *s = g->lp->uc->scripts;
    if (rc == 0) {
        rc = s->executor_versions(s->ctx, g->tenant_id, g->name, versions_read, g);
    }
    if (rc != 0) {
        tf_jbuf_free(&g->b);
        tf_api_respond_status(g->req, rc);
        free(g);
    }
}

static void get_executor(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    const char *name = path_name(req);
    if (name == NULL) {
        return;
    }
    int version = 0;
    const char *v = tf_http_req_query(req, "version");
    if (v != NULL) {
        char *end = NULL;
        long n = strtol(v, &end, 10);
        if (*v == '\0' || *end != '\0' || n < 1 || n > 1000000000) {
            tf_api_invalid(req, "version", "version must be a positive integer");
            return;
        }
        version = (int)n;
    }
    const tf_script_store_t *s = lp->uc->scripts;
    if (s == NULL) {
        tf_api_respond_status(req, TF_EUNAVAIL);
        return;
    }
    get_t *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        tf_api_respond_status(req, TF_ENOMEM);
        return;
    }
    g->req = req;
    g->lp = lp;
    snprintf(g->tenant_id, sizeof(g->tenant_id), "%s", who->tenant_id);
    snprintf(g->name, sizeof(g->name), "%s", name);
    int rc = s->get_executor(s->ctx, who->tenant_id, name, version, executor_read, g);
    if (rc != 0) {
        free(g);
        tf_api_respond_status(req, rc);
    }
}

/* ---- list, delete ---- */

static void listed(void *arg, int status, const tf_script_t *list, size_t n) {
    tf_http_req_t *req = arg;
    if (status != 0) {
        tf_api_respond_status(req, status);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "executors");
    tf_jbuf_arr_open(&b);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = write_script(&b, &list[i], 1);
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_obj_close(&b);
    tf_api_respond_built(req, 200, &b, rc);
}

static void list_executors(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    const tf_script_store_t *s = lp->uc->scripts;
    int rc = s != NULL ? s->list_executors(s->ctx, who->tenant_id, listed, req) : TF_EUNAVAIL;
    if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
}

static void deleted(void *arg, int status) {
    tf_http_req_t *req = arg;
    if (status == TF_ENOTFOUND) {
        tf_http_respond_error(req, 404, "not_found", "no such executor", NULL);
    } else if (status != 0) {
        tf_api_respond_status(req, status);
    } else {
        tf_http_respond(req, 204, NULL, NULL, 0);
    }
}

static void delete_executor(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    const char *name = path_name(req);
    if (name == NULL) {
        return;
    }
    const tf_script_store_t *s = lp->uc->scripts;
    int rc =
        s != NULL ? s->delete_executor(s->ctx, who->tenant_id, name, deleted, req) : TF_EUNAVAIL;
    if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
}

const tf_api_route_t tf_api_executor_routes[] = {
    {"PUT", "/v1/executors/{name}", TF_ROUTE_TENANT, put_executor},
    {"GET", "/v1/executors", TF_ROUTE_TENANT, list_executors},
    {"GET", "/v1/executors/{name}", TF_ROUTE_TENANT, get_executor},
    {"DELETE", "/v1/executors/{name}", TF_ROUTE_TENANT, delete_executor},
};
const size_t tf_api_executor_routes_count =
    sizeof(tf_api_executor_routes) / sizeof(tf_api_executor_routes[0]);
