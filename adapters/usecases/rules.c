/*
 * rules.c - uploading a tenant's automation rule (see rules.h).
 */
#include "adapters/usecases/rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/usecases/cron.h"
#include "adapters/usecases/executors.h"
#include "engine/error.h"
#include "engine/jsonstr.h"
#include "engine/store.h"
#include "engine/timefmt.h"

typedef struct {
    tf_uc_t *uc;
    tf_uc_rule_upload_cb cb;
    void *arg;
    char tenant_id[TF_ID_LEN], id[TF_ID_LEN];
    int create, platform; /* platform: a rule of every tenant (tenant_id NULL) */
    char hook_key[TF_RULE_HOOK_KEY_LEN + 1], hook_secret[TF_RULE_HOOK_SECRET_LEN + 1];
    char *source;
    size_t len;
    char *actor;
    char name[TF_SCRIPT_NAME_MAX + 1];
    char trigger_json[1024];
    tf_trigger_t trigger;
    tf_trigger_kind_t kind;
    int64_t now_ms, next_fire_ms;
} upload_t;

static void upload_free(upload_t *u) {
    free(u->source);
    free(u->actor);
    free(u);
}

static void stored(void *arg, int status, const tf_rule_put_result_t *r) {
    upload_t *u = arg;
    const char *message = NULL;
    if (status == TF_ECONFLICT) {
        message = "the tenant has another rule of that name";
    } else if (status == TF_ESTATE) {
        message = "a new version cannot change the trigger's kind: create another rule";
    } else if (status == TF_ENOTFOUND) {
        message = "no such rule";
    }
    if (status != 0) {
        u->cb(u->arg, status, message, NULL, 0, NULL);
        upload_free(u);
        return;
    }
    int webhook = u->kind == TF_TRIGGER_WEBHOOK && u->create;
    tf_rule_t rule = {.id = u->id,
                      .tenant_id = u->platform ? NULL : u->tenant_id,
                      .name = u->name,
                      .version = r->version,
                      .enabled = r->enabled,
                      .trigger_json = u->trigger_json,
                      .cron = u->kind == TF_TRIGGER_CRON ? u->trigger.cron : NULL,
                      .timezone = u->kind == TF_TRIGGER_CRON ? u->trigger.timezone : NULL,
                      .next_fire_ms = r->next_fire_ms,
                      .hook_key = r->hook_key,
                      .sha256 = r->sha256,
                      .created_by = u->actor,
                      .created_at_ms = u->now_ms,
                      .updated_at_ms = u->now_ms};
    u->cb(u->arg, 0, NULL, &rule, u->create, webhook ? u->hook_secret : NULL);
    upload_free(u);
}

/* The trigger's time zone, when it has one, must be known. */
static int zone_known(const tf_uc_t *uc, const tf_trigger_t *t, char *message, size_t len) {
    if (t->kind != TF_TRIGGER_CRON || strcmp(t->timezone, "UTC") == 0) {
        return 1;
    }
    const tf_tz_t *tz = NULL;
    if (uc->zones != NULL && uc->zones->get(uc->zones->ctx, t->timezone, &tz) == 0) {
        return 1;
    }
    snprintf(message, len,
             "trigger: unknown time zone \"%s\" (an IANA name such as "
             "\"Europe/Oslo\" from the system's tzdata)",
             t->timezone);
    return 0;
}

static void checked(void *arg, int status, const char *message, const tf_rule_meta_t *meta) {
    upload_t *u = arg;
    char why[300];
    if (status == 0 && !zone_known(u->uc, meta->trigger, why, sizeof(why))) {
        status = TF_EINVAL;
        message = why;
    }
    if (status == 0 && u->platform && meta->trigger->kind == TF_TRIGGER_WEBHOOK) {
        status = TF_EINVAL;
        message = "trigger: a platform rule cannot be a webhook (a delivery is one tenant's: "
                  "upload the rule as that tenant)";
    }
    if (status == 0 && tf_trigger_json(meta->trigger, u->trigger_json, sizeof(u->trigger_json))) {
        status = TF_EIO;
    }
    if (status != 0) {
        u->cb(u->arg, status, message, NULL, 0, NULL);
        upload_free(u);
        return;
    }
    snprintf(u->name, sizeof(u->name), "%s", meta->name);
    u->trigger = *meta->trigger;
    u->kind = meta->trigger->kind;
    int webhook = u->kind == TF_TRIGGER_WEBHOOK && u->create;
    u->next_fire_ms = u->kind == TF_TRIGGER_CRON
                          ? tf_uc_cron_next(u->uc, u->trigger.cron, u->trigger.timezone, u->now_ms)
                          : TF_TIME_NONE;
    tf_rule_put_t put = {.tenant_id = u->platform ? NULL : u->tenant_id,
                         .id = u->id,
                         .name = u->name,
                         .source = u->source,
                         .source_len = u->len,
                         .kind = u->kind,
                         .trigger_json = u->trigger_json,
                         .has_condition = meta->has_condition,
                         .hook_key = webhook ? u->hook_key : NULL,
                         .hook_secret = webhook ? u->hook_secret : NULL,
                         .actor = u->actor,
                         .now_ms = u->now_ms,
                         .next_fire_ms = u->next_fire_ms};
    const tf_rule_store_t *s = u->uc->rules;
    int rc = u->create ? s->create(s->ctx, &put, stored, u) : s->update(s->ctx, &put, stored, u);
    if (rc != 0) {
        u->cb(u->arg, rc, NULL, NULL, 0, NULL);
        upload_free(u);
    }
}

