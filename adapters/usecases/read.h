/*
 * read.h - the read use cases of the jobs API: one job, its attempts and
 * transitions, and listings (jobs and the dead letter).
 *
 * Listings are keyset pages over the job id.  Ids are UUIDv7 whose
 * timestamp is the job's created_at millisecond, so "created after T" and
 * "created before T" are id ranges; together with the cursor they become
 * one inclusive range [lower, upper] computed here on the raw 16 bytes,
 * which is also PostgreSQL's uuid order.  A page reads limit + 1 jobs to
 * know whether there is a next one, which starts strictly after the last
 * job shown: jobs inserted while a client pages never shift what it sees.
 * Loop thread of the use-case context only.
 */
#ifndef TF_ADAPTERS_USECASES_READ_H
#define TF_ADAPTERS_USECASES_READ_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/usecases/usecases.h"

int tf_uc_get_job(tf_uc_t *uc, const char *tenant_id, const char *job_id, tf_store_job_cb cb,
                  void *arg);
int tf_uc_get_attempts(tf_uc_t *uc, const char *tenant_id, const char *job_id,
                       tf_store_attempts_cb cb, void *arg);
int tf_uc_get_transitions(tf_uc_t *uc, const char *tenant_id, const char *job_id,
                          tf_store_transitions_cb cb, void *arg);

/* One page of a listing. */
typedef struct {
    const char *tenant_id;
    int dead_letter;           /* the dead letter (only `queue` filters it) */
    tf_job_state_set_t states; /* 0: any */
    const char *queue, *type, *correlation_id, *rule_id; /* NULL: any */
    int has_after, has_before;
    int64_t after_ms, before_ms; /* created strictly after / before */
    const tf_uuid_t *after_id;   /* the cursor's last id; NULL: the first page */
    int limit;                   /* 1..1000 */
} tf_uc_list_t;

/* `jobs` holds at most `limit` jobs; `more` is 1 when another page
 * follows (it starts after jobs[n - 1]). */
typedef void (*tf_uc_page_cb)(void *arg, int status, const tf_job_t *jobs, size_t n, int more);

/* Reads one page.  Returns TF_ERANGE without calling back when the filters
 * leave no id at all (the page is empty and the last one). */
int tf_uc_list_jobs(tf_uc_t *uc, const tf_uc_list_t *list, tf_uc_page_cb cb, void *arg);

#endif
