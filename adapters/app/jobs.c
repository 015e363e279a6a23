/*
 * jobs.c - registers the jobs API routes of jobs_submit.c, jobs_read.c and
 * jobs_actions.c (see jobs.h).
 */
#include "adapters/app/jobs.h"

int tf_jobs_register(tf_router_t *router, const tf_app_env_t *env) {
    int rc = tf_jobs_submit_register(router, env);
    if (rc == 0) {
        rc = tf_jobs_read_register(router, env);
    }
    if (rc == 0) {
        rc = tf_jobs_actions_register(router, env);
    }
    return rc;
}
