/*
 * pgtime.c - PostgreSQL timestamptz text to RFC 3339 (see pgtime.h).
 */
#include "adapters/pg/pgtime.h"

#include <string.h>

#include "engine/error.h"

int tf_pgtime_parse(const char *text, int64_t *out_ms) {
    char buf[48];
    size_t len = strlen(text);
    /* "YYYY-MM-DD HH:MM:SS" at least, then fraction and offset. */
    if (len < 22 || len >= sizeof(buf) - 4 || text[10] != ' ') {
        return TF_EINVAL;
    }
    memcpy(buf, text, len + 1);
    buf[10] = 'T';
    /* The offset starts at the last '+' or '-' after the time. */
    char *sign = NULL;
    for (char *p = buf + 19; *p != '\0'; p++) {
        if (*p == '+' || *p == '-') {
            sign = p;
        }
    }
    if (sign == NULL) {
        return TF_EINVAL;
    }
    size_t off_len = strlen(sign);
    if (off_len == 3) { /* "+HH" -> "+HH:00" */
        memcpy(sign + 3, ":00", 4);
    } else if (off_len == 9) { /* "+HH:MM:SS" (historic zones): seconds cannot be kept */
        return TF_EINVAL;
    } else if (off_len != 6) {
        return TF_EINVAL;
    }
    return tf_time_parse(buf, strlen(buf), out_ms);
}

int tf_pgtime_to_rfc3339(const char *text, char out[TF_TIME_STR_LEN + 1]) {
    int64_t ms;
    int rc = tf_pgtime_parse(text, &ms);
    return rc != 0 ? rc : tf_time_format(ms, out);
}
