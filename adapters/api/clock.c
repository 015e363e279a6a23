/*
 * clock.c - the operator's clock routes (docs/configuration.md):
 *
 *   GET  /v1/admin/clock                   -> {"now": "<RFC 3339>"}
 *   POST /v1/admin/clock {"now": "<RFC 3339>"}   sets the engine's time
 *   POST /v1/admin/clock {"advance_ms": n}        moves it n ms (n >= 0)
 *
 * Only the test clock (`--clock=test`) moves; a node on the system clock
 * answers a POST with 409.
 * The clock never goes back: a `now` before the current time is refused
 * (422), because leases, due times and ids all assume time moves forward.
 * Every loop shares the one clock, so the next decision of any loop sees
 * the new time.
 */
#include <stdio.h>
#include <string.h>

#include "adapters/api/routes.h"
#include "engine/error.h"
#include "engine/timefmt.h"

#define ADVANCE_MAX_MS (INT64_C(100) * 365 * 24 * 3600 * 1000) /* a century */

static void answer_now(tf_http_req_t *req, const tf_clock_t *clock) {
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "now");
    int rc = tf_api_time(&b, tf_clock_now(clock));
    tf_jbuf_obj_close(&b);
    tf_api_respond_built(req, 200, &b, rc);
}

static void get_clock(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    answer_now(req, lp->env->clock);
}

/* The time the body asks for; answers 422 and returns -1 when it is bad. */
static int target_time(tf_http_req_t *req, const json_t *body, int64_t now, int64_t *out) {
    const json_t *at = json_object_get(body, "now");
    const json_t *advance = json_object_get(body, "advance_ms");
    if (json_object_size(body) != 1 || (at == NULL && advance == NULL)) {
        tf_api_invalid(req, "body", "give exactly one of now (an RFC 3339 time) or advance_ms");
        return -1;
    }
    if (advance != NULL) {
        if (!json_is_integer(advance) || json_integer_value(advance) < 0 ||
            json_integer_value(advance) > ADVANCE_MAX_MS) {
            tf_api_invalid(req, "advance_ms",
                           "advance_ms must be an integer from 0 to a century in milliseconds");
            return -1;
        }
        *out = now + json_integer_value(advance);
        return 0;
    }
    const char *text = json_string_value(at);
    if (text == NULL || tf_time_parse(text, strlen(text), out) != 0) {
        tf_api_invalid(req, "now", "now must be an RFC 3339 time like 2026-11-26T07:00:00.000Z");
        return -1;
    }
    if (*out < now) {
        tf_api_invalid(req, "now",
                       "the clock does not go back: now must not be before the "
                       "current time");
        return -1;
    }
    return 0;
}

static void set_clock(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    const tf_clock_t *clock = lp->env->clock;
    if (clock->set_ms == NULL) {
        tf_http_respond_error(req, 409, "conflict",
                              "this node runs on the system clock; only a node started with "
                              "--clock=test has a clock the API moves",
                              NULL);
        return;
    }
    json_t *body = tf_api_object_body(req, "a JSON object with now or advance_ms is required");
    if (body == NULL) {
        return;
    }
    int64_t target = 0;
    if (target_time(req, body, tf_clock_now(clock), &target) == 0) {
        int rc = clock->set_ms(clock->ctx, target);
        if (rc != 0) {
            tf_api_invalid(req, "now", "the clock cannot be set to that time");
        } else {
            tf_log_info(lp->env->log, "test clock moved", TF_LF_INT("now_ms", (long long)target));
            answer_now(req, clock);
        }
    }
    json_decref(body);
}

const tf_api_route_t tf_api_clock_routes[] = {
    {"GET", "/v1/admin/clock", TF_ROUTE_ADMIN, get_clock},
    {"POST", "/v1/admin/clock", TF_ROUTE_ADMIN, set_clock},
};
const size_t tf_api_clock_routes_count =
    sizeof(tf_api_clock_routes) / sizeof(tf_api_clock_routes[0]);
