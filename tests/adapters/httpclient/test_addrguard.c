/*
 * test_addrguard.c - address classification for the HTTP client's forgery
 * guard (adapters/httpclient/addrguard.c): every refused range of IPv4 and
 * IPv6, IPv4 carried inside IPv6, the allowances, and malformed input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "adapters/httpclient/addrguard.h"

static tf_http_addr_class_t classify_text(const char *text) {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    memset(&v4, 0, sizeof(v4));
    memset(&v6, 0, sizeof(v6));
    if (inet_pton(AF_INET, text, &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        return tf_http_addr_classify((struct sockaddr *)&v4, sizeof(v4));
    }
    if (inet_pton(AF_INET6, text, &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        return tf_http_addr_classify((struct sockaddr *)&v6, sizeof(v6));
    }
    fail_msg("not an address: %s", text);
    return TF_HTTP_ADDR_UNSUPPORTED;
}

static const struct {
    const char *text;
    tf_http_addr_class_t cls;
} CASES[] = {
    /* IPv4 */
    {"8.8.8.8", TF_HTTP_ADDR_PUBLIC},
    {"1.1.1.1", TF_HTTP_ADDR_PUBLIC},
    {"126.255.255.255", TF_HTTP_ADDR_PUBLIC},
    {"128.0.0.0", TF_HTTP_ADDR_PUBLIC},
    {"127.0.0.1", TF_HTTP_ADDR_LOOPBACK},
    {"127.255.255.254", TF_HTTP_ADDR_LOOPBACK},
    {"10.0.0.1", TF_HTTP_ADDR_PRIVATE},
    {"10.255.255.255", TF_HTTP_ADDR_PRIVATE},
    {"11.0.0.1", TF_HTTP_ADDR_PUBLIC},
    {"172.16.0.1", TF_HTTP_ADDR_PRIVATE},
    {"172.31.255.255", TF_HTTP_ADDR_PRIVATE},
    {"172.15.255.255", TF_HTTP_ADDR_PUBLIC},
    {"172.32.0.0", TF_HTTP_ADDR_PUBLIC},
    {"192.168.1.1", TF_HTTP_ADDR_PRIVATE},
    {"192.169.0.1", TF_HTTP_ADDR_PUBLIC},
    {"100.64.0.1", TF_HTTP_ADDR_PRIVATE},
    {"100.127.255.255", TF_HTTP_ADDR_PRIVATE},
    {"100.128.0.0", TF_HTTP_ADDR_PUBLIC},
    {"169.254.169.254", TF_HTTP_ADDR_LINK_LOCAL},
    {"169.255.0.1", TF_HTTP_ADDR_PUBLIC},
    {"0.0.0.0", TF_HTTP_ADDR_UNSPECIFIED},
    {"0.1.2.3", TF_HTTP_ADDR_UNSPECIFIED},
    {"224.0.0.1", TF_HTTP_ADDR_MULTICAST},
    {"239.255.255.250", TF_HTTP_ADDR_MULTICAST},
    {"240.0.0.1", TF_HTTP_ADDR_RESERVED},
    {"255.255.255.255", TF_HTTP_ADDR_RESERVED},
    {"223.255.255.255", TF_HTTP_ADDR_PUBLIC},
    /* IPv6 */
    {"2001:4860:4860::8888", TF_HTTP_ADDR_PUBLIC},
    {"::1", TF_HTTP_ADDR_LOOPBACK},
    {"::", TF_HTTP_ADDR_UNSPECIFIED},
    {"fe80::1", TF_HTTP_ADDR_LINK_LOCAL},
    {"febf:ffff::1", TF_HTTP_ADDR_LINK_LOCAL},
    {"fec0::1", TF_HTTP_ADDR_PRIVATE},
    {"fc00::1", TF_HTTP_ADDR_PRIVATE},
    {"fd12:3456:789a::1", TF_HTTP_ADDR_PRIVATE},
    {"fe00::1", TF_HTTP_ADDR_PUBLIC},
    {"ff02::1", TF_HTTP_ADDR_MULTICAST},
    {"ff05::1:3", TF_HTTP_ADDR_MULTICAST},
    /* IPv4 inside IPv6 */
    {"::ffff:127.0.0.1", TF_HTTP_ADDR_LOOPBACK},
    {"::ffff:10.1.2.3", TF_HTTP_ADDR_PRIVATE},
    {"::ffff:169.254.169.254", TF_HTTP_ADDR_LINK_LOCAL},
    {"::ffff:0.0.0.0", TF_HTTP_ADDR_UNSPECIFIED},
    {"::ffff:8.8.8.8", TF_HTTP_ADDR_PUBLIC},
    {"::127.0.0.1", TF_HTTP_ADDR_LOOPBACK},
    {"::10.0.0.1", TF_HTTP_ADDR_PRIVATE},
    {"::0.0.0.2", TF_HTTP_ADDR_UNSPECIFIED},
    {"64:ff9b::7f00:1", TF_HTTP_ADDR_LOOPBACK},
    {"64:ff9b::a9fe:a9fe", TF_HTTP_ADDR_LINK_LOCAL},
    {"64:ff9b::808:808", TF_HTTP_ADDR_PUBLIC},
};

