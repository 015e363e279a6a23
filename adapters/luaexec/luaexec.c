/*
 * luaexec.c - the `lua` executor kind and the upload checker (see
 * luaexec.h): the executors kept per loop, runs, and jobs runs create.
 */
#include "adapters/luaexec/luaexec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "adapters/jobspec/job_input.h"
#include "adapters/jobspec/submission.h"
#include "adapters/json/jbuf.h"
#include "engine/error.h"
#include "engine/names.h"
#include "engine/utf8.h"
#include "stdlib/tf.h"

typedef struct children children_t;

/* Where tf.enqueue puts the jobs of a run that may create jobs. */
typedef struct {
    children_t **children; /* made at the first tf.enqueue */
    const char *tenant_id, *correlation_id;
    const char *parent_id, *rule_id; /* what the jobs name ("": nothing) */
    const char *actor_kind;          /* "executor" or "rule" */
} maker_t;

/* What vetting a module's table needs, first in both a run and a check. */
typedef struct {
    maker_t make; /* children NULL: tf.enqueue refused (checks) */
    char name[TF_SCRIPT_NAME_MAX + 1];
    int collect; /* keep handles and timeout_ms (checks) */
    char **handles;
    size_t nhandles;
    int64_t timeout_ms;
} vet_t;

typedef struct entry entry_t;
typedef struct run run_t;

/* The jobs one run created, handed to the runner with the outcome. */
struct children {
    size_t n;
    tf_submission_t *subs[TF_LUAEXEC_ENQUEUE_MAX];
    const tf_new_job_t *jobs[TF_LUAEXEC_ENQUEUE_MAX];
    char parent_id[40], rule_id[40];
    char actor[TF_SCRIPT_NAME_MAX + 16];
};

struct run {
    vet_t vet; /* first: the call's user */
    tf_luaexec_t *x;
    run_t *next_waiter;
    tf_lua_run_t *lua; /* NULL until started */
    int cancelled;
    tf_exec_done_fn done;
    void *done_arg;
    char job_id[40], tenant_id[40];
    char *correlation_id;
    char *job_json;
    int64_t timeout_ms;
    int version;
    children_t *children;
};

/* An executor as read from the store, or being read. */
struct entry {
    tf_luaexec_t *x;
    entry_t *next;
    char tenant_id[40];
    char name[TF_SCRIPT_NAME_MAX + 1];
    int loading;
    int stale; /* forgotten while loading: serve the waiters, keep nothing */
    int version;
    char *source;
    size_t source_len;
    int64_t timeout_ms;
    run_t *waiters;
};

typedef struct {
    vet_t vet; /* first: the call's user */
    tf_script_check_cb cb;
    void *arg;
} check_t;

