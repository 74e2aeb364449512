/*
 * test_http_request.c: the http_request tool (tools/http_tool.c) against
 * the in-loop server on 127.0.0.1.  Seed 000's callback (POST, Bearer
 * header, JSON body) arriving byte for byte; hosts outside allowHosts
 * refused with the setting named; no redirects followed; response headers
 * filtered; bodies capped and the download stopped; forbidden headers;
 * per-request and call timeouts aborting the transfer; abort.
 */
#include "net/curl_dl.h"
#include "tools_loop.h"

static void open_allowing(struct fx *fx, const char *host)
{
    const char *hosts[] = {host};
    struct ch_tools_opts o = {.http_allow_hosts = hosts, .http_allow_count = 1, .max_result_bytes = 16 * 1024};

    fx_open(fx, &o);
}

static void call_fmt(struct fx *fx, struct got *g, uint64_t timeout_ms, const char *fmt, ...)
{
    char in[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(in, sizeof(in), fmt, ap);
    va_end(ap);
    g->calls = 0;
    call_tool(fx, "http_request", in, timeout_ms, g);
}

static void test_seed_callback(void **state)
{
    static const char body[] = "{\"request_id\":\"r1\",\"symbol\":\"AAPL\",\"decision\":\"buy\","
                               "\"confidence\":62,\"reasons\":[\"a\",\"b\"]}";
    struct fx fx;
    struct got g = {0};
    char esc[512];

    (void)state;
    open_allowing(&fx, "127.0.0.1");
    /* The body as the model writes it: a JSON string holding JSON. */
    json_t *s = json_string(body);
    char *dumped = json_dumps(s, JSON_ENCODE_ANY);
    snprintf(esc, sizeof(esc), "%s", dumped);
    ch_free(dumped);
    json_decref(s);
    call_fmt(&fx, &g, 0,
             "{\"method\":\"POST\",\"url\":\"http://127.0.0.1:%d/callback\","
             "\"headers\":{\"Authorization\":\"Bearer cb-secret-123\",\"Content-Type\":"
             "\"application/json\",\"X-Trace\":\"t1\"},\"body\":%s}",
             fx.srv.port, esc);
    assert_false(g.is_error);
    assert_string_equal(fx.srv.method, "POST");
    assert_string_equal(fx.srv.url, "/callback");
    assert_int_equal(fx.srv.body_len, strlen(body));
    assert_memory_equal(fx.srv.body, body, strlen(body));
    assert_non_null(strstr(fx.srv.headers, "Authorization: Bearer cb-secret-123\n"));
    assert_non_null(strstr(fx.srv.headers, "Content-Type: application/json\n"));
    assert_non_null(strstr(fx.srv.headers, "X-Trace: t1\n"));
    assert_null(strcasestr(fx.srv.headers, "Expect:"));
    /* Status, the chosen headers (not Set-Cookie) and the body. */
    assert_true(!strncmp(g.content, "HTTP 200\n", 9));
    expect_has(&g, "content-type: application/json\n");
    expect_has(&g, "x-ratelimit-remaining: 41\n");
    assert_null(strstr(g.content, "secret"));
    expect_has(&g, "\n\n{\"status\":\"ok\",\"request_id\":\"r1\",\"analysis_result_id\":7}");
    assert_int_equal(json_integer_value(json_object_get(g.json, "status")), 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(g.json, "headers"), "content-type")),
                        "application/json");
    assert_false(json_is_true(json_object_get(g.json, "truncated")));

    /* A JSON object as the body is sent as JSON, with its content type. */
    call_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/callback\",\"body\":{\"a\":[1,2]}}", fx.srv.port);
    assert_false(g.is_error);
    assert_string_equal(fx.srv.method, "POST");
    assert_int_equal(fx.srv.body_len, 11);
    assert_memory_equal(fx.srv.body, "{\"a\":[1,2]}", 11);
    assert_non_null(strstr(fx.srv.headers, "Content-Type: application/json\n"));
    /* A plain string body without a type is labelled text. */
    call_fmt(&fx, &g, 0,
             "{\"method\":\"PUT\",\"url\":\"http://127.0.0.1:%d/callback\","
             "\"body\":\"hello\"}",
             fx.srv.port);
    assert_string_equal(fx.srv.method, "PUT");
    assert_non_null(strstr(fx.srv.headers, "Content-Type: text/plain; charset=utf-8\n"));
    /* GET by default; DELETE and HEAD. */
    call_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/page?x=1\"}", fx.srv.port);
    assert_string_equal(fx.srv.method, "GET");
    assert_string_equal(fx.srv.url, "/page?x=1");
    expect_has(&g, "<h1>Hello</h1>"); /* http_request returns the body as it is */
    call_fmt(&fx, &g, 0, "{\"method\":\"DELETE\",\"url\":\"http://127.0.0.1:%d/callback\"}", fx.srv.port);
    assert_string_equal(fx.srv.method, "DELETE");
    call_fmt(&fx, &g, 0, "{\"method\":\"HEAD\",\"url\":\"http://127.0.0.1:%d/callback\"}", fx.srv.port);
    assert_string_equal(fx.srv.method, "HEAD");
    assert_false(g.is_error);
    expect_has(&g, "HTTP 200\n");
    got_release(&g);
    fx_close(&fx);
}

