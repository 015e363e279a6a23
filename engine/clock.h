/*
 * clock.h - the clock port: the engine's only source of "now".
 *
 * Every decision that depends on time (a retry's backoff, a lease's expiry,
 * when a scheduled job is due, a cursor's age, retention) takes its time
 * from a tf_clock_t, never from the operating system.  The production
 * adapter reads the system's real-time clock; the test clock
 * (`taskflow serve --clock=test`) stands still until the operator's API
 * sets or advances it, so a test can walk through minutes of backoff in
 * milliseconds.  Both live in adapters/clock/.
 *
 * A clock is shared by every loop thread of a process: implementations are
 * thread-safe.  Times are Unix milliseconds (UTC).
 */
#ifndef TF_ENGINE_CLOCK_H
#define TF_ENGINE_CLOCK_H

#include <stdint.h>

typedef struct {
    /* The current time in Unix milliseconds. */
    int64_t (*now_ms)(void *ctx);
    /* Moves the clock to `ms`; NULL for clocks that cannot be set (the
     * system clock).  Returns 0 or a negative TF_E* code. */
    int (*set_ms)(void *ctx, int64_t ms);
    void *ctx;
} tf_clock_t;

static inline int64_t tf_clock_now(const tf_clock_t *clock) {
    return clock->now_ms(clock->ctx);
}

#endif