struct tf_luaexec {
    uv_loop_t *loop;
    tf_luaexec_config_t cfg;
    tf_lua_host_t *host;
    tf_http_client_t *http;
    tf_stdlib_t lib;
    tf_executor_t port;
    tf_script_checker_t checker;
    tf_rule_evaluator_t evaluator;
    entry_t *entries;
    size_t nentries;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

/* ---- vetting a module ---- */

static void vet_free(vet_t *v) {
    for (size_t i = 0; i < v->nhandles; i++) {
        free(v->handles[i]);
    }
    free(v->handles);
    v->handles = NULL;
    v->nhandles = 0;
}

static int field_type(lua_State *L, int idx, const char *key) {
    lua_pushstring(L, key);
    return lua_rawget(L, idx);
}

static int vet_fail(lua_State *L, int top, char *err, size_t errlen, const char *what) {
    lua_settop(L, top);
    snprintf(err, errlen, "%s", what);
    return -1;
}

/* Checks the executor table at `idx` (raw access only): name, handles,
 * run, timeout_ms. */
static int vet_module(lua_State *L, int idx, void *user, char *err, size_t errlen) {
    vet_t *v = user;
    int top = lua_gettop(L);
    if (lua_type(L, idx) != LUA_TTABLE) {
        snprintf(err, errlen,
                 "the script must return a table {name = ..., handles = {...}, run = "
                 "function(job, ctx) ... end} (it returned a %s)",
                 luaL_typename(L, idx));
        return -1;
    }
    static const char *const known[] = {"name", "handles", "run", "timeout_ms", NULL};
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        int ok = 0;
        for (size_t i = 0; !ok && known[i] != NULL && lua_type(L, -1) == LUA_TSTRING; i++) {
            ok = strcmp(lua_tostring(L, -1), known[i]) == 0;
        }
        if (!ok) {
            char what[200];
            snprintf(what, sizeof(what),
                     "the returned table has an unknown field %.64s (known: name, handles, run, "
                     "timeout_ms)",
                     lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a name)");
            return vet_fail(L, top, err, errlen, what);
        }
    }
    if (field_type(L, idx, "name") != LUA_TSTRING || strcmp(lua_tostring(L, -1), v->name) != 0) {
        char what[240];
        snprintf(what, sizeof(what), "name must be \"%s\" (the executor's name in the URL)",
                 v->name);
        return vet_fail(L, top, err, errlen, what);
    }
    if (field_type(L, idx, "run") != LUA_TFUNCTION) {
        return vet_fail(L, top, err, errlen, "run must be a function(job, ctx)");
    }
    int t = field_type(L, idx, "timeout_ms");
    int isint = 0;
    lua_Integer timeout = lua_tointegerx(L, -1, &isint);
    if (t != LUA_TNIL && (t != LUA_TNUMBER || !isint || timeout < 1 || timeout > 86400000)) {
        return vet_fail(L, top, err, errlen,
                        "timeout_ms must be an integer from 1 to 86400000 (one day)");
    }
    t = field_type(L, idx, "handles");
    int handles = lua_gettop(L);
    lua_Integer n = t == LUA_TTABLE ? (lua_Integer)lua_rawlen(L, handles) : 0;
    if (t != LUA_TNIL && t != LUA_TTABLE) {
        return vet_fail(L, top, err, errlen, "handles must be a list of job types");
    }
    if (n > TF_SCRIPT_HANDLES_MAX) {
        return vet_fail(L, top, err, errlen, "handles may list at most 64 job types");
    }
    if (t == LUA_TTABLE) {
        lua_Integer count = 0;
        lua_pushnil(L);
        while (lua_next(L, handles) != 0) {
            lua_pop(L, 1);
            count++;
        }
        if (count != n) {
            return vet_fail(L, top, err, errlen, "handles must be a list (keys 1..n) of job types");
        }
    }
    if (v->collect) {
        vet_free(v);
        v->handles = n > 0 ? calloc((size_t)n, sizeof(char *)) : NULL;
        if (n > 0 && v->handles == NULL) {
            return vet_fail(L, top, err, errlen, "out of memory");
        }
    }
    for (lua_Integer i = 1; i <= n; i++) {
        size_t len = 0;
        const char *type =
            lua_rawgeti(L, handles, i) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (type == NULL || len == 0 || len > 128 || !tf_utf8_valid(type, len) ||
            memchr(type, '\0', len) != NULL) {
            return vet_fail(L, top, err, errlen,
                            "handles must list job types: strings of 1 to 128 bytes of UTF-8");
        }
        if (v->collect) {
            v->handles[v->nhandles] = strdup(type);
            if (v->handles[v->nhandles] == NULL) {
                return vet_fail(L, top, err, errlen, "out of memory");
            }
            v->nhandles++;
        }
        lua_pop(L, 1);
    }
    if (v->collect) {
        v->timeout_ms = timeout > 0 && isint ? (int64_t)timeout : -1;
    }
    lua_settop(L, top);
    return 0;
}

/* ---- jobs created by runs (tf.enqueue) ---- */

static void children_free(void *arg) {
    children_t *c = arg;
    for (size_t i = 0; i < c->n; i++) {
        tf_submission_free(c->subs[i]);
    }
    free(c);
}