static void test_refusals(void **state)
{
    const char *wild[] = {"*.example.test", "127.0.0.1:1"};
    struct ch_tools_opts o = {.http_allow_hosts = wild, .http_allow_count = 2};
    struct fx fx;
    struct got g = {0};
    char want[400];

    (void)state;
    open_allowing(&fx, "127.0.0.1");
    /* localhost is another name: not listed, not reached. */
    call_fmt(&fx, &g, 0, "{\"url\":\"http://localhost:%d/callback\"}", fx.srv.port);
    assert_true(g.is_error);
    snprintf(want, sizeof(want),
             "http_request refused: host \"localhost\" (port %d) is not in "
             "tools.http.allowHosts (allowed: 127.0.0.1). The operator can add the host to "
             "tools.http.allowHosts in the chela configuration.",
             fx.srv.port);
    assert_string_equal(g.content, want);
    call_fmt(&fx, &g, 0, "{\"url\":\"http://[::1]:%d/\"}", fx.srv.port);
    expect_has(&g, "host \"::1\"");
    call_fmt(&fx, &g, 0,
             "{\"url\":\"http://2130706433:%d/callback\",\"method\":\"GET\","
             "\"body\":\"x\"}",
             fx.srv.port); /* the same host, spelled as a number */
    assert_string_equal(g.content, "http_request: a GET request cannot have a body");
    call_fmt(&fx, &g, 0, "{\"url\":\"http://u:p@127.0.0.1:%d/\"}", fx.srv.port);
    expect_has(&g, "credentials in the URL are not allowed");
    call_fmt(&fx, &g, 0, "{\"url\":\"file:///etc/passwd\"}");
    expect_has(&g, "only http and https URLs are allowed");
    call_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/\",\"headers\":{\"Host\":\"admin\"}}", fx.srv.port);
    assert_string_equal(g.content, "http_request: header \"Host\" is set by chela and may not "
                                   "be given");
    call_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/\",\"headers\":{\"Bad Name\":\"x\"}}", fx.srv.port);
    expect_has(&g, "request header 0: bad name or value");
    call_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/\",\"headers\":{\"X\":\"a\\r\\nB: c\"}}", fx.srv.port);
    expect_has(&g, "bad name or value");
    assert_int_equal(fx.srv.requests, 0); /* none of these reached the server */
    got_release(&g);
    fx_close(&fx);

    /* "*.domain" is for subdomains; a port in the pattern pins it. */
    fx_open(&fx, &o);
    call_fmt(&fx, &g, 0, "{\"url\":\"https://example.test/\"}");
    assert_string_equal(g.content, "http_request refused: host \"example.test\" (port 443) is not "
                                   "in tools.http.allowHosts (allowed: *.example.test, "
                                   "127.0.0.1:1). The operator can add the host to "
                                   "tools.http.allowHosts in the chela configuration.");
    call_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/\"}", fx.srv.port);
    expect_has(&g, "(port ");
    assert_true(g.is_error);
    /* The allowed port: it passes the allowlist and meets a closed port. */
    call_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:1/\"}");
    expect_has(&g, "http_request to http://127.0.0.1:1/ failed: ");
    assert_int_equal(fx.srv.requests, 0);
    got_release(&g);
    fx_close(&fx);
}

