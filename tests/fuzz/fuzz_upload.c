/*
 * fuzz_upload.c - fuzz target of a Lua executor upload: the input is the
 * uploaded source, taken through the executors use case (size, binary,
 * UTF-8 and NUL checks) and the checker (compiled and run in a scratch
 * sandbox of a real Lua host, its table vetted), as PUT /v1/executors/{name}
 * does.  Checked: the upload answers exactly once, with 0 or a refusal
 * that says why; nothing else escapes; and the host still runs a benign
 * upload afterwards.  The host's limits are small so that hostile inputs
 * end quickly.
 * Built with libFuzzer (clang, TF_FUZZ=ON) or with fuzz_main.c.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "adapters/luaexec/luaexec.h"
#include "adapters/usecases/executors.h"
#include "engine/error.h"

static uv_loop_t loop;
static tf_luaexec_t *lua;
static tf_uc_t uc;
static tf_uuid_gen_t uuids;

static int64_t now_ms(void *ctx) {
    (void)ctx;
    return 1700000000000;
}
static const tf_clock_t CLOCK = {.now_ms = now_ms};

/* The store's answer comes on a later loop turn, as a real store's does. */
typedef struct {
    uv_timer_t timer;
    tf_script_put_cb cb;
    void *arg;
} put_t;

static void put_closed(uv_handle_t *h) {
    free(h->data);
}

static void put_fire(uv_timer_t *t) {
    put_t *p = t->data;
    tf_script_put_result_t r = {.version = 1, .created = 1, .sha256 = "00"};
    p->cb(p->arg, 0, &r);
    uv_close((uv_handle_t *)&p->timer, put_closed);
}

static int put_executor(void *ctx, const tf_script_put_t *put, tf_script_put_cb cb, void *arg) {
    (void)ctx;
    if (put->nhandles > TF_SCRIPT_HANDLES_MAX) {
        abort(); /* the checker let too many through */
    }
    put_t *p = malloc(sizeof(*p));
    p->cb = cb;
    p->arg = arg;
    uv_timer_init(&loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, put_fire, 0, 0);
    return 0;
}

static const tf_script_store_t STORE = {.put_executor = put_executor};

typedef struct {
    int answers;
    int status;
} answer_t;

static void answered(void *arg, int status, const char *message, const tf_script_t *script,
                     int created) {
    (void)created;
    answer_t *a = arg;
    a->answers++;
    a->status = status;
    if (status != 0 && (message == NULL || message[0] == '\0') && status != TF_ENOMEM) {
        abort(); /* a refusal always says why */
    }
    if (status == 0 && script == NULL) {
        abort();
    }
}

static void closed(void *arg) {
    *(int *)arg = 1;
}

/* At exit: the host and its VMs closed, so leak checks see nothing. */
static void teardown(void) {
    int done = 0;
    tf_luaexec_close(lua, closed, &done);
    while (!done) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

static void setup(void) {
    uv_loop_init(&loop);
    tf_uuid_gen_init(&uuids, 42);
    uc = (tf_uc_t){.clock = &CLOCK, .uuids = &uuids, .scripts = &STORE};
    tf_luaexec_config_t cfg = {
        .limits = {.instructions = 1000000, .timeout_ms = 200, .memory_bytes = (size_t)16 << 20},
        .uc = &uc};
    if (tf_luaexec_create(&loop, &cfg, &lua) != 0) {
        abort();
    }
    uc.checker = tf_luaexec_checker(lua);
    atexit(teardown);
}

static int upload(const char *source, size_t len) {
    answer_t a = {0};
    char err[200];
    tf_uc_upload_t up = {.tenant_id = "01a24246-bcb9-7000-8f04-c7b9c46f19aa",
                         .name = "fz",
                         .source = source,
                         .len = len,
                         .actor = "fuzz"};
    int rc = tf_uc_executor_upload(&uc, &up, answered, &a, err, sizeof(err));
    if (rc != 0) {
        if (err[0] == '\0' && rc != TF_ENOMEM) {
            abort();
        }
        return rc;
    }
    while (a.answers == 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    if (a.answers != 1) {
        abort();
    }
    return a.status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready, count;
    if (!ready) {
        setup();
        ready = 1;
    }
    upload((const char *)data, size);
    if (++count % 64 == 0) {
        static const char benign[] =
            "return {name = 'fz', handles = {'A'}, run = function(job) return 1 end}";
        if (upload(benign, sizeof(benign) - 1) != 0) {
            abort(); /* the host stopped serving */
        }
    }
    return 0;
}
