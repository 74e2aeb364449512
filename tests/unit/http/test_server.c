/* Unit tests for the HTTP server on a real loop with a real client
 * (server_harness.h): GET, keep-alive, HTTP/1.0, pipelining in order
 * (also past the per-read cap and behind an async handler), chunked
 * bodies, 100-continue, HEAD, on_head refusals, JSON and headers,
 * request ids, graceful shutdown and EADDRINUSE.  Every test ends with
 * uv_loop_close()==0 and no heap left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <poll.h>
#include <cmocka.h>

#include "test_handlers.h"

/* ------------------------------------------------------------------ */

static void client_get(struct hx *h)
{
    struct hx_resp r;
    char v[128];

    HX_REQUIRE(h, hx_once(h, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 200, "GET failed");
    HX_CHECK(h, strcmp(r.body, "{\"ok\":true}") == 0, "body %s", r.body);
    HX_CHECK(h, hx_header(&r, "content-length", v, sizeof(v)) && strcmp(v, "11") == 0, "CL");
    HX_CHECK(h, hx_header(&r, "connection", v, sizeof(v)) && strcmp(v, "keep-alive") == 0, "conn %s", v);
    HX_CHECK(h, hx_header(&r, "date", v, sizeof(v)) && strlen(v) == 29, "date %s", v);
    HX_CHECK(h, hx_header(&r, "x-request-id", v, sizeof(v)) && strlen(v) > 9, "rid");
    HX_CHECK(h, hx_header(&r, "content-type", v, sizeof(v)) && strcmp(v, "application/json") == 0, "ct");
    hx_resp_free(&r);
}

static void test_get(void **state)
{
    struct hx h;

    hx_init(&h, on_request, on_head);
    hx_run(&h, client_get);
    assert_int_equal(h.stats.requests_total, 1);
    assert_int_equal(h.stats.conns_total, 1);
    assert_int_equal(h.done_count, 1);
    assert_true(h.stats.bytes_in > 0 && h.stats.bytes_out > 0);
}

static void client_keepalive(struct hx *h)
{
    struct hx_conn *c = hx_open(h);
    struct hx_resp r;
    char v[64];

    HX_REQUIRE(h, c, "connect");
    for (int i = 0; i < 3; i++) {
        HX_REQUIRE(h, hx_send_str(c, "GET /health HTTP/1.1\r\n\r\n"), "send");
        HX_REQUIRE(h, hx_read(c, &r, false) == 0 && r.status == 200, "response %d", i);
        hx_resp_free(&r);
    }
    hx_close(c);
    /* HTTP/1.0: closed unless asked, kept when asked. */
    c = hx_open(h);
    HX_REQUIRE(h, c && hx_send_str(c, "GET /health HTTP/1.0\r\n\r\n"), "send 1.0");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0 && r.status == 200, "1.0 response");
    HX_CHECK(h, hx_header(&r, "connection", v, sizeof(v)) && strcmp(v, "close") == 0, "1.0 conn %s", v);
    HX_CHECK(h, hx_closed(c), "1.0 not closed");
    hx_resp_free(&r);
    hx_close(c);
    c = hx_open(h);
    HX_REQUIRE(h, c && hx_send_str(c, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), "send");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0, "1.0 ka response");
    HX_CHECK(h, hx_header(&r, "connection", v, sizeof(v)) && strcmp(v, "keep-alive") == 0, "ka %s", v);
    hx_resp_free(&r);
    HX_REQUIRE(h, hx_send_str(c, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), "send");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0 && r.status == 200, "1.0 second response");
    hx_resp_free(&r);
    hx_close(c);
}

static void client_half_close(struct hx *h)
{
    struct hx_conn *c = hx_open(h);
    struct hx_resp r;

    /* Request, then FIN at once: the answer still arrives, then the close. */
    HX_REQUIRE(h, c && hx_send_str(c, "GET /health HTTP/1.1\r\n\r\nGET /reqid HTTP/1.1\r\nX-Request-Id: two\r\n\r\n"),
               "s");
    shutdown(c->fd, SHUT_WR);
    HX_REQUIRE(h, hx_read(c, &r, false) == 0 && r.status == 200, "first lost after half-close");
    hx_resp_free(&r);
    HX_REQUIRE(h, hx_read(c, &r, false) == 0 && strcmp(r.body, "two") == 0, "second lost after half-close");
    hx_resp_free(&r);
    HX_CHECK(h, hx_closed(c), "not closed after the client's FIN");
    hx_close(c);
}

static void test_half_close(void **state)
{
    struct hx h;

    hx_init(&h, on_request, on_head);
    hx_run(&h, client_half_close);
    assert_int_equal(h.done_count, 2);
}

