/*
 * read.c: the input side of a connection.  Bytes from the shared read
 * buffer (or the connection's own leftovers) are fed to the parser; a
 * complete head is checked against the limits and offered to on_head
 * (413 before a body byte is read, 100-continue only after); a complete
 * message is dispatched.  Pipelined requests are parsed ahead but
 * dispatched one at a time, at most limits.maxPipelined per read, so
 * responses leave in order and one client cannot starve the loop.
 */
#include <inttypes.h>
#include <string.h>

#include "http/internal.h"

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

void ch_http_conn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct ch_http_conn *c = h->data;
    struct ch_http_server *s = c->srv;

    /* One buffer for every connection: read_cb consumes or copies out what
     * it gets before the next alloc_cb, so idle connections hold none. */
    if (!s->rbuf)
        s->rbuf = ch_malloc(CH_HTTP_READ_BYTES);
    buf->base = s->rbuf;
    buf->len = s->rbuf ? CH_HTTP_READ_BYTES : 0; /* 0: libuv reports UV_ENOBUFS */
}

/* A head is complete: the checks, the owner's verdict, then the body. */
static void on_head(struct ch_http_conn *c)
{
    struct ch_http_server *s = c->srv;
    struct ch_http_req *r = &c->req;
    size_t max_body = (size_t)s->limits->v[CH_LIMIT_MAX_BODY_BYTES];
    const char *code = NULL, *msg = NULL;
    bool want_continue;
    uint64_t cl;
    int status, rc;

    ch_http_parse_fill(&c->parse, r);
    c->has_req = true;
    c->requests++;
    s->stats.requests_total++;
    c->head_only = r->method == CH_M_HEAD;
    c->is_upgrade = ch_http_parse_is_upgrade(&c->parse);
    r->start_ns = ch_mono_ns();
    if (!r->request_id[0])
        ch_http_req_request_id(c);
    status = ch_http_parse_check(&c->parse, r, &want_continue, &code, &msg);
    if (status) {
        ch_http_conn_fail(c, status, code, msg);
        return;
    }
    if (s->o.on_head) {
        rc = s->o.on_head(r, &max_body, s->o.data);
        if (c->state == CH_HTTP_CLOSING || c->responded)
            return; /* answered (or gone); the body, if any, is never read */
        if (rc != 0) {
            ch_http_conn_fail(c, 500, "internal_error", "the request was refused without an answer");
            return;
        }
    }
    /* 413 from the announced length, before reading (or inviting) a byte. */
    cl = ch_http_parse_content_length(&c->parse);
    if (cl != UINT64_MAX && cl > max_body) {
        ch_http_conn_fail(c, 413, "payload_too_large", "the request body is too large");
        return;
    }
    if (!ch_http_parse_has_body(&c->parse))
        return; /* DONE follows from the same bytes */
    if (want_continue && ch_http_conn_queue(c, continue_line, sizeof(continue_line) - 1) != 0)
        return;
    ch_http_parse_set_body(&c->parse, &r->body, max_body);
    /* A known length is allocated once instead of doubling up to it. */
    if (cl != UINT64_MAX && ch_buf_reserve(&r->body, (size_t)cl) != 0) {
        ch_http_conn_fail(c, 503, "overloaded", "no memory for the request body");
        return;
    }
    ch_http_conn_set_state(c, CH_HTTP_READ_BODY);
}

static void on_message(struct ch_http_conn *c)
{
    struct ch_http_server *s = c->srv;

    if (c->req_done) {
        /* Answered from on_head; the (empty) message has now ended. */
        ch_http_conn_after_response(c);
        return;
    }
    c->dispatched = true;
    ch_http_conn_set_state(c, CH_HTTP_DISPATCH);
    s->o.on_request(&c->req, s->o.data);
}

/*
 * Parse data[0..len) until it is used up, the connection leaves the
 * reading states (an async handler, an error, an upgrade) or the
 * per-read pipelining cap is hit.  What is left is kept in c->in.
 */
