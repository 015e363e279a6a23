/*
 * usecases.h - the application's use cases and what they run on.
 *
 * A use case is one verb of ARCHITECTURE.md (submit, claim, finish, cancel,
 * retry, ...): it asks the engine what to decide (state machine, retry
 * policy, fair-share plan, dependency release) and the ports to read and
 * write (engine/store.h, engine/tenants.h, engine/clock.h, engine/events.h).
 * It knows nothing of HTTP, SQL or libuv: the HTTP API (adapters/api) and
 * the worker runtime (adapters/worker) call it, and its tests run it on fake
 * ports in microseconds (tests/adapters/usecases).
 *
 * A tf_uc_t is one loop's context: the ports of that loop's store, the
 * process's clock, and the loop's UUID generator (whose RNG also draws
 * retry jitter).  Every use case follows the store's conventions: it
 * returns 0 and calls back exactly once later, or returns a negative TF_E*
 * code and never calls back.  Loop thread of the context only.
 */
#ifndef TF_ADAPTERS_USECASES_USECASES_H
#define TF_ADAPTERS_USECASES_USECASES_H

#include <stdint.h>

#include "engine/clock.h"
#include "engine/scripts.h"
#include "engine/store.h"
#include "engine/tenants.h"
#include "engine/tz.h"
#include "engine/uuid.h"

typedef struct {
    const tf_job_store_t *store;
    const tf_tenant_store_t *tenants;
    const tf_clock_t *clock;
    tf_uuid_gen_t *uuids;
    const tf_script_store_t *scripts;     /* Lua executors; NULL: none on this node */
    const tf_script_checker_t *checker;   /* checks uploads; NULL: none */
    const tf_rule_store_t *rules;         /* automation rules; NULL: none on this node */
    const tf_rule_evaluator_t *evaluator; /* runs rules; NULL: none */
    const tf_zone_source_t *zones;        /* time zones of cron triggers; NULL: UTC only */
    struct tf_uc_rule_line *rule_lines;   /* events.c: rules whose firings take turns; NULL */
} tf_uc_t;

static inline int64_t tf_uc_now(const tf_uc_t *uc) {
    return tf_clock_now(uc->clock);
}

/* A new UUIDv7 for now, as text. */
void tf_uc_new_id(tf_uc_t *uc, char out[TF_ID_LEN]);

/* A new UUIDv7 stamped with `unix_ms` (which may be past: a record of
 * something that happened then, sorting among its neighbours by that time),
 * as text. */
void tf_uc_new_id_at(tf_uc_t *uc, int64_t unix_ms, char out[TF_ID_LEN]);

#endif
