/*
 * test_ws_limits.c: the WebSocket layer's limits on a real loop and a real
 * http server (ws_harness.h): the message cap before and after it is
 * raised (1009 with the configured reason, across fragments, on a header
 * that only announces a huge frame), the idle timeout (1001), a slow
 * consumer that never reads while the server sends 10 MB (1008, the
 * server's memory bounded by the queue cap, nothing accepted is lost)
 * and 200 connections echoing at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include <inttypes.h>

#include "ws_harness.h"

/* ---------------------------------------------------------------- message cap */

static void client_limits(struct hx *h)
{
    size_t n = 200001;
    char *big = ch_malloc(n + 1);
    struct hx_conn *c;

    HX_REQUIRE(h, big, "malloc");
    memset(big, 'm', n);
    big[n] = '\0';
    /* One byte over the pre-connect cap: 1009 with its reason. */
    c = ws_open(h, NULL);
    HX_REQUIRE(h, c, "open 1");
    HX_CHECK(h, ws_send(c, WS_TEXT, true, big, 65537), "65537");
    HX_CHECK(h, ws_expect_close(c, 1009, "preauth payload too large"), "1009 single");
    hx_close(c);
    /* Exactly the cap passes; fragments that add up past it do not. */
    c = ws_open(h, NULL);
    HX_REQUIRE(h, c, "open 2");
    big[65536] = '\0';
    HX_CHECK(h, ws_send_text(c, big) && ws_expect_text(c, big), "65536");
    big[65536] = 'm';
    HX_CHECK(h, ws_send(c, WS_TEXT, false, big, 30000) && ws_send(c, WS_CONT, false, big, 30000), "2 fragments");
    HX_CHECK(h, ws_send(c, WS_CONT, true, big, 30000), "third fragment");
    HX_CHECK(h, ws_expect_close(c, 1009, "preauth payload too large"), "1009 fragmented");
    hx_close(c);
    /* Raised after the protocol's handshake: 100 KB passes, one byte
     * over the new cap does not. */
    c = ws_open(h, NULL);
    HX_REQUIRE(h, c, "open 3");
    HX_CHECK(h, ws_send_text(c, "max 200000") && ws_expect_text(c, "ok"), "max");
    big[100000] = '\0';
    HX_CHECK(h, ws_send_text(c, big) && ws_expect_text(c, big), "100000");
    big[100000] = 'm';
    HX_CHECK(h, ws_send(c, WS_TEXT, true, big, n), "200001");
    HX_CHECK(h, ws_expect_close(c, 1009, "preauth payload too large"), "1009 raised");
    hx_close(c);
    /* A header announcing 2^40 bytes is refused at its first payload
     * byte (wslay reports a frame once payload arrives), nothing stored. */
    c = ws_open(h, NULL);
    HX_REQUIRE(h, c, "open 4");
    HX_CHECK(h, hx_send(c, "\x81\xff\x00\x00\x01\x00\x00\x00\x00\x00\x01\x02\x03\x04\x55", 15), "huge header");
    HX_CHECK(h, ws_expect_close(c, 1009, "preauth payload too large"), "1009 announced");
    hx_close(c);
    ch_free(big);
}

static void test_limits(void **state)
{
    struct wt w;
    struct ch_ws_stats st;

    wt_init(&w);
    w.o.max_message_bytes = 64 * 1024;
    w.too_big_reason = "preauth payload too large";
    wt_run(&w, client_limits);
    assert_int_equal(w.opens, 4);
    assert_int_equal(w.last_code, 1009);
    assert_string_equal(w.last_reason, "preauth payload too large");
    ch_ws_stats_get(&st);
    assert_int_equal(st.closed_too_big - w.st0.closed_too_big, 4);
}

/* ---------------------------------------------------------------- idle */

static void client_idle(struct hx *h)
{
    struct hx_conn *c = ws_open(h, NULL);
    uint64_t t0;

    HX_REQUIRE(h, c, "open");
    /* Activity at 200 ms pushes the 300 ms deadline out. */
    usleep(200 * 1000);
    HX_CHECK(h, ws_send_text(c, "still here") && ws_expect_text(c, "still here"), "echo");
    t0 = hx_now_ms();
    HX_CHECK(h, ws_expect_close(c, 1001, "idle timeout"), "idle close");
    HX_CHECK(h, hx_now_ms() - t0 >= 250 && hx_now_ms() - t0 < 2000, "closed after %" PRIu64 " ms", hx_now_ms() - t0);
    hx_close(c);
}

static void test_idle(void **state)
{
    struct wt w;

    wt_init(&w);
    w.o.idle_timeout_ms = 300;
    wt_run(&w, client_idle);
    assert_int_equal(w.last_code, 1001);
}

/* ---------------------------------------------------------------- slow consumer */

/* A client socket with a small receive buffer, set before connect so the
 * window stays small: the kernel absorbs little of the flood. */
static struct hx_conn *open_small_window(struct hx *h)
{
    struct hx_conn *c = ch_calloc(1, sizeof(*c));
    struct sockaddr_in sa;
    struct timeval tv = {5, 0};
    int small = 8192;

    if (!c)
        return NULL;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)h->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        hx_close(c);
        return NULL;
    }
    return c;
}