static void test_addrguard__classifies_every_range(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        tf_http_addr_class_t got = classify_text(CASES[i].text);
        if (got != CASES[i].cls) {
            fail_msg("%s: got %s, want %s", CASES[i].text, tf_http_addr_class_name(got),
                     tf_http_addr_class_name(CASES[i].cls));
        }
    }
}

static void test_addrguard__allowances_open_only_their_ranges(void **state) {
    (void)state;
    for (int loopback = 0; loopback <= 1; loopback++) {
        for (int private_ = 0; private_ <= 1; private_++) {
            assert_true(tf_http_addr_allowed(TF_HTTP_ADDR_PUBLIC, loopback, private_));
            assert_int_equal(tf_http_addr_allowed(TF_HTTP_ADDR_LOOPBACK, loopback, private_),
                             loopback);
            assert_int_equal(tf_http_addr_allowed(TF_HTTP_ADDR_PRIVATE, loopback, private_),
                             private_);
            assert_int_equal(tf_http_addr_allowed(TF_HTTP_ADDR_LINK_LOCAL, loopback, private_),
                             private_);
            assert_false(tf_http_addr_allowed(TF_HTTP_ADDR_UNSPECIFIED, loopback, private_));
            assert_false(tf_http_addr_allowed(TF_HTTP_ADDR_MULTICAST, loopback, private_));
            assert_false(tf_http_addr_allowed(TF_HTTP_ADDR_RESERVED, loopback, private_));
            assert_false(tf_http_addr_allowed(TF_HTTP_ADDR_UNSUPPORTED, loopback, private_));
        }
    }
}

static void test_addrguard__malformed_input_is_unsupported(void **state) {
    (void)state;
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    struct sockaddr other = {.sa_family = AF_UNIX};
    assert_int_equal(tf_http_addr_classify(NULL, 0), TF_HTTP_ADDR_UNSUPPORTED);
    assert_int_equal(tf_http_addr_classify((struct sockaddr *)&v4, sizeof(v4) - 1),
                     TF_HTTP_ADDR_UNSUPPORTED);
    assert_int_equal(tf_http_addr_classify((struct sockaddr *)&v6, sizeof(v6) - 1),
                     TF_HTTP_ADDR_UNSUPPORTED);
    assert_int_equal(tf_http_addr_classify(&other, sizeof(other)), TF_HTTP_ADDR_UNSUPPORTED);
    assert_string_equal(tf_http_addr_class_name(TF_HTTP_ADDR_LINK_LOCAL), "link-local");
    assert_string_equal(tf_http_addr_class_name(TF_HTTP_ADDR_UNSUPPORTED), "unsupported");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addrguard__classifies_every_range),
        cmocka_unit_test(test_addrguard__allowances_open_only_their_ranges),
        cmocka_unit_test(test_addrguard__malformed_input_is_unsupported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
