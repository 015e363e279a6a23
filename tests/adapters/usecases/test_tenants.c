/*
 * test_tenants.c - tests for adapters/usecases/tenants.c on a fake tenant
 * store (below; the clock and UUID generator come from fake_store.h):
 * tenants and keys get UUIDv7 ids of the clock's now, defaults for plan
 * and weight, now_ms from the clock on every write, an empty patch reads
 * the tenant instead of writing it, and the caller's callback and argument
 * reach the store unchanged.  One cmocka process; each test has its own
 * fixture.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/usecases/tenants.h"
#include "engine/error.h"
#include "engine/uuid.h"
#include "fake_store.h"

#define TENANT "0190a0b0-0000-7000-8000-00000000000a"

typedef enum {
    FT_CREATE,
    FT_GET,
    FT_LIST,
    FT_PATCH,
    FT_KEY_CREATE,
    FT_KEY_REVOKE,
    FT_QUEUE_PUT,
    FT_QUEUE_STATUS,
    FT_TENANT_QUEUE_PUT,
    FT_OP_COUNT
} ft_op_t;

/* A fake tenant store: records the last call of each operation (strings
 * copied) and the callback it was given; never calls back (the use cases
 * pass the callback through, so checking it arrived is enough). */
typedef struct {
    tf_tenant_store_t port;
    int calls[FT_OP_COUNT];
    fake_fn_t cb[FT_OP_COUNT];
    void *arg[FT_OP_COUNT];
    tf_tenant_new_t created;
    char id[TF_ID_LEN], name[64], plan[64], attributes[64], after[TF_ID_LEN];
    char tenant_id[TF_ID_LEN], key_id[TF_ID_LEN], prefix[32], queue[32];
    const uint8_t *token_hash;
    tf_tenant_patch_t patch;
    int rows, set_max_running, paused;
    int64_t max_running, now_ms;
} fake_tenants_t;

typedef struct {
    fake_env_t *env;
    fake_tenants_t tenants;
} fixture_t;

static void ft_record(fake_tenants_t *ft, ft_op_t op, fake_fn_t cb, void *arg) {
    ft->calls[op]++;
    ft->cb[op] = cb;
    ft->arg[op] = arg;
}

static int ft_create(void *ctx, const tf_tenant_new_t *t, tf_tenant_cb cb, void *arg) {
    fake_tenants_t *ft = ctx;
    ft->created = *t;
    fake_copy_text(ft->id, sizeof(ft->id), t->id);
    fake_copy_text(ft->name, sizeof(ft->name), t->name);
    fake_copy_text(ft->plan, sizeof(ft->plan), t->plan);
    fake_copy_text(ft->attributes, sizeof(ft->attributes), t->attributes);
    ft_record(ft, FT_CREATE, (fake_fn_t)cb, arg);
    return 0;
}

static int ft_get(void *ctx, const char *id, tf_tenant_cb cb, void *arg) {
    fake_tenants_t *ft = ctx;
    fake_copy_text(ft->id, sizeof(ft->id), id);
    ft_record(ft, FT_GET, (fake_fn_t)cb, arg);
    return 0;
}

static int ft_list(void *ctx, const char *after_id, int rows, tf_tenants_cb cb, void *arg) {
    fake_tenants_t *ft = ctx;
    fake_copy_text(ft->after, sizeof(ft->after), after_id);
    ft->rows = rows;
    ft_record(ft, FT_LIST, (fake_fn_t)cb, arg);
    return 0;
}

static int ft_patch(void *ctx, const tf_tenant_patch_t *patch, tf_tenant_cb cb, void *arg) {
    fake_tenants_t *ft = ctx;
    ft->patch = *patch;
    fake_copy_text(ft->id, sizeof(ft->id), patch->id);
    ft_record(ft, FT_PATCH, (fake_fn_t)cb, arg);
    return 0;
}

