/*
 * executor.c - the registry of executors by kind (see executor.h).
 */
#include "engine/executor.h"

#include <string.h>

#include "engine/error.h"

int tf_executor_register(tf_executor_registry_t *reg, const tf_executor_t *executor) {
    if (reg == NULL || executor == NULL || executor->kind == NULL || executor->kind[0] == '\0' ||
        executor->start == NULL) {
        return TF_EINVAL;
    }
    if (tf_executor_find(reg, executor->kind) != NULL) {
        return TF_ECONFLICT;
    }
    if (reg->n >= TF_EXECUTOR_KINDS_MAX) {
        return TF_ERANGE;
    }
    reg->items[reg->n++] = executor;
    return 0;
}

const tf_executor_t *tf_executor_find(const tf_executor_registry_t *reg, const char *kind) {
    for (size_t i = 0; reg != NULL && kind != NULL && i < reg->n; i++) {
        if (strcmp(reg->items[i]->kind, kind) == 0) {
            return reg->items[i];
        }
    }
    return NULL;
}
