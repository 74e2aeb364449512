/* Unit tests for http/parse.c without sockets: heads split at every byte,
 * slices and request fields, every limit and malformation with its status
 * (400, 411, 413, 414, 417, 431, 505), chunked bodies, pipelined messages,
 * request ids, and a fail-allocation-N loop over the parse path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http/internal.h"

struct run {
    struct ch_http_parse p;
    struct ch_http_req r;
    int heads, dones;
    int status; /* err_status on error */
    char code[40];
    bool want_continue;
    int check; /* ch_http_parse_check result at HEAD */
};

static struct ch_limits limits;

/* Feed input in pieces of `step` bytes (0: all at once), like a socket
 * would; the request body goes to r.body capped at max_body. */
static void run_feed(struct run *x, const char *in, size_t len, size_t step, uint64_t max_body)
{
    size_t off = 0;

    while (off < len) {
        size_t n = step ? CH_MIN(step, len - off) : len - off;
        size_t pos = 0;
        while (pos < n) {
            size_t used;
            enum ch_http_ev ev = ch_http_parse_feed(&x->p, in + off + pos, n - pos, &used);
            const char *code, *msg;
            pos += used;
            if (ev == CH_HTTP_EV_ERROR) {
                x->status = x->p.err_status;
                snprintf(x->code, sizeof(x->code), "%s", x->p.err_code);
                return;
            }
            if (ev == CH_HTTP_EV_HEAD) {
                x->heads++;
                memset(&x->r, 0, sizeof(x->r));
                ch_buf_init(&x->r.body, 0);
                ch_http_parse_fill(&x->p, &x->r);
                x->check = ch_http_parse_check(&x->p, &x->r, &x->want_continue, &code, &msg);
                if (x->check)
                    return;
                ch_http_parse_set_body(&x->p, &x->r.body, max_body);
            } else if (ev == CH_HTTP_EV_DONE) {
                x->dones++;
                if (pos < n || off + n < len) {
                    ch_buf_release(&x->r.body);
                    ch_http_parse_next(&x->p);
                }
            }
        }
        off += n;
    }
}

static void run_init(struct run *x)
{
    memset(x, 0, sizeof(*x));
    ch_http_parse_init(&x->p, &limits);
    ch_buf_init(&x->r.body, 0);
}

static void run_release(struct run *x)
{
    ch_buf_release(&x->r.body);
    ch_http_parse_release(&x->p);
}

static int status_of(const char *in, size_t step)
{
    struct run x;
    int st;

    run_init(&x);
    run_feed(&x, in, strlen(in), step, 1024);
    st = x.status ? x.status : x.check;
    run_release(&x);
    return st;
}

static const char get_req[] = "GET /api/v1/x?a=1&b=%41+c HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "X-Request-Id: abc-123\r\n"
                              "X-Empty:\r\n"
                              "Accept:   text/plain  \r\n"
                              "\r\n";

static void check_get(const struct run *x)
{
    char q[32];

    assert_int_equal(x->heads, 1);
    assert_int_equal(x->dones, 1);
    assert_int_equal(x->status, 0);
    assert_int_equal(x->r.method, CH_M_GET);
    assert_string_equal(x->r.method_name, "GET");
    assert_true(ch_str_eq_cstr(x->r.target, "/api/v1/x?a=1&b=%41+c"));
    assert_true(ch_str_eq_cstr(x->r.path, "/api/v1/x"));
    assert_true(ch_str_eq_cstr(x->r.query, "a=1&b=%41+c"));
    assert_int_equal(x->r.header_count, 4);
    assert_true(ch_str_eq_cstr(*ch_http_req_header(&x->r, "host"), "example.com"));
    assert_true(ch_str_eq_cstr(*ch_http_req_header(&x->r, "ACCEPT"), "text/plain"));
    assert_int_equal(ch_http_req_header(&x->r, "x-empty")->len, 0);
    assert_null(ch_http_req_header(&x->r, "cookie"));
    assert_string_equal(x->r.request_id, "abc-123");
    assert_true(x->r.keep_alive);
    assert_int_equal(x->r.http_minor, 1);
    assert_int_equal(ch_http_req_query(&x->r, "b", q, sizeof(q)), 0);
    assert_string_equal(q, "A c");
    assert_int_equal(ch_http_req_query(&x->r, "a", q, sizeof(q)), 0);
    assert_string_equal(q, "1");
    assert_int_equal(ch_http_req_query(&x->r, "z", q, sizeof(q)), CH_ENOTFOUND);
    assert_int_equal(ch_http_req_query(&x->r, "b", q, 2), CH_E_TOO_LARGE);
}

static void test_get_every_split(void **state)
{
    (void)state;
    /* Byte by byte, and every other chunk size: names and values split
     * anywhere must come out whole. */
    for (size_t step = 0; step < 40; step++) {
        struct run x;
        run_init(&x);
        run_feed(&x, get_req, sizeof(get_req) - 1, step, 0);
        check_get(&x);
        run_release(&x);
    }
}

