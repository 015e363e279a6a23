/*
 * settings.c - blocking access to the `settings` table at start-up (see
 * settings.h).  Main thread only, before the loops start.
 */
#include "adapters/pg/settings.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "engine/error.h"

struct tf_pg_settings {
    PGconn *conn;
};

static const char SQL_GET[] = "SELECT value FROM settings WHERE key = $1";
static const char SQL_PUT[] = "INSERT INTO settings (key, value) VALUES ($1, $2) "
                              "ON CONFLICT (key) DO NOTHING";

int tf_pg_settings_open(const char *conninfo, tf_pg_settings_t **out, char *err, size_t errlen) {
    tf_pg_settings_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return TF_ENOMEM;
    }
    s->conn = PQconnectdb(conninfo);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        if (errlen > 0) {
            strncpy(err, PQerrorMessage(s->conn), errlen - 1);
            err[errlen - 1] = '\0';
        }
        PQfinish(s->conn);
        free(s);
        return TF_EUNAVAIL;
    }
    *out = s;
    return 0;
}

void tf_pg_settings_close(tf_pg_settings_t *s) {
    if (s != NULL) {
        PQfinish(s->conn);
        free(s);
    }
}

int tf_pg_settings_get(tf_pg_settings_t *s, const char *key, char *out, size_t cap) {
    const char *params[1] = {key};
    PGresult *res = PQexecParams(s->conn, SQL_GET, 1, NULL, params, NULL, NULL, 0);
    int rc = TF_EIO;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        if (PQntuples(res) == 0) {
            rc = TF_ENOTFOUND;
        } else if ((size_t)PQgetlength(res, 0, 0) >= cap) {
            rc = TF_ERANGE;
        } else {
            memcpy(out, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0) + 1);
            rc = 0;
        }
    }
    PQclear(res);
    return rc;
}

int tf_pg_settings_put_new(tf_pg_settings_t *s, const char *key, const char *value) {
    const char *params[2] = {key, value};
    PGresult *res = PQexecParams(s->conn, SQL_PUT, 2, NULL, params, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? atoi(PQcmdTuples(res)) : TF_EIO;
    PQclear(res);
    return rc;
}

const char *tf_pg_settings_error(const tf_pg_settings_t *s) {
    return PQerrorMessage(s->conn);
}
