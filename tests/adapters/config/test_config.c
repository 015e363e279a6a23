/*
 * test_config.c - flags over environment over defaults, and every kind of
 * bad input giving a message that names the setting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/config/config.h"
#include "engine/error.h"

typedef struct {
    const char *names[8];
    const char *values[8];
} fake_env_t;

static const char *fake_getenv(const char *name, void *arg) {
    fake_env_t *env = arg;
    for (int i = 0; i < 8 && env->names[i] != NULL; i++) {
        if (strcmp(env->names[i], name) == 0) {
            return env->values[i];
        }
    }
    return NULL;
}

static int load(tf_config_t *cfg, fake_env_t *env, int argc, char **argv, char *err) {
    return tf_config_load(cfg, argc, argv, fake_getenv, env, err, 256);
}

static void test_config__defaults(void **state) {
    (void)state;
    tf_config_t cfg;
    fake_env_t env = {{NULL}, {NULL}};
    char err[256] = "";
    assert_int_equal(load(&cfg, &env, 0, NULL, err), 0);
    assert_string_equal(cfg.host, "127.0.0.1");
    assert_int_equal(cfg.port, 8080);
    assert_int_equal(cfg.threads, 0);
    assert_null(cfg.database_url);
    assert_int_equal(cfg.log_level, TF_LOG_INFO);
    assert_int_equal(cfg.max_header_bytes, 16384);
    assert_int_equal(cfg.max_body_bytes, 1048576);
    assert_int_equal(cfg.migrate_on_start, 1);
    assert_int_equal(cfg.help, 0);
    tf_config_free(&cfg);
}

static void test_config__flag_beats_environment(void **state) {
    (void)state;
    tf_config_t cfg;
    fake_env_t env = {{"TASKFLOW_PORT", "TASKFLOW_DATABASE_URL", "TASKFLOW_LOG_LEVEL", NULL},
                      {"9000", "postgresql://x/y", "warn", NULL}};
    char *argv[] = {"--port", "9001", "--log-level=debug", "--no-migrate"};
    char err[256] = "";
    assert_int_equal(load(&cfg, &env, 4, argv, err), 0);
    assert_int_equal(cfg.port, 9001);
    assert_string_equal(cfg.database_url, "postgresql://x/y");
    assert_int_equal(cfg.log_level, TF_LOG_DEBUG);
    assert_int_equal(cfg.migrate_on_start, 0);
    tf_config_free(&cfg);
}

static void test_config__environment_used_without_flag(void **state) {
    (void)state;
    tf_config_t cfg;
    fake_env_t env = {{"TASKFLOW_THREADS", "TASKFLOW_NO_MIGRATE", NULL}, {"3", "true", NULL}};
    char err[256] = "";
    assert_int_equal(load(&cfg, &env, 0, NULL, err), 0);
    assert_int_equal(cfg.threads, 3);
    assert_int_equal(cfg.migrate_on_start, 0);
    tf_config_free(&cfg);
}

static void expect_error(fake_env_t *env, int argc, char **argv, const char *needle) {
    tf_config_t cfg;
    char err[256] = "";
    assert_int_equal(load(&cfg, env, argc, argv, err), TF_EINVAL);
    if (strstr(err, needle) == NULL) {
        fail_msg("message '%s' does not contain '%s'", err, needle);
    }
    tf_config_free(&cfg);
}

static void test_config__bad_values_name_the_setting(void **state) {
    (void)state;
    fake_env_t none = {{NULL}, {NULL}};
    char *a1[] = {"--port", "abc"};
    expect_error(&none, 2, a1, "--port: 'abc'");
    char *a2[] = {"--port", "70000"};
    expect_error(&none, 2, a2, "--port");
    char *a3[] = {"--port", ""};
    expect_error(&none, 2, a3, "--port");
    char *a4[] = {"--threads=-1"};
    expect_error(&none, 1, a4, "--threads");
    char *a5[] = {"--log-level", "loud"};
    expect_error(&none, 2, a5, "--log-level: 'loud'");
    char *a6[] = {"--max-body-bytes", "12x"};
    expect_error(&none, 2, a6, "--max-body-bytes");
    char *a7[] = {"--port", "99999999999999999999"};
    expect_error(&none, 2, a7, "--port");
    fake_env_t bad_env = {{"TASKFLOW_PORT", NULL}, {"eighty", NULL}};
    expect_error(&bad_env, 0, NULL, "TASKFLOW_PORT: 'eighty'");
    fake_env_t bad_flag_env = {{"TASKFLOW_NO_MIGRATE", NULL}, {"maybe", NULL}};
    expect_error(&bad_flag_env, 0, NULL, "TASKFLOW_NO_MIGRATE");
}

static void test_config__unknown_and_missing(void **state) {
    (void)state;
    fake_env_t none = {{NULL}, {NULL}};
    char *a1[] = {"--bogus"};
    expect_error(&none, 1, a1, "unknown argument '--bogus'");
    char *a2[] = {"stray"};
    expect_error(&none, 1, a2, "unknown argument 'stray'");
    char *a3[] = {"--port"};
    expect_error(&none, 1, a3, "missing value for --port");
    char *a4[] = {"--bogus=1"};
    expect_error(&none, 1, a4, "unknown argument '--bogus'");
}

static void test_config__help_flag(void **state) {
    (void)state;
    tf_config_t cfg;
    fake_env_t env = {{NULL}, {NULL}};
    char *argv[] = {"--help"};
    char err[256] = "";
    assert_int_equal(load(&cfg, &env, 1, argv, err), 0);
    assert_int_equal(cfg.help, 1);
    tf_config_free(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config__defaults),
        cmocka_unit_test(test_config__flag_beats_environment),
        cmocka_unit_test(test_config__environment_used_without_flag),
        cmocka_unit_test(test_config__bad_values_name_the_setting),
        cmocka_unit_test(test_config__unknown_and_missing),
        cmocka_unit_test(test_config__help_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
