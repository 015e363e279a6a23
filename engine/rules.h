/*
 * rules.h - the rule store port: tenants' automation rules (issue 9), each
 * a Lua script with a trigger (engine/trigger.h), a condition and an
 * action, every upload kept as a version.
 *
 * Same contract as the job store (store.h): asynchronous, callbacks exactly
 * once with a status, rows borrowed for the callback.  Implemented by
 * adapters/pg/store_rules.c; tests fake it.
 *
 * A rule has an id, a name unique among the tenant's live rules, a current
 * version, whether it is enabled, and its trigger (of the current version;
 * a version never changes the trigger's kind).  A webhook rule also has a
 * hook key (its URL) and a signing secret, made when it is created and
 * shown once.  Deleting a rule keeps its versions (and, once rules fire,
 * its runs and the jobs that name it).
 */
#ifndef TF_ENGINE_RULES_H
#define TF_ENGINE_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "engine/store.h"
#include "engine/trigger.h"

#define TF_RULE_HOOK_KEY_LEN 32    /* hex characters of a hook key */
#define TF_RULE_HOOK_SECRET_LEN 64 /* hex characters of a hook secret (32 bytes) */

/* A rule (its current version), or one of its versions (`rule` 0). */
typedef struct {
    const char *id, *tenant_id, *name; /* tenant_id NULL: a platform rule */
    int version;
    int enabled;
    int has_condition; /* the version has a condition function */
    tf_trigger_kind_t kind;
    const char *trigger_json;         /* {"kind": ..., ...}: docs/api.md, "Rule" */
    const char *cron, *timezone;      /* cron triggers: the expression and zone; NULL otherwise */
    const char *catch_up;             /* cron triggers: "latest" or "none"; NULL otherwise */
    int64_t next_fire_ms;             /* cron triggers: the first fire time not dealt with yet;
                                         TF_TIME_NONE: none (deleted, or never fires) */
    const char *hook_key;             /* webhook rules; NULL otherwise */
    const char *hook_secret;          /* webhook rules, read by hook key only */
    const char *hook_secret_previous; /* by hook key: the secret before the last rotation */
    int64_t hook_previous_until_ms;   /* ...valid until then; TF_TIME_NONE: none */
    const char *state_json;           /* ctx.state as stored (event_rules; NULL: none yet) */
    int64_t state_version;            /* of state_json; 0: none yet */
    const char *source;               /* NULL in listings */
    size_t source_len;
    const char *sha256;
    const char *created_by;
    int64_t created_at_ms, updated_at_ms;
    const char *tenant_json;  /* cron_due, hook_rule: ctx.tenant of a tenant's rule; else NULL */
    const char *last_outcome; /* admin_list: the last run's ("fired", ...); NULL: none */
    int64_t last_run_ms;      /* admin_list: its time; TF_TIME_NONE: none */
} tf_rule_t;

/* A new rule or a new version of one. */
typedef struct {
    const char *tenant_id;
    const char *id;   /* the rule's id (new: made by the caller) */
    const char *name; /* from the script */
    const char *source;
    size_t source_len;
    tf_trigger_kind_t kind;
    const char *trigger_json;
    int has_condition;
    const char *hook_key, *hook_secret; /* new webhook rules */
    const char *actor;
    int64_t now_ms;
    int64_t next_fire_ms; /* cron rules: the first fire time after now (an update of the same
                             trigger keeps the stored one); TF_TIME_NONE otherwise */
} tf_rule_put_t;

typedef struct {
    int version;
    const char *sha256;
    int enabled;          /* the rule's (a new version keeps it) */
    const char *hook_key; /* webhook rules */
    int64_t next_fire_ms; /* cron rules: as stored; TF_TIME_NONE otherwise */
} tf_rule_put_result_t;

typedef void (*tf_rule_put_cb)(void *arg, int status, const tf_rule_put_result_t *result);
/* rule NULL: the tenant has no live rule with that id. */
typedef void (*tf_rule_get_cb)(void *arg, int status, const tf_rule_t *rule);
typedef void (*tf_rule_list_cb)(void *arg, int status, const tf_rule_t *rules, size_t n);
typedef void (*tf_rule_status_cb)(void *arg, int status);

/* One firing of a rule, recorded with what it created. */
typedef enum {
    TF_RULE_RUN_FIRED = 0,   /* the action ran */
    TF_RULE_RUN_NOT_MATCHED, /* the condition was false */
    TF_RULE_RUN_FAILED,      /* the condition or the action failed: nothing created */
    TF_RULE_RUN_SKIPPED,     /* a fire time not run (reason in error_message) */
} tf_rule_run_outcome_t;

typedef struct {
    const char *tenant_id, *id, *rule_id;
    int version;
    const char *trigger;   /* "event:<name>", "cron", "webhook", "job.<event>" */
    const char *dedup_key; /* at most one run per rule and key; NULL: none */
    int64_t at_ms;
    tf_rule_run_outcome_t outcome;
    int condition; /* -1: not evaluated, 0, 1 */
    const char *error_type, *error_message;
    int64_t duration_ms;
    const char *state_json; /* the new ctx.state; NULL: unchanged */
    int64_t state_version;  /* the version the run read (0: none): the state and the run are
                               written only if it is still current */
    const tf_new_job_t *const *jobs;
    size_t njobs;
} tf_rule_run_t;