int tf_uc_rule_upload(tf_uc_t *uc, const tf_uc_rule_upload_t *up, tf_uc_rule_upload_cb cb,
                      void *arg, char *err, size_t errlen) {
    int rc = tf_uc_script_source_check(up->source, up->len, err, errlen);
    if (rc != 0) {
        return rc;
    }
    if (uc->rules == NULL || uc->checker == NULL || uc->checker->check_rule == NULL) {
        snprintf(err, errlen, "automation rules are not available on this node");
        return TF_EUNAVAIL;
    }
    if (up->id == NULL && (up->hook_key == NULL || up->hook_secret == NULL ||
                           strlen(up->hook_key) != TF_RULE_HOOK_KEY_LEN ||
                           strlen(up->hook_secret) != TF_RULE_HOOK_SECRET_LEN)) {
        return TF_EINVAL; /* the caller's fault, not the script's */
    }
    upload_t *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        return TF_ENOMEM;
    }
    u->uc = uc;
    u->cb = cb;
    u->arg = arg;
    u->now_ms = tf_uc_now(uc);
    u->create = up->id == NULL;
    u->platform = up->tenant_id == NULL;
    snprintf(u->tenant_id, sizeof(u->tenant_id), "%s", u->platform ? "platform" : up->tenant_id);
    if (u->create) {
        tf_uc_new_id(uc, u->id);
        snprintf(u->hook_key, sizeof(u->hook_key), "%s", up->hook_key);
        snprintf(u->hook_secret, sizeof(u->hook_secret), "%s", up->hook_secret);
    } else {
        snprintf(u->id, sizeof(u->id), "%s", up->id);
    }
    u->source = malloc(up->len + 1);
    u->actor = up->actor != NULL ? strdup(up->actor) : NULL;
    if (u->source == NULL || (up->actor != NULL && u->actor == NULL)) {
        upload_free(u);
        return TF_ENOMEM;
    }
    memcpy(u->source, up->source, up->len);
    u->source[up->len] = '\0';
    u->len = up->len;
    rc = uc->checker->check_rule(uc->checker->ctx, u->tenant_id, u->source, u->len, checked, u);
    if (rc != 0) {
        upload_free(u);
    }
    return rc;
}

/* ---- the dry run ---- */

typedef struct {
    tf_uc_t *uc;
    tf_uc_rule_test_cb cb;
    void *arg;
    char tenant_id[TF_ID_LEN], id[TF_ID_LEN];
    int platform; /* the rule is the platform's, run as tenant_id */
    char *event;  /* NULL: a sample */
    char *tenant; /* ctx.tenant: {id, name, plan, attributes} */
} test_t;

static void test_free(test_t *t) {
    free(t->event);
    free(t->tenant);
    free(t);
}

static void evaluated(void *arg, int status, const tf_rule_outcome_t *outcome) {
    test_t *t = arg;
    t->cb(t->arg, status, outcome);
    test_free(t);
}

