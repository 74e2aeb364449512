/*
 * conn.c: one HTTP/1.1 connection as a state machine (STYLE.md 8.5, RFC
 * 9112).  READ_HEAD -> [READ_BODY] -> DISPATCH -> [WRITE] -> KEEPALIVE
 * -> READ_HEAD ..., or WRITE -> LINGER -> CLOSING when the response says
 * close; UPGRADED hands the bytes to another protocol.  Only
 * ch_http_conn_set_state changes the state; it re-arms the one deadline
 * timer from the limits table and runs the state's enter hook.
 *
 * Reads land in the server's shared buffer and are parsed in place; only
 * bytes that cannot be parsed yet (pipelined requests behind an async
 * handler, or past the per-read cap) are copied into the connection.
 */
#include <inttypes.h>
#include <string.h>

#include "http/internal.h"

static const char *const state_names[CH_HTTP_NSTATES] = {
    "read_head", "read_body", "dispatch", "write", "keepalive", "upgraded", "linger", "closing",
};

const char *ch_http_state_name(enum ch_http_state st)
{
    return (unsigned)st < CH_HTTP_NSTATES ? state_names[st] : "new";
}

static void on_deadline(uv_timer_t *t);

static uint64_t state_timeout_ms(const struct ch_http_conn *c, enum ch_http_state st)
{
    const int64_t *v = c->srv->limits->v;

    switch (st) {
    case CH_HTTP_READ_HEAD: return (uint64_t)v[CH_LIMIT_HEAD_TIMEOUT_MS]; /* total: armed once per head */
    case CH_HTTP_READ_BODY: return (uint64_t)v[CH_LIMIT_BODY_TIMEOUT_MS]; /* idle: re-armed on each read */
    case CH_HTTP_KEEPALIVE: return (uint64_t)v[CH_LIMIT_KEEPALIVE_TIMEOUT_MS];
    case CH_HTTP_WRITE:
        /* A stream lives as long as its producer (the write caps bound a
         * slow reader); a final response the peer will not take is
         * given up after the keep-alive time. */
        return c->streaming ? 0 : (uint64_t)v[CH_LIMIT_KEEPALIVE_TIMEOUT_MS];
    case CH_HTTP_LINGER: return CH_HTTP_LINGER_MS;
    default: return 0;
    }
}

/*
 * Deadlines are lazy: the uv timer is only moved when the new deadline is
 * earlier than the one it is armed for.  A later deadline (the usual case:
 * every request pushes it forward) costs no heap operation; the timer
 * fires early, finds the real deadline in the future and re-arms for the
 * rest.  A keep-alive connection thus touches the timer heap about once
 * per head timeout, not three times per request.
 */
void ch_http_conn_rearm(struct ch_http_conn *c)
{
    uint64_t ms = state_timeout_ms(c, c->state);
    uint64_t now = uv_now(c->srv->net->loop);

    if (ms == 0) {
        c->deadline_ms = 0; /* a stale firing finds nothing to do */
        return;
    }
    c->deadline_ms = now + ms;
    if (c->armed_ms && c->armed_ms <= c->deadline_ms)
        return;
    uv_timer_start(&c->timer, on_deadline, ms, 0);
    c->armed_ms = c->deadline_ms;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct ch_http_conn *c = req->data;

    if (status < 0 && c->state != CH_HTTP_CLOSING)
        ch_http_conn_drop(c, "shutdown failed");
}

static void enter_linger(struct ch_http_conn *c)
{
    /* Send FIN now, keep reading until the client closes or the timer
     * fires, so its unread request bytes cannot turn our close into an
     * RST that destroys the response in flight. */
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        ch_http_conn_drop(c, "shutdown failed");
        return;
    }
    ch_http_conn_update_reading(c);
}