static void conn_process(struct ch_http_conn *c, const char *data, size_t len, bool from_in)
{
    size_t off = 0, used, rest;
    int64_t max_pipe = c->srv->limits->v[CH_LIMIT_MAX_PIPELINED];
    int64_t dispatched = 0;
    enum ch_http_ev ev;

    c->in_process = true;
    while (off < len && dispatched < max_pipe) {
        if (c->state == CH_HTTP_KEEPALIVE) {
            /* First byte of the next request: the previous one's slices
             * die here, and the head deadline starts. */
            ch_http_parse_next(&c->parse);
            ch_http_conn_req_clear(c);
            ch_http_conn_set_state(c, CH_HTTP_READ_HEAD);
        }
        if (c->state != CH_HTTP_READ_HEAD && c->state != CH_HTTP_READ_BODY)
            break;
        ev = ch_http_parse_feed(&c->parse, data + off, len - off, &used);
        off += used;
        if (ev == CH_HTTP_EV_HEAD) {
            on_head(c);
        } else if (ev == CH_HTTP_EV_DONE) {
            dispatched++;
            on_message(c);
        } else if (ev == CH_HTTP_EV_ERROR) {
            ch_http_conn_fail(c, c->parse.err_status, c->parse.err_code, c->parse.err_msg);
            break;
        }
    }
    c->in_process = false;
    if (c->state == CH_HTTP_CLOSING)
        return;
    rest = len - off;
    if (rest == 0 || c->state == CH_HTTP_LINGER || (c->state == CH_HTTP_WRITE && !c->streaming)) {
        /* All used, or the connection is closing: the rest is never parsed.
         * A burst that grew the buffer does not keep it while idle. */
        if (from_in && c->in.cap > CH_HTTP_KEEP_BYTES)
            ch_buf_release(&c->in);
        else if (from_in)
            ch_buf_reset(&c->in);
    } else {
        if (from_in) {
            ch_buf_consume(&c->in, off);
        } else if (ch_buf_append(&c->in, data + off, rest) != 0) {
            ch_http_conn_drop(c, "no memory for pipelined input");
            return;
        }
        if (c->state == CH_HTTP_READ_HEAD || c->state == CH_HTTP_READ_BODY || c->state == CH_HTTP_KEEPALIVE ||
            c->state == CH_HTTP_UPGRADED) {
            /* Deferred by the cap, or bytes of the upgraded protocol:
             * handled from the flush hook, after other connections. */
            c->want_resume = true;
            ch_http_conn_enlist(c);
        }
    }
    ch_http_conn_update_reading(c);
}

void ch_http_conn_resume(struct ch_http_conn *c)
{
    c->want_resume = false;
    if (c->state == CH_HTTP_UPGRADED) {
        if (c->in.len && c->up && c->up_reading) {
            /* Delivered in one piece; on_read may close or stop reading,
             * neither of which touches c->in. */
            c->up->on_read(c, c->in.data, c->in.len, c->up_data);
            if (c->state != CH_HTTP_CLOSING)
                ch_buf_reset(&c->in);
        }
    } else if (c->in.len &&
               (c->state == CH_HTTP_READ_HEAD || c->state == CH_HTTP_READ_BODY || c->state == CH_HTTP_KEEPALIVE)) {
        conn_process(c, c->in.data, c->in.len, true);
        return;
    }
    if (c->state != CH_HTTP_CLOSING)
        ch_http_conn_update_reading(c);
}

static void on_eof(struct ch_http_conn *c, ssize_t nread)
{
    c->peer_eof = true;
    if (nread != UV_EOF || c->state == CH_HTTP_LINGER || c->state == CH_HTTP_UPGRADED || c->state == CH_HTTP_WRITE ||
        c->state == CH_HTTP_DISPATCH) {
        /* An error, a client that left its request or stream, or the end
         * of lingering. */
        ch_http_conn_drop(c, nread == UV_EOF ? "client closed" : uv_err_name((int)nread));
        return;
    }
    /* (head_bytes is stale in KEEPALIVE: the parser resets lazily.) */
    if ((c->has_req && !c->req_done) || c->in.len || (c->state == CH_HTTP_READ_HEAD && c->parse.head_bytes > 0)) {
        ch_http_conn_drop(c, "client closed mid-request");
        return;
    }
    /* Between requests: a half-closing client still gets what is queued. */
    c->want_close = true;
    if (ch_http_conn_queued(c) == 0 && !c->writing) {
        ch_http_conn_drop(c, "client closed");
        return;
    }
    ch_http_conn_set_state(c, CH_HTTP_WRITE);
    ch_http_conn_update_reading(c);
    ch_http_conn_enlist(c);
}

void ch_http_conn_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct ch_http_conn *c = st->data;

    if (nread == 0 || c->state == CH_HTTP_CLOSING)
        return;
    if (nread < 0) {
        on_eof(c, nread);
        return;
    }
    c->srv->stats.bytes_in += (uint64_t)nread;
    switch (c->state) {
    case CH_HTTP_LINGER:
        c->linger_bytes += (size_t)nread;
        if (c->linger_bytes > CH_HTTP_LINGER_MAX_BYTES)
            ch_http_conn_drop(c, "linger limit");
        return;
    case CH_HTTP_UPGRADED:
        if (c->up)
            c->up->on_read(c, buf->base, (size_t)nread, c->up_data);
        return;
    case CH_HTTP_READ_BODY:
        ch_http_conn_rearm(c); /* the body deadline is idle time */
        __attribute__((fallthrough));
    case CH_HTTP_READ_HEAD:
    case CH_HTTP_KEEPALIVE:
        if (c->in.len == 0) {
            conn_process(c, buf->base, (size_t)nread, false);
            return;
        }
        /* Older bytes wait in c->in: these go behind them. */
        __attribute__((fallthrough));
    default:
        /* A stream watching for EOF, or older input still waiting: keep
         * the bytes in order for later. */
        if (ch_buf_append(&c->in, buf->base, (size_t)nread) != 0) {
            ch_http_conn_drop(c, "input buffer full");
            return;
        }
        if (c->state == CH_HTTP_READ_HEAD || c->state == CH_HTTP_READ_BODY || c->state == CH_HTTP_KEEPALIVE) {
            c->want_resume = true;
            ch_http_conn_enlist(c);
        }
        ch_http_conn_update_reading(c);
    }
}
