/*
 * test_ws.c: the WebSocket layer on a real loop, behind a real http
 * server on 127.0.0.1 port 0, against a raw-socket client thread
 * (ws_client.h): the handshake and its refusals, echo (fragmented, byte
 * by byte, behind the head), ping/pong, malformed frames and their close
 * codes, the message caps, both close directions, the idle timeout, a
 * slow consumer whose memory stays bounded, and 200 connections at once.
 * Every test ends with uv_loop_close()==0 and the heap where it started.
 * The only route is this file's: on_request accepts and echoes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include <inttypes.h>

#include "ws_harness.h"

/* ---------------------------------------------------------------- handshake */

static int status_of(struct hx *h, const char *req, const char *want_body, const char *want_header)
{
    struct hx_resp r;
    char v[64];
    int st = hx_once(h, req, &r);

    if (st < 0)
        return st;
    if (want_body && !strstr(r.body, want_body))
        st = -2;
    if (want_header && (!hx_header(&r, want_header, v, sizeof(v)) || strcmp(v, "13") != 0))
        st = -3;
    hx_resp_free(&r);
    return st;
}

static void client_handshake(struct hx *h)
{
    struct hx_conn *c;

    /* The RFC's sample key gets the RFC's accept value (ws_upgraded). */
    c = ws_open(h, NULL);
    HX_REQUIRE(h, c, "handshake");
    HX_CHECK(h, ws_send_text(c, "info") && ws_expect_text(c, "127.0.0.1 1 1"), "info");
    HX_CHECK(h, ws_bye(c, 1000, ""), "bye");
    hx_close(c);
    HX_CHECK(h, status_of(h, "GET /ws HTTP/1.1\r\n" UPG V13 "\r\n", "\"error\":\"bad_request\"", NULL) == 400,
             "no key");
    HX_CHECK(h, status_of(h, "GET /ws HTTP/1.1\r\n" UPG V13 "Sec-WebSocket-Key: c2hvcnQ=\r\n\r\n", NULL, NULL) == 400,
             "short key");
    HX_CHECK(h,
             status_of(h, "GET /ws HTTP/1.1\r\n" UPG V13 "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n\r\n", NULL,
                       NULL) == 400,
             "junk key");
    HX_CHECK(h,
             status_of(h, "GET /ws HTTP/1.1\r\n" UPG KEY "Sec-WebSocket-Version: 8\r\n\r\n", "upgrade_required",
                       "sec-websocket-version") == 426,
             "version 8");
    HX_CHECK(h, status_of(h, "GET /ws HTTP/1.1\r\n" UPG KEY "\r\n", NULL, "sec-websocket-version") == 426,
             "no version");
    HX_CHECK(h, status_of(h, "POST /ws HTTP/1.1\r\n" UPG KEY V13 "Content-Length: 0\r\n\r\n", NULL, NULL) == 400,
             "POST");
    HX_CHECK(h, status_of(h, "GET /ws HTTP/1.0\r\n" UPG KEY V13 "\r\n", NULL, NULL) == 400, "HTTP/1.0");
    HX_CHECK(h, status_of(h, "GET /ws HTTP/1.1\r\n" KEY V13 "\r\n", NULL, NULL) == 400, "no upgrade");
    HX_CHECK(h,
             status_of(h, "GET /ws HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n" KEY V13 "\r\n", NULL, NULL) ==
                 400,
             "upgrade h2c");
    /* Origin: a browser from elsewhere is refused, a listed one (any
     * case) and a client that sends none are accepted. */
    HX_CHECK(h,
             status_of(h, "GET /ws HTTP/1.1\r\n" UPG KEY V13 "Origin: https://evil.example\r\n\r\n",
                       "\"error\":\"forbidden\"", NULL) == 403,
             "evil origin");
    HX_CHECK(h, status_of(h, "GET /ws HTTP/1.1\r\n" UPG KEY V13 "Origin: null\r\n\r\n", NULL, NULL) == 403,
             "null origin");
    c = ws_open(h, "Origin: https://APP.example\r\n");
    HX_REQUIRE(h, c, "listed origin");
    HX_CHECK(h, ws_bye(c, 1000, "x"), "bye 2");
    hx_close(c);
    /* Plain HTTP on the same server still works. */
    HX_CHECK(h, hx_once(h, "GET /plain HTTP/1.1\r\n\r\n", NULL) == 200, "plain");
}