static int enqueue(void *ctx, tf_lua_run_t *lua, const char *spec, size_t len, char id[40],
                   char *err, size_t errlen) {
    tf_luaexec_t *x = ctx;
    vet_t *v = tf_lua_run_call(lua)->user;
    if (v == NULL || v->make.children == NULL) {
        snprintf(err, errlen, "only the run of a job or a rule's action can enqueue jobs");
        return TF_EINVAL;
    }
    const maker_t *m = &v->make;
    if (*m->children != NULL && (*m->children)->n >= TF_LUAEXEC_ENQUEUE_MAX) {
        snprintf(err, errlen, "a run may create at most %d jobs", TF_LUAEXEC_ENQUEUE_MAX);
        return TF_EINVAL;
    }
    json_error_t jerr;
    json_t *body = json_loadb(spec, len, 0, &jerr);
    if (!json_is_object(body)) {
        json_decref(body);
        snprintf(err, errlen, "the job must be a table of the fields of POST /v1/jobs");
        return TF_EINVAL;
    }
    static const char *const refused[] = {"depends_on", "correlation_id", NULL};
    for (size_t i = 0; refused[i] != NULL; i++) {
        if (json_object_get(body, refused[i]) != NULL) {
            snprintf(err, errlen,
                     "%s: not accepted here (a job a run creates has the run's job or rule as "
                     "parent and its correlation id)",
                     refused[i]);
            json_decref(body);
            return TF_EINVAL;
        }
    }
    tf_job_input_t in;
    tf_verr_t verr;
    int rc = tf_job_input_parse(body, "", &in, &verr);
    if (rc != 0) {
        if (rc == TF_EINVAL) {
            snprintf(err, errlen, "%s: %s", verr.field, verr.message);
        }
        json_decref(body);
        return rc;
    }
    if (*m->children == NULL) {
        children_t *made = calloc(1, sizeof(*made));
        if (made == NULL) {
            tf_job_input_free(&in);
            json_decref(body);
            return TF_ENOMEM;
        }
        snprintf(made->parent_id, sizeof(made->parent_id), "%s", m->parent_id);
        snprintf(made->rule_id, sizeof(made->rule_id), "%s", m->rule_id);
        snprintf(made->actor, sizeof(made->actor), "%s:%s", m->actor_kind, v->name);
        *m->children = made;
    }
    children_t *c = *m->children;
    tf_submission_t *sub = NULL;
    rc =
        tf_submission_create(x->cfg.uc, m->tenant_id, c->actor, &in, body, m->correlation_id, &sub);
    tf_job_input_free(&in);
    json_decref(body);
    if (rc != 0) {
        return rc;
    }
    sub->job.parent_id = c->parent_id[0] != '\0' ? c->parent_id : NULL;
    sub->job.rule_id = c->rule_id[0] != '\0' ? c->rule_id : NULL;
    c->subs[c->n] = sub;
    c->jobs[c->n] = &sub->job;
    c->n++;
    snprintf(id, 40, "%s", sub->job.id);
    return 0;
}

/* ---- runs ---- */

static void run_free(run_t *run) {
    if (run->children != NULL) {
        children_free(run->children);
    }
    free(run->correlation_id);
    free(run->job_json);
    free(run);
}

static void fail_run(run_t *run, const char *type, const char *message, int retryable) {
    tf_exec_outcome_t out = {.status = TF_EXEC_FAILED,
                             .error_type = type,
                             .error_message = message,
                             .retryable = retryable,
                             .executor_version = run->version};
    run->done(run->done_arg, &out);
    run_free(run);
}

static void lua_done(void *arg, const tf_lua_outcome_t *o) {
    run_t *run = arg;
    run->lua = NULL;
    tf_exec_outcome_t out = {.executor_version = run->version};
    if (o->status == TF_LUA_OK) {
        out.status = TF_EXEC_SUCCEEDED;
        out.result = o->snooze_ms > 0 ? NULL : o->result_json;
        out.snooze_ms = o->snooze_ms;
        if (run->children != NULL) {
            out.children = run->children->jobs;
            out.nchildren = run->children->n;
            out.children_free = children_free;
            out.children_ctx = run->children;
            run->children = NULL; /* handed over */
        }
    } else {
        out.status = TF_EXEC_FAILED;
        out.error_type = o->error_type;
        out.error_message = o->error_message;
        out.retryable = o->retryable && !o->fatal;
    }
    run->done(run->done_arg, &out);
    run_free(run);
}

/* The job's arguments to run(job, ctx). */
static char *job_json(const tf_exec_job_t *job) {
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "id");
    tf_jbuf_str(&b, job->job_id);
    tf_jbuf_key(&b, "tenant_id");
    tf_jbuf_str(&b, job->tenant_id);
    tf_jbuf_key(&b, "queue");
    tf_jbuf_str(&b, job->queue);
    tf_jbuf_key(&b, "type");
    tf_jbuf_str(&b, job->type);
    tf_jbuf_key(&b, "payload");
    tf_jbuf_raw(&b, job->payload != NULL ? job->payload : "null");
    tf_jbuf_key(&b, "attempt");
    tf_jbuf_int(&b, job->attempt);
    tf_jbuf_key(&b, "max_attempts");
    tf_jbuf_int(&b, job->max_attempts);
    tf_jbuf_key(&b, "correlation_id");
    tf_jbuf_str(&b, job->correlation_id);
    tf_jbuf_obj_close(&b);
    char *text = NULL;
    size_t len = 0;
    return tf_jbuf_finish(&b, &text, &len) == 0 ? text : NULL;
}

