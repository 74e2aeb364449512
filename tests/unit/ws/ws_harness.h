/*
 * ws_harness.h: both ends for test_ws.c and test_ws_limits.c, on top of
 * the http server harness (tests/unit/http/server_harness.h: a real
 * server on a real loop, a blocking client thread).
 *
 * Server side: on_request hands every request (but /plain) to
 * ch_ws_accept with an echo handler that also obeys a few commands
 * ("close <code> <reason>", "reply-close", "ping", "pongs", "max <n>",
 * "info", "flood"), and records opens, closes and the last close code.
 *
 * Client side: a raw-socket client that writes frames by hand (masked,
 * as RFC 6455 5.3 requires of a client, or deliberately not), in one
 * write or byte by byte, and parses what the server sends, checking that
 * server frames are never masked.
 */
#ifndef CH_TEST_WS_HARNESS_H
#define CH_TEST_WS_HARNESS_H

#include <stdatomic.h>

#include "http/server_harness.h"
#include "ws/internal.h"
#include "ws/ws.h"

/* The sample key of RFC 6455 section 1.3 and the accept value it gives. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

enum { WS_CONT = 0, WS_TEXT = 1, WS_BIN = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

struct wframe {
    int op;
    bool fin;
    struct ch_buf data; /* owned payload */
    uint16_t code;      /* close frames: the code, 0 if none */
};

static void wframe_free(struct wframe *f)
{
    ch_buf_release(&f->data);
}

/* One frame with any header bits; `piece` > 0 sends it that many bytes
 * per write, with a pause so the server gets many small reads. */