static int ft_key_create(void *ctx, const char *tenant_id, const char *key_id,
                         const uint8_t token_hash[32], const char *prefix, const char *name,
                         int64_t now_ms, tf_api_key_cb cb, void *arg) {
    fake_tenants_t *ft = ctx;
    fake_copy_text(ft->tenant_id, sizeof(ft->tenant_id), tenant_id);
    fake_copy_text(ft->key_id, sizeof(ft->key_id), key_id);
    fake_copy_text(ft->prefix, sizeof(ft->prefix), prefix);
    fake_copy_text(ft->name, sizeof(ft->name), name);
    ft->token_hash = token_hash;
    ft->now_ms = now_ms;
    ft_record(ft, FT_KEY_CREATE, (fake_fn_t)cb, arg);
    return 0;
}

static int ft_key_revoke(void *ctx, const char *tenant_id, const char *key_id, int64_t now_ms,
                         tf_store_status_cb cb, void *arg) {
    fake_tenants_t *ft = ctx;
    fake_copy_text(ft->tenant_id, sizeof(ft->tenant_id), tenant_id);
    fake_copy_text(ft->key_id, sizeof(ft->key_id), key_id);
    ft->now_ms = now_ms;
    ft_record(ft, FT_KEY_REVOKE, (fake_fn_t)cb, arg);
    return 0;
}

static int ft_queue_put(void *ctx, const char *name, int set_max_running, int64_t max_running,
                        int paused, int64_t now_ms, tf_queue_cb cb, void *arg) {
    fake_tenants_t *ft = ctx;
    fake_copy_text(ft->queue, sizeof(ft->queue), name);
    ft->set_max_running = set_max_running;
    ft->max_running = max_running;
    ft->paused = paused;
    ft->now_ms = now_ms;
    ft_record(ft, FT_QUEUE_PUT, (fake_fn_t)cb, arg);
    return 0;
}

static int ft_queue_status(void *ctx, const char *name, int64_t now_ms, tf_queue_status_cb cb,
                           void *arg) {
    fake_tenants_t *ft = ctx;
    fake_copy_text(ft->queue, sizeof(ft->queue), name);
    ft->now_ms = now_ms;
    ft_record(ft, FT_QUEUE_STATUS, (fake_fn_t)cb, arg);
    return 0;
}

static int ft_tenant_queue_put(void *ctx, const char *tenant_id, const char *queue,
                               int64_t max_running, int64_t now_ms, tf_tenant_queue_cb cb,
                               void *arg) {
    fake_tenants_t *ft = ctx;
    fake_copy_text(ft->tenant_id, sizeof(ft->tenant_id), tenant_id);
    fake_copy_text(ft->queue, sizeof(ft->queue), queue);
    ft->max_running = max_running;
    ft->now_ms = now_ms;
    ft_record(ft, FT_TENANT_QUEUE_PUT, (fake_fn_t)cb, arg);
    return 0;
}

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->env = fake_env_new();
    fx->tenants.port = (tf_tenant_store_t){
        .ctx = &fx->tenants,
        .tenant_create = ft_create,
        .tenant_get = ft_get,
        .tenant_list = ft_list,
        .tenant_patch = ft_patch,
        .key_create = ft_key_create,
        .key_revoke = ft_key_revoke,
        .queue_put = ft_queue_put,
        .queue_status = ft_queue_status,
        .tenant_queue_put = ft_tenant_queue_put,
    };
    fx->env->uc.tenants = &fx->tenants.port;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    /* The tenant use cases never touch the job store. */
    assert_int_equal(fake_calls_total(&fx->env->store), 0);
    fake_env_free(fx->env);
    free(fx);
    return 0;
}

