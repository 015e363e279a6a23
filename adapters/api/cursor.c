/*
 * cursor.c - signed pagination cursors (see cursor.h).
 *
 * Layout before base64url: version (1 byte) | issued at, ms, big endian (8) |
 * scope digest (8) | last id (16) | HMAC-SHA256 of the preceding (16).
 */
#include "adapters/api/cursor.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "engine/error.h"

enum { VERSION = 1, BODY = 1 + 8 + 8 + 16, TOTAL = BODY + 16 };

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void scope_digest(const char *scope, uint8_t out[8]) {
    uint8_t full[32];
    unsigned int n = 0;
    EVP_Digest(scope, strlen(scope), full, &n, EVP_sha256(), NULL);
    memcpy(out, full, 8);
}

static void mac(const uint8_t key[32], const uint8_t *body, uint8_t out[16]) {
    uint8_t full[32];
    unsigned int n = 0;
    HMAC(EVP_sha256(), key, 32, body, BODY, full, &n);
    memcpy(out, full, 16);
}

/* TOTAL (49) bytes -> 66 characters; no padding. */
static void b64_encode(const uint8_t *in, char *out) {
    size_t o = 0;
    for (size_t i = 0; i + 3 <= TOTAL; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        for (int k = 3; k >= 0; k--) {
            out[o++] = B64[(v >> (6 * k)) & 63];
        }
    }
    /* One byte left (49 = 16 * 3 + 1): two characters. */
    uint32_t v = (uint32_t)in[TOTAL - 1] << 16;
    out[o++] = B64[(v >> 18) & 63];
    out[o++] = B64[(v >> 12) & 63];
    out[o] = '\0';
}

static int b64_value(char c) {
    const char *p = c != '\0' ? strchr(B64, c) : NULL;
    return p != NULL ? (int)(p - B64) : -1;
}

static int b64_decode(const char *text, uint8_t *out) {
    if (strlen(text) != 66) {
        return TF_EINVAL;
    }
    size_t o = 0;
    for (size_t i = 0; i < 64; i += 4) {
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = b64_value(text[i + k]);
            if (d < 0) {
                return TF_EINVAL;
            }
            v = v << 6 | (uint32_t)d;
        }
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    int a = b64_value(text[64]), b = b64_value(text[65]);
    if (a < 0 || b < 0 || (b & 15) != 0) {
        return TF_EINVAL;
    }
    out[o] = (uint8_t)(a << 2 | b >> 4);
    return 0;
}

void tf_cursor_encode(const uint8_t key[32], const char *scope, const tf_uuid_t *last_id,
                      int64_t now_ms, char out[TF_CURSOR_TEXT_LEN]) {
    uint8_t raw[TOTAL];
    raw[0] = VERSION;
    for (int i = 0; i < 8; i++) {
        raw[1 + i] = (uint8_t)((uint64_t)now_ms >> (56 - 8 * i));
    }
    scope_digest(scope, raw + 9);
    memcpy(raw + 17, last_id->bytes, 16);
    mac(key, raw, raw + BODY);
    b64_encode(raw, out);
}

int tf_cursor_decode(const uint8_t key[32], const char *scope, const char *text, int64_t now_ms,
                     tf_uuid_t *last_id, const char **why) {
    uint8_t raw[TOTAL], expect[16], digest[8];
    if (b64_decode(text, raw) != 0 || raw[0] != VERSION) {
        *why = "cursor is malformed";
        return TF_EINVAL;
    }
    mac(key, raw, expect);
    if (CRYPTO_memcmp(expect, raw + BODY, 16) != 0) {
        *why = "cursor is not one this server issued";
        return TF_EINVAL;
    }
    scope_digest(scope, digest);
    if (memcmp(digest, raw + 9, 8) != 0) {
        *why = "cursor belongs to another query";
        return TF_EINVAL;
    }
    uint64_t issued = 0;
    for (int i = 0; i < 8; i++) {
        issued = issued << 8 | raw[1 + i];
    }
    if ((int64_t)issued > now_ms + 60000 || now_ms - (int64_t)issued > TF_CURSOR_MAX_AGE_MS) {
        *why = "cursor has expired; start the listing again";
        return TF_EINVAL;
    }
    memcpy(last_id->bytes, raw + 17, 16);
    return 0;
}
