/*
 * hex.h - the one hexadecimal codec of TaskFlow (token hashes, signing
 * secrets, HMAC signatures, settings).
 * Pure functions of their arguments; any thread.
 */
#ifndef TF_ENGINE_HEX_H
#define TF_ENGINE_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Lower-case hex of `len` bytes into `out` (2 * len + 1 bytes, NUL
 * terminated). */
void tf_hex_encode(const uint8_t *bytes, size_t len, char *out);

/* Decodes the NUL-terminated hex text `hex` (either case, even length)
 * into `out`, which has room for `cap` bytes.  Returns the number of bytes
 * written, or TF_EINVAL when `hex` is NULL, empty, of odd length, longer
 * than 2 * cap digits, or holds a character that is not a hex digit. */
int tf_hex_decode(const char *hex, uint8_t *out, size_t cap);

#endif