static void enter_closing(struct ch_http_conn *c)
{
    if (c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    uv_close((uv_handle_t *)&c->tcp, ch_http_conn_on_closed);
    uv_close((uv_handle_t *)&c->timer, ch_http_conn_on_closed);
}

static void (*const state_enter[CH_HTTP_NSTATES])(struct ch_http_conn *c) = {
    [CH_HTTP_LINGER] = enter_linger,
    [CH_HTTP_CLOSING] = enter_closing,
};

void ch_http_conn_set_state(struct ch_http_conn *c, enum ch_http_state st)
{
    if (c->state == st)
        return;
    ch_log_debug("http conn %" PRIu64 ": %s -> %s", c->id, ch_http_state_name(c->state), ch_http_state_name(st));
    c->state = st;
    ch_http_conn_rearm(c);
    if (state_enter[st])
        state_enter[st](c);
}

void ch_http_conn_update_reading(struct ch_http_conn *c)
{
    bool want;

    switch (c->state) {
    case CH_HTTP_READ_HEAD:
    case CH_HTTP_READ_BODY:
    case CH_HTTP_KEEPALIVE:
        /* Buffered input is parsed first (flush hook), then reads resume. */
        want = c->in.len == 0 && !c->want_resume;
        break;
    case CH_HTTP_DISPATCH:
    case CH_HTTP_WRITE:
        /* Parsing stops while the owner has the request, but the socket
         * stays watched so a client that leaves cancels the work at once
         * (on_close; nginx answers such a client 499 too).  What it sends
         * meanwhile (a pipelined request) waits in c->in, one read's worth
         * at most, so that every read still fits. */
        want = (c->state == CH_HTTP_DISPATCH || c->streaming) && c->in.len <= c->in.max - CH_HTTP_READ_BYTES;
        break;
    case CH_HTTP_UPGRADED: want = c->up_reading && !c->want_resume; break;
    case CH_HTTP_LINGER: want = true; break;
    default: want = false;
    }
    if (c->peer_eof)
        want = false;
    if (want == c->reading)
        return;
    if (want) {
        if (uv_read_start((uv_stream_t *)&c->tcp, ch_http_conn_on_alloc, ch_http_conn_on_read) != 0) {
            ch_http_conn_drop(c, "read start failed");
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    c->reading = want;
}

/* Per-request fields back to empty; the connection's own survive. */
void ch_http_conn_req_clear(struct ch_http_conn *c)
{
    struct ch_http_req *r = &c->req;
    struct ch_buf body = r->body;
    struct sockaddr_storage peer = r->peer;
    char addr[sizeof(r->remote_addr)];

    memcpy(addr, r->remote_addr, sizeof(addr));
    memset(r, 0, sizeof(*r));
    r->conn = c;
    r->conn_id = c->id;
    r->peer = peer;
    memcpy(r->remote_addr, addr, sizeof(addr));
    r->body = body;
    ch_buf_reset(&r->body);
    r->body.max = 0; /* no body until the head says so */
    if (c->rhdrs.cap > CH_HTTP_KEEP_BYTES)
        ch_buf_release(&c->rhdrs);
    else
        ch_buf_reset(&c->rhdrs);
    c->has_req = c->responded = c->req_done = c->done_called = false;
    c->head_only = c->streaming = c->chunked = c->resp_keep = false;
    c->is_upgrade = c->dispatched = false;
    c->on_close = NULL;
    c->on_close_data = NULL;
    c->on_too_large = NULL;
    c->on_too_large_data = NULL;
}

bool ch_http_conn_is_idle(const struct ch_http_conn *c)
{
    if (ch_http_conn_queued(c) || c->writing)
        return false;
    return c->state == CH_HTTP_KEEPALIVE ||
           (c->state == CH_HTTP_READ_HEAD && !c->has_req && c->parse.head_bytes == 0 && c->in.len == 0);
}

void ch_http_conn_drop(struct ch_http_conn *c, const char *why)
{
    struct ch_http_server *s = c->srv;
    struct ch_http_req *r = &c->req;
    bool unfinished = c->has_req && !c->req_done;

    if (c->state == CH_HTTP_CLOSING)
        return;
    ch_log_debug("http conn %" PRIu64 ": close (%s)", c->id, why);
    ch_http_link_del(&c->flushq);
    c->want_resume = false;
    if (c->soft_since_ms) {
        c->soft_since_ms = 0;
        s->soft_over--;
    }
    /* Closing first: whatever the callbacks below try to send now gets
     * CH_ECLOSED, and ch_http_req_is_closed() is already true. */
    ch_http_conn_set_state(c, CH_HTTP_CLOSING);
    if (unfinished && c->on_close) {
        void (*cb)(struct ch_http_req *, void *) = c->on_close;
        c->on_close = NULL;
        cb(r, c->on_close_data);
    }
    if (unfinished && !c->done_called) {
        c->done_called = true;
        if (!r->status)
            r->status = 499; /* nginx's "client closed request" */
        if (s->o.on_done)
            s->o.on_done(r, s->o.data);
    }
    if (c->up) {
        const struct ch_http_upgrade_ops *up = c->up;
        c->up = NULL;
        if (up->on_close)
            up->on_close(c, c->up_data);
    }
}

void ch_http_conn_fail(struct ch_http_conn *c, int status, const char *code, const char *msg)
{
    struct ch_http_req *r = &c->req;
    char text[160];

    if (c->state == CH_HTTP_CLOSING)
        return;
    if (c->responded) {
        /* Too late for a status: the only honest signal left is the close. */
        ch_http_conn_drop(c, code);
        return;
    }
    /* msg may live in the parser, which the request reset below clears. */
    snprintf(text, sizeof(text), "%s", msg);
    ch_log_info("http conn %" PRIu64 " %s: %d %s: %s", c->id, c->req.remote_addr, status, code, text);
    if (!c->has_req) {
        /* Failed before a head was understood: a stand-in request, so the
         * error gets a request id and on_done still logs one line. */
        ch_http_conn_req_clear(c);
        c->has_req = true;
        r->method = CH_M_OTHER;
        r->method_name = "-";
        r->target = r->path = r->query = CH_STR("");
        r->http_major = r->http_minor = 1;
        r->start_ns = ch_mono_ns();
        ch_http_req_request_id(c);
    }
    c->want_close = true;
    if (status == 413 && c->on_too_large) {
        /* The route answers in its own shape (and counts it); the body
         * read so far is dropped all the same and the connection closes. */
        void (*cb)(struct ch_http_req *, void *) = c->on_too_large;
        c->on_too_large = NULL;
        cb(r, c->on_too_large_data);
        if (c->responded || c->state == CH_HTTP_CLOSING)
            return;
    }
    if (ch_http_respond_error(r, status, code, "%s", text) != 0)
        ch_http_conn_drop(c, "error response failed");
}

/* After the response to a fully read request: next request or close. */
void ch_http_conn_after_response(struct ch_http_conn *c)
{
    if (c->want_close) {
        ch_http_conn_set_state(c, CH_HTTP_WRITE);
        ch_http_conn_rearm(c); /* WRITE may have been a stream: now a plain flush */
        ch_http_conn_enlist(c);
        if (!c->in_process)
            ch_http_conn_update_reading(c);
        return;
    }
    ch_http_conn_set_state(c, CH_HTTP_KEEPALIVE);
    if (c->in_process)
        return; /* conn_process goes on with its buffer */
    if (c->in.len) {
        c->want_resume = true;
        ch_http_conn_enlist(c);
    }
    ch_http_conn_update_reading(c);
}

void ch_http_conn_finish(struct ch_http_conn *c)
{
    struct ch_http_server *s = c->srv;
    struct ch_http_req *r = &c->req;

    c->req_done = true;
    c->on_close = NULL;
    if (!c->done_called) {
        c->done_called = true;
        if (s->o.on_done)
            s->o.on_done(r, s->o.data);
    }
    if (c->state == CH_HTTP_CLOSING || c->state == CH_HTTP_UPGRADED)
        return;
    if (!c->resp_keep)
        c->want_close = true;
    /* Keep-alive connections should not sit on a 1 MiB body buffer (the
     * parser's sink is the struct, so releasing the data is safe). */
    if (r->body.cap > CH_HTTP_KEEP_BYTES)
        ch_buf_release(&r->body);
    if (c->scratch.cap > CH_HTTP_KEEP_BYTES)
        ch_buf_release(&c->scratch);
    if (c->parse.phase != CH_HTTP_PH_DONE) {
        /* Answered before the request was read to its end (from on_head,
         * or an error).  With no body, DONE follows at once and moves on;
         * an unread body is never parsed: close once the answer is out. */
        if (c->want_close)
            ch_http_conn_after_response(c);
        return;
    }
    ch_http_conn_after_response(c);
}

void ch_http_conn_after_flush(struct ch_http_conn *c)
{
    if (c->state != CH_HTTP_WRITE || c->streaming || !c->want_close)
        return;
    if (c->peer_eof) {
        ch_http_conn_drop(c, "done; client closed");
        return;
    }
    ch_http_conn_set_state(c, CH_HTTP_LINGER);
}

static void on_deadline(uv_timer_t *t)
{
    struct ch_http_conn *c = t->data;
    uint64_t now = uv_now(c->srv->net->loop);

    c->armed_ms = 0;
    if (c->deadline_ms == 0)
        return;
    if (now < c->deadline_ms) {
        /* Armed for an earlier deadline that has since moved. */
        uv_timer_start(&c->timer, on_deadline, c->deadline_ms - now, 0);
        c->armed_ms = c->deadline_ms;
        return;
    }
    c->deadline_ms = 0;
    switch (c->state) {
    case CH_HTTP_READ_HEAD:
        /* The head deadline is total, not idle: one byte a second must not
         * hold a connection (slowloris).  Silence is just an idle close. */
        if (c->parse.head_bytes > 0 || c->has_req)
            ch_http_conn_fail(c, 408, "request_timeout", "the request head was not received in time");
        else
            ch_http_conn_drop(c, "no request");
        break;
    case CH_HTTP_READ_BODY: ch_http_conn_fail(c, 408, "request_timeout", "the request body stalled"); break;
    case CH_HTTP_KEEPALIVE: ch_http_conn_drop(c, "keep-alive timeout"); break;
    case CH_HTTP_WRITE: ch_http_conn_drop(c, "client stopped reading"); break;
    case CH_HTTP_LINGER: ch_http_conn_drop(c, "linger over"); break;
    default: break;
    }
}

int ch_http_conn_accept(struct ch_http_server *s)
{
    const int64_t *v = s->limits->v;
    struct ch_http_conn *c = ch_calloc(1, sizeof(*c));
    int len = (int)sizeof(c->req.peer);

    if (!c)
        return CH_ENOMEM;
    c->srv = s;
    c->id = ++s->next_id;
    c->state = CH_HTTP_NSTATES; /* "new": the first set_state always runs */
    uv_tcp_init(s->net->loop, &c->tcp);
    uv_timer_init(s->net->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    ch_http_link_init(&c->flushq);
    ch_http_link_add(&s->conns, &c->all);
    s->nconns++;
    s->stats.conns_total++;
    ch_http_parse_init(&c->parse, s->limits);
    /* Two reads' worth: a stream can watch one read while one waits. */
    ch_buf_init(&c->in, 2 * CH_HTTP_READ_BYTES);
    /* Also under 1 GiB, so a queue always fits uv_buf_t's unsigned length. */
    ch_buf_init(&c->out, (size_t)CH_MIN(v[CH_LIMIT_WRITE_QUEUE_HARD_BYTES], 1 << 30));
    ch_buf_init(&c->inflight, c->out.max);
    ch_buf_init(&c->rhdrs, CH_HTTP_MAX_RESP_HEADER_BYTES);
    ch_buf_init(&c->scratch, c->out.max);
    ch_buf_init(&c->req.body, 0);
    ch_http_conn_req_clear(c);
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->tcp) != 0) {
        ch_http_conn_drop(c, "accept failed");
        return 0;
    }
    ch_net_tune_tcp(&c->tcp);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->req.peer, &len) == 0)
        ch_net_addr_str((struct sockaddr *)&c->req.peer, c->req.remote_addr, sizeof(c->req.remote_addr));
    ch_http_conn_set_state(c, CH_HTTP_READ_HEAD);
    ch_http_conn_update_reading(c);
    return 0;
}