static void test_handshake(void **state)
{
    struct wt w;
    struct ch_ws_stats st;

    wt_init(&w);
    w.origins[0] = "https://app.example/";
    w.o.allowed_origins = w.origins;
    w.o.require_origin_match = true;
    wt_run(&w, client_handshake);
    assert_int_equal(w.opens, 2);
    assert_true(w.last_loopback);
    assert_int_equal(w.accept_rc, CH_EPERM);
    ch_ws_stats_get(&st);
    assert_int_equal(st.refused - w.st0.refused, 11);
    assert_int_equal(st.total - w.st0.total, 2);
}

static void client_misconfigured(struct hx *h)
{
    HX_CHECK(h, status_of(h, "GET /ws HTTP/1.1\r\n" UPG KEY V13 "\r\n", "internal_error", NULL) == 500, "no loop");
}

/* No loop in the options: a 500, never a half-made connection. */
static void test_misconfigured(void **state)
{
    struct wt w;

    wt_init(&w);
    w.o.loop = NULL;
    wt_run(&w, client_misconfigured);
    assert_int_equal(w.accept_rc, CH_EINVAL);
    assert_int_equal(w.opens, 0);
}

/* ---------------------------------------------------------------- allocation failure */

static void client_alloc_failure(struct hx *h)
{
    struct wt *w = (struct wt *)h;
    int s503 = 0, s500 = 0, s101 = 0, last = 0;

    /* Fail the 1st, 2nd, ... 24th allocation inside an accept: SHA-1
     * (OpenSSL's memory) gives 500, the connection's own allocations
     * 503, later ones nothing; never a crash, never a leak (the heap
     * check at the end).  It found OpenSSL's error queue keeping an
     * entry per failure (handshake.c clears it now). */
    for (long n = 1; n <= 24; n++) {
        struct hx_conn *c;
        struct hx_resp r;

        atomic_store(&w->fail_n, n); /* before the request: armed in on_request */
        c = ws_handshake(h, NULL);
        HX_REQUIRE(h, c, "connect %ld", n);
        last = hx_read(c, &r, true) == 0 ? r.status : -1;
        if (last > 0)
            hx_resp_free(&r);
        atomic_store(&w->fail_n, 0);
        HX_CHECK(h, last == 101 || last == 500 || last == 503, "fail %ld: status %d", n, last);
        s101 += last == 101;
        s500 += last == 500;
        s503 += last == 503;
        if (last == 101)
            HX_CHECK(h, ws_send_text(c, "hi") && ws_expect_text(c, "hi") && ws_bye(c, 1000, ""), "echo after %ld", n);
        hx_close(c);
    }
    HX_CHECK(h, s500 > 0 && s503 > 0 && s101 > 0 && last == 101, "500: %d, 503: %d, 101: %d", s500, s503, s101);
}

static void test_alloc_failure(void **state)
{
    struct wt w;

    wt_init(&w);
    wt_run(&w, client_alloc_failure);
    assert_true(w.opens > 10);
}

/* ---------------------------------------------------------------- echo */

