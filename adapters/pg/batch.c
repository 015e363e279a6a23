/*
 * batch.c - batches of the Postgres pool: argument checks, the single-block
 * copy of a submitted batch, pipeline errors and the SQLSTATE mapping.
 *
 * A batch is copied at tf_pg_submit() time into one allocation (statements,
 * parameter pointers, result slots and every string), so the caller may free
 * its arguments at once and freeing a batch is one free() plus PQclear() of
 * its results.  Text parameters are stored NUL-terminated, as libpq wants
 * them, whether the caller gave lengths or not.
 *
 * Pure data manipulation; called on the pool's loop thread.
 */
#include <stdlib.h>
#include <string.h>

#include "adapters/pg/pool_internal.h"
#include "engine/error.h"

/* Exact SQLSTATEs first, then whole classes (two characters). */
typedef struct {
    const char *code;
    int error;
} tf__pg_sqlstate_map_t;

static const tf__pg_sqlstate_map_t TF_PG_SQLSTATE_EXACT[] = {
    {"23505", TF_ECONFLICT}, /* unique_violation */
    {"23P01", TF_ECONFLICT}, /* exclusion_violation */
    {"23503", TF_EINVAL},    /* foreign_key_violation */
    {"23502", TF_EINVAL},    /* not_null_violation */
    {"23514", TF_EINVAL},    /* check_violation */
    {"57014", TF_ETIMEDOUT}, /* query_canceled (statement_timeout) */
    {"55P03", TF_ETIMEDOUT}, /* lock_not_available (lock_timeout, NOWAIT) */
    {"40001", TF_EAGAIN},    /* serialization_failure */
    {"40P01", TF_EAGAIN},    /* deadlock_detected */
    {"57P01", TF_EUNAVAIL},  /* admin_shutdown (also pg_terminate_backend) */
    {"57P02", TF_EUNAVAIL},  /* crash_shutdown */
    {"57P03", TF_EUNAVAIL},  /* cannot_connect_now */
};

static const tf__pg_sqlstate_map_t TF_PG_SQLSTATE_CLASS[] = {
    {"08", TF_EUNAVAIL}, /* connection exception */
    {"53", TF_EUNAVAIL}, /* insufficient resources (too many connections, disk full) */
    {"22", TF_EINVAL},   /* data exception: a value the statement cannot take */
};

int tf__pg_error_from_sqlstate(const char *sqlstate) {
    if (sqlstate == NULL || strlen(sqlstate) != 5) {
        return TF_EIO;
    }
    for (size_t i = 0; i < sizeof(TF_PG_SQLSTATE_EXACT) / sizeof(TF_PG_SQLSTATE_EXACT[0]); i++) {
        if (strcmp(sqlstate, TF_PG_SQLSTATE_EXACT[i].code) == 0) {
            return TF_PG_SQLSTATE_EXACT[i].error;
        }
    }
    for (size_t i = 0; i < sizeof(TF_PG_SQLSTATE_CLASS) / sizeof(TF_PG_SQLSTATE_CLASS[0]); i++) {
        if (strncmp(sqlstate, TF_PG_SQLSTATE_CLASS[i].code, 2) == 0) {
            return TF_PG_SQLSTATE_CLASS[i].error;
        }
    }
    return TF_EIO;
}

char *tf__pg_message_dup(const char *message) {
    if (message == NULL) {
        message = "";
    }
    size_t len = strlen(message);
    while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == ' ')) {
        len--;
    }
    char *copy = malloc(len + 1);
    if (copy != NULL) {
        memcpy(copy, message, len);
        copy[len] = '\0';
    }
    return copy;
}

void tf__pg_error_record(tf__pg_error_t *err, int index, const char *sqlstate,
                         const char *message) {
    if (err->set) {
        return;
    }
    err->set = 1;
    err->index = index;
    err->sqlstate[0] = '\0';
    if (sqlstate != NULL && strlen(sqlstate) == 5) {
        memcpy(err->sqlstate, sqlstate, 6);
    }
    err->message = tf__pg_message_dup(message);
}

void tf__pg_error_clear(tf__pg_error_t *err) {
    free(err->message);
    memset(err, 0, sizeof(*err));
}

static int tf__pg_prepared_known(const char *name, const tf_pg_prepared_t *prepared,
                                 size_t nprepared) {
    for (size_t i = 0; i < nprepared; i++) {
        if (strcmp(prepared[i].name, name) == 0) {
            return 1;
        }
    }
    return 0;
}