static int launch(run_t *run, const entry_t *e) {
    run->version = e->version;
    char key[TF_SCRIPT_NAME_MAX + 32], chunk[TF_SCRIPT_NAME_MAX + 16], ctx[TF_SCRIPT_NAME_MAX + 64];
    snprintf(key, sizeof(key), "executor:%s@%d", e->name, e->version);
    snprintf(chunk, sizeof(chunk), "=executor %s", e->name);
    snprintf(ctx, sizeof(ctx), "{\"executor\":{\"name\":\"%s\",\"version\":%d}}", e->name,
             e->version);
    const char *args[2] = {run->job_json, ctx};
    int64_t timeout = run->timeout_ms;
    if (e->timeout_ms > 0 && e->timeout_ms < timeout) {
        timeout = e->timeout_ms;
    }
    tf_lua_call_t call = {.tenant_id = run->tenant_id,
                          .module_key = key,
                          .source = e->source,
                          .source_len = e->source_len,
                          .chunkname = chunk,
                          .function = "run",
                          .args_json = args,
                          .nargs = 2,
                          .check_module = vet_module,
                          .timeout_ms = timeout,
                          .job_id = run->job_id,
                          .correlation_id = run->correlation_id,
                          .user = run};
    return tf_lua_start(run->x->host, &call, lua_done, run, &run->lua);
}

/* ---- the executors kept ---- */

static void entry_free(entry_t *e) {
    free(e->source);
    free(e);
}

static void entry_unlink(tf_luaexec_t *x, entry_t *e) {
    for (entry_t **p = &x->entries; *p != NULL; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            x->nentries--;
            return;
        }
    }
}

static entry_t *entry_find(tf_luaexec_t *x, const char *tenant_id, const char *name) {
    for (entry_t *e = x->entries; e != NULL; e = e->next) {
        if (!e->stale && strcmp(e->tenant_id, tenant_id) == 0 && strcmp(e->name, name) == 0) {
            return e;
        }
    }
    return NULL;
}

/* Keeps at most TF_LUAEXEC_CACHE_MAX: the last loaded ones go first. */
static void entries_trim(tf_luaexec_t *x) {
    while (x->nentries > TF_LUAEXEC_CACHE_MAX) {
        entry_t *victim = NULL;
        for (entry_t *e = x->entries; e != NULL; e = e->next) {
            if (!e->loading) {
                victim = e;
            }
        }
        if (victim == NULL) {
            return;
        }
        entry_unlink(x, victim);
        entry_free(victim);
    }
}

static void loaded(void *arg, int status, const tf_script_t *script) {
    entry_t *e = arg;
    run_t *waiters = e->waiters;
    e->waiters = NULL;
    e->loading = 0;
    if (status == 0 && script != NULL) {
        e->source = malloc(script->source_len + 1);
        if (e->source == NULL) {
            status = TF_ENOMEM;
        } else {
            memcpy(e->source, script->source, script->source_len);
            e->source[script->source_len] = '\0';
            e->source_len = script->source_len;
            e->version = script->version;
            e->timeout_ms = script->timeout_ms;
        }
    }
    int keep = status == 0 && script != NULL && !e->stale;
    char message[300];
    snprintf(message, sizeof(message), "the tenant has no Lua executor named \"%s\"", e->name);
    while (waiters != NULL) {
        run_t *run = waiters;
        waiters = run->next_waiter;
        if (run->cancelled) {
            fail_run(run, "cancelled", "the run was cancelled", 1);
        } else if (status != 0) {
            fail_run(run, "internal", "cannot read the Lua executor", 1);
        } else if (script == NULL) {
            fail_run(run, "lua_executor_missing", message, 0);
        } else if (launch(run, e) != 0) {
            fail_run(run, "internal", "cannot start the Lua run", 1);
        }
    }
    if (!keep) {
        entry_unlink(e->x, e);
        entry_free(e);
    }
}

/* ---- the executor port ---- */

static int start(void *ctx, const tf_exec_job_t *job, tf_exec_done_fn done, void *arg, void **out) {
    tf_luaexec_t *x = ctx;
    json_t *executor = job->executor != NULL ? json_loads(job->executor, 0, NULL) : NULL;
    const char *name = json_string_value(json_object_get(executor, "name"));
    if (name == NULL || strlen(name) > TF_SCRIPT_NAME_MAX || x->cfg.scripts == NULL) {
        json_decref(executor);
        return TF_EINVAL;
    }
    run_t *run = calloc(1, sizeof(*run));
    if (run == NULL) {
        json_decref(executor);
        return TF_ENOMEM;
    }
    run->x = x;
    snprintf(run->vet.name, sizeof(run->vet.name), "%s", name);
    json_decref(executor);
    snprintf(run->job_id, sizeof(run->job_id), "%s", job->job_id);
    snprintf(run->tenant_id, sizeof(run->tenant_id), "%s", job->tenant_id);
    run->correlation_id = job->correlation_id != NULL ? strdup(job->correlation_id) : NULL;
    run->vet.make = (maker_t){.children = &run->children,
                              .tenant_id = run->tenant_id,
                              .correlation_id = run->correlation_id,
                              .parent_id = run->job_id,
                              .rule_id = "",
                              .actor_kind = "executor"};
    run->job_json = job_json(job);
    run->timeout_ms = job->timeout_ms;
    run->done = done;
    run->done_arg = arg;
    if (run->job_json == NULL || (job->correlation_id != NULL && run->correlation_id == NULL)) {
        run_free(run);
        return TF_ENOMEM;
    }
    entry_t *e = entry_find(x, run->tenant_id, run->vet.name);
    if (e != NULL && !e->loading) {
        int rc = launch(run, e);
        if (rc != 0) {
            run_free(run);
            return rc;
        }
        *out = run;
        return 0;
    }
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL) {
            run_free(run);
            return TF_ENOMEM;
        }
        e->x = x;
        snprintf(e->tenant_id, sizeof(e->tenant_id), "%s", run->tenant_id);
        snprintf(e->name, sizeof(e->name), "%s", run->vet.name);
        e->loading = 1;
        int rc =
            x->cfg.scripts->get_executor(x->cfg.scripts->ctx, e->tenant_id, e->name, 0, loaded, e);
        if (rc != 0) {
            free(e);
            run_free(run);
            return rc;
        }
        e->next = x->entries;
        x->entries = e;
        x->nentries++;
        entries_trim(x);
    }
    run->next_waiter = e->waiters;
    e->waiters = run;
    *out = run;
    return 0;
}

