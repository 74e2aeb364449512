/* Unit tests for net/addr.c: CIDR parsing and matching (IPv4, IPv6,
 * IPv4-mapped peers, /0, /32, /128, invalid strings), loopback checks,
 * address formatting and bind-name resolution. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "net/net.h"

static struct sockaddr_storage sa_of(const char *ip)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
        ss.ss_family = AF_INET6;
    }
    return ss;
}

static bool matches(const char *cidr, const char *ip)
{
    struct ch_cidr c;
    struct ch_error err;
    struct sockaddr_storage ss = sa_of(ip);

    if (ch_cidr_parse(cidr, &c, &err) != 0)
        fail_msg("parse %s: %s", cidr, err.msg);
    return ch_cidr_match(&c, (struct sockaddr *)&ss);
}

static void test_parse_valid(void **state)
{
    struct ch_cidr c;

    (void)state;
    assert_int_equal(ch_cidr_parse("10.0.0.0/8", &c, NULL), 0);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.prefix, 8);
    assert_int_equal(c.addr[0], 10);
    assert_int_equal(ch_cidr_parse("192.168.1.7", &c, NULL), 0);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(ch_cidr_parse("::1", &c, NULL), 0);
    assert_int_equal(c.family, AF_INET6);
    assert_int_equal(c.prefix, 128);
    assert_int_equal(ch_cidr_parse("fd00::/8", &c, NULL), 0);
    assert_int_equal(c.prefix, 8);
    assert_int_equal(ch_cidr_parse("0.0.0.0/0", &c, NULL), 0);
    assert_int_equal(c.prefix, 0);
    /* Host bits are cleared. */
    assert_int_equal(ch_cidr_parse("10.1.2.3/8", &c, NULL), 0);
    assert_int_equal(c.addr[1], 0);
    assert_int_equal(c.addr[3], 0);
    assert_int_equal(ch_cidr_parse("10.1.2.3/12", &c, NULL), 0);
    assert_int_equal(c.addr[1], 0);
    /* A mapped range is stored as IPv4. */
    assert_int_equal(ch_cidr_parse("::ffff:10.0.0.0/104", &c, NULL), 0);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.prefix, 8);
}

static void test_parse_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/08",
        "10.0.0.256",
        "::1/129",
        "abc",
        "10.0.0.0/8/9",
        " 10.0.0.1",
        "1.2.3.4 ",
        "10.0.0.0/8x",
        "10.0.0",
        "1.2.3.4/+8",
        "::1/",
        "/8",
        "fe80::1%eth0",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000:1",
    };
    struct ch_cidr c;
    struct ch_error err;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        if (ch_cidr_parse(bad[i], &c, &err) != CH_EINVAL)
            fail_msg("\"%s\" parsed", bad[i]);
        assert_int_equal(err.code, CH_EINVAL);
        assert_true(err.msg[0] != '\0');
    }
    assert_int_equal(ch_cidr_parse(NULL, &c, NULL), CH_EINVAL);
}

