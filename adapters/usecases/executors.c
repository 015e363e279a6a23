/*
 * executors.c - uploading a tenant's Lua executor (see executors.h).
 */
#include "adapters/usecases/executors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/names.h"
#include "engine/utf8.h"

typedef struct {
    tf_uc_t *uc;
    tf_uc_upload_cb cb;
    void *arg;
    char tenant_id[TF_ID_LEN];
    char name[TF_SCRIPT_NAME_MAX + 1];
    char *source;
    size_t len;
    char *actor;
    tf_script_t script; /* the answer: handles point into the checker's meta, copied */
    char **handles;
    size_t nhandles;
    int64_t now_ms;
} upload_t;

static void upload_free(upload_t *u) {
    for (size_t i = 0; i < u->nhandles; i++) {
        free(u->handles[i]);
    }
    free(u->handles);
    free(u->source);
    free(u->actor);
    free(u);
}

int tf_uc_executor_name_valid(const char *name) {
    return tf_name_valid(name, TF_SCRIPT_NAME_MAX);
}

static void stored(void *arg, int status, const tf_script_put_result_t *r) {
    upload_t *u = arg;
    if (status == TF_ECONFLICT) {
        char message[400];
        if (r != NULL && r->taken_type != NULL) {
            snprintf(message, sizeof(message),
                     "job type \"%s\" is handled by executor \"%s\"; a type has one executor",
                     r->taken_type, r->taken_by != NULL ? r->taken_by : "?");
        } else {
            snprintf(message, sizeof(message),
                     "another upload of this executor was recorded at the same time; try again");
        }
        u->cb(u->arg, TF_ECONFLICT, message, NULL, 0);
    } else if (status != 0) {
        u->cb(u->arg, status, NULL, NULL, 0);
    } else {
        u->script.version = r->version;
        u->script.sha256 = r->sha256;
        u->cb(u->arg, 0, NULL, &u->script, r->created);
    }
    upload_free(u);
}

static void checked(void *arg, int status, const char *message, const tf_script_meta_t *meta) {
    upload_t *u = arg;
    if (status != 0) {
        u->cb(u->arg, status, message, NULL, 0);
        upload_free(u);
        return;
    }
    u->handles = meta->nhandles > 0 ? calloc(meta->nhandles, sizeof(char *)) : NULL;
    int rc = meta->nhandles > 0 && u->handles == NULL ? TF_ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < meta->nhandles; i++) {
        u->handles[i] = strdup(meta->handles[i]);
        rc = u->handles[i] != NULL ? 0 : TF_ENOMEM;
        u->nhandles += rc == 0;
    }
    u->script = (tf_script_t){.tenant_id = u->tenant_id,
                              .name = u->name,
                              .handles = (const char *const *)u->handles,
                              .nhandles = u->nhandles,
                              .timeout_ms = meta->timeout_ms,
                              .source_len = u->len,
                              .created_by = u->actor,
                              .created_at_ms = u->now_ms,
                              .updated_at_ms = u->now_ms};
    if (rc == 0) {
        tf_script_put_t put = {.tenant_id = u->tenant_id,
                               .name = u->name,
                               .source = u->source,
                               .source_len = u->len,
                               .handles = (const char *const *)u->handles,
                               .nhandles = u->nhandles,
                               .timeout_ms = meta->timeout_ms,
                               .actor = u->actor,
                               .now_ms = u->now_ms};
        const tf_script_store_t *s = u->uc->scripts;
        rc = s->put_executor(s->ctx, &put, stored, u);
    }
    if (rc != 0) {
        u->cb(u->arg, rc, NULL, NULL, 0);
        upload_free(u);
    }
}

static int refuse(char *err, size_t errlen, int rc, const char *why) {
    snprintf(err, errlen, "%s", why);
    return rc;
}

int tf_uc_script_source_check(const char *source, size_t len, char *err, size_t errlen) {
    if (len == 0) {
        return refuse(err, errlen, TF_EINVAL, "the body must be the script's Lua source");
    }
    if (len > TF_SCRIPT_SOURCE_MAX) {
        return refuse(err, errlen, TF_ETOOBIG, "the source is larger than 256 KiB");
    }
    if (source[0] == '\x1b') {
        return refuse(err, errlen, TF_EINVAL,
                      "binary (precompiled) chunks are refused: upload Lua source text");
    }
    if (!tf_utf8_valid(source, len) || memchr(source, '\0', len) != NULL) {
        return refuse(err, errlen, TF_EINVAL, "the source must be UTF-8 text without NUL bytes");
    }
    return 0;
}

int tf_uc_executor_upload(tf_uc_t *uc, const tf_uc_upload_t *up, tf_uc_upload_cb cb, void *arg,
                          char *err, size_t errlen) {
    if (!tf_uc_executor_name_valid(up->name)) {
        return refuse(err, errlen, TF_EINVAL,
                      "an executor's name is 1 to 128 characters of letters, digits and _ . : -");
    }
    int rc = tf_uc_script_source_check(up->source, up->len, err, errlen);
    if (rc != 0) {
        return rc;
    }
    if (uc->scripts == NULL || uc->checker == NULL) {
        return refuse(err, errlen, TF_EUNAVAIL, "Lua executors are not available on this node");
    }
    upload_t *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        return TF_ENOMEM;
    }
    u->uc = uc;
    u->cb = cb;
    u->arg = arg;
    u->now_ms = tf_uc_now(uc);
    snprintf(u->tenant_id, sizeof(u->tenant_id), "%s", up->tenant_id);
    snprintf(u->name, sizeof(u->name), "%s", up->name);
    u->source = malloc(up->len + 1);
    u->actor = up->actor != NULL ? strdup(up->actor) : NULL;
    if (u->source == NULL || (up->actor != NULL && u->actor == NULL)) {
        upload_free(u);
        return TF_ENOMEM;
    }
    memcpy(u->source, up->source, up->len);
    u->source[up->len] = '\0';
    u->len = up->len;
    rc = uc->checker->check_executor(uc->checker->ctx, u->tenant_id, u->name, u->source, u->len,
                                     checked, u);
    if (rc != 0) {
        upload_free(u);
    }
    return rc;
}
