/*
 * rules.h - tenants' automation rules (issue 9): upload (a new rule or a
 * new version, checked in a scratch sandbox), and the checks behind them.
 * Reading, listing, enabling and deleting go to the rule store port as
 * they are.
 *
 * An upload is refused before anything runs like an executor's
 * (tf_uc_script_source_check: empty, too large, binary, not UTF-8); then
 * the checker runs it and vets the table it returns ({name, trigger,
 * condition, action}); a cron trigger's time zone must be one the zones
 * port knows; then the store records it.  A new webhook rule keeps the
 * hook key and secret the caller drew (the API, from a CSPRNG).
 * Loop thread of the use-case context only.
 */
#ifndef TF_ADAPTERS_USECASES_RULES_H
#define TF_ADAPTERS_USECASES_RULES_H

#include <stddef.h>

#include "adapters/usecases/usecases.h"
#include "engine/rules.h"

typedef struct {
    const char *tenant_id; /* NULL: a platform rule, evaluated for every tenant */
    const char *id; /* NULL: a new rule; else a new version of that rule */
    const char *source;
    size_t len;
    const char *actor;
    const char *hook_key, *hook_secret; /* for a new webhook rule (random, hex) */
} tf_uc_rule_upload_t;

/* status 0: `rule` is the new version (without source), `created` 1 for a
 * new rule, `hook_secret` set for a new webhook rule (shown once).
 * TF_EINVAL (the script), TF_ECONFLICT (the name is taken), TF_ESTATE (the
 * trigger's kind changed), TF_ENOTFOUND: `message` says why.  Other TF_E*
 * codes: the store or the checker failed. */
typedef void (*tf_uc_rule_upload_cb)(void *arg, int status, const char *message,
                                     const tf_rule_t *rule, int created, const char *hook_secret);

/* Returns 0 and calls `cb` later, or a TF_E* code (TF_EINVAL, TF_ETOOBIG
 * with why in `err`) and never calls it. */
int tf_uc_rule_upload(tf_uc_t *uc, const tf_uc_rule_upload_t *up, tf_uc_rule_upload_cb cb,
                      void *arg, char *err, size_t errlen);

/* status 0: how the dry run of the rule's current version went (the
 * condition, and when it is true the action: the jobs it would create and
 * ctx.state after it); nothing is written.  TF_ENOTFOUND: no such rule.
 * Other TF_E* codes: the store or the evaluator failed. */
typedef void (*tf_uc_rule_test_cb)(void *arg, int status, const tf_rule_outcome_t *outcome);

/* A dry run of rule `id` of `owner` (a tenant id; NULL: a platform rule)
 * on `event_json` (a JSON object; NULL: a sample event of the rule's
 * trigger), evaluated as tenant `tenant_id` in its sandbox, as a firing
 * for that tenant would be.  ctx is {tenant = {id, name, plan,
 * attributes}, rule = {id, name, version}, state = {}, now, dry_run =
 * true}.  TF_ENOTFOUND: no such rule of `owner`; TF_EINVAL: no tenant
 * `tenant_id`.  Returns 0 and calls `cb` later, or a TF_E* code and never
 * calls it. */
int tf_uc_rule_test(tf_uc_t *uc, const char *tenant_id, const char *owner, const char *id,
                    const char *event_json, tf_uc_rule_test_cb cb, void *arg);

/* ctx.tenant of a rule run: {id, name, plan, attributes} as JSON (caller
 * frees); NULL when out of memory. */
char *tf_uc_tenant_json(const tf_tenant_t *tenant);

#endif
