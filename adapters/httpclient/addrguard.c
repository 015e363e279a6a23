/*
 * addrguard.c - classification of IPv4 and IPv6 addresses for the HTTP
 * client's forgery guard (addrguard.h).
 *
 * Works on the raw network-order bytes, so it is the same on every host.
 * The tables list prefixes; the first matching prefix wins.  Pure, any
 * thread.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "adapters/httpclient/addrguard.h"

typedef struct {
    uint32_t prefix; /* host order */
    unsigned bits;
    tf_http_addr_class_t cls;
} tf__http_v4_range_t;

static const tf__http_v4_range_t TF_HTTP_V4_RANGES[] = {
    {0x00000000u, 8, TF_HTTP_ADDR_UNSPECIFIED}, /* 0.0.0.0/8, "this network" */
    {0x7f000000u, 8, TF_HTTP_ADDR_LOOPBACK},    /* 127.0.0.0/8 */
    {0x0a000000u, 8, TF_HTTP_ADDR_PRIVATE},     /* 10.0.0.0/8 */
    {0xac100000u, 12, TF_HTTP_ADDR_PRIVATE},    /* 172.16.0.0/12 */
    {0xc0a80000u, 16, TF_HTTP_ADDR_PRIVATE},    /* 192.168.0.0/16 */
    {0x64400000u, 10, TF_HTTP_ADDR_PRIVATE},    /* 100.64.0.0/10, RFC 6598 shared */
    {0xa9fe0000u, 16, TF_HTTP_ADDR_LINK_LOCAL}, /* 169.254.0.0/16, cloud metadata */
    {0xe0000000u, 4, TF_HTTP_ADDR_MULTICAST},   /* 224.0.0.0/4 */
    {0xf0000000u, 4, TF_HTTP_ADDR_RESERVED},    /* 240.0.0.0/4 and broadcast */
};

static tf_http_addr_class_t tf__http_classify_v4(const uint8_t bytes[4]) {
    uint32_t addr = ((uint32_t)bytes[0] << 24) | ((uint32_t)bytes[1] << 16) |
                    ((uint32_t)bytes[2] << 8) | (uint32_t)bytes[3];
    for (size_t i = 0; i < sizeof(TF_HTTP_V4_RANGES) / sizeof(TF_HTTP_V4_RANGES[0]); i++) {
        const tf__http_v4_range_t *r = &TF_HTTP_V4_RANGES[i];
        uint32_t mask = 0xffffffffu << (32 - r->bits);
        if ((addr & mask) == r->prefix) {
            return r->cls;
        }
    }
    return TF_HTTP_ADDR_PUBLIC;
}

static int tf__http_all_zero(const uint8_t *bytes, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (bytes[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static tf_http_addr_class_t tf__http_classify_v6(const uint8_t b[16]) {
    static const uint8_t nat64_prefix[12] = {0x00, 0x64, 0xff, 0x9b};
    if (tf__http_all_zero(b, 15) && b[15] <= 1) {
        return b[15] == 0 ? TF_HTTP_ADDR_UNSPECIFIED : TF_HTTP_ADDR_LOOPBACK; /* ::, ::1 */
    }
    if (tf__http_all_zero(b, 10) && b[10] == 0xff && b[11] == 0xff) {
        return tf__http_classify_v4(b + 12); /* ::ffff:a.b.c.d, mapped */
    }
    if (tf__http_all_zero(b, 12)) {
        return tf__http_classify_v4(b + 12); /* ::a.b.c.d, compatible */
    }
    if (memcmp(b, nat64_prefix, sizeof(nat64_prefix)) == 0) {
        return tf__http_classify_v4(b + 12); /* 64:ff9b::a.b.c.d, NAT64 */
    }
    if (b[0] == 0xff) {
        return TF_HTTP_ADDR_MULTICAST; /* ff00::/8 */
    }
    if ((b[0] & 0xfe) == 0xfc) {
        return TF_HTTP_ADDR_PRIVATE; /* fc00::/7, unique local */
    }
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) {
        return TF_HTTP_ADDR_LINK_LOCAL; /* fe80::/10 */
    }
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) {
        return TF_HTTP_ADDR_PRIVATE; /* fec0::/10, deprecated site-local */
    }
    return TF_HTTP_ADDR_PUBLIC;
}

tf_http_addr_class_t tf_http_addr_classify(const struct sockaddr *sa, size_t len) {
    if (sa == NULL) {
        return TF_HTTP_ADDR_UNSUPPORTED;
    }
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in v4;
        memcpy(&v4, sa, sizeof(v4));
        uint8_t bytes[4];
        memcpy(bytes, &v4.sin_addr, sizeof(bytes));
        return tf__http_classify_v4(bytes);
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 v6;
        memcpy(&v6, sa, sizeof(v6));
        uint8_t bytes[16];
        memcpy(bytes, &v6.sin6_addr, sizeof(bytes));
        return tf__http_classify_v6(bytes);
    }
    return TF_HTTP_ADDR_UNSUPPORTED;
}

int tf_http_addr_allowed(tf_http_addr_class_t cls, int allow_loopback, int allow_private) {
    switch (cls) {
    case TF_HTTP_ADDR_PUBLIC:
        return 1;
    case TF_HTTP_ADDR_LOOPBACK:
        return allow_loopback != 0;
    case TF_HTTP_ADDR_PRIVATE:
    case TF_HTTP_ADDR_LINK_LOCAL:
        return allow_private != 0;
    default:
        return 0;
    }
}

const char *tf_http_addr_class_name(tf_http_addr_class_t cls) {
    switch (cls) {
    case TF_HTTP_ADDR_PUBLIC:
        return "public";
    case TF_HTTP_ADDR_LOOPBACK:
        return "loopback";
    case TF_HTTP_ADDR_PRIVATE:
        return "private";
    case TF_HTTP_ADDR_LINK_LOCAL:
        return "link-local";
    case TF_HTTP_ADDR_UNSPECIFIED:
        return "unspecified";
    case TF_HTTP_ADDR_MULTICAST:
        return "multicast";
    case TF_HTTP_ADDR_RESERVED:
        return "reserved";
    default:
        return "unsupported";
    }
}