static void test_responses(void **state)
{
    struct fx fx;
    struct got g = {0};

    (void)state;
    open_allowing(&fx, "127.0.0.1");
    /* Redirects come back as they are. */
    call_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/redir-rel\"}", fx.srv.port);
    assert_false(g.is_error);
    assert_string_equal(g.content, "HTTP 302\nlocation: /page\ncontent-length: 3\n\nbye");
    assert_int_equal(fx.srv.requests, 1);
    call_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/404\"}", fx.srv.port);
    assert_false(g.is_error); /* the exchange worked; the status says the rest */
    assert_true(!strncmp(g.content, "HTTP 404\n", 9));
    call_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/png\"}", fx.srv.port);
    expect_has(&g, "[binary body of type image/png not shown: 10 bytes]");
    assert_string_equal(json_string_value(json_object_get(g.json, "body")), "");
    call_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/latin1\"}", fx.srv.port);
    expect_has(&g, "<p>caf\xc3\xa9</p>");
    /* A body past the cap: the first part, a marker, the download stopped. */
    call_fmt(&fx, &g, 0, "{\"url\":\"http://127.0.0.1:%d/big\"}", fx.srv.port);
    assert_false(g.is_error);
    expect_has(&g, "\n[body truncated: the first 12288 bytes shown; content-length above]");
    expect_has(&g, "content-length: 200000\n");
    assert_true(g.content_len < 16 * 1024 + 200);
    assert_true(json_is_true(json_object_get(g.json, "truncated")));
    got_release(&g);
    fx_close(&fx);
}

static int aborted_calls;

static void on_count(struct ch_tool_call *call, const struct ch_tool_result *res, void *data)
{
    on_got(call, res, data);
    aborted_calls++;
}

static void test_timeouts_and_abort(void **state)
{
    struct ch_curlm_stats st;
    struct ch_tool_call *call;
    struct fx fx;
    struct got g = {0};
    json_t *in;
    char url[200];

    (void)state;
    open_allowing(&fx, "127.0.0.1");
    /* The call's deadline aborts the transfer: the server sees the close. */
    call_fmt(&fx, &g, 300, "{\"url\":\"http://127.0.0.1:%d/hang\"}", fx.srv.port);
    assert_true(g.is_error);
    assert_true(g.timed_out);
    assert_false(g.refused); /* a failure, not the caller's error */
    assert_string_equal(g.content, "tool http_request timed out after 300 ms and was stopped "
                                   "(limit: TOOL_TIMEOUT / tools.timeoutSeconds)");
    ch_curlm_stats_get(fx.m, &st);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.canceled, 1);
    run_until(&fx, &fx.srv.closed, 1);

    /* The model's own shorter timeout_ms: curl's deadline. */
    call_fmt(&fx, &g, 5000, "{\"url\":\"http://127.0.0.1:%d/hang\",\"timeout_ms\":200}", fx.srv.port);
    assert_true(g.is_error);
    assert_false(g.timed_out);
    assert_false(g.refused);
    expect_has(&g, "timed out (");
    run_until(&fx, &fx.srv.closed, 2);

    /* Abort while the server holds the request. */
    snprintf(url, sizeof(url), "{\"url\":\"http://127.0.0.1:%d/hang\"}", fx.srv.port);
    in = json_loads(url, 0, NULL);
    g.calls = 0;
    assert_int_equal(ch_tool_call_start(fx.t, "http_request", in, 0, on_count, &g, &call), 0);
    json_decref(in);
    run_until(&fx, &fx.srv.requests, 3);
    g.in_start = true;
    ch_tool_call_abort(call);
    g.in_start = false;
    run_until(&fx, &g.calls, 1);
    assert_true(g.aborted);
    assert_string_equal(g.content, "tool http_request was aborted before it finished");
    run_until(&fx, &fx.srv.closed, 3);
    assert_int_equal(aborted_calls, 1);
    got_release(&g);
    fx_close(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_callback),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_timeouts_and_abort),
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