static void test_absolute_form_and_versions(void **state)
{
    struct run x;
    static const char abs[] = "GET http://h.example/health?x=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";

    (void)state;
    run_init(&x);
    run_feed(&x, abs, sizeof(abs) - 1, 0, 0);
    assert_int_equal(x.dones, 1);
    assert_true(ch_str_eq_cstr(x.r.path, "/health"));
    assert_true(ch_str_eq_cstr(x.r.query, "x=1"));
    assert_true(x.r.keep_alive); /* HTTP/1.0 asked for it */
    assert_int_equal(x.r.request_id[0], '\0');
    run_release(&x);
    run_init(&x);
    run_feed(&x, "GET / HTTP/1.0\r\n\r\n", 18, 0, 0);
    assert_false(x.r.keep_alive);
    run_release(&x);
    run_init(&x);
    run_feed(&x, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 37, 0, 0);
    assert_false(x.r.keep_alive);
    run_release(&x);
    assert_int_equal(status_of("GET / HTTP/2.0\r\n\r\n", 0), 505);
    assert_int_equal(status_of("GET /\r\n\r\n", 0), 505); /* HTTP/0.9 */
}

static void test_errors(void **state)
{
    static const struct {
        const char *in;
        int status;
    } cases[] = {
        {"GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", 400},  /* obs-fold */
        {"GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n", 400}, /* obs-fold, tab */
        {"GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400},      /* space before first field */
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 411},
        {"PUT / HTTP/1.1\r\n\r\n", 411},
        {"PATCH / HTTP/1.1\r\n\r\n", 411},
        {"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0},
        {"DELETE / HTTP/1.1\r\n\r\n", 0},
        {"POST / HTTP/1.1\r\nExpect: fancy\r\nContent-Length: 1\r\n\r\n", 417},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n", 413}, /* 2 KiB > 1 KiB */
        {"GET / HTTP/1.1\r\nX-Id: a\001b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
        {"\001\002garbage\r\n\r\n", 400},
        {"FOO / HTTP/1.1\r\n\r\n", 400},
        {"GET /a b HTTP/1.1\r\n\r\n", 400},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t step = 0; step <= 1; step++) {
            int st = status_of(cases[i].in, step);
            if (st != cases[i].status)
                fail_msg("case %zu (step %zu): status %d, want %d", i, step, st, cases[i].status);
        }
    }
}

static void test_limits(void **state)
{
    char *big = ch_malloc(64 * 1024);
    struct run x;
    size_t n;

    (void)state;
    /* 414: one byte over maxUriBytes. */
    n = (size_t)snprintf(big, 64, "GET /");
    memset(big + n, 'a', (size_t)limits.v[CH_LIMIT_MAX_URI_BYTES]);
    n += (size_t)limits.v[CH_LIMIT_MAX_URI_BYTES];
    strcpy(big + n, " HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(big, 0), 414);
    assert_int_equal(status_of(big, 7), 414);
    /* The largest target that fits is fine. */
    big[n - 1] = ' ';
    strcpy(big + n - 1, " HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(big, 0), 0);
    /* 431: one header field more than maxHeaders. */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= limits.v[CH_LIMIT_MAX_HEADERS]; i++)
        n += (size_t)sprintf(big + n, "X-%d: v\r\n", i);
    strcpy(big + n, "\r\n");
    assert_int_equal(status_of(big, 0), 431);
    run_init(&x);
    run_feed(&x, big, strlen(big), 0, 0);
    assert_string_equal(x.code, "header_too_large");
    run_release(&x);
    /* Exactly maxHeaders is fine. */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < limits.v[CH_LIMIT_MAX_HEADERS]; i++)
        n += (size_t)sprintf(big + n, "X-%d: v\r\n", i);
    strcpy(big + n, "\r\n");
    assert_int_equal(status_of(big, 0), 0);
    /* 431: the head over maxHeadBytes, in one value. */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'v', (size_t)limits.v[CH_LIMIT_MAX_HEAD_BYTES]);
    strcpy(big + n + (size_t)limits.v[CH_LIMIT_MAX_HEAD_BYTES], "\r\n\r\n");
    assert_int_equal(status_of(big, 0), 431);
    assert_int_equal(status_of(big, 1000), 431);
    /* ... and in endless blank lines before the request line. */
    memset(big, '\n', 40000);
    big[40000] = '\0';
    assert_int_equal(status_of(big, 0), 431);
    ch_free(big);
}