static void cancel(void *ctx, void *handle) {
    (void)ctx;
    run_t *run = handle;
    run->cancelled = 1;
    if (run->lua != NULL) {
        tf_lua_cancel(run->lua);
    }
}

void tf_luaexec_forget(tf_luaexec_t *x, const char *tenant_id, const char *name) {
    for (entry_t **p = &x->entries; *p != NULL;) {
        entry_t *e = *p;
        int match = tenant_id == NULL ||
                    (strcmp(e->tenant_id, tenant_id) == 0 && strcmp(e->name, name) == 0);
        if (!match) {
            p = &e->next;
        } else if (e->loading) {
            e->stale = 1; /* its load answers its waiters, then it goes */
            p = &e->next;
        } else {
            *p = e->next;
            x->nentries--;
            entry_free(e);
        }
    }
}

/* ---- the checker ---- */

/* ---- checking a rule ---- */

typedef struct {
    vet_t vet; /* first: the call's user (tf.enqueue refused) */
    char name[TF_SCRIPT_NAME_MAX + 1];
    tf_trigger_t trigger;
    int has_condition;
    tf_rule_check_cb cb;
    void *arg;
} rule_check_t;

/* Checks the rule table at `idx` (raw access only): name, trigger,
 * condition, action. */
static int vet_rule(lua_State *L, int idx, void *user, char *err, size_t errlen) {
    rule_check_t *c = user;
    int top = lua_gettop(L);
    if (lua_type(L, idx) != LUA_TTABLE) {
        snprintf(
            err, errlen,
            "the script must return a table {name = ..., trigger = ..., condition = "
            "function(ev, ctx) ... end, action = function(ev, ctx) ... end} (it returned a %s)",
            luaL_typename(L, idx));
        return -1;
    }
    static const char *const known[] = {"name", "trigger", "condition", "action", NULL};
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        int ok = 0;
        for (size_t i = 0; !ok && known[i] != NULL && lua_type(L, -1) == LUA_TSTRING; i++) {
            ok = strcmp(lua_tostring(L, -1), known[i]) == 0;
        }
        if (!ok) {
            char what[200];
            snprintf(what, sizeof(what),
                     "the returned table has an unknown field %.64s (known: name, trigger, "
                     "condition, action)",
                     lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a name)");
            return vet_fail(L, top, err, errlen, what);
        }
    }
    if (field_type(L, idx, "name") != LUA_TSTRING ||
        !tf_name_valid(lua_tostring(L, -1), TF_SCRIPT_NAME_MAX)) {
        return vet_fail(L, top, err, errlen,
                        "name must be 1 to 128 characters of letters, digits and _ . : -");
    }
    snprintf(c->name, sizeof(c->name), "%s", lua_tostring(L, -1));
    int t = field_type(L, idx, "trigger");
    const tf_trigger_t *trigger = tf_stdlib_trigger(L, -1);
    if (trigger == NULL) {
        char what[200];
        snprintf(what, sizeof(what),
                 "trigger must be made by tf.cron, tf.webhook, tf.event or tf.on (got %s)",
                 t == LUA_TNIL ? "nothing" : luaL_typename(L, -1));
        return vet_fail(L, top, err, errlen, what);
    }
    c->trigger = *trigger;
    t = field_type(L, idx, "condition");
    if (t != LUA_TNIL && t != LUA_TFUNCTION) {
        return vet_fail(L, top, err, errlen, "condition must be a function(ev, ctx)");
    }
    c->has_condition = t == LUA_TFUNCTION;
    if (field_type(L, idx, "action") != LUA_TFUNCTION) {
        return vet_fail(L, top, err, errlen, "action must be a function(ev, ctx)");
    }
    lua_settop(L, top);
    return 0;
}

