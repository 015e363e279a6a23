/*
 * bootstrap.c - admin token hash and cursor key from `settings` (see
 * bootstrap.h).  Blocking; main thread only, before loops start.
 */
#include "adapters/serve/bootstrap.h"

#include <string.h>

#include "adapters/pg/settings.h"
#include "engine/error.h"
#include "engine/hex.h"

/* Reads settings[key] as `len` hex-encoded bytes.  Returns 0, TF_ENOTFOUND
 * or TF_EIO. */
static int get_hex(tf_pg_settings_t *s, const char *key, uint8_t *out, size_t len) {
    char text[2 * 64 + 1];
    int rc = tf_pg_settings_get(s, key, text, sizeof(text));
    if (rc != 0) {
        return rc == TF_ENOTFOUND ? rc : TF_EIO;
    }
    return tf_hex_decode(text, out, len) == (int)len ? 0 : TF_EIO;
}

static int load_cursor_key(tf_pg_settings_t *s, uint8_t key[TF_CURSOR_KEY_LEN]) {
    int rc = get_hex(s, "cursor_key", key, TF_CURSOR_KEY_LEN);
    if (rc != TF_ENOTFOUND) {
        return rc;
    }
    char token[64], hex[2 * TF_TOKEN_HASH_LEN + 1];
    uint8_t fresh[TF_TOKEN_HASH_LEN];
    if (tf_token_generate("", token, sizeof(token)) != 0) {
        return TF_EIO;
    }
    tf_token_hash(token, strlen(token), fresh);
    tf_hex_encode(fresh, sizeof(fresh), hex);
    if (tf_pg_settings_put_new(s, "cursor_key", hex) < 0) {
        return TF_EIO;
    }
    return get_hex(s, "cursor_key", key, TF_CURSOR_KEY_LEN);
}

static int load_admin_hash(tf_pg_settings_t *s, tf_auth_shared_t *auth, FILE *announce,
                           tf_log_t *log) {
    int rc = get_hex(s, "admin_token_sha256", auth->admin_hash, TF_TOKEN_HASH_LEN);
    if (rc != TF_ENOTFOUND) {
        auth->has_admin = rc == 0;
        return rc;
    }
    char token[64], hex[2 * TF_TOKEN_HASH_LEN + 1];
    if (tf_token_generate("tfadmin_", token, sizeof(token)) != 0) {
        return TF_EIO;
    }
    tf_token_hash(token, strlen(token), auth->admin_hash);
    tf_hex_encode(auth->admin_hash, TF_TOKEN_HASH_LEN, hex);
    int stored = tf_pg_settings_put_new(s, "admin_token_sha256", hex);
    if (stored < 0) {
        return TF_EIO;
    }
    if (stored == 1) {
        fprintf(announce, "TaskFlow generated the admin token (shown only this once): %s\n", token);
        fflush(announce);
        tf_log_info(log, "admin token generated; only its hash is stored",
                    TF_LF_STR("setting", "admin_token_sha256"));
        auth->has_admin = 1;
        return 0;
    }
    rc = get_hex(s, "admin_token_sha256", auth->admin_hash, TF_TOKEN_HASH_LEN);
    auth->has_admin = rc == 0;
    return rc;
}

int tf_bootstrap_secrets(const char *conninfo, const char *admin_token, tf_auth_shared_t *auth,
                         uint8_t cursor_key[TF_CURSOR_KEY_LEN], FILE *announce, tf_log_t *log) {
    tf_pg_settings_t *s = NULL;
    char err[512] = "";
    int rc = tf_pg_settings_open(conninfo, &s, err, sizeof(err));
    if (rc != 0) {
        tf_log_error(log, "cannot connect to PostgreSQL", TF_LF_STR("error", err));
        return TF_EUNAVAIL;
    }
    rc = load_cursor_key(s, cursor_key);
    if (rc == 0 && admin_token != NULL && admin_token[0] != '\0') {
        tf_token_hash(admin_token, strlen(admin_token), auth->admin_hash);
        auth->has_admin = 1;
    } else if (rc == 0) {
        rc = load_admin_hash(s, auth, announce, log);
    }
    if (rc != 0) {
        tf_log_error(log, "cannot read or store settings",
                     TF_LF_STR("error", tf_pg_settings_error(s)));
    }
    tf_pg_settings_close(s);
    return rc;
}
