/*
 * triggers.c - what a rule script names as its trigger (see tf.h):
 * tf.cron(expr, {timezone=, catch_up=}), tf.webhook{scheme=},
 * tf.event(name) and tf.on(job_event, {type=, queue=}).
 *
 * Each checks its arguments and returns a trigger: a userdata holding the
 * checked tf_trigger_t, readable (t.kind, t.cron, t.timezone, ...) but not
 * writable, and with a locked metatable, so a script cannot hand the
 * checker a trigger nobody checked.
 */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "engine/names.h"
#include "engine/trigger.h"
#include "engine/utf8.h"
#include "stdlib/tf.h"

#define TRIGGER_META "tf.trigger"

const tf_trigger_t *tf_stdlib_trigger(lua_State *L, int idx) {
    return luaL_testudata(L, idx, TRIGGER_META);
}

static tf_trigger_t *new_trigger(lua_State *L, tf_trigger_kind_t kind) {
    tf_trigger_t *t = lua_newuserdatauv(L, sizeof(*t), 0);
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    luaL_setmetatable(L, TRIGGER_META);
    return t;
}

/* The options table at `arg` (absent or nil: none) has only `known` keys. */
static int check_options(lua_State *L, int arg, const char *fn, const char *const *known,
                         const char *names) {
    if (lua_isnoneornil(L, arg)) {
        return 0;
    }
    tf__stdlib_check_table(L, arg, fn, "the options");
    lua_pushnil(L);
    while (lua_next(L, arg) != 0) {
        lua_pop(L, 1);
        int ok = 0;
        for (size_t i = 0; !ok && known[i] != NULL && lua_type(L, -1) == LUA_TSTRING; i++) {
            ok = strcmp(lua_tostring(L, -1), known[i]) == 0;
        }
        if (!ok) {
            return luaL_error(L, "%s: unknown option %s (known: %s)", fn,
                              lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a name)",
                              names);
        }
    }
    return 1;
}

/* Option `key` of the table at `arg` as a string into out[cap], or
 * nothing when absent.  Returns 1 when present. */
