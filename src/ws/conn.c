/*
 * conn.c: a WebSocket connection on top of an upgraded http connection
 * (RFC 6455; the seam is ch_http_upgrade).  OPEN: the pump reads while
 * wslay wants to and writes into the http queue at once.  CLOSING: a
 * close frame is queued (ours, the peer's echo, or wslay's for a
 * protocol error); once wslay neither reads nor writes, the transport is
 * closed (flush, FIN, linger: http does it).  GONE: http reported the
 * close; the handler's on_close runs once, outside every ch_ws_* call
 * (redis callHandler: a depth count defers it), then the timer is closed
 * and the struct freed in its close callback (libuv handle.rst).
 * Backpressure: ws + http output is capped at max_queued_bytes (1008).
 */
#include <inttypes.h>
#include <string.h>

#include "ws/internal.h"

/* Per process and loop thread only, like the handler callbacks. */
static struct ch_ws_stats stats;

static void on_timer(uv_timer_t *t);

static void on_timer_closed(uv_handle_t *h)
{
    ch_free(h->data);
}

static void count_memory(struct ch_ws_conn *c)
{
    size_t m = c->finished ? 0 : ch_ws_memory_bytes(c);

    stats.memory_bytes = stats.memory_bytes - c->mem_counted + m;
    c->mem_counted = m;
}

