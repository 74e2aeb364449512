/* Unit tests for every request limit of the HTTP server, over real
 * sockets (server_harness.h): 413 from Content-Length before the body
 * (with and without 100-continue) and while reading chunks, 431, 414,
 * 411, malformed -> 400 and close, the connection limit's canned 503,
 * the total head deadline (slowloris), the idle body deadline, keep-alive
 * idle time and request count, and the case directories in
 * tests/unit/data/http/<case>/{input,expect}. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <dirent.h>
#include <poll.h>
#include <string.h>
#include <cmocka.h>

#include "server_harness.h"

static void on_request(struct ch_http_req *r, void *data)
{
    if (ch_str_eq_cstr(r->path, "/health"))
        ch_http_respond(r, 200, "application/json", "{\"ok\":true}", 11);
    else if (ch_str_eq_cstr(r->path, "/echo"))
        ch_http_respond(r, 200, "application/octet-stream", r->body.data, r->body.len);
    else
        ch_http_respond_error(r, 404, "not_found", "no route");
}

/* A fresh connection; the response status and whether the server closed. */
static int exchange(struct hx *h, const char *req, size_t len, char *code, size_t codecap, bool *closed)
{
    struct hx_conn *c = hx_open(h);
    struct hx_resp r;
    int st = -1;

    if (!c)
        return -1;
    if (hx_send(c, req, len) && hx_read(c, &r, false) == 0) {
        char *e = strstr(r.body, "\"error\":\"");
        st = r.status;
        if (code && e) {
            snprintf(code, codecap, "%s", e + 9);
            if (strchr(code, '"'))
                *strchr(code, '"') = '\0';
        }
        if (closed)
            *closed = hx_closed(c);
        hx_resp_free(&r);
    }
    hx_close(c);
    return st;
}

static void expect_error(struct hx *h, int line, const char *req, size_t len, int status, const char *code)
{
    char got[64] = "";
    bool closed = false;
    int st = exchange(h, req, len, got, sizeof(got), &closed);

    if (st != status || strcmp(got, code) != 0 || !closed)
        hx_failf(h, line, "got %d %s%s, want %d %s and a close", st, got, closed ? "" : " (open)", status, code);
}

/* ------------------------------------------------------------------ */

