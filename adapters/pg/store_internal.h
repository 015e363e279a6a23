/*
 * store_internal.h - what the files of the Postgres store share: the store
 * itself, row decoding into domain types, and the parameters every
 * statement takes.  Not a public contract: only adapters/pg/store*.c
 * include it.  Loop thread of the store.
 */
#ifndef TF_ADAPTERS_PG_STORE_INTERNAL_H
#define TF_ADAPTERS_PG_STORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "adapters/json/jbuf.h"
#include "adapters/pg/pool.h"
#include "adapters/pg/store.h"
#include "engine/timefmt.h"

/* Requests that wait to go to the database together (store_rules.c): a
 * FIFO through a link that is each request's first member, and how many
 * of its groups are out. */
typedef struct tf__pg_link {
    struct tf__pg_link *next;
} tf__pg_link_t;
typedef struct {
    tf__pg_link_t *head, *tail;
    int in_flight;
} tf__pg_waitq_t;

struct tf_pg_store {
    tf_pg_pool_t *pool;
    tf_log_t *log;
    tf_job_store_t jobs;
    tf_tenant_store_t tenants;
    tf_script_store_t scripts;
    tf_rule_store_t rules;
    tf__pg_waitq_t runs;  /* rule runs waiting for the next group commit */
    tf__pg_waitq_t hooks; /* webhook deliveries waiting for their rule */
    unsigned job_ord;     /* the last `ord` given to a rule's job row */
};

/* The statements of each part, prepared on every connection. */
extern const tf_pg_prepared_t tf__pg_jobs_prepared[];
extern const size_t tf__pg_jobs_prepared_count;
extern const tf_pg_prepared_t tf__pg_work_prepared[];
extern const size_t tf__pg_work_prepared_count;
extern const tf_pg_prepared_t tf__pg_tenants_prepared[];
extern const size_t tf__pg_tenants_prepared_count;
extern const tf_pg_prepared_t tf__pg_scripts_prepared[];
extern const size_t tf__pg_scripts_prepared_count;
extern const tf_pg_prepared_t tf__pg_rules_prepared[];
extern const size_t tf__pg_rules_prepared_count;

/* The operations of each part, set into the ports by store.c. */
void tf__pg_jobs_bind(tf_job_store_t *port);
void tf__pg_work_bind(tf_job_store_t *port);
void tf__pg_tenants_bind(tf_tenant_store_t *port);
void tf__pg_scripts_bind(tf_script_store_t *port);
void tf__pg_rules_bind(tf_rule_store_t *port);

/* ---- parameters ---- */

/* A time as the text a timestamptz parameter takes (RFC 3339, UTC). */
typedef struct {
    char text[TF_TIME_STR_LEN + 1];
} tf__pg_time_t;

/* Formats `ms` (TF_TIME_NONE gives NULL); returns the text or NULL. */
const char *tf__pg_time_param(int64_t ms, tf__pg_time_t *buf);

/* A small integer as parameter text. */
typedef struct {
    char text[24];
} tf__pg_int_t;
const char *tf__pg_int_param(int64_t v, tf__pg_int_t *buf);

/* A set of job states as a smallint[] literal ("{0,1,2}"). */
typedef struct {
    char text[32];
} tf__pg_states_t;
const char *tf__pg_states_param(tf_job_state_set_t set, tf__pg_states_t *buf);

/* `n` UUID strings as a uuid[] literal.  Caller frees; NULL when out of
 * memory or when an id is not 36 characters. */
char *tf__pg_uuid_array(const char *const *ids, size_t n);

/* `n` strings as an array literal (quoted, escaped; NULL items are NULL
 * elements).  Caller frees; NULL when out of memory. */
char *tf__pg_text_array(const char *const *items, size_t n);

/* One job as a row of the submit statements' $1 (store_jobs.c);
 * `guard` (may be NULL) is what the guarded inserts check: the lease token
 * of the attempt whose run enqueued the job, or the id of the rule run that
 * created it. */
void tf__pg_write_job_row(tf_jbuf_t *b, const tf_new_job_t *j, int ord, const char *guard);

/* ---- decoding ---- */

/* The text of a column, or NULL for SQL NULL. */
static inline const char *tf__pg_text(const PGresult *res, int row, int col) {
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* An integer column (`if_null` for SQL NULL). */
int64_t tf__pg_int(const PGresult *res, int row, int col, int64_t if_null);

/* A boolean column ('t'). */
static inline int tf__pg_bool(const PGresult *res, int row, int col) {
    return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

/* A timestamptz column into Unix ms (TF_TIME_NONE for NULL).  Returns 0 or
 * TF_EIO for text that is not a time. */
int tf__pg_time(const PGresult *res, int row, int col, int64_t *out);

/* The columns of a job, for `SELECT " TF_PG_JOB_COLUMNS " FROM jobs j`. */
#define TF_PG_JOB_COLUMNS                                                                          \
    "j.id::text, j.tenant_id::text, j.queue, j.type, j.state, j.priority, j.payload::text, "       \
    "j.attempts, j.max_attempts, j.run_at, j.created_at, j.updated_at, j.started_at, "             \
    "j.finished_at, j.last_error_type, j.last_error_message, j.result::text, j.correlation_id, "   \
    "j.parent_id::text, j.rule_id::text, to_json(j.depends_on)::text, j.retry_policy::text, "      \
    "j.executor::text, j.metadata::text, j.timeout_ms, j.idempotency_key"
#define TF_PG_JOB_NCOLUMNS 26

/* Decodes the job whose columns start at `col` of `row`.  Strings point
 * into `res`.  Returns 0 or TF_EIO (a time or state the API cannot show). */
int tf__pg_job(const PGresult *res, int row, int col, tf_job_t *out);

/* Decodes the rows of a reply's first result into a new array of `size`
 * byte items with `decode`, which returns 0 (keep the item), 1 (the row
 * stands for nothing: skip it) or a TF_E* code.  Returns 0 with *out
 * (caller frees; NULL when no item) and *n, or the reply's status,
 * TF_ENOMEM or the first decoding error (then *out is NULL and *n 0). */
int tf__pg_rows(const tf_pg_reply_t *reply, size_t size,
                int (*decode)(const PGresult *res, int row, void *item), void **out, size_t *n);

/* A job from column 0 (a tf__pg_rows() decoder). */
int tf__pg_job_row(const PGresult *res, int row, void *item);

/* ---- running statements ---- */

/* Runs one prepared statement `name` with `nparams` text parameters on the
 * store's pool; `done` gets the reply and `arg`. */
int tf__pg_run(tf_pg_store_t *s, const char *name, const char *const *values, int nparams,
               tf_pg_cb done, void *arg);

/* The port callback an operation answers, kept while its statement runs:
 * tf__pg_run_pending() allocates it, the reply handler `done` calls `cb`
 * (cast back to the operation's callback type) and frees it. */
typedef struct {
    void (*cb)(void);
    void *arg;
} tf__pg_pending_t;

int tf__pg_run_pending(tf_pg_store_t *s, const char *name, const char *const *values, int nparams,
                       tf_pg_cb done, void (*cb)(void), void *arg);

/* Finishes a JSON buffer into text (caller frees); NULL when out of memory. */
char *tf__pg_jbuf_text(tf_jbuf_t *b);

#endif
