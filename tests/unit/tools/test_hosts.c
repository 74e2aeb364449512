/*
 * test_hosts.c: who the tools may reach (tools/hosts.c), without I/O.
 * The address classification web_fetch relies on (every special-purpose
 * range, IPv4 forms embedded in IPv6), allowHosts patterns (exact,
 * "*.domain", ports, IPv6, malformed entries), and URLs as libcurl parses
 * them (numeric IPv4 forms normalised, credentials, zones, schemes,
 * relative redirects).
 */
#include <arpa/inet.h>

#include "net/curl_dl.h"
#include "tools_test.h"

/* NULL want: a public address. Otherwise the reason's first word(s). */
static void expect_reason(const char *addr, const char *want)
{
    uint8_t b[16];
    int fam = inet_pton(AF_INET, addr, b) == 1 ? AF_INET : AF_INET6;
    const char *got;

    if (fam == AF_INET6 && inet_pton(AF_INET6, addr, b) != 1)
        fail_msg("bad test address %s", addr);
    got = addr_block_reason(fam, b);
    if (!want && got)
        fail_msg("%s: blocked as %s, want public", addr, got);
    if (want && (!got || strncmp(got, want, strlen(want))))
        fail_msg("%s: got %s, want %s", addr, got ? got : "public", want);
}

static void test_addresses(void **state)
{
    static const char *const cases[][2] = {
        {"8.8.8.8", NULL},
        {"1.1.1.1", NULL},
        {"93.184.216.34", NULL},
        {"127.0.0.1", "loopback"},
        {"127.255.255.254", "loopback"},
        {"10.0.0.1", "private"},
        {"10.255.255.255", "private"},
        {"172.16.0.1", "private"},
        {"172.31.255.255", "private"},
        {"172.32.0.1", NULL},
        {"172.15.255.255", NULL},
        {"192.168.1.1", "private"},
        {"192.169.0.1", NULL},
        {"169.254.169.254", "link-local"},
        {"169.254.0.1", "link-local"},
        {"100.64.0.1", "CGNAT"},
        {"100.127.255.255", "CGNAT"},
        {"100.128.0.1", NULL},
        {"100.63.255.255", NULL},
        {"0.0.0.0", "unspecified"},
        {"0.1.2.3", "unspecified"},
        {"224.0.0.1", "multicast"},
        {"239.255.255.250", "multicast"},
        {"240.0.0.1", "reserved"},
        {"255.255.255.255", "reserved"},
        {"192.0.0.8", "reserved"},
        {"192.0.2.1", "documentation"},
        {"198.51.100.7", "documentation"},
        {"203.0.113.9", "documentation"},
        {"198.18.0.1", "reserved"},
        {"198.19.255.255", "reserved"},
        {"198.20.0.1", NULL},
        {"192.88.99.1", "reserved"},
        {"::1", "loopback"},
        {"::", "unspecified"},
        {"::ffff:127.0.0.1", "loopback"},
        {"::ffff:10.0.0.1", "private"},
        {"::ffff:169.254.169.254", "link-local"},
        {"::ffff:8.8.8.8", NULL},
        {"::127.0.0.1", "reserved"},
        {"::8.8.8.8", "reserved"},
        {"fc00::1", "private"},
        {"fd12:3456::1", "private"},
        {"fe80::1", "link-local"},
        {"febf::1", "link-local"},
        {"fec0::1", "reserved"},
        {"ff02::1", "multicast"},
        {"ff0e::1", "multicast"},
        {"2001:db8::1", "documentation"},
        {"3fff::1", "documentation"},
        {"2001::1", "reserved"},
        {"2001:1ff::1", "reserved"},
        {"2001:200::1", NULL},
        {"64:ff9b::a9fe:a9fe", "link-local"},
        {"64:ff9b::7f00:1", "loopback"},
        {"64:ff9b::808:808", NULL},
        {"64:ff9b:1::1", "reserved"},
        {"100::1", "reserved"},
        {"2002:7f00:1::", "loopback"},
        {"2002:a00:1::1", "private"},
        {"2002:808:808::1", NULL},
        {"2606:4700:4700::1111", NULL},
        {"2a00:1450:4001::200e", NULL},
    };
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    struct sockaddr sx = {.sa_family = AF_UNIX};

    (void)state;
    for (size_t i = 0; i < CH_ARRAY_SIZE(cases); i++)
        expect_reason(cases[i][0], cases[i][1]);
    inet_pton(AF_INET6, "::ffff:192.168.0.1", &s6.sin6_addr);
    assert_string_equal(sockaddr_block_reason((struct sockaddr *)&s6), "private");
    inet_pton(AF_INET, "127.0.0.2", &s4.sin_addr);
    assert_string_equal(sockaddr_block_reason((struct sockaddr *)&s4), "loopback");
    assert_non_null(sockaddr_block_reason(&sx));
    assert_non_null(addr_block_reason(AF_UNIX, (const uint8_t *)"x"));
}