/* Callbacks that are only compared by address. */
static void on_tenant(void *arg, int status, const tf_tenant_t *t) {
    (void)arg, (void)status, (void)t;
}
static void on_tenants(void *arg, int status, const tf_tenant_t *t, size_t n) {
    (void)arg, (void)status, (void)t, (void)n;
}
static void on_key(void *arg, int status, const tf_api_key_t *k) {
    (void)arg, (void)status, (void)k;
}
static void on_status(void *arg, int status) {
    (void)arg, (void)status;
}
static void on_queue(void *arg, int status, const tf_queue_t *q) {
    (void)arg, (void)status, (void)q;
}
static void on_queue_status(void *arg, int status, const tf_queue_status_t *q, size_t n) {
    (void)arg, (void)status, (void)q, (void)n;
}
static void on_tenant_queue(void *arg, int status, const tf_tenant_queue_t *row) {
    (void)arg, (void)status, (void)row;
}

static void assert_v7_of(const char *text, int64_t ms) {
    tf_uuid_t id;
    assert_int_equal(tf_uuid_parse(text, &id), 0);
    assert_int_equal(id.bytes[6] >> 4, 7);
    assert_int_equal(tf_uuid_v7_unix_ms(&id), (uint64_t)ms);
}

static void test_tenants__create_makes_a_v7_id_and_fills_defaults(void **state) {
    fixture_t *fx = *state;
    fake_tenants_t *ft = &fx->tenants;
    fx->env->clock.now = FAKE_T0_MS + 8;
    const uint8_t secret[4] = {1, 2, 3, 4};
    tf_uc_tenant_spec_t spec = {.name = "acme",
                                .max_running = TF_NO_CAP,
                                .signing_secret = secret,
                                .signing_secret_len = 4};
    int arg = 0;
    assert_int_equal(tf_uc_tenant_create(&fx->env->uc, &spec, on_tenant, &arg), 0);
    assert_int_equal(ft->calls[FT_CREATE], 1);
    assert_v7_of(ft->id, FAKE_T0_MS + 8);
    assert_string_equal(ft->name, "acme");
    assert_string_equal(ft->plan, "free");
    assert_int_equal(ft->created.weight, 1);
    assert_int_equal(ft->created.max_running, TF_NO_CAP);
    assert_null(ft->created.attributes);
    assert_ptr_equal(ft->created.signing_secret, secret);
    assert_int_equal(ft->created.signing_secret_len, 4);
    assert_int_equal(ft->created.now_ms, FAKE_T0_MS + 8);
    assert_true(ft->cb[FT_CREATE] == (fake_fn_t)on_tenant);
    assert_ptr_equal(ft->arg[FT_CREATE], &arg);

    char first[TF_ID_LEN];
    memcpy(first, ft->id, TF_ID_LEN);
    tf_uc_tenant_spec_t given = {.name = "beta",
                                 .plan = "pro",
                                 .weight = 5,
                                 .max_running = 40,
                                 .attributes = "{\"tier\":1}"};
    assert_int_equal(tf_uc_tenant_create(&fx->env->uc, &given, on_tenant, &arg), 0);
    assert_string_equal(ft->plan, "pro");
    assert_int_equal(ft->created.weight, 5);
    assert_int_equal(ft->created.max_running, 40);
    assert_string_equal(ft->attributes, "{\"tier\":1}");
    assert_true(strcmp(ft->id, first) > 0); /* a new, later id */
}

static void test_tenants__empty_patch_reads_instead_of_writing(void **state) {
    fixture_t *fx = *state;
    fake_tenants_t *ft = &fx->tenants;
    int arg = 0;
    tf_tenant_patch_t empty = {.id = TENANT, .now_ms = -1};
    assert_int_equal(tf_uc_tenant_patch(&fx->env->uc, &empty, on_tenant, &arg), 0);
    assert_int_equal(ft->calls[FT_GET], 1);
    assert_int_equal(ft->calls[FT_PATCH], 0);
    assert_string_equal(ft->id, TENANT);
    assert_true(ft->cb[FT_GET] == (fake_fn_t)on_tenant);
    assert_ptr_equal(ft->arg[FT_GET], &arg);

    fx->env->clock.now = FAKE_T0_MS + 21;
    const tf_tenant_patch_t patches[] = {
        {.id = TENANT, .name = "n"},
        {.id = TENANT, .plan = "p"},
        {.id = TENANT, .weight = 3},
        {.id = TENANT, .set_max_running = 1, .max_running = TF_NO_CAP},
        {.id = TENANT, .attributes = "{\"a\":null}"},
    };
    for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
        tf_tenant_patch_t p = patches[i];
        assert_int_equal(tf_uc_tenant_patch(&fx->env->uc, &p, on_tenant, &arg), 0);
        assert_int_equal(ft->calls[FT_PATCH], (int)i + 1);
        assert_int_equal(ft->patch.now_ms, FAKE_T0_MS + 21);
        assert_int_equal(p.now_ms, FAKE_T0_MS + 21); /* filled in */
    }
    assert_int_equal(ft->calls[FT_GET], 1);
}

