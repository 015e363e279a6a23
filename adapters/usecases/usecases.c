/*
 * usecases.c - what every use case shares (see usecases.h).
 */
#include "adapters/usecases/usecases.h"

void tf_uc_new_id(tf_uc_t *uc, char out[TF_ID_LEN]) {
    tf_uuid_t id;
    tf_uuid_v7(uc->uuids, (uint64_t)tf_uc_now(uc), &id);
    tf_uuid_format(&id, out);
}

void tf_uc_new_id_at(tf_uc_t *uc, int64_t unix_ms, char out[TF_ID_LEN]) {
    tf_uuid_t id;
    tf_uuid_v7(uc->uuids, (uint64_t)tf_uc_now(uc), &id); /* its random bits */
    for (int i = 0; i < 6; i++) {
        id.bytes[i] = (uint8_t)((uint64_t)unix_ms >> (8 * (5 - i)));
    }
    tf_uuid_format(&id, out);
}
