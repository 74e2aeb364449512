/*
 * test_web_fetch.c: the web_fetch tool (tools/fetch.c) on a real loop.
 * SSRF refusals (loopback, private, link-local, [::1], a name resolving
 * to loopback, numeric spellings), redirects from an allowlisted local
 * server to private and metadata addresses refused with the redirect
 * named, redirects re-checked and capped, pinning (a name that exists in
 * no DNS reaches the checked address), readable text from HTML with
 * maxChars, text and binary types, caps, timeouts and abort.
 */
#include <arpa/inet.h>

#include "net/curl_dl.h"
#include "tools_loop.h"

static void fetch_fmt(struct fx *fx, struct got *g, uint64_t timeout_ms, const char *fmt, ...)
{
    char in[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(in, sizeof(in), fmt, ap);
    va_end(ap);
    g->calls = 0;
    call_tool(fx, "web_fetch", in, timeout_ms, g);
}

static void open_fetch(struct fx *fx, const char *allow)
{
    const char *hosts[] = {allow};
    struct ch_tools_opts o = {.fetch_allow_hosts = hosts, .fetch_allow_count = allow ? 1 : 0};

    fx_open(fx, &o);
}

static void test_ssrf_refusals(void **state)
{
    struct fx fx;
    struct got g = {0};

    (void)state;
    open_fetch(&fx, NULL);
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/page\"}", fx.srv.port);
    assert_true(g.is_error);
    assert_true(g.refused); /* a policy refusal: the caller's error */
    {
        char want[300];
        snprintf(want, sizeof(want),
                 "web_fetch refused http://127.0.0.1:%d/page: 127.0.0.1 is a "
                 "loopback address. web_fetch only reaches public addresses; an operator can "
                 "allow a host in tools.web.fetch.allowHosts.",
                 fx.srv.port);
        assert_string_equal(g.content, want);
    }
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://10.0.0.1/\"}");
    expect_has(&g, "10.0.0.1 is a private address");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://169.254.169.254/latest/meta-data/\"}");
    expect_has(&g, "169.254.169.254 is a link-local address");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://[::1]:%d/page\"}", fx.srv.port);
    expect_has(&g, "::1 is a loopback address");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://[::ffff:169.254.169.254]/\"}");
    expect_has(&g, "link-local");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://2130706433:%d/page\"}", fx.srv.port);
    expect_has(&g, "127.0.0.1 is a loopback address");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://0/\"}");
    expect_has(&g, "0.0.0.0 is an unspecified (0.0.0.0/8) address");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://100.64.1.1/\"}");
    expect_has(&g, "CGNAT");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://224.0.0.1/\"}");
    expect_has(&g, "multicast");
    /* A name: resolved here (uv_getaddrinfo), every address checked. */
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://localhost:%d/page\"}", fx.srv.port);
    assert_true(g.is_error);
    expect_has(&g, "host localhost resolves to ");
    expect_has(&g, "a loopback address");
    expect_has(&g, "tools.web.fetch.allowHosts");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"ftp://example.com/\"}");
    expect_has(&g, "only http and https");
    assert_int_equal(fx.srv.requests, 0);
    got_release(&g);
    fx_close(&fx);
}

static void test_redirects(void **state)
{
    struct fx fx;
    struct got g = {0};
    char want[300];

    (void)state;
    /* The allowlist admits the first hop on 127.0.0.1 only. */
    open_fetch(&fx, "127.0.0.1");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/redir-private\"}", fx.srv.port);
    assert_true(g.is_error);
    snprintf(want, sizeof(want),
             "web_fetch refused http://10.0.0.1/ (redirect 1, from "
             "http://127.0.0.1:%d/redir-private): 10.0.0.1 is a private address.",
             fx.srv.port);
    expect_has(&g, want);
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/redir-meta\"}", fx.srv.port);
    expect_has(&g, "web_fetch refused http://169.254.169.254/latest/meta-data/ (redirect 1");
    expect_has(&g, "link-local");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/redir-ftp\"}", fx.srv.port);
    expect_has(&g, "web_fetch refused redirect to ftp://files.example/x (redirect 1");
    expect_has(&g, "only http and https");
    /* Relative Location on the allowed host: followed. */
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/redir-rel\"}", fx.srv.port);
    assert_false(g.is_error);
    expect_has(&g, "Redirected from: http://127.0.0.1:");
    expect_has(&g, "Test & Page\n\n# Hello");
    assert_int_equal(json_integer_value(json_object_get(g.json, "redirects")), 1);
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/redir-loop\"}", fx.srv.port);
    assert_true(g.is_error);
    expect_has(&g, "too many redirects (more than 5)");
    assert_int_equal(fx.srv.requests, 3 + 1 + 1 + 6); /* 6 hops of the loop */
    got_release(&g);
    fx_close(&fx);
}