static void test_patterns(void **state)
{
    const char *good[] = {"Example.COM", "*.example.org", "localhost:8000",  "[::1]:8080",     "::1",
                          "127.0.0.1",   "api.test.",     "0:0:0:0:0:0:0:2", "*.Wild.Test:443"};
    struct host_list l;
    struct ch_error err = {0};

    (void)state;
    assert_int_equal(host_list_init(&l, good, CH_ARRAY_SIZE(good), "tools.http.allowHosts", &err), 0);
    assert_int_equal(l.n, CH_ARRAY_SIZE(good));
    /* Exact hosts, any port, case-insensitive. */
    assert_true(host_list_match(&l, "example.com", 80));
    assert_true(host_list_match(&l, "EXAMPLE.com", 8443));
    assert_false(host_list_match(&l, "www.example.com", 80));
    assert_false(host_list_match(&l, "example.com.evil.net", 80));
    /* "*.domain": any depth of subdomain, never the apex or a look-alike. */
    assert_true(host_list_match(&l, "a.example.org", 443));
    assert_true(host_list_match(&l, "a.b.example.org", 443));
    assert_false(host_list_match(&l, "example.org", 443));
    assert_false(host_list_match(&l, "badexample.org", 443));
    assert_false(host_list_match(&l, ".example.org", 443));
    assert_true(host_list_match(&l, "x.wild.test", 443));
    assert_false(host_list_match(&l, "x.wild.test", 80));
    /* A port in the pattern pins the port. */
    assert_true(host_list_match(&l, "localhost", 8000));
    assert_false(host_list_match(&l, "localhost", 8001));
    assert_true(host_list_match(&l, "::1", 8080));
    assert_true(host_list_match(&l, "::1", 9)); /* "::1" alone allows any port */
    assert_true(host_list_match(&l, "::2", 1)); /* written long-hand, matched canonically */
    assert_true(host_list_match(&l, "127.0.0.1", 18000));
    assert_false(host_list_match(&l, "127.0.0.2", 18000));
    assert_true(host_list_match(&l, "api.test", 80)); /* trailing dot dropped */
    host_list_release(&l);

    /* Nothing listed: nothing matches. */
    assert_int_equal(host_list_init(&l, NULL, 0, "x", &err), 0);
    assert_false(host_list_match(&l, "localhost", 80));
    host_list_release(&l);
}

static void expect_bad_pattern(const char *p, const char *want)
{
    struct host_list l;
    struct ch_error err = {0};
    const char *v[] = {"ok.test", p};

    assert_int_equal(host_list_init(&l, v, 2, "tools.web.fetch.allowHosts", &err), CH_EINVAL);
    if (!strstr(err.msg, want))
        fail_msg("pattern \"%s\": message \"%s\" lacks \"%s\"", p ? p : "(null)", err.msg, want);
    assert_null(l.v);
    assert_int_equal(l.n, 0);
}

static void test_bad_patterns(void **state)
{
    const char *many[CH_TOOLS_MAX_ALLOW_HOSTS + 1];
    struct host_list l;
    struct ch_error err = {0};

    (void)state;
    expect_bad_pattern("", "tools.web.fetch.allowHosts[1]: empty");
    expect_bad_pattern(NULL, "[1]: empty");
    expect_bad_pattern("*", "would allow every host");
    expect_bad_pattern("*.", "is not a host");
    expect_bad_pattern("a b.com", "is not a host");
    expect_bad_pattern("ex*mple.com", "is not a host");
    expect_bad_pattern("*.*.com", "is not a host");
    expect_bad_pattern("[::1", "lacks the closing ]");
    expect_bad_pattern("[::1]x", "junk after ]");
    expect_bad_pattern("host:0", "bad port");
    expect_bad_pattern("host:65536", "bad port");
    expect_bad_pattern("host:", "bad port");
    expect_bad_pattern("host:8o", "bad port");
    expect_bad_pattern("http://host/", "the host, not a URL");
    for (size_t i = 0; i < CH_ARRAY_SIZE(many); i++)
        many[i] = "h.test";
    assert_int_equal(host_list_init(&l, many, CH_ARRAY_SIZE(many), "x", &err), CH_EINVAL);
    assert_non_null(strstr(err.msg, "more than 256"));
}

/* Parse and compare host, port, url; or the error text. */
static void expect_url(const char *base, const char *in, const char *host, int port, const char *url,
                       const char *err_part)
{
    struct tool_url u;
    char msg[400] = "";
    int rc = tool_url_parse(base, in, &u, msg, sizeof(msg));

    if (err_part) {
        if (rc != CH_EINVAL || !strstr(msg, err_part))
            fail_msg("%s: rc %d msg \"%s\", want error containing \"%s\"", in, rc, msg, err_part);
        return;
    }
    if (rc)
        fail_msg("%s: refused: %s", in, msg);
    assert_string_equal(u.host, host);
    assert_int_equal(u.port, port);
    assert_string_equal(u.url, url);
    tool_url_release(&u);
}