static void client_echo(struct hx *h)
{
    struct hx_conn *c;
    struct wframe f;
    char *big = ch_malloc(70000);
    char req[600];

    HX_REQUIRE(h, big, "malloc");
    memset(big, 'b', 70000);
    big[69999] = '\0';
    c = ws_open(h, NULL);
    HX_REQUIRE(h, c, "open");
    HX_CHECK(h, ws_send_text(c, "hello") && ws_expect_text(c, "hello"), "echo");
    HX_CHECK(h, ws_send(c, WS_TEXT, true, "", 0) && ws_expect_text(c, ""), "empty");
    /* 7-bit, 16-bit and 64-bit length forms, both ways. */
    big[125] = '\0';
    HX_CHECK(h, ws_send_text(c, big) && ws_expect_text(c, big), "125");
    big[125] = 'b';
    big[126] = '\0';
    HX_CHECK(h, ws_send_text(c, big) && ws_expect_text(c, big), "126");
    big[126] = 'b';
    HX_CHECK(h, ws_send_text(c, big) && ws_expect_text(c, big), "69999");
    /* Fragmented, with a ping between the fragments and a UTF-8
     * character (U+00E9) split across two of them. */
    HX_CHECK(h, ws_send(c, WS_TEXT, false, "caf\xc3", 4), "frag 1");
    HX_CHECK(h, ws_send(c, WS_PING, true, "mid", 3), "ping between");
    HX_CHECK(h, ws_send(c, WS_CONT, false, "\xa9 ", 2) && ws_send(c, WS_CONT, true, "au lait", 7), "frag 2-3");
    HX_CHECK(h, ws_read(c, &f, 125) && f.op == WS_PONG && f.data.len == 3 && memcmp(f.data.data, "mid", 3) == 0,
             "pong between fragments");
    wframe_free(&f);
    HX_CHECK(h, ws_expect_text(c, "caf\xc3\xa9 au lait"), "fragmented echo");
    /* One message written a byte at a time, another 7 bytes at a time:
     * the frame parser resumes at every possible split. */
    big[300] = '\0';
    HX_CHECK(h, ws_send_raw(c, 0x81, true, big, 300, 1) && ws_expect_text(c, big), "byte by byte");
    big[300] = 'b';
    big[5000] = '\0';
    HX_CHECK(h, ws_send_raw(c, 0x81, true, big, 5000, 7) && ws_expect_text(c, big), "7 at a time");
    /* Several frames in one write. */
    HX_CHECK(h, hx_send_str(c, "") && ws_send_text(c, "one") && ws_send_text(c, "two"), "two frames");
    HX_CHECK(h, ws_expect_text(c, "one") && ws_expect_text(c, "two"), "two echoes");
    HX_CHECK(h, ws_bye(c, 1000, "done"), "bye");
    hx_close(c);
    /* A frame right behind the handshake head, in the same write. */
    c = hx_open(h);
    HX_REQUIRE(h, c, "open 2");
    snprintf(req, sizeof(req), "GET /ws HTTP/1.1\r\n" UPG KEY V13 "\r\n");
    HX_REQUIRE(h, hx_send_str(c, req) && ws_send_text(c, "early"), "head + frame");
    HX_CHECK(h, ws_upgraded(c) && ws_expect_text(c, "early"), "early echo");
    HX_CHECK(h, ws_bye(c, 1000, ""), "bye 2");
    hx_close(c);
    ch_free(big);
}

static void test_echo(void **state)
{
    struct wt w;
    struct ch_ws_stats st;

    wt_init(&w);
    wt_run(&w, client_echo);
    assert_int_equal(w.opens, 2);
    assert_int_equal(w.last_code, 1000);
    ch_ws_stats_get(&st);
    assert_int_equal(st.messages_in - w.st0.messages_in, 11);
    assert_int_equal(st.messages_out - w.st0.messages_out, 11);
}

/* ---------------------------------------------------------------- ping */

static void client_ping(struct hx *h)
{
    struct hx_conn *c = ws_open(h, NULL);
    struct wframe f;

    HX_REQUIRE(h, c, "open");
    /* Ours answered by wslay with the same payload. */
    HX_CHECK(h, ws_send(c, WS_PING, true, "abc", 3), "ping");
    HX_CHECK(h, ws_read(c, &f, 125) && f.op == WS_PONG && f.data.len == 3 && memcmp(f.data.data, "abc", 3) == 0,
             "pong");
    wframe_free(&f);
    /* The server's own ping; the pong it gets is recorded. */
    HX_CHECK(h, ws_send_text(c, "pongs") && ws_expect_text(c, "no-pong"), "no pong yet");
    HX_CHECK(h, ws_send_text(c, "ping"), "ask ping");
    HX_CHECK(h, ws_read(c, &f, 125) && f.op == WS_PING && f.data.len == 0, "server ping");
    wframe_free(&f);
    HX_CHECK(h, ws_send(c, WS_PONG, true, NULL, 0), "pong back");
    HX_CHECK(h, ws_send_text(c, "pongs") && ws_expect_text(c, "pong-seen"), "pong seen");
    /* An unsolicited pong is fine too. */
    HX_CHECK(h, ws_send(c, WS_PONG, true, "x", 1) && ws_send_text(c, "still") && ws_expect_text(c, "still"), "pong");
    HX_CHECK(h, ws_bye(c, 1000, ""), "bye");
    hx_close(c);
}