/* Report the close and free: the only place that ends a connection. */
static void conn_finish(struct ch_ws_conn *c)
{
    struct ch_ws_pump *p = &c->pump;
    uint16_t code = p->close_code ? p->close_code : 1006; /* 1006: no close frame either way */

    c->finished = true;
    count_memory(c);
    stats.open--;
    if (code == CH_WS_CLOSE_TOO_BIG)
        stats.closed_too_big++;
    ch_log_debug("ws conn %" PRIu64 " %s: closed %u %s", c->id, c->remote_addr, code, p->close_reason);
    if (c->h.on_close)
        c->h.on_close(c, code, p->close_code ? p->close_reason : "", c->data);
    ch_ws_pump_release(p);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void conn_enter(struct ch_ws_conn *c)
{
    c->depth++;
}

/*
 * Leave a ws frame.  When http closed underneath (gone) and this was the
 * outermost frame, finish: now when called from a loop callback, from the
 * timer when the outermost frame is a ch_ws_* call made by the owner, so
 * on_close never runs inside one.  c may be freed on return.
 */
static void conn_leave(struct ch_ws_conn *c, bool from_loop)
{
    if (--c->depth > 0 || !c->gone || c->finished)
        return;
    if (from_loop)
        conn_finish(c);
    else
        uv_timer_start(&c->timer, on_timer, 0, 0);
}

size_t ch_ws_queued_bytes(const struct ch_ws_conn *c)
{
    size_t q = c->finished ? 0 : ch_ws_pump_queued_bytes(&c->pump);

    return q + (c->http ? ch_http_conn_queued_bytes(c->http) : 0);
}

static void slow_consumer(struct ch_ws_conn *c, size_t want)
{
    ch_log_info("ws conn %" PRIu64 " %s: %zu bytes queued, %zu more would pass %zu; closing (slow consumer)", c->id,
                c->remote_addr, ch_ws_queued_bytes(c), want, c->max_queued_bytes);
    stats.closed_slow++;
    ch_ws_pump_close(&c->pump, CH_WS_CLOSE_POLICY, "slow consumer");
}

/* After every pump step: enforce the queue cap (pongs count too), close
 * the transport once wslay is done, else read only while wslay wants. */
static void conn_settle(struct ch_ws_conn *c)
{
    if (!c->gone && !c->transport_closing) {
        if (!c->pump.closing && ch_ws_queued_bytes(c) > c->max_queued_bytes)
            slow_consumer(c, 0);
        if (ch_ws_pump_is_done(&c->pump)) {
            c->transport_closing = true;
            uv_timer_stop(&c->timer); /* http bounds the flush and the linger */
            ch_http_conn_close(c->http);
        } else {
            ch_http_conn_read(c->http, ch_ws_pump_want_read(&c->pump));
        }
    }
    if (!c->finished)
        count_memory(c);
}

/* ---------------------------------------------------------------- pump ops */

static int conn_write(void *data, const void *p, size_t n)
{
    struct ch_ws_conn *c = data;

    /* CH_E_TOO_LARGE means http dropped the connection (its hard cap):
     * on_http_close has run and c->http is NULL now. */
    return c->http ? ch_http_conn_write(c->http, p, n) : CH_ECLOSED;
}

static void conn_on_text(void *data, const char *p, size_t n)
{
    struct ch_ws_conn *c = data;

    stats.messages_in++;
    c->h.on_text(c, p, n, c->data);
}

static void conn_on_pong(void *data)
{
    struct ch_ws_conn *c = data;

    c->last_pong_ms = uv_now(c->loop);
}

/* ---------------------------------------------------------------- http ops */

static void on_http_read(struct ch_http_conn *hc, const char *p, size_t n, void *data)
{
    struct ch_ws_conn *c = data;

    if (c->gone || c->transport_closing)
        return;
    /* Idle time is measured lazily: the timer compares on expiry. */
    c->last_rx_ms = uv_now(c->loop);
    conn_enter(c);
    ch_ws_pump_feed(&c->pump, p, n);
    conn_settle(c);
    conn_leave(c, true);
}

static void on_http_close(struct ch_http_conn *hc, void *data)
{
    struct ch_ws_conn *c = data;

    /* http frees hc after this returns: forget it now. */
    c->http = NULL;
    c->gone = true;
    if (c->depth == 0)
        conn_finish(c);
}

static void on_timer(uv_timer_t *t)
{
    struct ch_ws_conn *c = t->data;
    uint64_t now, idle;

    if (c->gone) {
        if (!c->finished && c->depth == 0)
            conn_finish(c); /* deferred from a ch_ws_* call */
        return;
    }
    if (c->transport_closing || c->pump.closing || c->idle_timeout_ms == 0)
        return;
    now = uv_now(c->loop);
    idle = now - c->last_rx_ms;
    if (idle < c->idle_timeout_ms) {
        /* Bytes came since it was armed: one timer move per timeout
         * period instead of one per frame. */
        uv_timer_start(&c->timer, on_timer, c->idle_timeout_ms - idle, 0);
        return;
    }
    ch_log_info("ws conn %" PRIu64 " %s: nothing received for %" PRIu64 " ms; closing", c->id, c->remote_addr, idle);
    conn_enter(c);
    ch_ws_pump_close(&c->pump, CH_WS_CLOSE_GOING_AWAY, "idle timeout");
    conn_settle(c);
    conn_leave(c, true);
}

/* ---------------------------------------------------------------- accept */

/* The connection's fields once http has handed the socket over. */
static void conn_start(struct ch_ws_conn *c, struct ch_http_req *r, const struct ch_ws_opts *o,
                       const struct ch_ws_handler *h, void *data)
{
    c->http = r->conn;
    c->h = *h;
    c->data = data;
    c->loop = o->loop;
    c->id = r->conn_id;
    c->idle_timeout_ms = o->idle_timeout_ms;
    c->max_queued_bytes = o->max_queued_bytes ? o->max_queued_bytes : CH_WS_DEFAULT_MAX_QUEUED_BYTES;
    c->last_rx_ms = uv_now(c->loop);
    c->loopback = ch_net_sockaddr_is_loopback((const struct sockaddr *)&r->peer);
    memcpy(c->remote_addr, r->remote_addr, sizeof(c->remote_addr));
    c->remote_addr[sizeof(c->remote_addr) - 1] = '\0';
    uv_timer_init(c->loop, &c->timer);
    c->timer.data = c;
    if (c->idle_timeout_ms)
        uv_timer_start(&c->timer, on_timer, c->idle_timeout_ms, 0);
    stats.open++;
    stats.total++;
    ch_log_debug("ws conn %" PRIu64 " %s: open", c->id, c->remote_addr);
}

int ch_ws_accept(struct ch_http_req *r, const struct ch_ws_opts *o, const struct ch_ws_handler *h, void *data,
                 struct ch_ws_conn **out)
{
    static const struct ch_http_upgrade_ops up_ops = {on_http_read, on_http_close};
    static const struct ch_ws_pump_ops pump_ops = {conn_write, conn_on_text, conn_on_pong};
    struct ch_ws_verdict v;
    struct ch_ws_conn *c = NULL;
    int rc = CH_EINVAL;

    if (!o || !o->loop || !h || !h->on_text) {
        ch_log_error("ws conn %" PRIu64 ": ch_ws_accept needs opts with a loop and an on_text handler", r->conn_id);
        ch_http_respond_error(r, 500, "internal_error", "the WebSocket endpoint is misconfigured");
        goto out;
    }
    rc = ch_ws_handshake_check(r, o, &v);
    if (rc) {
        stats.refused++;
        ch_log_info("ws conn %" PRIu64 " %s: handshake refused: %d %s", r->conn_id, r->remote_addr, v.status, v.msg);
        if (v.status == 426)
            ch_http_add_header(r, "Sec-WebSocket-Version", "13");
        ch_http_respond_error(r, v.status, v.code, "%s", v.msg);
        goto out;
    }
    rc = CH_ENOMEM;
    c = ch_calloc(1, sizeof(*c));
    if (c)
        rc = ch_ws_pump_init(&c->pump, o->max_message_bytes ? o->max_message_bytes : CH_WS_DEFAULT_MAX_MESSAGE_BYTES,
                             &pump_ops, c);
    if (rc == 0)
        rc = ch_http_add_header(r, "Sec-WebSocket-Accept", v.accept);
    if (rc == 0)
        rc = ch_http_upgrade(r, "websocket", &up_ops, c);
    if (rc) {
        ch_log_error("ws conn %" PRIu64 " %s: cannot start: %s", r->conn_id, r->remote_addr, ch_strerror(rc));
        if (rc == CH_ENOMEM)
            ch_http_respond_error(r, 503, "overloaded", "no memory for the WebSocket connection");
        else
            ch_http_respond_error(r, 500, "internal_error", "the WebSocket connection could not start");
        if (c)
            ch_ws_pump_release(&c->pump);
        ch_free(c);
        c = NULL;
        goto out;
    }
    conn_start(c, r, o, h, data);
    /* on_open may send or close; a close it causes is reported later. */
    conn_enter(c);
    if (c->h.on_open)
        c->h.on_open(c, c->data);
    conn_settle(c);
    conn_leave(c, false);
out:
    *out = c;
    return rc;
}

/* ---------------------------------------------------------------- owner calls */

static bool conn_is_open(const struct ch_ws_conn *c)
{
    return c->http && !c->transport_closing && !c->pump.closing && !c->pump.failed;
}

/* Room for n more payload bytes (plus a frame header) under the cap? */
static bool conn_has_room(const struct ch_ws_conn *c, size_t n)
{
    size_t q = ch_ws_queued_bytes(c);

    return n <= c->max_queued_bytes && q <= c->max_queued_bytes - n &&
           c->max_queued_bytes - n - q >= CH_WS_MAX_HEADER_BYTES;
}

int ch_ws_send_text(struct ch_ws_conn *c, const char *p, size_t n)
{
    int rc;

    if (!conn_is_open(c))
        return CH_ECLOSED;
    conn_enter(c);
    if (!conn_has_room(c, n)) {
        slow_consumer(c, n);
        rc = CH_E_TOO_LARGE;
    } else {
        rc = ch_ws_pump_send_text(&c->pump, p, n);
        if (rc == 0)
            stats.messages_out++;
        else if (rc == CH_ENOMEM)
            ch_ws_pump_close(&c->pump, CH_WS_CLOSE_INTERNAL, "out of memory");
    }
    conn_settle(c);
    conn_leave(c, false);
    return rc;
}

int ch_ws_ping(struct ch_ws_conn *c)
{
    int rc;

    if (!conn_is_open(c))
        return CH_ECLOSED;
    conn_enter(c);
    if (!conn_has_room(c, 0)) {
        slow_consumer(c, CH_WS_MAX_HEADER_BYTES);
        rc = CH_E_TOO_LARGE;
    } else {
        rc = ch_ws_pump_ping(&c->pump);
    }
    conn_settle(c);
    conn_leave(c, false);
    return rc;
}

void ch_ws_close(struct ch_ws_conn *c, uint16_t code, const char *reason)
{
    if (!conn_is_open(c))
        return;
    conn_enter(c);
    ch_ws_pump_close(&c->pump, code, reason);
    conn_settle(c);
    conn_leave(c, false);
}

void ch_ws_set_max_message(struct ch_ws_conn *c, size_t max_bytes)
{
    if (!c->finished)
        ch_ws_pump_set_max(&c->pump, max_bytes ? max_bytes : CH_WS_DEFAULT_MAX_MESSAGE_BYTES);
}

void ch_ws_set_too_big_reason(struct ch_ws_conn *c, const char *reason)
{
    c->pump.too_big_reason = reason ? reason : "message too large";
}

bool ch_ws_is_closing(const struct ch_ws_conn *c)
{
    return !conn_is_open(c);
}

const char *ch_ws_remote_addr(const struct ch_ws_conn *c)
{
    return c->remote_addr;
}

bool ch_ws_is_loopback(const struct ch_ws_conn *c)
{
    return c->loopback;
}

uint64_t ch_ws_id(const struct ch_ws_conn *c)
{
    return c->id;
}

uint64_t ch_ws_last_pong_ms(const struct ch_ws_conn *c)
{
    return c->last_pong_ms;
}

size_t ch_ws_memory_bytes(const struct ch_ws_conn *c)
{
    size_t m = sizeof(*c) + (c->http ? ch_http_conn_queued_bytes(c->http) : 0);

    /* The pump's share counts wslay's queue (empty between calls). */
    return c->finished ? m : m + ch_ws_pump_memory_bytes(&c->pump);
}

void ch_ws_stats_get(struct ch_ws_stats *out)
{
    *out = stats;
}
