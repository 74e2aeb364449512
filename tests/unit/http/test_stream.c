/* Unit tests for output over time, on a real loop with a real client
 * (server_harness.h): chunked and HTTP/1.0 streams, a pipelined request
 * behind a stream, on_close when a streaming client leaves, on_done with
 * 499 when an async handler's client leaves, the upgrade seam (leftover
 * bytes, echo, close), and the write-queue hard and soft caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "test_handlers.h"

static void client_streams(struct hx *h)
{
    struct hx_conn *c;
    struct hx_resp r;
    char v[64];

    HX_REQUIRE(h, hx_once(h, "GET /stream HTTP/1.1\r\n\r\n", &r) == 200, "stream");
    HX_CHECK(h, hx_header(&r, "transfer-encoding", v, sizeof(v)) && strcmp(v, "chunked") == 0, "te");
    HX_CHECK(h, strcmp(r.body, "abbccc") == 0, "stream body %s", r.body);
    hx_resp_free(&r);
    /* HTTP/1.0 has no chunks: raw bytes, ended by the close. */
    HX_REQUIRE(h, hx_once(h, "GET /stream HTTP/1.0\r\n\r\n", &r) == 200, "1.0 stream");
    HX_CHECK(h, strcmp(r.body, "abbccc") == 0, "1.0 body %s", r.body);
    HX_CHECK(h, !hx_header(&r, "transfer-encoding", v, sizeof(v)), "1.0 te");
    hx_resp_free(&r);
    /* A stream then a pipelined request: answered once the stream ends. */
    c = hx_open(h);
    HX_REQUIRE(h, c && hx_send_str(c, "GET /stream HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n"), "send");
    HX_REQUIRE(h, hx_read(c, &r, false) == 0 && strcmp(r.body, "abbccc") == 0, "first");
    hx_resp_free(&r);
    HX_REQUIRE(h, hx_read(c, &r, false) == 0 && r.status == 200, "second");
    hx_resp_free(&r);
    hx_close(c);
    /* A held stream whose client leaves: on_close fires. */
    c = hx_open(h);
    HX_REQUIRE(h, c && hx_send_str(c, "GET /hold HTTP/1.1\r\n\r\n"), "hold");
    HX_REQUIRE(h, hx_need(c, 10), "hold head");
    hx_close(c);
    /* An async handler whose client leaves: on_done still runs (499). */
    c = hx_open(h);
    HX_REQUIRE(h, c && hx_send_str(c, "GET /slow HTTP/1.1\r\n\r\n"), "slow");
    hx_close(c);
    usleep(500 * 1000);
}

static void test_streams(void **state)
{
    struct hx h;

    hx_init(&h, on_request, on_head);
    hx_run(&h, client_streams);
    assert_int_equal(h.close_count, 1);
    /* /slow's answer came after its client left: 499, nothing sent. */
    assert_int_equal(h.last_status, 499);
    assert_int_equal(h.done_count, 6);
}

static void client_upgrade(struct hx *h)
{
    struct hx_conn *c = hx_open(h);
    struct hx_resp r;

    HX_REQUIRE(h, c, "connect");
    /* Bytes right behind the head belong to the new protocol. */
    HX_REQUIRE(h, hx_send_str(c, "GET /upgrade HTTP/1.1\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello"), "s");
    HX_REQUIRE(h, hx_read(c, &r, true) == 0 && r.status == 101, "status %d", r.status);
    HX_CHECK(h, strstr(r.head, "Upgrade: echo\r\n") && strstr(r.head, "Connection: Upgrade\r\n"), "%s", r.head);
    hx_resp_free(&r);
    HX_REQUIRE(h, hx_need(c, 5) && memcmp(c->buf, "hello", 5) == 0, "leftover echo");
    hx_consume(c, 5);
    HX_REQUIRE(h, hx_send_str(c, "world"), "s2");
    HX_REQUIRE(h, hx_need(c, 5) && memcmp(c->buf, "world", 5) == 0, "echo");
    hx_consume(c, 5);
    HX_REQUIRE(h, hx_send_str(c, "quit"), "s3");
    HX_REQUIRE(h, hx_need(c, 4), "quit echo");
    HX_CHECK(h, hx_closed(c), "not closed after quit");
    hx_close(c);
    /* Not an upgrade request: the handler's 400, then close. */
    HX_CHECK(h, hx_once(h, "GET /upgrade HTTP/1.1\r\n\r\n", NULL) == 400, "plain /upgrade");
}

static void test_upgrade(void **state)
{
    struct hx h;

    hx_init(&h, on_request, on_head);
    hx_run(&h, client_upgrade);
    assert_int_equal(h.upgrade_closes, 1);
}

static void client_flood(struct hx *h)
{
    struct hx_conn *c = hx_open(h);

    /* Never reads the body: the queue passes the hard cap at once. */
    HX_REQUIRE(h, c && hx_send_str(c, "GET /flood HTTP/1.1\r\n\r\n"), "send");
    HX_CHECK(h, hx_closed(c), "flooded connection not closed");
    hx_close(c);
}

static void test_write_hard_cap(void **state)
{
    struct hx h;

    hx_init(&h, on_request, on_head);
    h.limits.v[CH_LIMIT_WRITE_QUEUE_HARD_BYTES] = 64 * 1024;
    hx_run(&h, client_flood);
    assert_int_equal(h.flood_rc, CH_E_TOO_LARGE);
    /* Head plus three chunks fit in 64 KiB; the fourth does not. */
    assert_int_equal(h.flood_writes, 4);
}

static void client_slow_reader(struct hx *h)
{
    struct hx_conn *c = ch_calloc(1, sizeof(*c));
    struct sockaddr_in sa;
    int small = 4096;
    uint64_t t0 = hx_now_ms();

    /* A tiny receive window, and no reads: output piles up server-side. */
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)h->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    HX_REQUIRE(h, connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
    HX_REQUIRE(h, hx_send_str(c, "GET /pump HTTP/1.1\r\n\r\n"), "send");
    usleep(2500 * 1000);
    HX_CHECK(h, hx_now_ms() - t0 < 4000, "slow");
    hx_close(c);
}

static void test_write_soft_cap(void **state)
{
    struct hx h;

    hx_init(&h, on_request, on_head);
    h.limits.v[CH_LIMIT_WRITE_QUEUE_SOFT_BYTES] = 64 * 1024;
    h.limits.v[CH_LIMIT_WRITE_QUEUE_SOFT_MS] = 100;
    h.limits.v[CH_LIMIT_WRITE_QUEUE_HARD_BYTES] = 512 * 1024 * 1024;
    hx_run(&h, client_slow_reader);
    /* Dropped by the tick for staying over the soft cap: the next write
     * finds the connection closed, long before the hard cap. */
    assert_int_equal(h.flood_rc, CH_ECLOSED);
    assert_true(h.flood_writes < 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_write_hard_cap),
        cmocka_unit_test(test_write_soft_cap),
    };
    ch_alloc_install();
    ch_log_setup(CH_LOG_WARN, CH_LOG_TEXT);
    hx_warm_up();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