/* The check's outcome as the checker port reports it: 0, or why not in
 * `message` (a TF_E* code returned). */
static int check_outcome(const tf_lua_outcome_t *o, char *message, size_t len) {
    if (o->status == TF_LUA_OK) {
        return 0;
    }
    if (strcmp(o->error_type, "shutdown") == 0) {
        snprintf(message, len, "%s", o->error_message);
        return TF_ESHUTDOWN;
    }
    if (strcmp(o->error_type, "lua_syntax") == 0 || strcmp(o->error_type, "lua_module") == 0 ||
        strcmp(o->error_type, "lua_error") == 0) {
        snprintf(message, len, "%s", o->error_message);
    } else {
        snprintf(message, len, "the script's top level failed (%s): %s", o->error_type,
                 o->error_message);
    }
    return TF_EINVAL;
}

static void rule_checked(void *arg, const tf_lua_outcome_t *o) {
    rule_check_t *c = arg;
    char message[1100];
    int rc = check_outcome(o, message, sizeof(message));
    tf_rule_meta_t meta = {
        .name = c->name, .trigger = &c->trigger, .has_condition = c->has_condition};
    c->cb(c->arg, rc, rc == 0 ? NULL : message, rc == 0 ? &meta : NULL);
    free(c);
}

/* Starts checking `source` in the tenant's scratch VM with `check`. */
static int start_check(tf_luaexec_t *x, const char *tenant_id, const char *chunk,
                       const char *source, size_t len,
                       int (*check)(lua_State *L, int idx, void *user, char *err, size_t errlen),
                       void *user, tf_lua_done_fn done) {
    /* A scratch VM: an upload never runs in the tenant's live one. */
    char scratch[64];
    snprintf(scratch, sizeof(scratch), "check:%s", tenant_id);
    tf_lua_call_t call = {.tenant_id = scratch,
                          .source = source,
                          .source_len = len,
                          .chunkname = chunk,
                          .check_module = check,
                          .timeout_ms = TF_LUAEXEC_CHECK_TIMEOUT_MS,
                          .user = user};
    return tf_lua_start(x->host, &call, done, user, NULL);
}

static int check_rule(void *ctx, const char *tenant_id, const char *source, size_t len,
                      tf_rule_check_cb cb, void *arg) {
    rule_check_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return TF_ENOMEM;
    }
    c->cb = cb;
    c->arg = arg;
    int rc = start_check(ctx, tenant_id, "=rule", source, len, vet_rule, c, rule_checked);
    if (rc != 0) {
        free(c);
    }
    return rc;
}

static void checked(void *arg, const tf_lua_outcome_t *o) {
    check_t *c = arg;
    char message[1100];
    int rc = check_outcome(o, message, sizeof(message));
    tf_script_meta_t meta = {.handles = (const char *const *)c->vet.handles,
                             .nhandles = c->vet.nhandles,
                             .timeout_ms = c->vet.timeout_ms};
    c->cb(c->arg, rc, rc == 0 ? NULL : message, rc == 0 ? &meta : NULL);
    vet_free(&c->vet);
    free(c);
}

static int check_executor(void *ctx, const char *tenant_id, const char *name, const char *source,
                          size_t len, tf_script_check_cb cb, void *arg) {
    check_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return TF_ENOMEM;
    }
    c->cb = cb;
    c->arg = arg;
    c->vet.collect = 1;
    c->vet.timeout_ms = -1;
    snprintf(c->vet.name, sizeof(c->vet.name), "%s", name);
    char chunk[TF_SCRIPT_NAME_MAX + 16];
    snprintf(chunk, sizeof(chunk), "=executor %s", name);
    int rc = start_check(ctx, tenant_id, chunk, source, len, vet_module, c, checked);
    if (rc != 0) {
        free(c);
    }
    return rc;
}

/* ---- evaluating a rule ---- */

/* One evaluation: the condition's run, then the action's. */
typedef struct {
    vet_t vet; /* first: the call's user; make.children set for the action */
    tf_luaexec_t *x;
    children_t *children;
    tf_rule_eval_cb cb;
    void *arg;
    char tenant_id[40], rule_id[40];
    char key[TF_SCRIPT_NAME_MAX + 64], chunk[TF_SCRIPT_NAME_MAX + 16];
    char *source, *event, *ctx, *correlation_id;
    size_t source_len;
    json_t *logs; /* a dry run's tf.log lines; NULL: not captured */
} eval_t;

