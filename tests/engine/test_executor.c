/*
 * test_executor.c - tests for engine/executor.c: the registry of executors
 * by kind.  Registering and finding several kinds, exact matching of kind
 * names, duplicates, invalid executors, a full registry, and that a
 * refused registration leaves the registry as it was.  The executors are
 * fakes that count their calls; the registry must never call them.
 * One cmocka process; no shared state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "engine/error.h"
#include "engine/executor.h"

/* A fake executor context: counts the calls it receives. */
typedef struct {
    int starts, cancels;
} fake_t;

static int fake_start(void *ctx, const tf_exec_job_t *job, tf_exec_done_fn done, void *arg,
                      void **run) {
    (void)job, (void)done, (void)arg, (void)run;
    ((fake_t *)ctx)->starts++;
    return 0;
}

static void fake_cancel(void *ctx, void *run) {
    (void)run;
    ((fake_t *)ctx)->cancels++;
}

static tf_executor_t make_executor(const char *kind, fake_t *ctx) {
    return (tf_executor_t){.kind = kind, .ctx = ctx, .start = fake_start, .cancel = fake_cancel};
}

static void test_executor__registered_kinds_are_found(void **state) {
    (void)state;
    fake_t http_ctx = {0}, lua_ctx = {0}, shell_ctx = {0};
    const tf_executor_t http = make_executor("http", &http_ctx);
    const tf_executor_t lua = make_executor("lua", &lua_ctx);
    const tf_executor_t shell = make_executor("shell", &shell_ctx);
    tf_executor_registry_t reg = {0};

    assert_int_equal(tf_executor_register(&reg, &http), 0);
    assert_int_equal(tf_executor_register(&reg, &lua), 0);
    assert_int_equal(tf_executor_register(&reg, &shell), 0);
    assert_int_equal(reg.n, 3);

    /* The registry borrows: find returns the very executor registered. */
    assert_ptr_equal(tf_executor_find(&reg, "http"), &http);
    assert_ptr_equal(tf_executor_find(&reg, "lua"), &lua);
    assert_ptr_equal(tf_executor_find(&reg, "shell"), &shell);

    /* Kinds are compared as text, not as pointers. */
    char kind[8];
    snprintf(kind, sizeof kind, "%s", "lua");
    assert_ptr_equal(tf_executor_find(&reg, kind), &lua);

    /* Registering and finding never runs an executor. */
    assert_int_equal(http_ctx.starts + lua_ctx.starts + shell_ctx.starts, 0);
    assert_int_equal(http_ctx.cancels + lua_ctx.cancels + shell_ctx.cancels, 0);
}

static void test_executor__find_matches_kind_names_exactly(void **state) {
    (void)state;
    fake_t ctx = {0};
    const tf_executor_t http = make_executor("http", &ctx);
    tf_executor_registry_t reg = {0};
    assert_int_equal(tf_executor_register(&reg, &http), 0);

    const char *const others[] = {"", "htt", "https", "http ", " http", "lua", "http\n"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        if (tf_executor_find(&reg, others[i]) != NULL) {
            fail_msg("\"%s\" should not find the http executor", others[i]);
        }
    }
    assert_ptr_equal(tf_executor_find(&reg, "http"), &http);
}

static void test_executor__unknown_or_null_kind_is_not_found(void **state) {
    (void)state;
    tf_executor_registry_t empty = {0};
    assert_null(tf_executor_find(&empty, "http"));
    assert_null(tf_executor_find(&empty, NULL));

    fake_t ctx = {0};
    const tf_executor_t http = make_executor("http", &ctx);
    tf_executor_registry_t reg = {0};
    assert_int_equal(tf_executor_register(&reg, &http), 0);
    assert_null(tf_executor_find(&reg, "lua"));
    assert_null(tf_executor_find(&reg, NULL));
}

static void test_executor__find_on_null_registry_is_null(void **state) {
    (void)state;
    assert_null(tf_executor_find(NULL, "http"));
    assert_null(tf_executor_find(NULL, NULL));
}