static void rule_read(void *arg, int status, const tf_rule_t *rule) {
    test_t *t = arg;
    if (status == 0 && rule == NULL) {
        status = TF_ENOTFOUND;
    }
    if (status != 0) {
        t->cb(t->arg, status, NULL);
        test_free(t);
        return;
    }
    int64_t now = tf_uc_now(t->uc);
    char at[TF_TIME_STR_LEN + 1] = "";
    tf_time_format(now, at);
    char sample[200], ctx_head[400];
    snprintf(sample, sizeof(sample), "{\"kind\":\"%s\",\"at\":\"%s\",\"sample\":true}",
             tf_trigger_kind_name(rule->kind) != NULL ? tf_trigger_kind_name(rule->kind) : "", at);
    /* Ids are UUIDs and rule names [A-Za-z0-9_.:-]: nothing to escape. */
    snprintf(ctx_head, sizeof(ctx_head),
             "{\"rule\":{\"id\":\"%s\",\"name\":\"%s\",\"version\":%d},\"state\":{},"
             "\"now\":%lld,\"dry_run\":true,\"tenant\":",
             rule->id, rule->name, rule->version, (long long)now);
    size_t need = strlen(ctx_head) + strlen(t->tenant) + 2;
    char *ctx = malloc(need);
    if (ctx == NULL) {
        t->cb(t->arg, TF_ENOMEM, NULL);
        test_free(t);
        return;
    }
    snprintf(ctx, need, "%s%s}", ctx_head, t->tenant);
    char correlation[TF_ID_LEN];
    tf_uc_new_id(t->uc, correlation);
    tf_rule_eval_t req = {.tenant_id = t->tenant_id,
                          .rule_id = rule->id,
                          .rule_name = rule->name,
                          .version = rule->version,
                          .source = rule->source,
                          .source_len = rule->source_len,
                          .has_condition = rule->has_condition,
                          .event_json = t->event != NULL ? t->event : sample,
                          .ctx_json = ctx,
                          .correlation_id = correlation,
                          .capture_logs = 1};
    const tf_rule_evaluator_t *ev = t->uc->evaluator;
    int rc = ev->evaluate(ev->ctx, &req, evaluated, t);
    free(ctx); /* copied */
    if (rc != 0) {
        t->cb(t->arg, rc, NULL);
        test_free(t);
    }
}

char *tf_uc_tenant_json(const tf_tenant_t *tenant) {
    size_t len = 0, cap = 0;
    char *out = NULL;
    for (int pass = 0; pass < 2; pass++) {
        len = 0;
        tf_json_raw(out, cap, &len, "{\"id\":");
        tf_json_quote(out, cap, &len, tenant->id);
        tf_json_raw(out, cap, &len, ",\"name\":");
        tf_json_quote(out, cap, &len, tenant->name);
        tf_json_raw(out, cap, &len, ",\"plan\":");
        if (tenant->plan != NULL) {
            tf_json_quote(out, cap, &len, tenant->plan);
        } else {
            tf_json_raw(out, cap, &len, "null");
        }
        tf_json_raw(out, cap, &len, ",\"attributes\":");
        tf_json_raw(out, cap, &len, tenant->attributes != NULL ? tenant->attributes : "{}");
        tf_json_raw(out, cap, &len, "}");
        if (pass == 0) { /* measured: now write it */
            cap = len + 1;
            out = malloc(cap);
            if (out == NULL) {
                return NULL;
            }
        }
    }
    return out;
}

/* ctx.tenant, then the rule. */
static void tenant_read(void *arg, int status, const tf_tenant_t *tenant) {
    test_t *t = arg;
    if (status == 0 && tenant == NULL) {
        status = TF_EINVAL;
    }
    if (status == 0 && (t->tenant = tf_uc_tenant_json(tenant)) == NULL) {
        status = TF_ENOMEM;
    }
    if (status == 0) {
        status = t->uc->rules->get(t->uc->rules->ctx, t->platform ? NULL : t->tenant_id, t->id,
                                   rule_read, t);
    }
    if (status != 0) {
        t->cb(t->arg, status, NULL);
        test_free(t);
    }
}

int tf_uc_rule_test(tf_uc_t *uc, const char *tenant_id, const char *owner, const char *id,
                    const char *event_json, tf_uc_rule_test_cb cb, void *arg) {
    if (owner != NULL && strcmp(owner, tenant_id) != 0) {
        return TF_EINVAL; /* a tenant's rule runs as its tenant only */
    }
    if (uc->rules == NULL || uc->evaluator == NULL || uc->tenants == NULL) {
        return TF_EUNAVAIL;
    }
    test_t *t = calloc(1, sizeof(*t));
    if (t == NULL || (event_json != NULL && (t->event = strdup(event_json)) == NULL)) {
        free(t);
        return TF_ENOMEM;
    }
    t->uc = uc;
    t->cb = cb;
    t->arg = arg;
    t->platform = owner == NULL;
    snprintf(t->tenant_id, sizeof(t->tenant_id), "%s", tenant_id);
    snprintf(t->id, sizeof(t->id), "%s", id);
    int rc = uc->tenants->tenant_get(uc->tenants->ctx, tenant_id, tenant_read, t);
    if (rc != 0) {
        test_free(t);
    }
    return rc;
}