static void test_keepalive(void **state)
{
    struct hx h;

    hx_init(&h, on_request, on_head);
    hx_run(&h, client_keepalive);
    assert_int_equal(h.stats.conns_total, 3);
    assert_int_equal(h.stats.requests_total, 6);
}

static void client_pipelined(struct hx *h)
{
    static const char three[] = "GET /health HTTP/1.1\r\nX-Request-Id: p1\r\n\r\n"
                                "POST /echo HTTP/1.1\r\nX-Request-Id: p2\r\nContent-Length: 4\r\n\r\nping"
                                "GET /async HTTP/1.1\r\nX-Request-Id: p3\r\n\r\n"
                                "GET /reqid HTTP/1.1\r\nX-Request-Id: p4\r\n\r\n";
    struct hx_conn *c = hx_open(h);
    struct hx_resp r;
    char v[64], req[96], *many;
    size_t n = 0;

    HX_REQUIRE(h, c && hx_send_str(c, three), "send");
    for (int i = 1; i <= 4; i++) {
        HX_REQUIRE(h, hx_read(c, &r, false) == 0, "response %d", i);
        snprintf(req, sizeof(req), "p%d", i);
        HX_CHECK(h, hx_header(&r, "x-request-id", v, sizeof(v)) && strcmp(v, req) == 0, "out of order: got %s, want %s",
                 v, req);
        if (i == 2)
            HX_CHECK(h, strcmp(r.body, "ping") == 0, "echo %s", r.body);
        if (i == 3)
            HX_CHECK(h, strcmp(r.body, "async") == 0, "async %s", r.body);
        hx_resp_free(&r);
    }
    /* 40 in one write: past maxPipelined per read, resumed from the hook. */
    many = ch_malloc(40 * 64);
    for (int i = 0; i < 40; i++)
        n += (size_t)sprintf(many + n, "GET /reqid HTTP/1.1\r\nX-Request-Id: m%d\r\n\r\n", i);
    HX_REQUIRE(h, hx_send(c, many, n), "send many");
    ch_free(many);
    for (int i = 0; i < 40; i++) {
        HX_REQUIRE(h, hx_read(c, &r, false) == 0, "many %d", i);
        snprintf(req, sizeof(req), "m%d", i);
        HX_CHECK(h, strcmp(r.body, req) == 0, "order: got %s, want %s", r.body, req);
        hx_resp_free(&r);
    }
    hx_close(c);
}

static void test_pipelined(void **state)
{
    struct hx h;

    hx_init(&h, on_request, on_head);
    hx_run(&h, client_pipelined);
    assert_int_equal(h.stats.requests_total, 44);
}

static void client_bodies(struct hx *h)
{
    struct hx_conn *c = hx_open(h);
    struct hx_resp r;

    HX_REQUIRE(h, c, "connect");
    /* Chunked in several writes, with an extension and a trailer. */
    HX_REQUIRE(h, hx_send_str(c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"), "s1");
    usleep(20000);
    HX_REQUIRE(h, hx_send_str(c, "lo\r\n6;x=y\r\n world\r\n0\r\nX-T: 1\r\n\r\n"), "s2");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0 && r.status == 200, "chunked status %d", r.status);
    HX_CHECK(h, strcmp(r.body, "hello world") == 0, "chunked body %s", r.body);
    hx_resp_free(&r);
    /* 100-continue: the interim response comes before the body is sent. */
    HX_REQUIRE(h, hx_send_str(c, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"), "s3");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0, "no interim response");
    HX_CHECK(h, r.status == 100, "interim %d", r.status);
    hx_resp_free(&r);
    HX_REQUIRE(h, hx_send_str(c, "12345"), "s4");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0 && r.status == 200, "after continue");
    HX_CHECK(h, strcmp(r.body, "12345") == 0, "continue body %s", r.body);
    hx_resp_free(&r);
    /* HEAD: the GET's length, no body; the next response starts right after. */
    HX_REQUIRE(h, hx_send_str(c, "HEAD /health HTTP/1.1\r\n\r\nGET /reqid HTTP/1.1\r\nX-Request-Id: after\r\n\r\n"),
               "s5");
    HX_REQUIRE(h, hx_read(c, &r, true) == 0 && r.status == 200, "HEAD");
    HX_CHECK(h, strstr(r.head, "Content-Length: 11\r\n") != NULL, "HEAD length: %s", r.head);
    hx_resp_free(&r);
    HX_REQUIRE(h, hx_read(c, &r, false) == 0 && r.status == 200, "after HEAD");
    HX_CHECK(h, strcmp(r.body, "after") == 0, "framing after HEAD: %s", r.body);
    hx_resp_free(&r);
    hx_close(c);
}

static void test_bodies(void **state)
{
    struct hx h;

    hx_init(&h, on_request, on_head);
    hx_run(&h, client_bodies);
}

static void client_on_head(struct hx *h)
{
    struct hx_conn *c = hx_open(h);
    struct hx_resp r;
    char v[64];

    /* Refused from on_head with a body announced: 401, body never read. */
    HX_REQUIRE(h, c && hx_send_str(c, "POST /refuse HTTP/1.1\r\nContent-Length: 100\r\n\r\n"), "send");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0 && r.status == 401, "status %d", r.status);
    HX_CHECK(h, hx_header(&r, "connection", v, sizeof(v)) && strcmp(v, "close") == 0, "conn %s", v);
    HX_CHECK(h, hx_closed(c), "not closed");
    hx_resp_free(&r);
    hx_close(c);
    /* Without a body the connection goes on. */
    c = hx_open(h);
    HX_REQUIRE(h, c && hx_send_str(c, "GET /refuse HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n"), "send");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0 && r.status == 401, "refused");
    HX_CHECK(h, strstr(r.body, "\"error\":\"unauthorized\"") != NULL, "%s", r.body);
    hx_resp_free(&r);
    HX_REQUIRE(h, hx_read(c, &r, false) == 0 && r.status == 200, "after refused");
    hx_resp_free(&r);
    hx_close(c);
}

