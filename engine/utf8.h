/*
 * utf8.h - the one UTF-8 validator of TaskFlow.
 *
 * Well-formed means RFC 3629: no overlong forms, no surrogates (U+D800 to
 * U+DFFF), nothing above U+10FFFF, no sequence cut short.  PostgreSQL,
 * JSON and Prometheus all refuse anything else, so every adapter that lets
 * outside bytes through (query strings, HTTP bodies, log fields, metric
 * labels) checks or repairs them here.
 * Pure functions of their arguments; any thread.
 */
#ifndef TF_ENGINE_UTF8_H
#define TF_ENGINE_UTF8_H

#include <stddef.h>

/* Length (2 to 4) of the well-formed multi-byte sequence that starts at `p`
 * and has at most `avail` bytes, or 0 when it is not one (including an
 * ASCII lead byte).  Never reads more than `avail` bytes, nor past a NUL
 * (which is no continuation byte), so NUL-terminated text may pass 4. */
size_t tf_utf8_seq_len(const unsigned char *p, size_t avail);

/* True when the `len` bytes at `s` are well-formed UTF-8.  NUL bytes count
 * as characters here; callers that refuse NUL check for it themselves. */
int tf_utf8_valid(const char *s, size_t len);

/* Copies `len` bytes of `s` into `out` with every byte that does not start
 * a well-formed sequence replaced by U+FFFD (3 bytes), and NUL replaced too
 * when `replace_nul` is set; or only measures when `out` is NULL.  Returns
 * the output length (NUL terminator not counted; `out` must hold that plus
 * one byte).  The output equals the input exactly when it was valid. */
size_t tf_utf8_sanitize(const char *s, size_t len, int replace_nul, char *out);

#endif
