/*
 * stream.c: responses that are produced over time (SSE, chunked JSON)
 * and the upgrade seam for ws/.  A stream is HTTP/1.1 chunked framing,
 * or for an HTTP/1.0 client raw bytes ended by the close.  Each write is
 * queued and leaves before the loop sleeps; the write caps turn a client
 * that stops reading into CH_E_TOO_LARGE and a closed connection.  While
 * streaming the connection watches its socket, so a client that leaves
 * fires on_close at once instead of at the next write.
 */
#include <stdio.h>
#include <string.h>

#include "http/internal.h"

static int stream_state(const struct ch_http_conn *c)
{
    if (c->state == CH_HTTP_CLOSING || c->state == CH_HTTP_LINGER)
        return CH_ECLOSED;
    return c->streaming ? 0 : CH_ESTATE;
}

int ch_http_stream_begin(struct ch_http_req *r, int status, const char *content_type)
{
    struct ch_http_conn *c = r->conn;
    int rc;

    if (c->state == CH_HTTP_CLOSING || c->state == CH_HTTP_LINGER)
        return CH_ECLOSED;
    /* Only from on_request on: a stream from on_head would race the body. */
    if (!c->has_req || c->responded || !c->dispatched || c->state != CH_HTTP_DISPATCH)
        return CH_ESTATE;
    c->chunked = r->http_major == 1 && r->http_minor >= 1;
    if (!c->chunked)
        c->want_close = true; /* HTTP/1.0: the close ends the body */
    c->streaming = true;
    rc = ch_http_write_head(c, status, content_type, 0, true);
    if (rc) {
        ch_http_conn_drop(c, "stream head does not fit");
        return rc;
    }
    ch_http_conn_enlist(c);
    ch_http_conn_set_state(c, CH_HTTP_WRITE);
    ch_http_conn_update_reading(c);
    return ch_http_conn_check_queue(c);
}

int ch_http_stream_write(struct ch_http_req *r, const void *p, size_t n)
{
    struct ch_http_conn *c = r->conn;
    char size_line[24];
    int len, rc = stream_state(c);

    if (rc)
        return rc;
    /* A zero-size chunk would end the body; HEAD sends no body at all. */
    if (n == 0 || c->head_only)
        return 0;
    if (c->chunked) {
        len = snprintf(size_line, sizeof(size_line), "%zx\r\n", n);
        rc = ch_buf_reserve(&c->out, (size_t)len + n + 2);
        if (rc == 0) {
            ch_buf_append(&c->out, size_line, (size_t)len);
            ch_buf_append(&c->out, p, n);
            ch_buf_append(&c->out, "\r\n", 2);
        }
    } else {
        rc = ch_buf_append(&c->out, p, n);
    }
    if (rc) {
        ch_http_conn_drop(c, rc == CH_E_TOO_LARGE ? "write queue over the hard cap" : "out of memory");
        return rc;
    }
    r->bytes_out += n;
    ch_http_conn_enlist(c);
    return ch_http_conn_check_queue(c);
}

int ch_http_stream_end(struct ch_http_req *r)
{
    struct ch_http_conn *c = r->conn;
    int rc = stream_state(c);

    if (rc)
        return rc;
    if (c->chunked && !c->head_only && (rc = ch_http_conn_queue(c, "0\r\n\r\n", 5)) != 0)
        return rc;
    c->streaming = false;
    ch_http_conn_enlist(c);
    ch_http_conn_finish(c);
    return 0;
}

int ch_http_upgrade(struct ch_http_req *r, const char *protocol, const struct ch_http_upgrade_ops *ops, void *data)
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: ";
    static const char conn_hdr[] = "\r\nConnection: Upgrade\r\n";
    struct ch_http_conn *c = r->conn;
    int rc;

    if (c->state == CH_HTTP_CLOSING || c->state == CH_HTTP_LINGER)
        return CH_ECLOSED;
    if (!c->has_req || c->responded || c->state != CH_HTTP_DISPATCH || !c->is_upgrade)
        return CH_ESTATE;
    if (!ops || !ops->on_read || !protocol || !*protocol || strpbrk(protocol, "\r\n"))
        return CH_EINVAL;
    rc = ch_buf_reserve(&c->out, sizeof(head) + strlen(protocol) + sizeof(conn_hdr) + c->rhdrs.len + 2);
    if (rc)
        return rc;
    ch_buf_append(&c->out, head, sizeof(head) - 1);
    ch_buf_append_str(&c->out, protocol);
    ch_buf_append(&c->out, conn_hdr, sizeof(conn_hdr) - 1);
    ch_buf_append(&c->out, c->rhdrs.data ? c->rhdrs.data : "", c->rhdrs.len);
    ch_buf_append(&c->out, "\r\n", 2);
    c->responded = true;
    r->status = 101;
    c->up = ops;
    c->up_data = data;
    c->up_reading = true;
    ch_http_conn_set_state(c, CH_HTTP_UPGRADED);
    ch_http_conn_enlist(c);
    ch_http_conn_finish(c);
    /* Bytes that came behind the head are the new protocol's first. */
    if (c->in.len && !c->in_process) {
        c->want_resume = true;
        ch_http_conn_enlist(c);
    }
    if (!c->in_process)
        ch_http_conn_update_reading(c);
    return 0;
}

int ch_http_conn_write(struct ch_http_conn *c, const void *p, size_t n)
{
    if (c->state == CH_HTTP_CLOSING || c->state == CH_HTTP_LINGER || (c->state == CH_HTTP_WRITE && c->want_close))
        return CH_ECLOSED;
    if (c->state != CH_HTTP_UPGRADED)
        return CH_ESTATE;
    return ch_http_conn_queue(c, p, n);
}

void ch_http_conn_read(struct ch_http_conn *c, bool on)
{
    if (c->state != CH_HTTP_UPGRADED)
        return;
    c->up_reading = on;
    if (on && c->in.len) {
        c->want_resume = true;
        ch_http_conn_enlist(c);
    }
    ch_http_conn_update_reading(c);
}

void ch_http_conn_close(struct ch_http_conn *c)
{
    if (c->state != CH_HTTP_UPGRADED) {
        ch_http_conn_drop(c, "closed by owner");
        return;
    }
    /* Flush first (a WebSocket close frame is usually queued), then the
     * usual half-close and linger; on_close fires when it is gone. */
    c->want_close = true;
    c->want_resume = false;
    ch_http_conn_set_state(c, CH_HTTP_WRITE);
    ch_http_conn_update_reading(c);
    ch_http_conn_enlist(c);
}

size_t ch_http_conn_queued_bytes(const struct ch_http_conn *c)
{
    return ch_http_conn_queued(c);
}