static void client_sizes(struct hx *h)
{
    char *big = ch_malloc(64 * 1024);
    size_t n;
    struct hx_conn *c;
    struct hx_resp r;
    uint64_t t0;

    /* 413 from Content-Length alone: no body byte is ever sent. */
    t0 = hx_now_ms();
    n = (size_t)sprintf(big, "POST /echo HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n");
    expect_error(h, __LINE__, big, n, 413, "payload_too_large");
    HX_CHECK(h, hx_now_ms() - t0 < 1000, "413 not immediate");
    /* ... and with 100-continue: 413 instead of the interim response. */
    c = hx_open(h);
    HX_REQUIRE(h, c && hx_send_str(c, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2000\r\n\r\n"),
               "s");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0, "no response");
    HX_CHECK(h, r.status == 413, "continue + too large: %d", r.status);
    hx_resp_free(&r);
    hx_close(c);
    /* The largest body allowed is fine. */
    n = (size_t)sprintf(big, "POST /echo HTTP/1.1\r\nContent-Length: 1024\r\n\r\n");
    memset(big + n, 'b', 1024);
    HX_CHECK(h, exchange(h, big, n + 1024, NULL, 0, NULL) == 200, "1 KiB body");
    /* Chunked: refused while reading, once past the cap. */
    n = (size_t)sprintf(big, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        n += (size_t)sprintf(big + n, "200\r\n");
        memset(big + n, 'c', 512);
        n += 512;
        n += (size_t)sprintf(big + n, "\r\n");
    }
    n += (size_t)sprintf(big + n, "0\r\n\r\n");
    expect_error(h, __LINE__, big, n, 413, "payload_too_large");
    /* 414: the target one byte over maxUriBytes. */
    n = (size_t)sprintf(big, "GET /");
    memset(big + n, 'u', 8 * 1024);
    n += 8 * 1024;
    n += (size_t)sprintf(big + n, " HTTP/1.1\r\n\r\n");
    expect_error(h, __LINE__, big, n, 414, "uri_too_long");
    /* 431: more header fields than maxHeaders. */
    n = (size_t)sprintf(big, "GET /health HTTP/1.1\r\n");
    for (int i = 0; i < 101; i++)
        n += (size_t)sprintf(big + n, "X-%d: v\r\n", i);
    n += (size_t)sprintf(big + n, "\r\n");
    expect_error(h, __LINE__, big, n, 431, "header_too_large");
    /* 431: a head over maxHeadBytes. */
    n = (size_t)sprintf(big, "GET /health HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'h', 33 * 1024);
    n += 33 * 1024;
    n += (size_t)sprintf(big + n, "\r\n\r\n");
    expect_error(h, __LINE__, big, n, 431, "header_too_large");
    /* 411 and 400. */
    expect_error(h, __LINE__, "POST /echo HTTP/1.1\r\n\r\n", 23, 411, "length_required");
    expect_error(h, __LINE__, "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 28, 400, "bad_request");
    expect_error(h, __LINE__, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, 400, "bad_request");
    ch_free(big);
    /* After all that the server still answers. */
    HX_CHECK(h, hx_once(h, "GET /health HTTP/1.1\r\n\r\n", NULL) == 200, "alive");
}

static void test_sizes(void **state)
{
    struct hx h;

    hx_init(&h, on_request, NULL);
    h.limits.v[CH_LIMIT_MAX_BODY_BYTES] = 1024;
    hx_run(&h, client_sizes);
}

static void client_conn_limit(struct hx *h)
{
    struct hx_conn *a = hx_open(h), *b = hx_open(h), *c, *d;
    struct hx_resp r;
    char v[64];

    HX_REQUIRE(h, a && b, "connect");
    HX_REQUIRE(h, hx_send_str(a, "GET /health HTTP/1.1\r\n\r\n") && hx_read(a, &r, false) == 0, "a");
    hx_resp_free(&r);
    HX_REQUIRE(h, hx_send_str(b, "GET /health HTTP/1.1\r\n\r\n") && hx_read(b, &r, false) == 0, "b");
    hx_resp_free(&r);
    c = hx_open(h);
    HX_REQUIRE(h, c, "connect c");
    hx_send_str(c, "GET /health HTTP/1.1\r\n\r\n");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0, "no 503");
    HX_CHECK(h, r.status == 503, "status %d", r.status);
    HX_CHECK(h, strcmp(r.body, "{\"error\":\"overloaded\",\"message\":\"too many connections; retry later\"}") == 0,
             "body %s", r.body);
    HX_CHECK(h, hx_header(&r, "connection", v, sizeof(v)) && strcmp(v, "close") == 0, "conn %s", v);
    HX_CHECK(h, hx_closed(c), "refused connection open");
    hx_resp_free(&r);
    hx_close(c);
    /* A freed slot is usable again. */
    hx_close(a);
    usleep(50 * 1000);
    d = hx_open(h);
    HX_REQUIRE(h, d && hx_send_str(d, "GET /health HTTP/1.1\r\n\r\n") && hx_read(d, &r, false) == 0, "d");
    HX_CHECK(h, r.status == 200, "after a close: %d", r.status);
    hx_resp_free(&r);
    hx_close(d);
    hx_close(b);
}

static void test_conn_limit(void **state)
{
    struct hx h;

    hx_init(&h, on_request, NULL);
    h.limits.v[CH_LIMIT_MAX_CONNECTIONS] = 2;
    hx_run(&h, client_conn_limit);
    assert_int_equal(h.stats.conns_rejected, 1);
    assert_int_equal(h.stats.conns_total, 3);
}

/* Send a byte every step_ms until the server answers; 0 and the time. */
static int trickle(struct hx_conn *c, const char *s, int step_ms, uint64_t *elapsed)
{
    uint64_t t0 = hx_now_ms();
    struct pollfd p = {c->fd, POLLIN, 0};

    for (size_t i = 0; i < 10000; i++) {
        if (s[i % strlen(s)] && send(c->fd, &s[i % strlen(s)], 1, MSG_NOSIGNAL) != 1)
            break;
        if (poll(&p, 1, step_ms) == 1)
            break;
        if (hx_now_ms() - t0 > 4000)
            return -1;
    }
    *elapsed = hx_now_ms() - t0;
    return 0;
}

static void client_timeouts(struct hx *h)
{
    struct hx_conn *c;
    struct hx_resp r;
    uint64_t ms, t0;
    char v[64];

    /* Slowloris: one head byte every 50 ms never extends the 300 ms total. */
    c = hx_open(h);
    HX_REQUIRE(h, c && hx_send_str(c, "GET /health HTTP/1.1\r\n"), "send");
    HX_REQUIRE(h, trickle(c, "X-Slow: aaaaaaaaaaaaaaaa\r\n", 50, &ms) == 0, "no answer to a slow head");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0, "read 408");
    HX_CHECK(h, r.status == 408, "slow head: %d", r.status);
    HX_CHECK(h, ms >= 200 && ms < 900, "head deadline after %llu ms", (unsigned long long)ms);
    HX_CHECK(h, strstr(r.body, "request_timeout") != NULL, "%s", r.body);
    HX_CHECK(h, hx_closed(c), "not closed after 408");
    hx_resp_free(&r);
    hx_close(c);
    /* A silent connection is closed at the head deadline, without a word. */
    c = hx_open(h);
    t0 = hx_now_ms();
    HX_CHECK(h, hx_fill(c) == 0, "silent connection got bytes or no close");
    HX_CHECK(h, hx_now_ms() - t0 < 900, "silent close late");
    hx_close(c);
    /* The body deadline is idle time: a byte every 100 ms keeps it going
     * past 200 ms in total ... */
    c = hx_open(h);
    HX_REQUIRE(h, c && hx_send_str(c, "POST /echo HTTP/1.1\r\nContent-Length: 8\r\n\r\n"), "send");
    for (int i = 0; i < 8; i++) {
        usleep(100 * 1000);
        hx_send(c, "x", 1);
    }
    HX_REQUIRE(h, hx_read(c, &r, false) == 0 && r.status == 200, "slow body refused");
    HX_CHECK(h, strcmp(r.body, "xxxxxxxx") == 0, "body %s", r.body);
    hx_resp_free(&r);
    /* ... but a 200 ms pause ends it with 408. */
    t0 = hx_now_ms();
    HX_REQUIRE(h, hx_send_str(c, "POST /echo HTTP/1.1\r\nContent-Length: 8\r\n\r\nxx"), "send");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0, "no 408");
    HX_CHECK(h, r.status == 408, "stalled body: %d", r.status);
    HX_CHECK(h, hx_now_ms() - t0 >= 150, "408 too early");
    HX_CHECK(h, hx_closed(c), "not closed after body 408");
    hx_resp_free(&r);
    hx_close(c);
    /* Keep-alive idle time. */
    c = hx_open(h);
    HX_REQUIRE(h, c && hx_send_str(c, "GET /health HTTP/1.1\r\n\r\n") && hx_read(c, &r, false) == 0, "ka");
    hx_resp_free(&r);
    t0 = hx_now_ms();
    HX_CHECK(h, hx_closed(c), "idle keep-alive not closed");
    ms = hx_now_ms() - t0;
    HX_CHECK(h, ms >= 150 && ms < 900, "keep-alive closed after %llu ms", (unsigned long long)ms);
    hx_close(c);
    /* Keep-alive request count: the second response says close. */
    c = hx_open(h);
    HX_REQUIRE(h, c && hx_send_str(c, "GET /health HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n"), "send");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0, "first");
    HX_CHECK(h, hx_header(&r, "connection", v, sizeof(v)) && strcmp(v, "keep-alive") == 0, "first %s", v);
    hx_resp_free(&r);
    HX_REQUIRE(h, hx_read(c, &r, false) == 0, "second");
    HX_CHECK(h, hx_header(&r, "connection", v, sizeof(v)) && strcmp(v, "close") == 0, "second %s", v);
    HX_CHECK(h, hx_closed(c), "not closed after keepaliveRequests");
    hx_resp_free(&r);
    hx_close(c);
}