static void test_chunked_and_pipelined(void **state)
{
    static const char in[] = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
                             "POST /b HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nxyz"
                             "GET /c HTTP/1.1\r\n\r\n";
    struct run x;

    (void)state;
    for (size_t step = 0; step < 9; step++) {
        run_init(&x);
        run_feed(&x, in, sizeof(in) - 1, step, 1024);
        assert_int_equal(x.status, 0);
        assert_int_equal(x.heads, 3);
        assert_int_equal(x.dones, 3);
        assert_true(ch_str_eq_cstr(x.r.path, "/c"));
        run_release(&x);
    }
    /* Stop after the first message to look at its body. */
    run_init(&x);
    run_feed(&x, in, strstr(in, "POST /b") - in, 0, 1024);
    assert_int_equal(x.dones, 1);
    assert_int_equal(x.r.body.len, 11);
    assert_string_equal(x.r.body.data, "hello world");
    assert_false(x.want_continue);
    run_release(&x);
    /* The second asks for 100-continue. */
    run_init(&x);
    run_feed(&x, strstr(in, "POST /b"), strlen(strstr(in, "POST /b")) - 19, 0, 1024);
    assert_true(x.want_continue);
    assert_string_equal(x.r.body.data, "xyz");
    run_release(&x);
    /* A chunked body over the cap is refused as its bytes arrive. */
    run_init(&x);
    run_feed(&x, in, strstr(in, "POST /b") - in, 0, 8);
    assert_int_equal(x.status, 413);
    run_release(&x);
}

static void test_head_accessors(void **state)
{
    static const char in[] = "POST /u HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Content-Length: 4\r\n\r\n";
    struct run x;
    size_t used;

    (void)state;
    run_init(&x);
    assert_int_equal(ch_http_parse_feed(&x.p, in, sizeof(in) - 1, &used), CH_HTTP_EV_HEAD);
    assert_true(ch_http_parse_is_upgrade(&x.p));
    assert_true(ch_http_parse_has_body(&x.p));
    assert_int_equal(ch_http_parse_content_length(&x.p), 4);
    /* The head's last byte is fed again after the pause, with the body. */
    assert_int_equal(used, sizeof(in) - 2);
    assert_int_equal(ch_http_parse_feed(&x.p, "\nabcd", 5, &used), CH_HTTP_EV_DONE);
    assert_int_equal(used, 5);
    /* Fed again after DONE without parse_next: a caller bug, reported. */
    assert_int_equal(ch_http_parse_feed(&x.p, "x", 1, &used), CH_HTTP_EV_ERROR);
    assert_int_equal(x.p.err_status, 500);
    run_release(&x);
}

static void test_request_id_ok(void **state)
{
    char id65[66];

    (void)state;
    assert_true(ch_http_request_id_ok(CH_STR("abc-123_x.y:z")));
    assert_false(ch_http_request_id_ok(CH_STR("")));
    assert_false(ch_http_request_id_ok(CH_STR("a b")));
    assert_false(ch_http_request_id_ok(CH_STR("a\"b")));
    assert_false(ch_http_request_id_ok(CH_STR("é")));
    memset(id65, 'a', 65);
    id65[65] = '\0';
    assert_false(ch_http_request_id_ok(ch_str_from(id65)));
    id65[64] = '\0';
    assert_true(ch_http_request_id_ok(ch_str_from(id65)));
}

/* Fail allocation N for N = 1, 2, ... until the parse succeeds; every
 * failure must be a clean 500 (or 431/413 for cap-shaped failures) and
 * leak nothing. */
static void test_alloc_failures(void **state)
{
    char in[4096];
    size_t n = (size_t)sprintf(in, "POST /alloc HTTP/1.1\r\n");
    size_t base;
    int ok = 0;

    (void)state;
    for (int i = 0; i < 40; i++)
        n += (size_t)sprintf(in + n, "X-Header-%d: value-%d\r\n", i, i);
    n += (size_t)sprintf(in + n, "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n200\r\n");
    memset(in + n, 'z', 512);
    n += 512;
    n += (size_t)sprintf(in + n, "\r\n0\r\n\r\n");
    base = ch_alloc_live_bytes();
    for (long fail = 1; fail < 200 && !ok; fail++) {
        struct run x;
        run_init(&x);
        ch_alloc_fail_after(fail);
        run_feed(&x, in, n, 0, 4096);
        ch_alloc_fail_after(0);
        if (x.status == 0 && x.dones == 1) {
            assert_int_equal(x.r.body.len, 515);
            assert_int_equal(x.r.header_count, 41);
            ok = 1;
        } else {
            /* Every failure is a clean 500, never a request with holes. */
            assert_int_equal(x.status, 500);
            assert_string_equal(x.code, "internal_error");
        }
        run_release(&x);
        assert_int_equal(ch_alloc_live_bytes(), base);
    }
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_every_split),
        cmocka_unit_test(test_absolute_form_and_versions),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_chunked_and_pipelined),
        cmocka_unit_test(test_head_accessors),
        cmocka_unit_test(test_request_id_ok),
        cmocka_unit_test(test_alloc_failures),
    };
    ch_alloc_install();
    ch_limits_init(&limits);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