static void test_pages(void **state)
{
    struct fx fx;
    struct got g = {0};
    char want[300];

    (void)state;
    open_fetch(&fx, "127.0.0.1");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/page\"}", fx.srv.port);
    assert_false(g.is_error);
    snprintf(want, sizeof(want),
             "URL: http://127.0.0.1:%d/page\n\nTest & Page\n\n# Hello\n\n"
             "First linked paragraph.",
             fx.srv.port);
    assert_string_equal(g.content, want);
    assert_string_equal(fx.srv.method, "GET");
    assert_non_null(strstr(fx.srv.headers, "Accept: text/html"));
    assert_string_equal(json_string_value(json_object_get(g.json, "title")), "Test & Page");
    assert_string_equal(json_string_value(json_object_get(g.json, "contentType")), "text/html");
    assert_int_equal(json_integer_value(json_object_get(g.json, "status")), 200);
    /* maxChars: cut with a marker; below 100 it is raised to 100. */
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/bigpage\",\"maxChars\":500}", fx.srv.port);
    assert_false(g.is_error);
    expect_has(&g, "\n\n[truncated: 500 of ");
    assert_true(json_is_true(json_object_get(g.json, "truncated")));
    assert_true(json_integer_value(json_object_get(g.json, "chars")) > 50000);
    assert_true(g.content_len < 700);
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/bigpage\",\"maxChars\":5}", fx.srv.port);
    expect_has(&g, "[truncated: 100 of ");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/bigpage\",\"maxChars\":1000000}", fx.srv.port);
    assert_false(json_is_true(json_object_get(g.json, "truncated"))); /* under 100000 */
    /* Text as it is; charsets converted; binary refused; errors say so. */
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/text\"}", fx.srv.port);
    expect_has(&g, "\n\nplain  text\n<b>not html</b>\n");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/latin1\"}", fx.srv.port);
    expect_has(&g, "\n\ncaf\xc3\xa9");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/png\"}", fx.srv.port);
    assert_true(g.is_error);
    expect_has(&g, "is image/png, not text");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/nosniff-bin\"}", fx.srv.port);
    expect_has(&g, "is binary data, not text");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/404\"}", fx.srv.port);
    assert_true(g.is_error);
    expect_has(&g, "web_fetch: HTTP 404 from http://127.0.0.1:");
    expect_has(&g, "Not here");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/huge\"}", fx.srv.port);
    expect_has(&g, "is larger than 5 MB");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:1/\"}");
    expect_has(&g, "web_fetch: http://127.0.0.1:1/ failed: ");
    got_release(&g);
    fx_close(&fx);
}

/* fetch_image: the bytes as base64 with their type (sent or sniffed), the
 * same SSRF checks, its own caps and host allowlist. */
