/*
 * utf8.c - UTF-8 validation and repair (see utf8.h).
 */
#include "engine/utf8.h"

#include <string.h>

size_t tf_utf8_seq_len(const unsigned char *p, size_t avail) {
    if (avail == 0) {
        return 0;
    }
    unsigned char b = p[0];
    size_t n = b >= 0xC2 && b <= 0xDF   ? 2
               : b >= 0xE0 && b <= 0xEF ? 3
               : b >= 0xF0 && b <= 0xF4 ? 4
                                        : 0;
    if (n == 0 || n > avail) {
        return 0;
    }
    /* The second byte's range excludes overlongs, surrogates and > U+10FFFF. */
    unsigned char lo = b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = b == 0xED ? 0x9F : b == 0xF4 ? 0x8F : 0xBF;
    if (p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }
    return n;
}

int tf_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = tf_utf8_seq_len(p + i, len - i);
        if (n == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}

size_t tf_utf8_sanitize(const char *s, size_t len, int replace_nul, char *out) {
    static const char replacement[] = "\xEF\xBF\xBD";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t n = p[i] < 0x80 ? 1 : tf_utf8_seq_len(p + i, len - i);
        if (n == 0 || (p[i] == 0 && replace_nul)) {
            if (out != NULL) {
                memcpy(out + o, replacement, 3);
            }
            o += 3;
            i++;
            continue;
        }
        if (out != NULL) {
            memcpy(out + o, p + i, n);
        }
        o += n;
        i += n;
    }
    if (out != NULL) {
        out[o] = '\0';
    }
    return o;
}