static void eval_free(eval_t *e) {
    if (e->children != NULL) {
        children_free(e->children);
    }
    free(e->source);
    free(e->event);
    free(e->ctx);
    free(e->correlation_id);
    json_decref(e->logs);
    free(e);
}

/* A dry run's tf.log line: {"level", "message", "fields"}. */
static void eval_log(void *arg, const char *level, const char *message,
                     const tf_log_field_t *fields, size_t n) {
    eval_t *e = arg;
    json_t *f = json_object();
    for (size_t i = 0; f != NULL && i < n; i++) {
        json_t *v = fields[i].kind == TF_LOG_FIELD_STR    ? json_string(fields[i].s)
                    : fields[i].kind == TF_LOG_FIELD_INT  ? json_integer(fields[i].i)
                    : fields[i].kind == TF_LOG_FIELD_BOOL ? json_boolean(fields[i].i)
                                                          : json_real(fields[i].d);
        json_object_set_new(f, fields[i].key, v != NULL ? v : json_null());
    }
    json_t *line = json_pack("{s:s,s:s,s:o*}", "level", level, "message", message, "fields", f);
    if (line != NULL) {
        json_array_append_new(e->logs, line);
    }
}

/* Answers and frees `e`. */
static void eval_end(eval_t *e, const tf_rule_outcome_t *o) {
    tf_rule_outcome_t out = *o;
    if (e->children != NULL) {
        out.jobs = e->children->jobs;
        out.njobs = e->children->n;
    }
    char *logs = e->logs != NULL ? json_dumps(e->logs, JSON_COMPACT) : NULL;
    out.logs_json = logs;
    e->cb(e->arg, 0, &out);
    free(logs);
    eval_free(e);
}

static void eval_failed(eval_t *e, int condition, const char *type, const char *message) {
    if (strcmp(type, "shutdown") == 0) { /* nothing was decided */
        e->cb(e->arg, TF_ESHUTDOWN, NULL);
        eval_free(e);
        return;
    }
    tf_rule_outcome_t o = {
        .ok = 0, .condition = condition, .error_type = type, .error_message = message};
    if (e->children != NULL) {
        children_free(e->children); /* a failed action creates nothing */
        e->children = NULL;
    }
    eval_end(e, &o);
}

static int eval_start(eval_t *e, const char *function, tf_lua_done_fn done) {
    const char *args[2] = {e->event, e->ctx};
    int action = strcmp(function, "action") == 0;
    e->vet.make.children = action ? &e->children : NULL;
    tf_lua_call_t call = {.tenant_id = e->tenant_id,
                          .module_key = e->key,
                          .source = e->source,
                          .source_len = e->source_len,
                          .chunkname = e->chunk,
                          .function = function,
                          .args_json = args,
                          .nargs = 2,
                          .result_with_arg = action ? 2 : 0,
                          .rule_id = e->rule_id,
                          .correlation_id = e->correlation_id,
                          .on_log = e->logs != NULL ? eval_log : NULL,
                          .log_arg = e,
                          .user = e};
    return tf_lua_start(e->x->host, &call, done, e, NULL);
}

static void action_done(void *arg, const tf_lua_outcome_t *o) {
    eval_t *e = arg;
    if (o->status != TF_LUA_OK) {
        eval_failed(e, 1, o->error_type, o->error_message);
        return;
    }
    json_t *result = json_loads(o->result_json, 0, NULL);
    json_t *state = json_object_get(json_object_get(result, "arg"), "state");
    char *text = json_dumps(state != NULL ? state : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) {
        json_decref(result);
        eval_failed(e, 1, "lua_memory", "out of memory reading ctx.state");
        return;
    }
    tf_rule_outcome_t out = {.ok = 1, .condition = 1, .state_json = text};
    eval_end(e, &out);
    free(text);
    json_decref(result);
}

static void condition_done(void *arg, const tf_lua_outcome_t *o) {
    eval_t *e = arg;
    if (o->status != TF_LUA_OK) {
        eval_failed(e, 0, o->error_type, o->error_message);
        return;
    }
    if (strcmp(o->result_json, "false") == 0) {
        tf_rule_outcome_t out = {.ok = 1, .condition = 0};
        eval_end(e, &out);
        return;
    }
    if (strcmp(o->result_json, "true") != 0) {
        char message[200];
        snprintf(message, sizeof(message), "condition must return a boolean (it returned %.100s)",
                 o->result_json);
        eval_failed(e, 0, "rule_condition", message);
        return;
    }
    int rc = eval_start(e, "action", action_done);
    if (rc != 0) {
        eval_failed(e, 1, "internal", "cannot start the action");
    }
}

static char *dup_text(const char *s) {
    return s != NULL ? strdup(s) : NULL;
}