static void test_on_head(void **state)
{
    struct hx h;

    hx_init(&h, on_request, on_head);
    hx_run(&h, client_on_head);
}

static void client_misc(struct hx *h)
{
    struct hx_resp r;
    char v[128], id1[80], id2[80], big[200];

    HX_REQUIRE(h, hx_once(h, "GET /json HTTP/1.1\r\n\r\n", &r) == 201, "json");
    HX_CHECK(h, strcmp(r.body, "{\"a\":[1,2]}") == 0, "json body %s", r.body);
    HX_CHECK(h, hx_header(&r, "x-custom", v, sizeof(v)) && strcmp(v, "yes") == 0, "custom header");
    HX_CHECK(h, !strstr(r.head, "Injected"), "header injection");
    hx_resp_free(&r);
    HX_REQUIRE(h, hx_once(h, "GET /query?a=1&q=%41%20b+c HTTP/1.1\r\n\r\n", &r) == 200, "query");
    HX_CHECK(h, strcmp(r.body, "A b c") == 0, "query %s", r.body);
    hx_resp_free(&r);
    HX_CHECK(h, hx_once(h, "GET /query?q=%4 HTTP/1.1\r\n\r\n", NULL) == 400, "bad escape");
    /* Request ids: sane ones echoed, others replaced, generated ones differ. */
    HX_REQUIRE(h, hx_once(h, "GET /reqid HTTP/1.1\r\nX-Request-Id: e2e-42:a.b_c\r\n\r\n", &r) == 200, "rid");
    HX_CHECK(h, strcmp(r.body, "e2e-42:a.b_c") == 0, "echo %s", r.body);
    hx_resp_free(&r);
    memset(big, 'x', 100);
    snprintf(big + 100, 100, "\r\n\r\n");
    snprintf(v, sizeof(v), "GET /reqid HTTP/1.1\r\nX-Request-Id: ");
    {
        char req[400];
        snprintf(req, sizeof(req), "%s%s", v, big);
        HX_REQUIRE(h, hx_once(h, req, &r) == 200, "long rid");
        HX_CHECK(h, strlen(r.body) < 40 && r.body[0] != 'x', "long id echoed: %s", r.body);
        snprintf(id1, sizeof(id1), "%s", r.body);
        hx_resp_free(&r);
    }
    HX_REQUIRE(h, hx_once(h, "GET /reqid HTTP/1.1\r\nX-Request-Id: a b\r\n\r\n", &r) == 200, "rid2");
    snprintf(id2, sizeof(id2), "%s", r.body);
    HX_CHECK(h, strcmp(id1, id2) != 0 && strcmp(id2, "a b") != 0, "ids %s %s", id1, id2);
    hx_resp_free(&r);
    HX_CHECK(h, hx_once(h, "GET /nope HTTP/1.1\r\n\r\n", NULL) == 404, "404");
}

static void test_misc(void **state)
{
    struct hx h;

    hx_init(&h, on_request, on_head);
    hx_run(&h, client_misc);
    assert_int_equal(h.flood_rc, 0);
}

