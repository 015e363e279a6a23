/*
 * notifier.h - PostgreSQL LISTEN/NOTIFY for one loop.
 *
 * Each loop that needs wake-ups owns one notifier: a dedicated non-blocking
 * libpq connection (not from the pool: a listening session must stay
 * open), watched with uv_poll, that LISTENs on the channels below and hands
 * every notification to its subscribers.  It reconnects with backoff; after
 * a reconnect (notifications may have been lost meanwhile) subscribers get a
 * call with channel NULL so they poll once.
 *
 * Channels (payloads are written by the SQL of migrations 0002/0003):
 *   taskflow_ready   "<queue>" or "<queue>|builtin": jobs became claimable
 *                    (one notification per committing transaction and queue)
 *   taskflow_cancel  "<job id>": a RUNNING job was cancelled
 *   taskflow_lua     "<tenant id>/<name>": a tenant's Lua executor changed
 *                    (migration 0005; drop what is cached of it)
 * Loop thread only.
 */
#ifndef TF_ADAPTERS_PG_NOTIFIER_H
#define TF_ADAPTERS_PG_NOTIFIER_H

#include <uv.h>

#include "adapters/log/log.h"

#define TF_CHANNEL_READY "taskflow_ready"
#define TF_CHANNEL_CANCEL "taskflow_cancel"
#define TF_CHANNEL_LUA "taskflow_lua"

typedef struct tf_notifier tf_notifier_t;

/* channel NULL: reconnected, poll once.  Strings valid during the call. */
typedef void (*tf_notify_fn)(const char *channel, const char *payload, void *arg);

/* Starts connecting to `conninfo` (copied) and listening on every channel.
 * Caller owns the result; release with tf_notifier_close(). */
int tf_notifier_create(uv_loop_t *loop, const char *conninfo, tf_log_t *log, tf_notifier_t **out);

/* Adds a subscriber (at most 8).  Returns 0 or TF_ENOMEM. */
int tf_notifier_subscribe(tf_notifier_t *n, tf_notify_fn fn, void *arg);

/* 1 while the listening session is up. */
int tf_notifier_connected(const tf_notifier_t *n);

/* Closes the connection and handles, then calls `closed_cb` (may be NULL)
 * and frees the notifier. */
void tf_notifier_close(tf_notifier_t *n, void (*closed_cb)(void *arg), void *arg);

#endif