static void test_timeouts(void **state)
{
    struct hx h;

    hx_init(&h, on_request, NULL);
    h.limits.v[CH_LIMIT_HEAD_TIMEOUT_MS] = 300;
    h.limits.v[CH_LIMIT_BODY_TIMEOUT_MS] = 200;
    h.limits.v[CH_LIMIT_KEEPALIVE_TIMEOUT_MS] = 200;
    h.limits.v[CH_LIMIT_KEEPALIVE_REQUESTS] = 2;
    hx_run(&h, client_timeouts);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static size_t slurp(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (!f)
        return 0;
    n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
    return n;
}

static void client_cases(struct hx *h)
{
    static const char dir[] = "tests/unit/data/http";
    struct dirent **names;
    int count = scandir(dir, &names, NULL, by_name), ran = 0;

    HX_REQUIRE(h, count > 0, "no case directory at %s (run from the repository root)", dir);
    for (int i = 0; i < count; i++) {
        char path[512], input[16384], expect[256], line[256];
        size_t n;
        struct hx_conn *c;

        if (names[i]->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s/input", dir, names[i]->d_name);
            n = slurp(path, input, sizeof(input));
            snprintf(path, sizeof(path), "%s/%s/expect", dir, names[i]->d_name);
            slurp(path, expect, sizeof(expect));
            expect[strcspn(expect, "\r\n")] = '\0';
            c = hx_open(h);
            if (c && n && hx_send(c, input, n)) {
                char *eol;
                while (c->buf[c->len] = '\0', (eol = strstr(c->buf, "\r\n")) == NULL && hx_fill(c) > 0)
                    ;
                snprintf(line, sizeof(line), "%.*s", eol ? (int)(eol - c->buf) : 0, c->buf);
                HX_CHECK(h, strcmp(line, expect) == 0, "case %s: got \"%s\", want \"%s\"", names[i]->d_name, line,
                         expect);
                ran++;
            } else {
                hx_failf(h, __LINE__, "case %s: cannot run", names[i]->d_name);
            }
            hx_close(c);
        }
        free(names[i]); /* scandir's own allocation */
    }
    free(names);
    HX_CHECK(h, ran >= 30, "only %d cases ran", ran);
}

static void test_cases(void **state)
{
    struct hx h;

    hx_init(&h, on_request, NULL);
    hx_run(&h, client_cases);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_conn_limit),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_cases),
    };
    ch_alloc_install();
    ch_log_setup(CH_LOG_WARN, CH_LOG_TEXT);
    hx_warm_up();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
