/*
 * clock.h - the adapters of the clock port (engine/clock.h).
 *
 * - The system clock reads CLOCK_REALTIME: the one place in TaskFlow that
 *   takes the wall clock for the engine's decisions.  (Log lines and the
 *   HTTP Date header stamp real time for people; they decide nothing.)
 * - The test clock stands still at the time it was created (or given) and
 *   moves only through set_ms(): the operator's test-clock API sets or
 *   advances it.  Never the default: `taskflow serve --clock=test` is
 *   refused unless TASKFLOW_ALLOW_TEST_CLOCK=1 is also set.
 * Thread-safe: every loop of a process shares one clock.
 */
#ifndef TF_ADAPTERS_CLOCK_CLOCK_H
#define TF_ADAPTERS_CLOCK_CLOCK_H

#include <stdint.h>

#include "engine/clock.h"

/* The system clock (a constant value; no state). */
tf_clock_t tf_clock_system(void);

/* The real time, Unix milliseconds (what the system clock answers). */
int64_t tf_clock_real_ms(void);

typedef struct tf_test_clock tf_test_clock_t;

/* A test clock standing at `start_ms`.  Caller owns the result; free with
 * tf_test_clock_destroy() after everything that uses its port. */
int tf_test_clock_create(int64_t start_ms, tf_test_clock_t **out);
void tf_test_clock_destroy(tf_test_clock_t *c);

/* Its port (set_ms works: TF_EINVAL for a time before 1970 or after 9999). */
tf_clock_t tf_test_clock_port(tf_test_clock_t *c);

#endif