static void test_ping(void **state)
{
    struct wt w;

    wt_init(&w);
    wt_run(&w, client_ping);
    assert_int_equal(w.opens, 1);
}

/* ---------------------------------------------------------------- malformed */

struct bad_frame {
    const char *name;
    uint8_t b0;
    bool masked;
    const char *payload;
    size_t len;
    const char *before; /* a frame to send first (a fragment), or NULL */
    uint16_t code;
    const char *reason;
};

static const struct bad_frame bad_frames[] = {
    {"binary", 0x82, true, "\x01\x02", 2, NULL, 1003, "binary messages are not supported"},
    {"binary fragment", 0x02, true, "\x01", 1, NULL, 1003, "binary messages are not supported"},
    {"invalid utf-8", 0x81, true, "\xc3\x28", 2, NULL, 1007, ""},
    {"overlong utf-8", 0x81, true, "\xc0\xaf", 2, NULL, 1007, ""},
    {"truncated utf-8", 0x81, true, "ab\xe2\x82", 4, NULL, 1007, ""},
    {"surrogate", 0x81, true, "\xed\xa0\x80", 3, NULL, 1007, ""},
    {"unmasked", 0x81, false, "hi", 2, NULL, 1002, ""},
    {"rsv1", 0xc1, true, "hi", 2, NULL, 1002, ""},
    {"rsv3", 0x91, true, "hi", 2, NULL, 1002, ""},
    {"opcode 3", 0x83, true, "hi", 2, NULL, 1002, ""},
    {"opcode 11", 0x8b, true, "", 0, NULL, 1002, ""},
    {"continuation first", 0x80, true, "hi", 2, NULL, 1002, ""},
    {"text inside a message", 0x81, true, "b", 1, "a", 1002, ""},
    {"fragmented ping", 0x09, true, "p", 1, NULL, 1002, ""},
    {"ping over 125", 0x89, true, NULL, 126, NULL, 1002, ""},
    {"close code 1005", 0x88, true, "\x03\xed", 2, NULL, 1002, ""},
    {"close code 999", 0x88, true, "\x03\xe7", 2, NULL, 1002, ""},
    {"close reason not utf-8", 0x88, true, "\x03\xe8\xff", 3, NULL, 1007, ""},
};

static void client_malformed(struct hx *h)
{
    static char zeros[200];

    for (size_t i = 0; i < CH_ARRAY_SIZE(bad_frames); i++) {
        const struct bad_frame *b = &bad_frames[i];
        struct hx_conn *c = ws_open(h, NULL);

        HX_REQUIRE(h, c, "open %s", b->name);
        if (b->before)
            HX_CHECK(h, ws_send(c, WS_TEXT, false, b->before, strlen(b->before)), "%s: first", b->name);
        HX_CHECK(h, ws_send_raw(c, b->b0, b->masked, b->payload ? b->payload : zeros, b->len, 0), "%s", b->name);
        HX_CHECK(h, ws_expect_close(c, b->code, b->reason), "%s: close %u", b->name, b->code);
        hx_close(c);
    }
}

static void test_malformed(void **state)
{
    struct wt w;

    wt_init(&w);
    wt_run(&w, client_malformed);
    assert_int_equal(w.opens, (int)CH_ARRAY_SIZE(bad_frames));
    assert_int_equal(w.last_code, 1007);
}

/* ---------------------------------------------------------------- close */

