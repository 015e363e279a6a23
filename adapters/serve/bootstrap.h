/*
 * bootstrap.h - the secrets a node needs before it serves, read from (or
 * created in) the `settings` table on a plain blocking connection at start
 * (adapters/pg/settings.h).
 *
 * - The admin token: TASKFLOW_ADMIN_TOKEN when configured (only its hash is
 *   kept in memory; nothing is stored).  Otherwise the hash stored in
 *   settings.admin_token_sha256; on the very first start of a deployment a
 *   token is generated, only its hash is stored, and the token itself is
 *   printed once on `announce`.  Two nodes starting together cannot both
 *   create one: the insert is ON CONFLICT DO NOTHING and the loser reads the
 *   winner's hash.
 * - The cursor key: 32 random bytes in settings.cursor_key, shared by every
 *   node, that sign list cursors so a forged cursor is recognised.
 * Main thread, before the loops start.
 */
#ifndef TF_ADAPTERS_SERVE_BOOTSTRAP_H
#define TF_ADAPTERS_SERVE_BOOTSTRAP_H

#include <stdint.h>
#include <stdio.h>

#include "adapters/api/api.h"
#include "adapters/log/log.h"

/* Returns 0, TF_EUNAVAIL (cannot connect) or TF_EIO. */
int tf_bootstrap_secrets(const char *conninfo, const char *admin_token, tf_auth_shared_t *auth,
                         uint8_t cursor_key[TF_CURSOR_KEY_LEN], FILE *announce, tf_log_t *log);

#endif