static void test_executor__duplicate_kind_is_a_conflict(void **state) {
    (void)state;
    fake_t a_ctx = {0}, b_ctx = {0};
    const tf_executor_t first = make_executor("http", &a_ctx);
    char same_kind[8];
    snprintf(same_kind, sizeof same_kind, "%s", "http");
    const tf_executor_t second = make_executor(same_kind, &b_ctx); /* other object, same text */
    const tf_executor_t lua = make_executor("lua", &b_ctx);
    tf_executor_registry_t reg = {0};

    assert_int_equal(tf_executor_register(&reg, &first), 0);
    assert_int_equal(tf_executor_register(&reg, &lua), 0);
    assert_int_equal(tf_executor_register(&reg, &second), TF_ECONFLICT);
    assert_int_equal(tf_executor_register(&reg, &first), TF_ECONFLICT); /* same object again */
    assert_int_equal(tf_executor_register(&reg, &lua), TF_ECONFLICT);
    assert_int_equal(reg.n, 2);
    assert_ptr_equal(tf_executor_find(&reg, "http"), &first); /* the first one stays */
    assert_ptr_equal(tf_executor_find(&reg, "lua"), &lua);
}

static void test_executor__executor_without_kind_or_start_is_invalid(void **state) {
    (void)state;
    fake_t ctx = {0};
    const tf_executor_t good = make_executor("http", &ctx);
    tf_executor_t no_kind = good, empty_kind = good, no_start = good;
    no_kind.kind = NULL;
    empty_kind.kind = "";
    no_start.start = NULL;
    tf_executor_registry_t reg = {0};

    assert_int_equal(tf_executor_register(&reg, &no_kind), TF_EINVAL);
    assert_int_equal(tf_executor_register(&reg, &empty_kind), TF_EINVAL);
    assert_int_equal(tf_executor_register(&reg, &no_start), TF_EINVAL);
    assert_int_equal(tf_executor_register(&reg, NULL), TF_EINVAL);
    assert_int_equal(tf_executor_register(NULL, &good), TF_EINVAL);
    assert_int_equal(reg.n, 0);
    assert_null(tf_executor_find(&reg, "http"));
    assert_null(tf_executor_find(&reg, ""));

    /* The refused ones left no trace: the good one still registers. */
    assert_int_equal(tf_executor_register(&reg, &good), 0);
    assert_ptr_equal(tf_executor_find(&reg, "http"), &good);

    /* cancel is not among the required fields. */
    tf_executor_t no_cancel = make_executor("lua", &ctx);
    no_cancel.cancel = NULL;
    assert_int_equal(tf_executor_register(&reg, &no_cancel), 0);
    assert_ptr_equal(tf_executor_find(&reg, "lua"), &no_cancel);
    assert_int_equal(reg.n, 2);
}

static void test_executor__full_registry_refuses_one_more(void **state) {
    (void)state;
    fake_t ctx = {0};
    char kinds[TF_EXECUTOR_KINDS_MAX + 1][16];
    tf_executor_t executors[TF_EXECUTOR_KINDS_MAX + 1];
    for (int i = 0; i <= TF_EXECUTOR_KINDS_MAX; i++) {
        snprintf(kinds[i], sizeof kinds[i], "kind-%d", i);
        executors[i] = make_executor(kinds[i], &ctx);
    }
    tf_executor_registry_t reg = {0};
    for (int i = 0; i < TF_EXECUTOR_KINDS_MAX; i++) {
        if (tf_executor_register(&reg, &executors[i]) != 0) {
            fail_msg("registering kind %d of %d should succeed", i + 1, TF_EXECUTOR_KINDS_MAX);
        }
    }
    assert_int_equal(reg.n, TF_EXECUTOR_KINDS_MAX);
    assert_int_equal(tf_executor_register(&reg, &executors[TF_EXECUTOR_KINDS_MAX]), TF_ERANGE);
    assert_int_equal(reg.n, TF_EXECUTOR_KINDS_MAX);
    assert_null(tf_executor_find(&reg, kinds[TF_EXECUTOR_KINDS_MAX]));
    for (int i = 0; i < TF_EXECUTOR_KINDS_MAX; i++) {
        assert_ptr_equal(tf_executor_find(&reg, kinds[i]), &executors[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_executor__registered_kinds_are_found),
        cmocka_unit_test(test_executor__find_matches_kind_names_exactly),
        cmocka_unit_test(test_executor__unknown_or_null_kind_is_not_found),
        cmocka_unit_test(test_executor__find_on_null_registry_is_null),
        cmocka_unit_test(test_executor__duplicate_kind_is_a_conflict),
        cmocka_unit_test(test_executor__executor_without_kind_or_start_is_invalid),
        cmocka_unit_test(test_executor__full_registry_refuses_one_more),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