static void client_slow(struct hx *h)
{
    struct wt *w = (struct wt *)h;
    struct hx_conn *c = open_small_window(h);
    struct wframe f;
    char req[512];
    size_t got = 0;
    int frames = 0;

    HX_REQUIRE(h, c, "connect");
    snprintf(req, sizeof(req), "GET /ws HTTP/1.1\r\n" UPG KEY V13 "\r\n");
    HX_REQUIRE(h, hx_send_str(c, req) && ws_upgraded(c), "handshake");
    HX_REQUIRE(h, ws_send_text(c, "flood"), "flood");
    /* Do not read until the server gave up (or sent it all). */
    for (int i = 0; i < 3000 && !atomic_load(&w->flood_done); i++)
        usleep(10 * 1000);
    HX_REQUIRE(h, atomic_load(&w->flood_done), "the flood never stopped");
    /* Everything accepted before the cap arrives, then the 1008. */
    for (;;) {
        HX_REQUIRE(h, ws_read(c, &f, FLOOD_MSG), "frame %d after %zu bytes", frames, got);
        if (f.op != WS_TEXT) {
            HX_CHECK(h,
                     f.op == WS_CLOSE && f.code == 1008 && f.data.len == 15 &&
                         memcmp(f.data.data + 2, "slow consumer", 13) == 0,
                     "op %d code %u", f.op, f.code);
            wframe_free(&f);
            break;
        }
        got += f.data.len;
        frames++;
        wframe_free(&f);
    }
    HX_CHECK(h, got == w->flood_sent, "received %zu of %zu accepted bytes", got, w->flood_sent);
    HX_CHECK(h, got < FLOOD_TOTAL, "all 10 MB went through");
    ws_send_close(c, 1008, NULL);
    HX_CHECK(h, hx_closed(c), "eof");
    hx_close(c);
}

static void test_slow_consumer(void **state)
{
    struct wt w;
    struct ch_ws_stats st;
    size_t cap = 512 * 1024;

    wt_init(&w);
    w.o.max_queued_bytes = cap;
    wt_run(&w, client_slow);
    assert_int_equal(w.flood_rc, CH_E_TOO_LARGE);
    assert_int_equal(w.last_code, 1008);
    assert_string_equal(w.last_reason, "slow consumer");
    ch_ws_stats_get(&st);
    assert_int_equal(st.closed_slow - w.st0.closed_slow, 1);
    /*
     * The queue never held more than the cap; what the heap grew by is
     * that queue plus the slack of its buffers: http's output buffer
     * (doubling, so up to twice what it holds) and the buffer in flight.
     */
    print_message("flood: %zu bytes accepted, heap peak +%zu bytes (cap %zu)\n", w.flood_sent, w.mem_peak - w.mem_base,
                  cap);
    assert_true(w.mem_peak - w.mem_base < 3 * cap + 64 * 1024);
}

/* ---------------------------------------------------------------- many */

#define MANY 200

static void client_many(struct hx *h)
{
    struct hx_conn **c = ch_calloc(MANY, sizeof(*c));
    char msg[64];
    int i;

    HX_REQUIRE(h, c, "calloc");
    for (i = 0; i < MANY; i++) {
        c[i] = ws_handshake(h, NULL);
        HX_REQUIRE(h, c[i], "handshake %d", i);
    }
    for (i = 0; i < MANY; i++)
        HX_REQUIRE(h, ws_upgraded(c[i]), "upgrade %d", i);
    /* All open at once: send on every one, then read every echo. */
    for (i = 0; i < MANY; i++) {
        snprintf(msg, sizeof(msg), "message %d", i);
        if (i % 2)
            HX_CHECK(h, ws_send(c[i], WS_TEXT, false, msg, 4) && ws_send(c[i], WS_CONT, true, msg + 4, strlen(msg) - 4),
                     "send %d", i);
        else
            HX_CHECK(h, ws_send_text(c[i], msg), "send %d", i);
    }
    for (i = 0; i < MANY; i++) {
        snprintf(msg, sizeof(msg), "message %d", i);
        HX_CHECK(h, ws_expect_text(c[i], msg), "echo %d", i);
    }
    /* Plain HTTP on the same port is still served meanwhile. */
    HX_CHECK(h, hx_once(h, "GET /plain HTTP/1.1\r\n\r\n", NULL) == 200, "plain with %d open", MANY);
    for (i = 0; i < MANY; i++) {
        HX_CHECK(h, ws_bye(c[i], 1000, "done"), "bye %d", i);
        hx_close(c[i]);
    }
    ch_free(c);
}

static void test_many(void **state)
{
    struct wt w;

    wt_init(&w);
    wt_run(&w, client_many);
    assert_int_equal(w.opens, MANY);
    assert_int_equal(w.closes, MANY);
    assert_int_equal(w.last_code, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_idle),
        cmocka_unit_test(test_slow_consumer),
        cmocka_unit_test(test_many),
    };
    char accept[29];

    ch_alloc_install();
    ch_log_setup(CH_LOG_WARN, CH_LOG_TEXT);
    hx_warm_up();
    ch_ws_accept_key(WS_KEY, strlen(WS_KEY), accept);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