static void client_close(struct hx *h)
{
    struct hx_conn *c;
    struct wframe f;
    char reason[200];
    uint64_t t0;

    /* The client closes: the echo carries its code and reason. */
    c = ws_open(h, NULL);
    HX_REQUIRE(h, c, "open 1");
    HX_CHECK(h, ws_send_close(c, 4001, "bye now"), "close");
    HX_CHECK(h,
             ws_read(c, &f, 125) && f.op == WS_CLOSE && f.code == 4001 && f.data.len == 9 &&
                 memcmp(f.data.data + 2, "bye now", 7) == 0,
             "close echo");
    wframe_free(&f);
    HX_CHECK(h, hx_closed(c), "eof 1");
    hx_close(c);
    usleep(50 * 1000);
    /* The server closes, with a reason the client reads back, and
     * shuts TCP at once (FIN), not after a linger or a timeout. */
    c = ws_open(h, NULL);
    HX_REQUIRE(h, c, "open 2");
    t0 = hx_now_ms();
    HX_CHECK(h, ws_send_text(c, "close 4002 server says bye"), "ask close");
    HX_CHECK(h, ws_expect_close(c, 4002, "server says bye"), "server close");
    HX_CHECK(h, hx_now_ms() - t0 < 1000, "close took %" PRIu64 " ms", hx_now_ms() - t0);
    hx_close(c);
    usleep(50 * 1000);
    /* A reply sent just before the close arrives before it. */
    c = ws_open(h, NULL);
    HX_REQUIRE(h, c, "open 3");
    HX_CHECK(h, ws_send_text(c, "reply-close") && ws_expect_text(c, "bye"), "reply first");
    HX_CHECK(h, ws_expect_close(c, 1000, "done"), "then close");
    hx_close(c);
    /* A reason over 123 bytes is cut, at a character boundary. */
    c = ws_open(h, NULL);
    HX_REQUIRE(h, c, "open 4");
    memset(reason, 0, sizeof(reason));
    strcpy(reason, "close 1000 ");
    for (size_t i = 0; i < 61; i++)
        strcat(reason, "\xc3\xa9"); /* 122 bytes of e-acute, then one more */
    strcat(reason, "\xc3\xa9");
    HX_CHECK(h, ws_send_text(c, reason), "long reason");
    HX_CHECK(h, ws_read(c, &f, 125) && f.op == WS_CLOSE && f.code == 1000 && f.data.len == 2 + 122, "cut at 122");
    wframe_free(&f);
    hx_close(c);
    usleep(50 * 1000);
    /* A close without a code: echoed empty, reported as 1005. */
    c = ws_open(h, NULL);
    HX_REQUIRE(h, c, "open 5");
    HX_CHECK(h, ws_send(c, WS_CLOSE, true, NULL, 0), "empty close");
    HX_CHECK(h, ws_read(c, &f, 125) && f.op == WS_CLOSE && f.data.len == 0, "empty echo");
    wframe_free(&f);
    HX_CHECK(h, hx_closed(c), "eof 5");
    hx_close(c);
    usleep(50 * 1000);
    /* The TCP connection just goes away: 1006. */
    c = ws_open(h, NULL);
    HX_REQUIRE(h, c, "open 6");
    HX_CHECK(h, ws_send_text(c, "x") && ws_expect_text(c, "x"), "echo 6");
    hx_close(c);
    usleep(100 * 1000);
}

static void test_close(void **state)
{
    struct wt w;

    wt_init(&w);
    wt_run(&w, client_close);
    assert_int_equal(w.opens, 6);
    assert_int_equal(w.last_code, 1006);
    assert_string_equal(w.last_reason, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake), cmocka_unit_test(test_misconfigured), cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_echo),      cmocka_unit_test(test_ping),          cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_close),
    };
    char accept[29];

    ch_alloc_install();
    ch_log_setup(CH_LOG_WARN, CH_LOG_TEXT);
    hx_warm_up();
    /* OpenSSL loads SHA-1 on first use and keeps it: not a leak. */
    ch_ws_accept_key(WS_KEY, strlen(WS_KEY), accept);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