/* A recorded run, as listed. */
typedef struct {
    const char *id, *rule_id, *tenant_id;
    int version;
    const char *trigger, *dedup_key;
    int64_t at_ms;
    tf_rule_run_outcome_t outcome;
    int condition;
    const char *jobs_json; /* JSON array of job ids */
    const char *error_type, *error_message;
    int64_t duration_ms;
} tf_rule_run_row_t;

/* How recording a run went: recorded 1; or stale 1 (the state changed
 * since the run read it: nothing written, evaluate again); or neither: a
 * run of that rule and dedup_key exists, nothing written, and
 * `first_run_id` and `first_jobs_json` (a JSON array of job ids) are that
 * run's when they could be read (else NULL). */
typedef struct {
    int recorded, stale;
    const char *first_run_id, *first_jobs_json;
} tf_rule_recorded_t;

typedef void (*tf_rule_recorded_cb)(void *arg, int status, const tf_rule_recorded_t *result);

/* What became of a cron rule's due fire times (engine/cronplan.h): the
 * skipped ones, recorded as runs (outcome skipped, error_type the reason),
 * and the next fire time. */
typedef struct {
    const char *rule_id;
    const char *tenant_id; /* NULL: a platform rule (skipped for every tenant) */
    int version;
    int64_t due_ms;  /* the fire time the rule was taken at */
    int64_t next_ms; /* TF_TIME_NONE: never again */
    size_t nskipped;
    const char *const *run_ids, *const *dedup_keys, *const *reasons, *const *messages;
    const int64_t *skipped_ms;
} tf_rule_cron_done_t;

/* released: the rules released (the others another node holds now: nothing
 * written for them). */
typedef void (*tf_rule_cron_done_cb)(void *arg, int status, size_t released);

/* A job event (the outbox of engine/events.h) that some rule waits for. */
typedef struct {
    const char *tenant_id;
    int64_t id;       /* the event's, unique */
    const char *name; /* "job.succeeded", "job.failed", "job.dead", "job.cancelled" */
    const char *job_type, *job_queue;
    const char *correlation_id; /* the job's; NULL: none */
    const char *event_json;     /* ev: {name, event_id, reason, at, job: {...}} */
} tf_rule_job_event_t;

/* held 0: another node consumes the events now (n 0).  `position` (opaque)
 * is where the cursor goes once these events are dealt with. */
typedef void (*tf_rule_job_events_cb)(void *arg, int status, int held,
                                      const tf_rule_job_event_t *events, size_t n,
                                      const char *position);
typedef void (*tf_rule_state_cb)(void *arg, int status, const char *state_json, int64_t version);
typedef void (*tf_rule_runs_cb)(void *arg, int status, const tf_rule_run_row_t *runs, size_t n);