static int option_string(lua_State *L, int arg, const char *fn, const char *key, char *out,
                         size_t cap) {
    if (lua_getfield(L, arg, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    char what[48];
    snprintf(what, sizeof(what), "%s", key);
    size_t len = 0;
    const char *s = tf__stdlib_check_string(L, -1, fn, what, &len);
    if (len == 0 || len >= cap || !tf_utf8_valid(s, len) || memchr(s, '\0', len) != NULL) {
        return luaL_error(L, "%s: %s must be 1 to %d bytes of UTF-8", fn, key, (int)cap - 1);
    }
    memcpy(out, s, len + 1);
    lua_pop(L, 1);
    return 1;
}

static int tf_cron(lua_State *L) {
    static const char *const known[] = {"timezone", "catch_up", NULL};
    size_t len = 0;
    const char *expr = tf__stdlib_check_string(L, 1, "tf.cron", "the expression", &len);
    tf_cron_t parsed;
    char err[200];
    if (len > TF_CRON_EXPR_MAX || memchr(expr, '\0', len) != NULL) {
        return luaL_error(L, "tf.cron: the expression is too long");
    }
    if (tf_cron_parse(expr, &parsed, err, sizeof(err)) != 0) {
        return luaL_error(L, "tf.cron: %s", err);
    }
    int opts = check_options(L, 2, "tf.cron", known, "timezone, catch_up");
    tf_trigger_t *t = new_trigger(L, TF_TRIGGER_CRON);
    memcpy(t->cron, expr, len + 1);
    snprintf(t->timezone, sizeof(t->timezone), "UTC");
    char catch_up[16] = "latest";
    if (opts) {
        if (option_string(L, 2, "tf.cron", "timezone", t->timezone, sizeof(t->timezone)) &&
            !tf_zone_name_valid(t->timezone)) {
            return luaL_error(L, "tf.cron: timezone must be an IANA name like \"Europe/Oslo\"");
        }
        if (lua_getfield(L, 2, "catch_up") != LUA_TNIL &&
            (lua_type(L, -1) != LUA_TSTRING || (strcmp(lua_tostring(L, -1), "none") != 0 &&
                                                strcmp(lua_tostring(L, -1), "latest") != 0))) {
            return luaL_error(L, "tf.cron: catch_up must be \"none\" or \"latest\"");
        }
        if (lua_type(L, -1) == LUA_TSTRING) {
            snprintf(catch_up, sizeof(catch_up), "%s", lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
    t->catch_up = strcmp(catch_up, "none") == 0 ? TF_CATCH_UP_NONE : TF_CATCH_UP_LATEST;
    return 1;
}

static int tf_webhook(lua_State *L) {
    static const char *const known[] = {"scheme", NULL};
    int opts = check_options(L, 1, "tf.webhook", known, "scheme");
    tf_trigger_t *t = new_trigger(L, TF_TRIGGER_WEBHOOK);
    int top = lua_gettop(L);
    snprintf(t->scheme, sizeof(t->scheme), "taskflow");
    if (opts && lua_getfield(L, 1, "scheme") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING || !tf_webhook_scheme_valid(lua_tostring(L, -1))) {
            return luaL_error(L, "tf.webhook: scheme must be \"taskflow\", \"standard-webhooks\", "
                                 "\"stripe\" or \"github\"");
        }
        snprintf(t->scheme, sizeof(t->scheme), "%s", lua_tostring(L, -1));
    }
    lua_settop(L, top);
    return 1;
}

static int tf_event(lua_State *L) {
    const char *name = tf__stdlib_check_string(L, 1, "tf.event", "the event name", NULL);
    if (!tf_name_valid(name, TF_TRIGGER_NAME_MAX) || strncmp(name, "job.", 4) == 0) {
        return luaL_error(L, "tf.event: the event name must be 1 to 128 characters of letters, "
                             "digits and _ . : - and not start with \"job.\" (use tf.on)");
    }
    tf_trigger_t *t = new_trigger(L, TF_TRIGGER_EVENT);
    snprintf(t->event, sizeof(t->event), "%s", name);
    return 1;
}

static int tf_on(lua_State *L) {
    static const char *const known[] = {"type", "queue", NULL};
    const char *name = tf__stdlib_check_string(L, 1, "tf.on", "the job event", NULL);
    if (!tf_job_event_valid(name)) {
        return luaL_error(L, "tf.on: the event must be \"job.succeeded\", \"job.failed\", "
                             "\"job.dead\" or \"job.cancelled\"");
    }
    int opts = check_options(L, 2, "tf.on", known, "type, queue");
    tf_trigger_t *t = new_trigger(L, TF_TRIGGER_JOB);
    snprintf(t->event, sizeof(t->event), "%s", name);
    if (opts) {
        option_string(L, 2, "tf.on", "type", t->type, sizeof(t->type));
        if (option_string(L, 2, "tf.on", "queue", t->queue, sizeof(t->queue)) &&
            !tf_name_valid(t->queue, TF_TRIGGER_NAME_MAX)) {
            return luaL_error(L, "tf.on: queue may hold only letters, digits and _ . : -");
        }
    }
    return 1;
}

/* t.kind, t.cron, t.timezone, t.catch_up, t.event, t.type, t.queue,
 * t.scheme: what applies to the trigger's kind, nil otherwise. */
static int trigger_index(lua_State *L) {
    const tf_trigger_t *t = luaL_checkudata(L, 1, TRIGGER_META);
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    int cron = t->kind == TF_TRIGGER_CRON, job = t->kind == TF_TRIGGER_JOB;
    const char *value = NULL;
    if (strcmp(key, "kind") == 0) {
        value = tf_trigger_kind_name(t->kind);
    } else if (cron && strcmp(key, "cron") == 0) {
        value = t->cron;
    } else if (cron && strcmp(key, "timezone") == 0) {
        value = t->timezone;
    } else if (cron && strcmp(key, "catch_up") == 0) {
        value = t->catch_up == TF_CATCH_UP_NONE ? "none" : "latest";
    } else if (strcmp(key, "event") == 0 && t->event[0] != '\0') {
        value = t->event;
    } else if (job && strcmp(key, "type") == 0 && t->type[0] != '\0') {
        value = t->type;
    } else if (job && strcmp(key, "queue") == 0 && t->queue[0] != '\0') {
        value = t->queue;
    } else if (t->kind == TF_TRIGGER_WEBHOOK && strcmp(key, "scheme") == 0) {
        value = t->scheme;
    }
    if (value == NULL) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, value);
    }
    return 1;
}

static int trigger_newindex(lua_State *L) {
    return luaL_error(L, "a trigger cannot be changed (make another with tf.cron, tf.webhook, "
                         "tf.event or tf.on)");
}

void tf__stdlib_open_triggers(lua_State *L) {
    if (luaL_newmetatable(L, TRIGGER_META)) {
        lua_pushcfunction(L, trigger_index);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, trigger_newindex);
        lua_setfield(L, -2, "__newindex");
        lua_pushstring(L, "the metatable is locked");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"cron", tf_cron},
                                   {"webhook", tf_webhook},
                                   {"event", tf_event},
                                   {"on", tf_on},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
