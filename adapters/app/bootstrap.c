/*
 * bootstrap.c - admin token hash and cursor key from `settings` (see
 * bootstrap.h).  Blocking libpq; main thread only, before loops start.
 */
#include "adapters/app/bootstrap.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "engine/error.h"
#include "engine/hex.h"

static const char SQL_GET[] = "SELECT value FROM settings WHERE key = $1";
static const char SQL_PUT[] = "INSERT INTO settings (key, value) VALUES ($1, $2) "
                              "ON CONFLICT (key) DO NOTHING";

/* Reads settings[key] as `len` hex-encoded bytes.  Returns 0, TF_ENOTFOUND
 * or TF_EIO. */
static int get_hex(PGconn *conn, const char *key, uint8_t *out, size_t len) {
    const char *params[1] = {key};
    PGresult *res = PQexecParams(conn, SQL_GET, 1, NULL, params, NULL, NULL, 0);
    int rc = TF_EIO;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        rc = PQntuples(res) == 0 ? TF_ENOTFOUND
                                 : (tf_hex_decode(PQgetvalue(res, 0, 0), out, len) == (int)len ? 0 : TF_EIO);
    }
    PQclear(res);
    return rc;
}

/* Stores `hex` under `key` unless a value is there already; returns 1 when
 * this call stored it, 0 when another node won, or TF_EIO. */
static int put_hex(PGconn *conn, const char *key, const char *hex) {
    const char *params[2] = {key, hex};
    PGresult *res = PQexecParams(conn, SQL_PUT, 2, NULL, params, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? atoi(PQcmdTuples(res)) : TF_EIO;
    PQclear(res);
    return rc;
}

static int load_cursor_key(PGconn *conn, uint8_t key[TF_CURSOR_KEY_LEN]) {
    int rc = get_hex(conn, "cursor_key", key, TF_CURSOR_KEY_LEN);
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
    if (put_hex(conn, "cursor_key", hex) < 0) {
        return TF_EIO;
    }
    return get_hex(conn, "cursor_key", key, TF_CURSOR_KEY_LEN);
}

static int load_admin_hash(PGconn *conn, tf_auth_shared_t *auth, FILE *announce, tf_log_t *log) {
    int rc = get_hex(conn, "admin_token_sha256", auth->admin_hash, TF_TOKEN_HASH_LEN);
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
    int stored = put_hex(conn, "admin_token_sha256", hex);
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
    rc = get_hex(conn, "admin_token_sha256", auth->admin_hash, TF_TOKEN_HASH_LEN);
    auth->has_admin = rc == 0;
    return rc;
}

int tf_bootstrap_secrets(const char *conninfo, const char *admin_token, tf_auth_shared_t *auth,
                         uint8_t cursor_key[TF_CURSOR_KEY_LEN], FILE *announce, tf_log_t *log) {
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        tf_log_error(log, "cannot connect to PostgreSQL", TF_LF_STR("error", PQerrorMessage(conn)));
        PQfinish(conn);
        return TF_EUNAVAIL;
    }
    int rc = load_cursor_key(conn, cursor_key);
    if (rc == 0 && admin_token != NULL && admin_token[0] != '\0') {
        tf_token_hash(admin_token, strlen(admin_token), auth->admin_hash);
        auth->has_admin = 1;
    } else if (rc == 0) {
        rc = load_admin_hash(conn, auth, announce, log);
    }
    if (rc != 0) {
        tf_log_error(log, "cannot read or store settings",
                     TF_LF_STR("error", PQerrorMessage(conn)));
    }
    PQfinish(conn);
    return rc;
}
