/*
 * jbuf.h - a growable buffer that writes JSON text directly.
 *
 * Responses are mostly rows from PostgreSQL whose JSON columns (payload,
 * result, metadata) are already valid JSON text: jbuf splices those in as
 * they are instead of parsing and re-serializing them, and escapes plain
 * strings itself.  Commas between members and elements are inserted
 * automatically (a small nesting stack tracks "first item" per level).
 * A jbuf is a plain value owned by one thread.  After an allocation failure
 * every later call is a no-op and tf_jbuf_finish() reports TF_ENOMEM.
 */
#ifndef TF_ADAPTERS_JSON_JBUF_H
#define TF_ADAPTERS_JSON_JBUF_H

#include <stddef.h>
#include <stdint.h>

#define TF_JBUF_MAX_DEPTH 32

typedef struct {
    char *data;
    size_t len, cap;
    int failed;
    int depth;
    unsigned char first[TF_JBUF_MAX_DEPTH + 1]; /* per level (0: top): 1 while it has no item */
    int after_key; /* a key was just written */
} tf_jbuf_t;

void tf_jbuf_init(tf_jbuf_t *b);
/* Frees the buffer's memory (safe after tf_jbuf_finish() took it). */
void tf_jbuf_free(tf_jbuf_t *b);

void tf_jbuf_obj_open(tf_jbuf_t *b);
void tf_jbuf_obj_close(tf_jbuf_t *b);
void tf_jbuf_arr_open(tf_jbuf_t *b);
void tf_jbuf_arr_close(tf_jbuf_t *b);
/* Writes a member name; the next value call writes its value. */
void tf_jbuf_key(tf_jbuf_t *b, const char *key);
/* A JSON string; NULL writes null.  Bytes are escaped as JSON requires. */
void tf_jbuf_str(tf_jbuf_t *b, const char *s);
void tf_jbuf_strn(tf_jbuf_t *b, const char *s, size_t len);
void tf_jbuf_int(tf_jbuf_t *b, int64_t v);
void tf_jbuf_bool(tf_jbuf_t *b, int v);
void tf_jbuf_null(tf_jbuf_t *b);
/* Splices `json` (already valid JSON text) in as a value; NULL writes null. */
void tf_jbuf_raw(tf_jbuf_t *b, const char *json);
void tf_jbuf_rawn(tf_jbuf_t *b, const char *json, size_t len);

/* Hands the NUL-terminated text to the caller, who frees it with free().
 * Returns 0 or TF_ENOMEM (nothing to free then). */
int tf_jbuf_finish(tf_jbuf_t *b, char **out, size_t *len);

#endif
