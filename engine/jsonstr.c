/*
 * jsonstr.c - JSON string literals (see jsonstr.h).
 */
#include "engine/jsonstr.h"

#include <stdio.h>
#include <string.h>

void tf_json_raw(char *out, size_t cap, size_t *len, const char *text) {
    size_t n = strlen(text);
    if (*len + n < cap) {
        memcpy(out + *len, text, n + 1);
    } else if (*len < cap) {
        out[*len] = '\0';
    }
    *len += n;
}

void tf_json_quote(char *out, size_t cap, size_t *len, const char *s) {
    tf_json_raw(out, cap, len, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        char buf[8];
        if (*p == '"' || *p == '\\') {
            snprintf(buf, sizeof(buf), "\\%c", *p);
        } else if (*p < 0x20) {
            snprintf(buf, sizeof(buf), "\\u%04x", *p);
        } else {
            buf[0] = (char)*p, buf[1] = '\0';
        }
        tf_json_raw(out, cap, len, buf);
    }
    tf_json_raw(out, cap, len, "\"");
}