static void test_fetch_image(void **state)
{
    struct fx fx;
    struct got g = {0};
    char in[512];

    (void)state;
    open_fetch(&fx, "127.0.0.1");
    snprintf(in, sizeof(in), "{\"url\":\"http://127.0.0.1:%d/png\"}", fx.srv.port);
    g.calls = 0;
    call_tool_as(&fx, "fetch_image", in, 0, &g, true);
    assert_false(g.is_error);
    assert_string_equal(json_string_value(json_object_get(g.json, "mediaType")), "image/png");
    assert_string_equal(json_string_value(json_object_get(g.json, "data")), "iVBORw0KGgoAAA==");
    assert_int_equal(json_integer_value(json_object_get(g.json, "bytes")), 10);
    assert_non_null(strstr(fx.srv.headers, "Accept: image/*"));
    /* no Content-Type: not an image by its bytes either */
    snprintf(in, sizeof(in), "{\"url\":\"http://127.0.0.1:%d/nosniff-bin\"}", fx.srv.port);
    g.calls = 0;
    call_tool_as(&fx, "fetch_image", in, 0, &g, true);
    assert_false(g.is_error);
    assert_string_equal(json_string_value(json_object_get(g.json, "mediaType")), "application/octet-stream");
    snprintf(in, sizeof(in), "{\"url\":\"http://127.0.0.1:%d/404\"}", fx.srv.port);
    g.calls = 0;
    call_tool_as(&fx, "fetch_image", in, 0, &g, true);
    assert_true(g.is_error);
    expect_has(&g, "image URL: HTTP 404 from");
    snprintf(in, sizeof(in), "{\"url\":\"http://127.0.0.1:%d/big\",\"maxBytes\":1000}", fx.srv.port);
    g.calls = 0;
    call_tool_as(&fx, "fetch_image", in, 0, &g, true);
    expect_has(&g, "is larger than 1000 bytes");
    snprintf(in, sizeof(in), "{\"url\":\"http://127.0.0.1:%d/png\",\"allowHosts\":[\"cdn.example.com\"]}", fx.srv.port);
    g.calls = 0;
    call_tool_as(&fx, "fetch_image", in, 0, &g, true);
    assert_true(g.is_error);
    expect_has(&g, "not in the URL allowlist");
    snprintf(in, sizeof(in), "{\"url\":\"http://127.0.0.1:%d/redir-private\",\"allowHosts\":[\"127.0.0.1\"]}",
             fx.srv.port);
    g.calls = 0;
    call_tool_as(&fx, "fetch_image", in, 0, &g, true);
    assert_true(g.is_error); /* 10.0.0.1 is neither allowlisted nor public */
    assert_null(json_object_get(g.json, "data"));
    /* the gateway's own tool: to a model or a client it does not exist */
    snprintf(in, sizeof(in), "{\"url\":\"http://127.0.0.1:%d/png\"}", fx.srv.port);
    got_release(&g);
    memset(&g, 0, sizeof(g));
    call_tool(&fx, "fetch_image", in, 0, &g);
    assert_true(g.is_error);
    assert_true(g.refused);
    expect_has(&g, "unknown tool \"fetch_image\"; available tools: current_time, web_fetch");
    assert_null(strstr(g.content, "fetch_image,"));
    assert_false(ch_tools_has(fx.t, "fetch_image"));
    got_release(&g);
    fx_close(&fx);
    /* without the operator's allowHosts, loopback is refused as for web_fetch */
    open_fetch(&fx, NULL);
    snprintf(in, sizeof(in), "{\"url\":\"http://127.0.0.1:%d/png\"}", fx.srv.port);
    g.calls = 0;
    call_tool_as(&fx, "fetch_image", in, 0, &g, true);
    assert_true(g.is_error);
    expect_has(&g, "loopback");
    got_release(&g);
    fx_close(&fx);
}

/* Test resolver: names in *.test resolve to what the test set. */
static const char *fake_addrs[4];

static int fake_resolve(const char *host, struct sockaddr_storage *out, size_t cap)
{
    size_t n = 0;

    if (strcmp(host, "pinned.test"))
        return UV_EAI_NONAME;
    for (; n < cap && n < 4 && fake_addrs[n]; n++) {
        memset(&out[n], 0, sizeof(out[n]));
        if (strchr(fake_addrs[n], ':')) {
            out[n].ss_family = AF_INET6;
            inet_pton(AF_INET6, fake_addrs[n], &((struct sockaddr_in6 *)&out[n])->sin6_addr);
        } else {
            out[n].ss_family = AF_INET;
            inet_pton(AF_INET, fake_addrs[n], &((struct sockaddr_in *)&out[n])->sin_addr);
        }
    }
    return (int)n;
}