int tf__pg_stmt_check(const tf_pg_stmt_t *stmt, const tf_pg_prepared_t *prepared,
                      size_t nprepared) {
    if (stmt->prepared != NULL) {
        if (!tf__pg_prepared_known(stmt->prepared, prepared, nprepared)) {
            return TF_EINVAL;
        }
    } else if (stmt->sql == NULL || stmt->sql[0] == '\0') {
        return TF_EINVAL;
    }
    if (stmt->nparams < 0 || stmt->nparams > TF_PG_MAX_PARAMS) {
        return TF_EINVAL;
    }
    if (stmt->nparams > 0 && stmt->values == NULL) {
        return TF_EINVAL;
    }
    for (int i = 0; stmt->lengths != NULL && i < stmt->nparams; i++) {
        const char *v = stmt->values[i];
        /* Text parameters cannot hold NUL bytes (Postgres rejects them). */
        if (v != NULL && (stmt->lengths[i] < 0 || memchr(v, '\0', (size_t)stmt->lengths[i]))) {
            return TF_EINVAL;
        }
    }
    return 0;
}

static size_t tf__pg_value_len(const tf_pg_stmt_t *stmt, int i) {
    return stmt->lengths != NULL ? (size_t)stmt->lengths[i] : strlen(stmt->values[i]);
}

/* Bytes of strings a batch needs: names or SQL and parameter values. */
static size_t tf__pg_batch_text_size(const tf_pg_stmt_t *stmts, size_t n, size_t *nvalues) {
    size_t bytes = 0;
    *nvalues = 0;
    for (size_t s = 0; s < n; s++) {
        const tf_pg_stmt_t *st = &stmts[s];
        bytes += strlen(st->prepared != NULL ? st->prepared : st->sql) + 1;
        *nvalues += (size_t)st->nparams;
        for (int i = 0; i < st->nparams; i++) {
            if (st->values[i] != NULL) {
                bytes += tf__pg_value_len(st, i) + 1;
            }
        }
    }
    return bytes;
}

static char *tf__pg_copy_text(char **cursor, const char *text, size_t len) {
    char *copy = *cursor;
    memcpy(copy, text, len);
    copy[len] = '\0';
    *cursor += len + 1;
    return copy;
}

/* Fills the statement copies; `values` and `text` point into the block. */
static void tf__pg_batch_fill(tf__pg_batch_t *b, const tf_pg_stmt_t *stmts, const char **values,
                              char *text) {
    for (size_t s = 0; s < b->n; s++) {
        const tf_pg_stmt_t *src = &stmts[s];
        tf__pg_stmt_t *dst = &b->stmts[s];
        const char *name = src->prepared != NULL ? src->prepared : src->sql;
        const char *copy = tf__pg_copy_text(&text, name, strlen(name));
        dst->prepared = src->prepared != NULL ? copy : NULL;
        dst->sql = src->prepared != NULL ? NULL : copy;
        dst->nparams = src->nparams;
        dst->values = values;
        for (int i = 0; i < src->nparams; i++) {
            const char *v = src->values[i];
            values[i] = v == NULL ? NULL : tf__pg_copy_text(&text, v, tf__pg_value_len(src, i));
        }
        values += src->nparams;
    }
}

int tf__pg_batch_copy(const tf_pg_stmt_t *stmts, size_t n, unsigned flags, tf_pg_cb cb, void *arg,
                      tf__pg_batch_t **out) {
    size_t nvalues = 0;
    size_t text = tf__pg_batch_text_size(stmts, n, &nvalues);
    size_t size = sizeof(tf__pg_batch_t) + n * sizeof(tf__pg_stmt_t) + n * sizeof(PGresult *) +
                  nvalues * sizeof(const char *) + text;
    char *block = malloc(size);
    if (block == NULL) {
        return TF_ENOMEM;
    }
    tf__pg_batch_t *b = (tf__pg_batch_t *)block;
    memset(b, 0, sizeof(*b));
    b->flags = flags;
    b->n = n;
    b->cb = cb;
    b->arg = arg;
    b->stmts = (tf__pg_stmt_t *)(b + 1);
    b->results = (PGresult **)(b->stmts + n);
    memset(b->results, 0, n * sizeof(PGresult *));
    const char **values = (const char **)(b->results + n);
    tf__pg_batch_fill(b, stmts, values, (char *)(values + nvalues));
    *out = b;
    return 0;
}

void tf__pg_batch_free(tf__pg_batch_t *batch) {
    if (batch == NULL) {
        return;
    }
    for (size_t i = 0; i < batch->n; i++) {
        PQclear(batch->results[i]);
    }
    tf__pg_error_clear(&batch->error);
    free(batch);
}