static bool ws_send_raw(struct hx_conn *c, uint8_t b0, bool masked, const void *p, size_t n, size_t piece)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    const uint8_t *src = p;
    size_t hl = 0, i;
    uint8_t *buf = ch_malloc(14 + n);
    bool ok = true;

    if (!buf)
        return false;
    buf[hl++] = b0;
    if (n < 126) {
        buf[hl++] = (uint8_t)((masked ? 0x80 : 0) | n);
    } else if (n < 65536) {
        buf[hl++] = (uint8_t)((masked ? 0x80 : 0) | 126);
        buf[hl++] = (uint8_t)(n >> 8);
        buf[hl++] = (uint8_t)n;
    } else {
        buf[hl++] = (uint8_t)((masked ? 0x80 : 0) | 127);
        for (i = 8; i-- > 0;)
            buf[hl++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    if (masked) {
        memcpy(buf + hl, key, 4);
        hl += 4;
    }
    for (i = 0; i < n; i++)
        buf[hl + i] = masked ? src[i] ^ key[i % 4] : src[i];
    if (piece == 0) {
        ok = hx_send(c, buf, hl + n);
    } else {
        for (i = 0; ok && i < hl + n; i += piece) {
            ok = hx_send(c, buf + i, CH_MIN(piece, hl + n - i));
            usleep(200);
        }
    }
    ch_free(buf);
    return ok;
}

static bool ws_send(struct hx_conn *c, int op, bool fin, const void *p, size_t n)
{
    return ws_send_raw(c, (uint8_t)((fin ? 0x80 : 0) | op), true, p, n, 0);
}

static bool ws_send_text(struct hx_conn *c, const char *s)
{
    return ws_send(c, WS_TEXT, true, s, strlen(s));
}

static bool ws_send_close(struct hx_conn *c, uint16_t code, const char *reason)
{
    char p[128];
    size_t n = reason ? strlen(reason) : 0;

    p[0] = (char)(code >> 8);
    p[1] = (char)code;
    memcpy(p + 2, reason ? reason : "", n);
    return ws_send(c, WS_CLOSE, true, p, code ? n + 2 : 0);
}

/* Read one frame of at most max payload bytes. */
static bool ws_read(struct hx_conn *c, struct wframe *f, size_t max)
{
    uint64_t len;
    size_t hl = 2, take;
    uint8_t b0, b1;

    memset(f, 0, sizeof(*f));
    ch_buf_init(&f->data, max);
    if (!hx_need(c, 2))
        return false;
    b0 = (uint8_t)c->buf[0];
    b1 = (uint8_t)c->buf[1];
    if (b1 & 0x80)
        return false; /* a server never masks */
    len = b1 & 0x7f;
    if (len >= 126) {
        hl = len == 126 ? 4 : 10;
        if (!hx_need(c, hl))
            return false;
        len = 0;
        for (size_t i = 2; i < hl; i++)
            len = len << 8 | (uint8_t)c->buf[i];
    }
    hx_consume(c, hl);
    f->op = b0 & 0x0f;
    f->fin = (b0 & 0x80) != 0;
    while (len) {
        if (c->len == 0 && hx_fill(c) <= 0)
            return false;
        take = (size_t)CH_MIN((uint64_t)c->len, len);
        if (ch_buf_append(&f->data, c->buf, take) != 0)
            return false;
        hx_consume(c, take);
        len -= take;
    }
    if (f->op == WS_CLOSE && f->data.len >= 2)
        f->code = (uint16_t)((uint8_t)f->data.data[0] << 8 | (uint8_t)f->data.data[1]);
    return true;
}

/* The next frame is text equal to want. */
static bool ws_expect_text(struct hx_conn *c, const char *want)
{
    struct wframe f;
    bool ok = ws_read(c, &f, 1 << 20) && f.op == WS_TEXT && f.fin && f.data.len == strlen(want) &&
              memcmp(f.data.data ? f.data.data : "", want, f.data.len) == 0;

    wframe_free(&f);
    return ok;
}

/* The next frame is a close with code and reason; answer it, then the
 * server must close the TCP connection. */
static bool ws_expect_close(struct hx_conn *c, uint16_t code, const char *reason)
{
    struct wframe f;
    bool ok = ws_read(c, &f, 125) && f.op == WS_CLOSE && f.code == code && f.data.len == 2 + strlen(reason) &&
              memcmp(f.data.data + 2, reason, f.data.len - 2) == 0;

    wframe_free(&f);
    if (!ok)
        return false;
    ws_send_close(c, code, NULL); /* the peer may already be gone: ignore */
    return hx_closed(c);
}

/* Open a connection and send a handshake with extra header lines. */
static struct hx_conn *ws_handshake(struct hx *h, const char *extra)
{
    struct hx_conn *c = hx_open(h);
    char req[1024];

    if (!c)
        return NULL;
    snprintf(req, sizeof(req),
             "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
             "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             extra ? extra : "");
    if (!hx_send_str(c, req)) {
        hx_close(c);
        return NULL;
    }
    return c;
}

/* Read the 101 and check the accept value; false on anything else. */
static bool ws_upgraded(struct hx_conn *c)
{
    struct hx_resp r;
    char v[64];
    bool ok;

    if (hx_read(c, &r, true) != 0)
        return false;
    ok = r.status == 101 && hx_header(&r, "sec-websocket-accept", v, sizeof(v)) && strcmp(v, WS_ACCEPT) == 0 &&
         hx_header(&r, "upgrade", v, sizeof(v)) && strcasecmp(v, "websocket") == 0;
    hx_resp_free(&r);
    return ok;
}

static struct hx_conn *ws_open(struct hx *h, const char *extra)
{
    struct hx_conn *c = ws_handshake(h, extra);

    if (c && !ws_upgraded(c)) {
        hx_close(c);
        return NULL;
    }
    return c;
}

/* Client-side close handshake: send close, expect the echo, then EOF. */
static bool ws_bye(struct hx_conn *c, uint16_t code, const char *reason)
{
    struct wframe f;
    bool ok;

    if (!ws_send_close(c, code, reason))
        return false;
    ok = ws_read(c, &f, 125) && f.op == WS_CLOSE && f.code == code;
    wframe_free(&f);
    return ok && hx_closed(c);
}

/* ---------------------------------------------------------------- server side */

#define FLOOD_MSG (64 * 1024)
#define FLOOD_TOTAL (10 * 1024 * 1024)

struct wt {
    struct hx h; /* first: the harness hands &h to on_request */
    struct ch_ws_opts o;
    const char *origins[3];
    const char *too_big_reason; /* set from on_open when not NULL */
    struct ch_ws_stats st0;
    int opens, closes, accept_rc;
    uint16_t last_code;
    char last_reason[128];
    bool last_loopback;
    /* The flood (slow consumer): a timer sends until refused. */
    uv_timer_t flood;
    struct ch_ws_conn *flood_conn;
    char *flood_msg;
    size_t flood_sent, mem_base, mem_peak;
    int flood_rc;
    atomic_int flood_done;
    atomic_long fail_n; /* > 0: the n-th allocation inside ch_ws_accept fails */
};

static void flood_stop(struct wt *w, int rc)
{
    w->flood_rc = rc;
    w->flood_conn = NULL;
    ch_free(w->flood_msg);
    w->flood_msg = NULL;
    uv_close((uv_handle_t *)&w->flood, NULL);
    atomic_store(&w->flood_done, 1);
}

static void flood_tick(uv_timer_t *t)
{
    struct wt *w = t->data;
    size_t live;
    int rc = 0;

    /* 4 x 64 KiB a millisecond: faster than the kernel drains to a
     * client that does not read, so the queue has to fill. */
    for (int i = 0; i < 4 && rc == 0 && w->flood_sent < FLOOD_TOTAL; i++) {
        rc = ch_ws_send_text(w->flood_conn, w->flood_msg, FLOOD_MSG);
        if (rc == 0)
            w->flood_sent += FLOOD_MSG;
    }
    live = ch_alloc_live_bytes();
    if (live > w->mem_peak)
        w->mem_peak = live;
    if (rc != 0 || w->flood_sent >= FLOOD_TOTAL)
        flood_stop(w, rc);
}

static void flood_start(struct wt *w, struct ch_ws_conn *c)
{
    w->flood_msg = ch_malloc(FLOOD_MSG);
    assert_non_null(w->flood_msg);
    memset(w->flood_msg, 'x', FLOOD_MSG);
    w->flood_conn = c;
    w->mem_base = w->mem_peak = ch_alloc_live_bytes();
    uv_timer_init(&w->h.loop, &w->flood);
    w->flood.data = w;
    uv_timer_start(&w->flood, flood_tick, 1, 1);
}

static void on_open(struct ch_ws_conn *c, void *data)
{
    struct wt *w = data;

    w->opens++;
    if (w->too_big_reason)
        ch_ws_set_too_big_reason(c, w->too_big_reason);
}

static void reply(struct ch_ws_conn *c, const char *s)
{
    assert_int_equal(ch_ws_send_text(c, s, strlen(s)), 0);
}

/* Commands a test client sends; anything else is echoed. */
static void on_text(struct ch_ws_conn *c, const char *p, size_t n, void *data)
{
    struct wt *w = data;
    char cmd[256], reason[128] = "";
    unsigned code, max;

    snprintf(cmd, sizeof(cmd), "%.*s", (int)CH_MIN(n, sizeof(cmd) - 1), p);
    if (sscanf(cmd, "close %u %127[^\n]", &code, reason) >= 1) {
        ch_ws_close(c, (uint16_t)code, reason);
        assert_true(ch_ws_is_closing(c));
        assert_int_equal(ch_ws_send_text(c, "late", 4), CH_ECLOSED);
    } else if (strcmp(cmd, "reply-close") == 0) {
        /* The reply must reach the peer before the close frame. */
        reply(c, "bye");
        ch_ws_close(c, CH_WS_CLOSE_NORMAL, "done");
    } else if (strcmp(cmd, "ping") == 0) {
        assert_int_equal(ch_ws_ping(c), 0);
    } else if (strcmp(cmd, "pongs") == 0) {
        reply(c, ch_ws_last_pong_ms(c) ? "pong-seen" : "no-pong");
    } else if (sscanf(cmd, "max %u", &max) == 1) {
        ch_ws_set_max_message(c, max);
        reply(c, "ok");
    } else if (strcmp(cmd, "info") == 0) {
        w->last_loopback = ch_ws_is_loopback(c);
        snprintf(cmd, sizeof(cmd), "%s %d %d", ch_ws_remote_addr(c), ch_ws_id(c) > 0, ch_ws_memory_bytes(c) > 0);
        reply(c, cmd);
    } else if (strcmp(cmd, "flood") == 0) {
        flood_start(w, c);
    } else {
        assert_int_equal(ch_ws_send_text(c, p, n), 0);
    }
}

static void on_close(struct ch_ws_conn *c, uint16_t code, const char *reason, void *data)
{
    struct wt *w = data;

    w->closes++;
    w->last_code = code;
    snprintf(w->last_reason, sizeof(w->last_reason), "%s", reason);
    assert_true(ch_ws_is_closing(c));
    if (w->flood_conn == c)
        flood_stop(w, CH_ECLOSED);
}

static const struct ch_ws_handler handler = {on_open, on_text, on_close};

static void on_request(struct ch_http_req *r, void *data)
{
    struct wt *w = data;
    struct ch_ws_conn *c;
    int rc;

    if (ch_str_eq_cstr(r->path, "/plain")) {
        ch_http_respond(r, 200, "text/plain", "ok", 2);
        return;
    }
    ch_alloc_fail_after(atomic_load(&w->fail_n));
    rc = ch_ws_accept(r, &w->o, &handler, w, &c);
    ch_alloc_fail_after(0);
    if (rc)
        w->accept_rc = rc;
    else
        assert_non_null(c);
}

static void wt_init(struct wt *w)
{
    memset(w, 0, sizeof(*w));
    hx_init(&w->h, on_request, NULL);
    w->o.max_message_bytes = 256 * 1024;
    w->o.max_queued_bytes = 1024 * 1024;
    w->o.loop = &w->h.loop;
    ch_ws_stats_get(&w->st0);
}

static void wt_run(struct wt *w, void (*client)(struct hx *h))
{
    struct ch_ws_stats st;

    hx_run(&w->h, client);
    ch_ws_stats_get(&st);
    assert_int_equal(st.open, 0);
    assert_int_equal(st.memory_bytes, 0);
    assert_int_equal(w->opens, w->closes);
}

#define UPG "Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define KEY "Sec-WebSocket-Key: " WS_KEY "\r\n"
#define V13 "Sec-WebSocket-Version: 13\r\n"

#endif