static void test_pinning(void **state)
{
    struct fx fx;
    struct got g = {0};

    (void)state;
    open_fetch(&fx, "127.0.0.1");
    fx.t->test_resolve = fake_resolve;
    /* Let loopback pass the check here, so the in-test server can play a
     * public host.  "pinned.test" exists in no DNS: the transfer can only
     * reach the server through the pin to the checked address. */
    fx.t->test_loopback_is_public = true;
    fake_addrs[0] = "127.0.0.1";
    fake_addrs[1] = NULL;
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://PINNED.test.:%d/page\"}", fx.srv.port);
    assert_false(g.is_error);
    expect_has(&g, "# Hello");
    {
        char host[64];
        snprintf(host, sizeof(host), "Host: pinned.test:%d\n", fx.srv.port);
        assert_non_null(strstr(fx.srv.headers, host));
    }
    /* The same through a redirect from the allowlisted host. */
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/redir-name\"}", fx.srv.port);
    assert_false(g.is_error);
    expect_has(&g, "Redirected from: ");
    /* One bad address among good ones refuses the host. */
    fake_addrs[0] = "127.0.0.1";
    fake_addrs[1] = "10.1.1.1";
    fake_addrs[2] = NULL;
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://pinned.test:%d/page\"}", fx.srv.port);
    assert_true(g.is_error);
    expect_has(&g, "host pinned.test resolves to 10.1.1.1, a private address");
    fake_addrs[0] = "fe80::1";
    fake_addrs[1] = NULL;
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/redir-name\"}", fx.srv.port);
    expect_has(&g, "(redirect 1, from http://127.0.0.1:");
    expect_has(&g, "resolves to fe80::1, a link-local address");
    fake_addrs[0] = NULL;
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://other.test/\"}");
    expect_has(&g, "cannot resolve host other.test");
    fetch_fmt(&fx, &g, 0, "{\"url\":\"http://pinned.test/\"}");
    expect_has(&g, "pinned.test has no address");
    got_release(&g);
    fx_close(&fx);
}

static void test_timeout_and_abort(void **state)
{
    struct ch_tool_call *call;
    struct fx fx;
    struct got g = {0};
    char in[128];
    json_t *j;

    (void)state;
    open_fetch(&fx, "127.0.0.1");
    fetch_fmt(&fx, &g, 300, "{\"url\":\"http://127.0.0.1:%d/hang\"}", fx.srv.port);
    assert_true(g.timed_out);
    expect_has(&g, "tool web_fetch timed out after 300 ms");
    run_until(&fx, &fx.srv.closed, 1);
    /* Abort during the DNS lookup (localhost, a real uv_getaddrinfo). */
    fx.t->fetch_allow.n = 0; /* localhost must go through the resolver */
    snprintf(in, sizeof(in), "{\"url\":\"http://localhost:%d/hang\"}", fx.srv.port);
    j = json_loads(in, 0, NULL);
    g.calls = 0;
    assert_int_equal(ch_tool_call_start(fx.t, "web_fetch", j, 0, on_got, &g, &call), 0);
    json_decref(j);
    ch_tool_call_abort(call);
    run_until(&fx, &g.calls, 1);
    assert_true(g.aborted);
    fx.t->fetch_allow.n = 1;
    got_release(&g);
    fx_close(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ssrf_refusals),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_pages),
        cmocka_unit_test(test_pinning),
        cmocka_unit_test(test_timeout_and_abort),
        cmocka_unit_test(test_fetch_image),
    };
    int rc;

    ch_alloc_install();
    if (ch_curlm_global_init() != 0)
        return 1;
    /* libcurl is loaded at first use; load it here so its global state
     * (curl's and OpenSSL's, on our allocator) predates every test's
     * memory baseline. */
    if (ch_curl_load(NULL) != 0)
        return 1;
    warm_thread_pool();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    ch_curlm_global_cleanup();
    return rc;
}