static void test_urls(void **state)
{
    struct tool_url u;
    char msg[100], *huge;

    (void)state;
    /* The numeric forms curl accepts for IPv4 all become 127.0.0.1. */
    expect_url(NULL, "http://2130706433/", "127.0.0.1", 80, "http://127.0.0.1/", NULL);
    expect_url(NULL, "http://0x7f.1/", "127.0.0.1", 80, "http://127.0.0.1/", NULL);
    expect_url(NULL, "http://017700000001/", "127.0.0.1", 80, "http://127.0.0.1/", NULL);
    expect_url(NULL, "http://%31%32%37.0.0.1/", "127.0.0.1", 80, "http://127.0.0.1/", NULL);
    expect_url(NULL, "http://0/", "0.0.0.0", 80, "http://0.0.0.0/", NULL);
    expect_url(NULL, "HTTP://Example.COM./a?b=1#frag", "example.com", 80, "http://example.com/a?b=1", NULL);
    expect_url(NULL, "https://a.test", "a.test", 443, "https://a.test/", NULL);
    expect_url(NULL, "http://[::1]:8080/x", "::1", 8080, "http://[::1]:8080/x", NULL);
    expect_url(NULL, "http://[::ffff:7f00:1]/", "::ffff:127.0.0.1", 80, "http://[::ffff:127.0.0.1]/", NULL);
    expect_url(NULL, "http://[0:0:0:0:0:0:0:1]/", "::1", 80, "http://[::1]/", NULL);
    expect_url(NULL, "ftp://x/", NULL, 0, NULL, "only http and https");
    expect_url(NULL, "file:///etc/passwd", NULL, 0, NULL, "only http and https");
    expect_url(NULL, "gopher://x/", NULL, 0, NULL, "");
    expect_url(NULL, "example.com/x", NULL, 0, NULL, "not a valid absolute http(s) URL");
    expect_url(NULL, "http://user:pw@x.test/", NULL, 0, NULL, "credentials in the URL");
    expect_url(NULL, "http://a.test\\@b.test/", NULL, 0, NULL, "credentials in the URL");
    expect_url(NULL, "http://[fe80::1%25eth0]/", NULL, 0, NULL, "zone");
    expect_url(NULL,
               "http://b\xc3\xbc"
               "cher.de/",
               NULL, 0, NULL, "punycode");
    expect_url(NULL, "http://a b/", NULL, 0, NULL, "not a valid");
    expect_url(NULL, "", NULL, 0, NULL, "empty");
    /* Redirect targets resolve against the current URL. */
    expect_url("http://a.test/b/c?q", "../x", "a.test", 80, "http://a.test/x", NULL);
    expect_url("http://a.test:8080/b/c", "/abs", "a.test", 8080, "http://a.test:8080/abs", NULL);
    expect_url("http://a.test/b/c", "//other.test/y", "other.test", 80, "http://other.test/y", NULL);
    expect_url("https://a.test/b", "http://10.0.0.1/", "10.0.0.1", 80, "http://10.0.0.1/", NULL);
    expect_url("http://a.test/b", "ftp://a.test/", NULL, 0, NULL, "only http and https");
    expect_url("http://a.test/b", "javascript:alert(1)", NULL, 0, NULL, "");

    assert_int_equal(tool_url_parse(NULL, "http://10.1.2.3/", &u, msg, sizeof(msg)), 0);
    assert_int_equal(u.ip_family, AF_INET);
    assert_memory_equal(u.ip, "\x0a\x01\x02\x03", 4);
    tool_url_release(&u);
    assert_int_equal(tool_url_parse(NULL, "http://[fd00::5]/", &u, msg, sizeof(msg)), 0);
    assert_int_equal(u.ip_family, AF_INET6);
    assert_int_equal(u.ip[0], 0xfd);
    tool_url_release(&u);
    assert_int_equal(tool_url_parse(NULL, "http://name.test/", &u, msg, sizeof(msg)), 0);
    assert_int_equal(u.ip_family, 0);
    tool_url_release(&u);

    huge = malloc(9000);
    memcpy(huge, "http://a.test/", 14);
    memset(huge + 14, 'a', 9000 - 15);
    huge[8999] = '\0';
    assert_int_equal(tool_url_parse(NULL, huge, &u, msg, sizeof(msg)), CH_EINVAL);
    assert_non_null(strstr(msg, "longer than"));
    free(huge);
    assert_int_equal(tool_url_parse(NULL, NULL, &u, msg, sizeof(msg)), CH_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_bad_patterns),
        cmocka_unit_test(test_urls),
    };
    size_t blocks;
    int rc;

    ch_alloc_install();
    /* The URL parser is libcurl's, loaded at first use: load it before
     * the baseline, since its global state stays until exit. */
    if (ch_curl_load(NULL) != 0)
        return 1;
    blocks = ch_alloc_live_blocks();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (ch_alloc_live_blocks() != blocks) {
        fprintf(stderr, "leak: %zu blocks\n", ch_alloc_live_blocks() - blocks);
        return 1;
    }
    return rc;
}
