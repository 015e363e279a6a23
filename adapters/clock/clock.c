/*
 * clock.c - the system clock and the test clock (see clock.h).
 */
#include "adapters/clock/clock.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "engine/error.h"

/* 9999-12-31T23:59:59.999Z: the last instant RFC 3339 years can show. */
#define TF_CLOCK_MAX_MS INT64_C(253402300799999)

int64_t tf_clock_real_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t system_now(void *ctx) {
    (void)ctx;
    return tf_clock_real_ms();
}

tf_clock_t tf_clock_system(void) {
    return (tf_clock_t){.now_ms = system_now, .set_ms = NULL, .ctx = NULL};
}

struct tf_test_clock {
    _Atomic int64_t now_ms;
};

int tf_test_clock_create(int64_t start_ms, tf_test_clock_t **out) {
    if (start_ms < 0 || start_ms > TF_CLOCK_MAX_MS) {
        return TF_EINVAL;
    }
    tf_test_clock_t *c = malloc(sizeof(*c));
    if (c == NULL) {
        return TF_ENOMEM;
    }
    atomic_init(&c->now_ms, start_ms);
    *out = c;
    return 0;
}

void tf_test_clock_destroy(tf_test_clock_t *c) {
    free(c);
}

static int64_t test_now(void *ctx) {
    tf_test_clock_t *c = ctx;
    return atomic_load(&c->now_ms);
}

static int test_set(void *ctx, int64_t ms) {
    tf_test_clock_t *c = ctx;
    if (ms < 0 || ms > TF_CLOCK_MAX_MS) {
        return TF_EINVAL;
    }
    atomic_store(&c->now_ms, ms);
    return 0;
}

tf_clock_t tf_test_clock_port(tf_test_clock_t *c) {
    return (tf_clock_t){.now_ms = test_now, .set_ms = test_set, .ctx = c};
}