static int evaluate_rule(void *ctx, const tf_rule_eval_t *req, tf_rule_eval_cb cb, void *arg) {
    tf_luaexec_t *x = ctx;
    eval_t *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return TF_ENOMEM;
    }
    e->x = x;
    e->cb = cb;
    e->arg = arg;
    snprintf(e->vet.name, sizeof(e->vet.name), "%s", req->rule_name);
    snprintf(e->tenant_id, sizeof(e->tenant_id), "%s", req->tenant_id);
    snprintf(e->rule_id, sizeof(e->rule_id), "%s", req->rule_id);
    snprintf(e->key, sizeof(e->key), "rule:%s@%d", req->rule_id, req->version);
    snprintf(e->chunk, sizeof(e->chunk), "=rule %s", req->rule_name);
    e->source = malloc(req->source_len + 1);
    e->event = dup_text(req->event_json);
    e->ctx = dup_text(req->ctx_json);
    e->correlation_id = dup_text(req->correlation_id);
    e->logs = req->capture_logs ? json_array() : NULL;
    if (e->source == NULL || e->event == NULL || e->ctx == NULL ||
        (req->correlation_id != NULL && e->correlation_id == NULL) ||
        (req->capture_logs && e->logs == NULL)) {
        eval_free(e);
        return TF_ENOMEM;
    }
    memcpy(e->source, req->source, req->source_len);
    e->source[req->source_len] = '\0';
    e->source_len = req->source_len;
    e->vet.make = (maker_t){.tenant_id = e->tenant_id,
                            .correlation_id = e->correlation_id,
                            .parent_id = "",
                            .rule_id = e->rule_id,
                            .actor_kind = "rule"};
    int rc = req->has_condition ? eval_start(e, "condition", condition_done)
                                : eval_start(e, "action", action_done);
    if (rc != 0) {
        eval_free(e);
    }
    return rc;
}

/* ---- life ---- */

int tf_luaexec_create(uv_loop_t *loop, const tf_luaexec_config_t *cfg, tf_luaexec_t **out) {
    tf_luaexec_t *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        return TF_ENOMEM;
    }
    x->loop = loop;
    x->cfg = *cfg;
    int rc = 0;
    if (cfg->http != NULL) {
        rc = tf_http_client_create(loop, cfg->http, &x->http);
    }
    x->lib = (tf_stdlib_t){.loop = loop, .http = x->http, .enqueue = enqueue, .enqueue_ctx = x};
    tf_lua_config_t lcfg = {.limits = cfg->limits,
                            .clock = cfg->uc != NULL ? cfg->uc->clock : NULL,
                            .open_libs = tf_stdlib_open,
                            .libs_ctx = &x->lib,
                            .log = cfg->log,
                            .metrics = cfg->metrics};
    if (rc == 0) {
        rc = tf_lua_host_create(loop, &lcfg, &x->host);
    }
    if (rc != 0) {
        if (x->http != NULL) {
            tf_http_client_close(x->http, NULL, NULL);
        }
        free(x);
        return rc;
    }
    x->port = (tf_executor_t){.kind = "lua", .ctx = x, .start = start, .cancel = cancel};
    x->evaluator = (tf_rule_evaluator_t){.ctx = x, .evaluate = evaluate_rule};
    x->checker =
        (tf_script_checker_t){.ctx = x, .check_executor = check_executor, .check_rule = check_rule};
    *out = x;
    return 0;
}

const tf_executor_t *tf_luaexec_port(tf_luaexec_t *x) {
    return &x->port;
}

const tf_rule_evaluator_t *tf_luaexec_evaluator(tf_luaexec_t *x) {
    return &x->evaluator;
}

const tf_script_checker_t *tf_luaexec_checker(tf_luaexec_t *x) {
    return &x->checker;
}

tf_lua_host_t *tf_luaexec_host(tf_luaexec_t *x) {
    return x->host;
}

static void http_closed(void *arg) {
    tf_luaexec_t *x = arg;
    void (*cb)(void *) = x->closed_cb;
    void *cb_arg = x->closed_arg;
    while (x->entries != NULL) {
        entry_t *e = x->entries;
        x->entries = e->next;
        entry_free(e);
    }
    free(x);
    if (cb != NULL) {
        cb(cb_arg);
    }
}

static void host_closed(void *arg) {
    tf_luaexec_t *x = arg;
    if (x->http != NULL) {
        tf_http_client_close(x->http, http_closed, x);
    } else {
        http_closed(x);
    }
}

/* The runner closes first: its executions waiting for an executor's load
 * keep it open until the load answered, so none is pending here. */
void tf_luaexec_close(tf_luaexec_t *x, void (*closed_cb)(void *arg), void *arg) {
    x->closed_cb = closed_cb;
    x->closed_arg = arg;
    tf_lua_host_close(x->host, host_closed, x);
}
