/*
 * jsonstr.h - a string as a JSON string literal, for the few JSON texts
 * the engine and the use cases write without a JSON library.
 * Pure; any thread.
 */
#ifndef TF_ENGINE_JSONSTR_H
#define TF_ENGINE_JSONSTR_H

#include <stddef.h>

/* Appends `s` (UTF-8) as a quoted JSON string to out[cap] at *len: '"'
 * and '\\' escaped, control characters as \u00XX.  *len counts what would
 * have been written, also past `cap` (out stays NUL-terminated within
 * cap), so a caller checks *len < cap once at the end. */
void tf_json_quote(char *out, size_t cap, size_t *len, const char *s);

/* Appends `text` as it is, with the same accounting. */
void tf_json_raw(char *out, size_t cap, size_t *len, const char *text);

#endif