typedef struct {
    void *ctx;
    /* Creates the rule with version 1: TF_ECONFLICT when the tenant has a
     * live rule of that name. */
    int (*create)(void *ctx, const tf_rule_put_t *put, tf_rule_put_cb cb, void *arg);
    /* Records a new version and makes it current: TF_ENOTFOUND (no such
     * live rule), TF_ECONFLICT (the name is another live rule's), TF_ESTATE
     * (the trigger's kind would change); nothing changes then. */
    int (*update)(void *ctx, const tf_rule_put_t *put, tf_rule_put_cb cb, void *arg);
    /* The live rule with its current source. */
    int (*get)(void *ctx, const char *tenant_id, const char *id, tf_rule_get_cb cb, void *arg);
    /* The tenant's live rules, by name (no source). */
    int (*list)(void *ctx, const char *tenant_id, tf_rule_list_cb cb, void *arg);
    /* The rule's versions, newest first (no source). */
    int (*versions)(void *ctx, const char *tenant_id, const char *id, tf_rule_list_cb cb,
                    void *arg);
    /* Enables or disables the live rule: TF_ENOTFOUND when there is none. */
    int (*set_enabled)(void *ctx, const char *tenant_id, const char *id, int enabled,
                       int64_t now_ms, tf_rule_status_cb cb, void *arg);
    /* Deletes the live rule (TF_ENOTFOUND when there is none). */
    int (*remove)(void *ctx, const char *tenant_id, const char *id, int64_t now_ms,
                  tf_rule_status_cb cb, void *arg);
    /* The tenant's enabled live rules triggered by custom event `name`,
     * with source and stored state. */
    int (*event_rules)(void *ctx, const char *tenant_id, const char *name, tf_rule_list_cb cb,
                       void *arg);
    /* Records the run, its jobs and the new state in one transaction;
     * nothing when the rule already has a run with that dedup_key. */
    int (*record_run)(void *ctx, const tf_rule_run_t *run, tf_rule_recorded_cb cb, void *arg);
    /* The rule's ctx.state for the tenant and its version (NULL, 0: none). */
    int (*state)(void *ctx, const char *tenant_id, const char *rule_id, tf_rule_state_cb cb,
                 void *arg);
    /* The enabled live rule with this hook key (any tenant), with its
     * source, state and hook secret; rule NULL: none. */
    int (*hook_rule)(void *ctx, const char *hook_key, tf_rule_get_cb cb, void *arg);
    /* The rule's runs, newest first: at most `limit`, before run id
     * `before_id` (NULL: from the newest), only `outcome` (-1: any). */
    int (*runs)(void *ctx, const char *tenant_id, const char *rule_id, const char *before_id,
                int outcome, int limit, tf_rule_runs_cb cb, void *arg);
    /* At most `limit` live cron rules due at `now_ms` that no node holds,
     * leased to `node` for `lease_ms`, with their source and tenant (NULL:
     * a platform rule) and state. */
    int (*cron_due)(void *ctx, const char *node, int64_t now_ms, int64_t lease_ms, int limit,
                    tf_rule_list_cb cb, void *arg);
    /* For each of `n` rules: records its skipped fire times, moves it to
     * its next fire time and releases it, only if `node` still holds it at
     * its `due_ms`; one transaction for all. */
    int (*cron_done)(void *ctx, const char *node, const tf_rule_cron_done_t *done, size_t n,
                     tf_rule_cron_done_cb cb, void *arg);
    /* Takes the job events' cursor for `node` (a lease of `lease_ms`) and
     * reads at most `limit` events after it that an enabled rule waits for,
     * in the order their transactions committed before every running one. */
    int (*job_events)(void *ctx, const char *node, int64_t now_ms, int64_t lease_ms, int limit,
                      tf_rule_job_events_cb cb, void *arg);
    /* Moves the cursor to `position` if `node` still holds it
     * (TF_ENOTFOUND: it does not). */
    int (*job_events_done)(void *ctx, const char *node, const char *position, tf_rule_status_cb cb,
                           void *arg);
    /* The tenant's enabled live rules waiting for job event `event` of a
     * job of `type` in `queue`, with source and state. */
    int (*job_rules)(void *ctx, const char *tenant_id, const char *event, const char *type,
                     const char *queue, tf_rule_list_cb cb, void *arg);
    /* Every live rule of every tenant and the platform's, by id after
     * `after_id` (NULL: from the first), at most `limit`, with the last
     * run's outcome and time. */
    int (*admin_list)(void *ctx, const char *after_id, int limit, tf_rule_list_cb cb, void *arg);
    /* Gives the tenant's webhook rule a new signing secret; the old one
     * stays valid until `previous_until_ms`.  TF_ENOTFOUND: no such live
     * rule; TF_ESTATE: it is not a webhook rule. */
    int (*rotate_secret)(void *ctx, const char *tenant_id, const char *id, const char *secret,
                         int64_t previous_until_ms, int64_t now_ms, tf_rule_status_cb cb,
                         void *arg);
} tf_rule_store_t;

/* What checking an uploaded rule found in its returned table. */
typedef struct {
    const char *name;
    const tf_trigger_t *trigger;
    int has_condition;
} tf_rule_meta_t;

/* `status` 0 with `meta`; TF_EINVAL with `message`; another TF_E* code
 * when the check could not run. */
typedef void (*tf_rule_check_cb)(void *arg, int status, const char *message,
                                 const tf_rule_meta_t *meta);

/* ---- evaluating a rule (the Lua host: adapters/luaexec) ---- */

/* One evaluation: the rule's condition(ev, ctx) (when it has one) and, when
 * that is true, its action(ev, ctx).  Strings are copied. */
typedef struct {
    const char *tenant_id, *rule_id, *rule_name;
    int version;
    const char *source;
    size_t source_len;
    int has_condition;
    const char *event_json; /* ev */
    const char *ctx_json;   /* ctx: {tenant, rule, state, now, ...} */
    const char *correlation_id;
    int capture_logs; /* a dry run: the outcome carries the tf.log lines */
} tf_rule_eval_t;

/* How an evaluation went.  Borrowed for the callback. */
typedef struct {
    int ok;                          /* 0: the condition or the action failed */
    int condition;                   /* the condition's answer (1 for a rule without one) */
    const char *state_json;          /* ctx.state after the action (JSON); NULL: it did not run */
    const tf_new_job_t *const *jobs; /* what the action created with tf.enqueue */
    size_t njobs;
    const char *error_type, *error_message; /* !ok */
    const char *logs_json; /* capture_logs: [{"level", "message", "fields"}, ...]; else NULL */
} tf_rule_outcome_t;

/* status 0 with the outcome; another TF_E* code when nothing ran. */
typedef void (*tf_rule_eval_cb)(void *arg, int status, const tf_rule_outcome_t *outcome);

typedef struct {
    void *ctx;
    int (*evaluate)(void *ctx, const tf_rule_eval_t *req, tf_rule_eval_cb cb, void *arg);
} tf_rule_evaluator_t;

#endif
