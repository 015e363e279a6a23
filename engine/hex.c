/*
 * hex.c - hexadecimal encoding and decoding (see hex.h).
 */
#include "engine/hex.h"

#include <string.h>

#include "engine/error.h"

void tf_hex_encode(const uint8_t *bytes, size_t len, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

static int digit(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

int tf_hex_decode(const char *hex, uint8_t *out, size_t cap) {
    size_t n = hex != NULL ? strlen(hex) : 0;
    if (n == 0 || n % 2 != 0 || n / 2 > cap) {
        return TF_EINVAL;
    }
    for (size_t i = 0; i < n; i += 2) {
        int hi = digit(hex[i]), lo = digit(hex[i + 1]);
        if (hi < 0 || lo < 0) {
            return TF_EINVAL;
        }
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return (int)(n / 2);
}
