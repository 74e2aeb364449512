/*
 * write.c: the output side.  Responses are appended to the connection's
 * queue and the connection is put on the server's flush list; the flush
 * hook (run by net before the loop sleeps, redis beforesleep) hands each
 * queue to the kernel with one uv_try_write, and only what the kernel
 * did not take goes to a single uv_write.  So a burst of pipelined or
 * streamed output costs one syscall per connection per loop iteration.
 * The queue is capped (limits.writeQueueHardBytes: close at once;
 * writeQueueSoftBytes for writeQueueSoftMs: close at the next tick).
 */
#include <inttypes.h>
#include <string.h>

#include "http/internal.h"

size_t ch_http_conn_queued(const struct ch_http_conn *c)
{
    return c->out.len + (c->writing ? c->inflight.len - c->inflight_off : 0);
}

int ch_http_conn_check_queue(struct ch_http_conn *c)
{
    struct ch_http_server *s = c->srv;
    size_t q = ch_http_conn_queued(c);

    if (q > (size_t)s->limits->v[CH_LIMIT_WRITE_QUEUE_HARD_BYTES]) {
        ch_log_info("http conn %" PRIu64 " %s: %zu bytes queued, over the hard cap; closing", c->id, c->req.remote_addr,
                    q);
        ch_http_conn_drop(c, "write queue over the hard cap");
        return CH_E_TOO_LARGE;
    }
    if (q > (size_t)s->limits->v[CH_LIMIT_WRITE_QUEUE_SOFT_BYTES]) {
        if (!c->soft_since_ms) {
            /* | 1: zero means "under the cap". */
            c->soft_since_ms = uv_now(s->net->loop) | 1;
            s->soft_over++;
        }
    } else if (c->soft_since_ms) {
        c->soft_since_ms = 0;
        s->soft_over--;
    }
    return 0;
}

void ch_http_conn_enlist(struct ch_http_conn *c)
{
    struct ch_http_server *s = c->srv;

    if (c->state == CH_HTTP_CLOSING || c->flushq.next != &c->flushq)
        return;
    ch_http_link_add(&s->flushq, &c->flushq);
    /* Inside the walk the hook itself decides whether to come back. */
    if (!s->in_flush)
        ch_net_want_flush(s->net);
}

int ch_http_conn_queue(struct ch_http_conn *c, const void *p, size_t n)
{
    int rc;

    if (c->state == CH_HTTP_CLOSING)
        return CH_ECLOSED;
    rc = ch_buf_append(&c->out, p, n);
    if (rc == CH_E_TOO_LARGE) {
        ch_http_conn_drop(c, "write queue over the hard cap");
        return rc;
    }
    if (rc)
        return rc;
    ch_http_conn_enlist(c);
    return ch_http_conn_check_queue(c);
}

/* A drained buffer keeps small memory for the next response only.  An
 * upgraded (WebSocket) connection mostly idles between small frames, so
 * it keeps nothing: thousands of idle connections would otherwise each
 * hold the few KiB their hello-ok and presence events grew the buffer to. */
static void drained(struct ch_http_conn *c, struct ch_buf *b)
{
    if (b->cap > CH_HTTP_KEEP_BYTES || c->state == CH_HTTP_UPGRADED)
        ch_buf_release(b);
    else
        ch_buf_reset(b);
}

static void on_write(uv_write_t *w, int status)
{
    struct ch_http_conn *c = w->data;

    c->writing = false;
    if (status < 0) {
        /* UV_ECANCELED: the handle is closing already. */
        if (c->state != CH_HTTP_CLOSING)
            ch_http_conn_drop(c, uv_err_name(status));
        return;
    }
    c->srv->stats.bytes_out += c->inflight.len - c->inflight_off;
    drained(c, &c->inflight);
    c->inflight_off = 0;
    /* The socket took everything: whatever was queued meanwhile goes now. */
    ch_http_conn_flush(c);
    if (c->state != CH_HTTP_CLOSING)
        ch_http_conn_check_queue(c);
}

void ch_http_conn_flush(struct ch_http_conn *c)
{
    struct ch_buf tmp;
    uv_buf_t b;
    int n, rc;

    if (c->state == CH_HTTP_CLOSING || c->writing)
        return;
    if (c->out.len == 0) {
        ch_http_conn_after_flush(c);
        return;
    }
    b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        ch_http_conn_drop(c, uv_err_name(n));
        return;
    }
    c->srv->stats.bytes_out += (uint64_t)n;
    if ((size_t)n == c->out.len) {
        drained(c, &c->out);
        ch_http_conn_check_queue(c);
        ch_http_conn_after_flush(c);
        return;
    }
    /* The kernel took part of it.  uv_write needs its bytes to stay put,
     * so the buffers swap: new output goes to the other one meanwhile. */
    tmp = c->inflight;
    c->inflight = c->out;
    c->out = tmp;
    c->inflight_off = (size_t)n;
    b = uv_buf_init(c->inflight.data + n, (unsigned)(c->inflight.len - (size_t)n));
    c->wreq.data = c;
    rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc != 0) {
        ch_http_conn_drop(c, uv_err_name(rc));
        return;
    }
    c->writing = true;
    ch_http_conn_check_queue(c);
}

void ch_http_server_flush(void *data)
{
    struct ch_http_server *s = data;
    struct ch_http_link batch;

    if (ch_http_link_empty(&s->flushq))
        return;
    /* Walk a detached batch: a connection queued again meanwhile (more
     * deferred input) waits for the next iteration instead of looping
     * here, which the net idle handle keeps from sleeping. */
    batch = s->flushq;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    ch_http_link_init(&s->flushq);
    s->in_flush = true;
    while (!ch_http_link_empty(&batch)) {
        struct ch_http_conn *c = ch_container_of(batch.next, struct ch_http_conn, flushq);

        ch_http_link_del(&c->flushq);
        if (c->state == CH_HTTP_CLOSING)
            continue;
        if (c->want_resume)
            ch_http_conn_resume(c);
        ch_http_conn_flush(c);
        /* Output the resume produced has just been flushed: only deferred
         * input or a still-unwritten queue needs another visit. */
        if (!c->want_resume && (c->writing || c->out.len == 0))
            ch_http_link_del(&c->flushq);
    }
    s->in_flush = false;
    if (!ch_http_link_empty(&s->flushq))
        ch_net_want_flush(s->net);
}