static void client_shutdown(struct hx *h)
{
    struct hx_conn *idle = hx_open(h), *busy = hx_open(h);
    struct hx_resp r;
    char v[64];
    uint64_t t0;

    HX_REQUIRE(h, idle && busy, "connect");
    HX_REQUIRE(h, hx_send_str(idle, "GET /health HTTP/1.1\r\n\r\n") && hx_read(idle, &r, false) == 0, "idle");
    hx_resp_free(&r);
    /* /shutdown starts a graceful stop and answers 200 ms later: the idle
     * connection must be closed first, at once. */
    t0 = hx_now_ms();
    HX_REQUIRE(h, hx_send_str(busy, "GET /shutdown HTTP/1.1\r\n\r\n"), "send");
    {
        struct pollfd p[2] = {{idle->fd, POLLIN, 0}, {busy->fd, POLLIN, 0}};
        HX_REQUIRE(h, poll(p, 2, 3000) >= 1, "nothing happened");
        HX_CHECK(h, (p[0].revents & (POLLIN | POLLHUP)) && !(p[1].revents & POLLIN),
                 "the in-flight answer came before the idle close");
    }
    HX_CHECK(h, hx_closed(idle), "idle connection not closed");
    HX_CHECK(h, hx_now_ms() - t0 < 1000, "idle closed late: %llu ms", (unsigned long long)(hx_now_ms() - t0));
    HX_REQUIRE(h, hx_read(busy, &r, false) == 0 && r.status == 200, "in-flight request lost");
    HX_CHECK(h, hx_header(&r, "connection", v, sizeof(v)) && strcmp(v, "close") == 0, "conn %s", v);
    HX_CHECK(h, hx_closed(busy), "busy not closed after its response");
    hx_resp_free(&r);
    hx_close(idle);
    hx_close(busy);
}

static void test_graceful_shutdown(void **state)
{
    struct hx h;

    hx_init(&h, on_request, on_head);
    hx_run(&h, client_shutdown);
    assert_int_equal(h.last_status, 200);
}

static void client_nothing(struct hx *h)
{
}

static void on_srv2_shut(void *data)
{
    *(bool *)data = true;
}

static void test_addr_in_use(void **state)
{
    struct hx h;
    struct ch_http_server *s2;
    struct ch_error err;
    char want[64];
    bool shut = false;

    hx_init(&h, on_request, on_head);
    hx_start(&h);
    assert_int_equal(ch_http_server_new(&h.net, &h.opts, &s2), 0);
    memset(&err, 0, sizeof(err));
    assert_int_equal(ch_http_server_listen(s2, "127.0.0.1", h.port, &err), CH_EADDRINUSE);
    snprintf(want, sizeof(want), "address already in use: 127.0.0.1:%d", h.port);
    assert_string_equal(err.msg, want);
    assert_int_equal(err.code, CH_EADDRINUSE);
    assert_int_equal(ch_http_server_listen(s2, "not-an-ip", 1, &err), CH_ESTATE);
    ch_http_server_shutdown(s2, 0, on_srv2_shut, &shut);
    hx_go(&h, client_nothing);
    assert_true(shut);
    ch_http_server_free(s2);
    hx_check_heap(&h);
}

static void test_bad_listen_args(void **state)
{
    uv_loop_t loop;
    struct ch_net net;
    struct ch_limits l;
    struct ch_http_server_opts o = {&l, NULL, on_request, NULL, NULL};
    struct ch_http_server *s;
    struct ch_error err;
    bool shut = false;

    ch_limits_init(&l);
    uv_loop_init(&loop);
    ch_net_init(&net, &loop);
    o.on_request = NULL;
    assert_int_equal(ch_http_server_new(&net, &o, &s), CH_EINVAL);
    assert_null(s);
    o.on_request = on_request;
    assert_int_equal(ch_http_server_new(&net, &o, &s), 0);
    assert_int_equal(ch_http_server_listen(s, "localhost", 0, &err), CH_EINVAL);
    assert_int_equal(ch_http_server_listen(s, "127.0.0.1", 70000, &err), CH_EINVAL);
    ch_http_server_shutdown(s, 0, on_srv2_shut, &shut);
    ch_net_close(&net, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(shut);
    ch_http_server_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get),         cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_half_close),  cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_bodies),      cmocka_unit_test(test_on_head),
        cmocka_unit_test(test_misc),        cmocka_unit_test(test_graceful_shutdown),
        cmocka_unit_test(test_addr_in_use), cmocka_unit_test(test_bad_listen_args),
    };
    ch_alloc_install();
    ch_log_setup(CH_LOG_WARN, CH_LOG_TEXT);
    hx_warm_up();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
