/*
 * migrate.h - versioned SQL migrations compiled into the binary.
 *
 * adapters/pg/migrations/NNNN_name.sql become the tf_migrations table at
 * build time (cmake/embed_migrations.cmake).  tf_migrate_apply() applies the
 * missing ones in order, each inside its own transaction together with its
 * row in schema_migrations, under a session advisory lock so that two nodes
 * migrating at once are serialized.  A database whose newest version is
 * above the binary's is refused with TF_ECONFLICT and a clear message.
 * Runs on a plain blocking connection: it is used by `taskflow migrate` and
 * at the start of `taskflow serve`, before any loop runs.
 */
#ifndef TF_ADAPTERS_PG_MIGRATE_H
#define TF_ADAPTERS_PG_MIGRATE_H

#include <stddef.h>

#include "adapters/log/log.h"

typedef struct {
    int version;
    const char *name;
    const char *sql;
} tf_migration_t;

extern const tf_migration_t tf_migrations[];
extern const size_t tf_migrations_count;

/* Applies pending migrations over `conninfo`.  On success *applied (may be
 * NULL) is the number applied now and *version (may be NULL) the schema
 * version after.  On failure returns TF_EUNAVAIL (cannot connect), TF_EIO (a
 * migration failed; it was rolled back) or TF_ECONFLICT (database newer than
 * this binary), and writes a one-line reason into `err` (errlen bytes). */
int tf_migrate_apply(const char *conninfo, tf_log_t *log, int *applied, int *version, char *err,
                     size_t errlen);

/* The newest version this binary knows. */
int tf_migrate_latest(void);

#endif