static void test_tenants__keys_get_v7_ids_and_writes_take_the_clock(void **state) {
    fixture_t *fx = *state;
    fake_tenants_t *ft = &fx->tenants;
    tf_uc_t *uc = &fx->env->uc;
    int arg = 0;
    const uint8_t hash[32] = {0xab};

    fx->env->clock.now = FAKE_T0_MS + 31;
    assert_int_equal(tf_uc_key_create(uc, TENANT, hash, "tf_abc", "ci", on_key, &arg), 0);
    assert_v7_of(ft->key_id, FAKE_T0_MS + 31);
    assert_string_equal(ft->tenant_id, TENANT);
    assert_ptr_equal(ft->token_hash, hash);
    assert_string_equal(ft->prefix, "tf_abc");
    assert_string_equal(ft->name, "ci");
    assert_int_equal(ft->now_ms, FAKE_T0_MS + 31);
    assert_true(ft->cb[FT_KEY_CREATE] == (fake_fn_t)on_key);

    fx->env->clock.now = FAKE_T0_MS + 32;
    assert_int_equal(tf_uc_key_revoke(uc, TENANT, "key-1", on_status, &arg), 0);
    assert_string_equal(ft->key_id, "key-1");
    assert_int_equal(ft->now_ms, FAKE_T0_MS + 32);
    assert_ptr_equal(ft->arg[FT_KEY_REVOKE], &arg);

    fx->env->clock.now = FAKE_T0_MS + 33;
    assert_int_equal(tf_uc_queue_put(uc, "emails", 1, 25, 0, on_queue, &arg), 0);
    assert_string_equal(ft->queue, "emails");
    assert_int_equal(ft->set_max_running, 1);
    assert_int_equal(ft->max_running, 25);
    assert_int_equal(ft->paused, 0);
    assert_int_equal(ft->now_ms, FAKE_T0_MS + 33);

    fx->env->clock.now = FAKE_T0_MS + 34;
    assert_int_equal(tf_uc_queue_status(uc, NULL, on_queue_status, &arg), 0);
    assert_string_equal(ft->queue, "(null)");
    assert_int_equal(ft->now_ms, FAKE_T0_MS + 34);

    fx->env->clock.now = FAKE_T0_MS + 35;
    assert_int_equal(tf_uc_tenant_queue_put(uc, TENANT, "emails", 7, on_tenant_queue, &arg), 0);
    assert_string_equal(ft->tenant_id, TENANT);
    assert_int_equal(ft->max_running, 7);
    assert_int_equal(ft->now_ms, FAKE_T0_MS + 35);
    assert_true(ft->cb[FT_TENANT_QUEUE_PUT] == (fake_fn_t)on_tenant_queue);

    assert_int_equal(tf_uc_tenant_list(uc, TENANT, 50, on_tenants, &arg), 0);
    assert_string_equal(ft->after, TENANT);
    assert_int_equal(ft->rows, 50);
    assert_int_equal(tf_uc_tenant_get(uc, TENANT, on_tenant, &arg), 0);
    assert_int_equal(ft->calls[FT_GET], 1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_tenants__create_makes_a_v7_id_and_fills_defaults),
        T(test_tenants__empty_patch_reads_instead_of_writing),
        T(test_tenants__keys_get_v7_ids_and_writes_take_the_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
