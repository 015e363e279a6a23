/*
 * addrguard.h - classifies the IP addresses an outbound HTTP call may
 * connect to, for the client's server-side request forgery guard
 * (client.h).
 *
 * Pure functions over socket addresses; no I/O, usable from any thread.
 * IPv4 addresses embedded in IPv6 ones (IPv4-mapped ::ffff:a.b.c.d,
 * IPv4-compatible ::a.b.c.d and NAT64 64:ff9b::a.b.c.d) are classified by
 * the IPv4 address they carry, so a mapped loopback is still loopback.
 */
#ifndef TF_ADAPTERS_HTTPCLIENT_ADDRGUARD_H
#define TF_ADAPTERS_HTTPCLIENT_ADDRGUARD_H

#include <stddef.h>

#include <sys/socket.h>

typedef enum {
    TF_HTTP_ADDR_PUBLIC = 0,  /* anything not listed below */
    TF_HTTP_ADDR_LOOPBACK,    /* 127.0.0.0/8, ::1 */
    TF_HTTP_ADDR_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, fec0::/10 */
    TF_HTTP_ADDR_LINK_LOCAL,  /* 169.254/16, fe80::/10 */
    TF_HTTP_ADDR_UNSPECIFIED, /* 0.0.0.0/8, :: */
    TF_HTTP_ADDR_MULTICAST,   /* 224.0.0.0/4, ff00::/8 */
    TF_HTTP_ADDR_RESERVED,    /* 240.0.0.0/4, including 255.255.255.255 */
    TF_HTTP_ADDR_UNSUPPORTED, /* not AF_INET or AF_INET6, or too short */
} tf_http_addr_class_t;

/* Classifies the address in `sa` (`len` bytes, as from getaddrinfo). */
tf_http_addr_class_t tf_http_addr_classify(const struct sockaddr *sa, size_t len);

/* Returns 1 when a connection to an address of class `cls` may be made:
 * public addresses always, loopback when `allow_loopback`, private and
 * link-local when `allow_private`; unspecified, multicast, reserved and
 * unsupported addresses never. */
int tf_http_addr_allowed(tf_http_addr_class_t cls, int allow_loopback, int allow_private);

/* Returns a static name for `cls` ("loopback", "private", ...). */
const char *tf_http_addr_class_name(tf_http_addr_class_t cls);

#endif