static void test_match(void **state)
{
    (void)state;
    assert_true(matches("10.0.0.0/8", "10.200.3.4"));
    assert_false(matches("10.0.0.0/8", "11.0.0.1"));
    assert_true(matches("192.168.1.7", "192.168.1.7"));
    assert_false(matches("192.168.1.7", "192.168.1.8"));
    assert_true(matches("192.168.1.7/32", "192.168.1.7"));
    assert_true(matches("172.16.0.0/12", "172.31.255.255"));
    assert_false(matches("172.16.0.0/12", "172.32.0.0"));
    assert_true(matches("0.0.0.0/0", "8.8.8.8"));
    assert_false(matches("0.0.0.0/0", "::1")); /* families differ */
    assert_true(matches("::/0", "2001:db8::1"));
    assert_false(matches("::/0", "8.8.8.8"));
    assert_true(matches("::1", "::1"));
    assert_false(matches("::1", "::2"));
    assert_true(matches("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(matches("2001:db8::/32", "2001:db9::1"));
    assert_true(matches("2001:db8::/33", "2001:db8:7fff::1"));
    assert_false(matches("2001:db8::/33", "2001:db8:8000::1"));
    /* A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d. */
    assert_true(matches("127.0.0.0/8", "::ffff:127.0.0.1"));
    assert_true(matches("10.0.0.0/8", "::ffff:10.1.1.1"));
    assert_false(matches("10.0.0.0/8", "::ffff:11.1.1.1"));
    assert_true(matches("::ffff:10.0.0.0/104", "10.9.9.9"));
    assert_false(matches("::1", "::ffff:0.0.0.1"));
}

static void test_list_match(void **state)
{
    struct ch_cidr list[2];
    struct sockaddr_storage a = sa_of("10.1.1.1"), b = sa_of("127.0.0.1"), c = sa_of("8.8.8.8");

    (void)state;
    assert_int_equal(ch_cidr_parse("10.0.0.0/8", &list[0], NULL), 0);
    assert_int_equal(ch_cidr_parse("127.0.0.1", &list[1], NULL), 0);
    assert_true(ch_cidr_list_match(list, 2, (struct sockaddr *)&a));
    assert_true(ch_cidr_list_match(list, 2, (struct sockaddr *)&b));
    assert_false(ch_cidr_list_match(list, 2, (struct sockaddr *)&c));
    assert_false(ch_cidr_list_match(list, 0, (struct sockaddr *)&a));
    assert_false(ch_cidr_match(&list[0], NULL));
}

static void test_loopback_and_format(void **state)
{
    struct sockaddr_storage ss;
    char out[64];

    (void)state;
    assert_true(ch_net_is_loopback("127.0.0.1"));
    assert_true(ch_net_is_loopback("127.255.0.9"));
    assert_true(ch_net_is_loopback("::1"));
    assert_true(ch_net_is_loopback("::ffff:127.0.0.2"));
    assert_false(ch_net_is_loopback("128.0.0.1"));
    assert_false(ch_net_is_loopback("::2"));
    assert_false(ch_net_is_loopback("localhost"));
    assert_false(ch_net_is_loopback(NULL));
    ss = sa_of("::ffff:127.0.0.1");
    assert_true(ch_net_sockaddr_is_loopback((struct sockaddr *)&ss));
    ch_net_addr_str((struct sockaddr *)&ss, out, sizeof(out));
    assert_string_equal(out, "127.0.0.1");
    ss = sa_of("2001:db8::5");
    assert_false(ch_net_sockaddr_is_loopback((struct sockaddr *)&ss));
    ch_net_addr_str((struct sockaddr *)&ss, out, sizeof(out));
    assert_string_equal(out, "2001:db8::5");
    ch_net_addr_str((struct sockaddr *)&ss, out, 4); /* too small: empty, not cut */
    assert_string_equal(out, "");
    ss.ss_family = AF_UNIX;
    ch_net_addr_str((struct sockaddr *)&ss, out, sizeof(out));
    assert_string_equal(out, "");
    assert_false(ch_net_sockaddr_is_loopback((struct sockaddr *)&ss));
}

static void test_resolve_bind(void **state)
{
    char out[64];
    struct ch_error err;

    (void)state;
    assert_int_equal(ch_net_resolve_bind("loopback", out, sizeof(out), NULL), 0);
    assert_string_equal(out, "127.0.0.1");
    assert_int_equal(ch_net_resolve_bind("localhost", out, sizeof(out), NULL), 0);
    assert_string_equal(out, "127.0.0.1");
    assert_int_equal(ch_net_resolve_bind("lan", out, sizeof(out), NULL), 0);
    assert_string_equal(out, "0.0.0.0");
    assert_int_equal(ch_net_resolve_bind("192.168.0.10", out, sizeof(out), NULL), 0);
    assert_string_equal(out, "192.168.0.10");
    assert_int_equal(ch_net_resolve_bind("[::1]", out, sizeof(out), NULL), 0);
    assert_string_equal(out, "::1");
    assert_int_equal(ch_net_resolve_bind("tailnet", out, sizeof(out), &err), CH_EINVAL);
    assert_non_null(strstr(err.msg, "tailnet"));
    assert_int_equal(ch_net_resolve_bind("", out, sizeof(out), &err), CH_EINVAL);
    assert_int_equal(ch_net_resolve_bind(NULL, out, sizeof(out), &err), CH_EINVAL);
    assert_int_equal(ch_net_resolve_bind("example.com", out, sizeof(out), &err), CH_EINVAL);
    assert_int_equal(ch_net_resolve_bind("loopback", out, 4, &err), CH_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_list_match),
        cmocka_unit_test(test_loopback_and_format),
        cmocka_unit_test(test_resolve_bind),
    };
    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
