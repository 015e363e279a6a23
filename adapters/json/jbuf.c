/*
 * jbuf.c - direct JSON text writer (see jbuf.h).  Any thread; one owner.
 */
#include "adapters/json/jbuf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

void tf_jbuf_init(tf_jbuf_t *b) {
    memset(b, 0, sizeof(*b));
    b->first[0] = 1;
}

void tf_jbuf_free(tf_jbuf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int reserve(tf_jbuf_t *b, size_t extra) {
    if (b->failed) {
        return -1;
    }
    if (b->len + extra + 1 <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (data == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static void put(tf_jbuf_t *b, const char *s, size_t n) {
    if (reserve(b, n) == 0) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = '\0';
    }
}

/* Writes the separator a new item at this level needs. */
static void item(tf_jbuf_t *b) {
    if (b->after_key) {
        b->after_key = 0;
        return;
    }
    if (!b->first[b->depth]) {
        put(b, ",", 1);
    }
    b->first[b->depth] = 0;
}

static void open_level(tf_jbuf_t *b, char c) {
    item(b);
    put(b, &c, 1);
    if (b->depth >= TF_JBUF_MAX_DEPTH) {
        b->failed = 1;
        return;
    }
    b->first[++b->depth] = 1;
}

static void close_level(tf_jbuf_t *b, char c) {
    if (b->depth > 0) {
        b->depth--;
    }
    put(b, &c, 1);
}

void tf_jbuf_obj_open(tf_jbuf_t *b) {
    open_level(b, '{');
}

void tf_jbuf_obj_close(tf_jbuf_t *b) {
    close_level(b, '}');
}

void tf_jbuf_arr_open(tf_jbuf_t *b) {
    open_level(b, '[');
}

void tf_jbuf_arr_close(tf_jbuf_t *b) {
    close_level(b, ']');
}

static void escaped(tf_jbuf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        put(b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', (char)c, 0};
        size_t len = 2;
        if (c == '\n') {
            esc[1] = 'n';
        } else if (c == '\r') {
            esc[1] = 'r';
        } else if (c == '\t') {
            esc[1] = 't';
        } else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
        }
        put(b, esc, len);
    }
    put(b, s + run, n - run);
    put(b, "\"", 1);
}

void tf_jbuf_key(tf_jbuf_t *b, const char *key) {
    item(b);
    escaped(b, key, strlen(key));
    put(b, ":", 1);
    b->after_key = 1;
}

void tf_jbuf_strn(tf_jbuf_t *b, const char *s, size_t len) {
    item(b);
    escaped(b, s, len);
}

void tf_jbuf_str(tf_jbuf_t *b, const char *s) {
    if (s == NULL) {
        tf_jbuf_null(b);
        return;
    }
    tf_jbuf_strn(b, s, strlen(s));
}

void tf_jbuf_int(tf_jbuf_t *b, int64_t v) {
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRId64, v);
    item(b);
    put(b, num, (size_t)n);
}

void tf_jbuf_bool(tf_jbuf_t *b, int v) {
    item(b);
    put(b, v ? "true" : "false", v ? 4 : 5);
}

void tf_jbuf_null(tf_jbuf_t *b) {
    item(b);
    put(b, "null", 4);
}

void tf_jbuf_rawn(tf_jbuf_t *b, const char *json, size_t len) {
    item(b);
    put(b, json, len);
}

void tf_jbuf_raw(tf_jbuf_t *b, const char *json) {
    if (json == NULL) {
        tf_jbuf_null(b);
        return;
    }
    tf_jbuf_rawn(b, json, strlen(json));
}

int tf_jbuf_finish(tf_jbuf_t *b, char **out, size_t *len) {
    if (reserve(b, 0) != 0) {
        tf_jbuf_free(b);
        return TF_ENOMEM;
    }
    *out = b->data;
    *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return 0;
}
