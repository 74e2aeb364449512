/*
 * respond.c: complete responses.  The head is written straight into the
 * connection's output queue (one reserve, then copies: no printf on the
 * hot path), with the headers every response carries: Date (cached per
 * second), Content-Length, Connection, X-Request-Id.  Whether the
 * connection stays open is decided here, once, for the whole response.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/internal.h"

static char *put(char *w, const char *s, size_t n)
{
    memcpy(w, s, n);
    return w + n;
}

#define PUT_LIT(w, lit) put((w), (lit), sizeof(lit) - 1)

static char *put_u64(char *w, uint64_t v)
{
    char tmp[24];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *w++ = tmp[--n];
    return w;
}

void ch_http_req_request_id(struct ch_http_conn *c)
{
    static const char hex[] = "0123456789abcdef";
    struct ch_http_server *s = c->srv;
    uint64_t seq = ++s->rid_seq;
    char tmp[17];
    size_t n = 0;
    char *w = c->req.request_id;

    /* A random per-process prefix plus a counter: unique enough to grep
     * logs by, and no syscall or uuid per request. */
    memcpy(w, s->rid_prefix, 8);
    w[8] = '-';
    do {
        tmp[n++] = hex[seq & 15];
        seq >>= 4;
    } while (seq);
    for (size_t i = 0; i < n; i++)
        w[9 + i] = tmp[n - 1 - i];
    w[9 + n] = '\0';
}

static bool resp_keep_alive(const struct ch_http_conn *c)
{
    const struct ch_http_server *s = c->srv;

    if (!c->req.keep_alive || c->want_close || s->stopping)
        return false;
    /* An upgrade request that is not upgraded: what follows its head may
     * be another protocol, never a next request. */
    if (c->is_upgrade)
        return false;
    if (c->requests >= (uint64_t)s->limits->v[CH_LIMIT_KEEPALIVE_REQUESTS])
        return false;
    /* An unread body would be parsed as the next request. */
    if (c->parse.phase == CH_HTTP_PH_ERROR || (c->parse.phase != CH_HTTP_PH_DONE && ch_http_parse_has_body(&c->parse)))
        return false;
    return true;
}

static int can_respond(const struct ch_http_conn *c)
{
    if (!c || c->state == CH_HTTP_CLOSING || c->state == CH_HTTP_LINGER)
        return CH_ECLOSED;
    if (!c->has_req || c->responded || c->state == CH_HTTP_UPGRADED)
        return CH_ESTATE;
    return 0;
}

int ch_http_write_head(struct ch_http_conn *c, int status, const char *content_type, uint64_t content_length,
                       bool stream)
{
    struct ch_http_req *r = &c->req;
    size_t ctlen = content_type ? strlen(content_type) : 0;
    const char *text = ch_http_status_text(status);
    bool bodyless = status < 200 || status == 204 || status == 304;
    bool keep = resp_keep_alive(c);
    char date[30];
    char *w;
    int rc;

    if (status < 100 || status > 999 || ctlen > 256)
        return CH_EINVAL;
    /* Every fixed part below fits in 256 bytes; the rest is counted. */
    rc = ch_buf_reserve(&c->out, 256 + ctlen + strlen(text) + c->rhdrs.len);
    if (rc)
        return rc;
    w = c->out.data + c->out.len;
    w = PUT_LIT(w, "HTTP/1.1 ");
    w = put_u64(w, (uint64_t)status);
    *w++ = ' ';
    w = put(w, text, strlen(text));
    w = PUT_LIT(w, "\r\nDate: ");
    w = put(w, ch_http_date(date), 29);
    w = PUT_LIT(w, "\r\n");
    if (ctlen) {
        w = PUT_LIT(w, "Content-Type: ");
        w = put(w, content_type, ctlen);
        w = PUT_LIT(w, "\r\n");
    }
    if (!bodyless && stream && c->chunked) {
        w = PUT_LIT(w, "Transfer-Encoding: chunked\r\n");
    } else if (!bodyless && !stream) {
        /* HEAD gets the length the GET body would have (RFC 9110 9.3.2). */
        w = PUT_LIT(w, "Content-Length: ");
        w = put_u64(w, content_length);
        w = PUT_LIT(w, "\r\n");
    }
    w = keep ? PUT_LIT(w, "Connection: keep-alive\r\n") : PUT_LIT(w, "Connection: close\r\n");
    w = PUT_LIT(w, "X-Request-Id: ");
    w = put(w, r->request_id, strlen(r->request_id));
    w = PUT_LIT(w, "\r\n");
    if (c->rhdrs.len)
        w = put(w, c->rhdrs.data, c->rhdrs.len);
    w = PUT_LIT(w, "\r\n");
    c->out.len = (size_t)(w - c->out.data);
    c->out.data[c->out.len] = '\0';
    c->resp_keep = keep;
    c->responded = true;
    r->status = status;
    return 0;
}

int ch_http_respond(struct ch_http_req *r, int status, const char *content_type, const void *body, size_t len)
{
    struct ch_http_conn *c = r->conn;
    bool bodyless = status < 200 || status == 204 || status == 304;
    int rc = can_respond(c);

    if (rc)
        return rc;
    if (bodyless)
        len = 0;
    rc = ch_http_write_head(c, status, content_type, len, false);
    if (rc == 0 && len && !c->head_only)
        rc = ch_buf_append(&c->out, body, len);
    if (rc) {
        /* The head may be half in the queue: nothing sane can follow. */
        ch_http_conn_drop(c, "response does not fit");
        return rc;
    }
    r->bytes_out = c->head_only ? 0 : len;
    ch_http_conn_enlist(c);
    if ((rc = ch_http_conn_check_queue(c)) != 0)
        return rc;
    ch_http_conn_finish(c);
    return 0;
}

static int dump_to_buf(const char *p, size_t n, void *data)
{
    return ch_buf_append(data, p, n) == 0 ? 0 : -1;
}

int ch_http_respond_json(struct ch_http_req *r, int status, json_t *body)
{
    struct ch_http_conn *c = r->conn;
    int rc = can_respond(c);

    if (rc == 0) {
        ch_buf_reset(&c->scratch);
        /* Our encoder, jansson's bytes; jansson for what it declines. */
        rc = ch_http_json_dump(body, &c->scratch);
        if (rc == CH_AGAIN && json_dump_callback(body, dump_to_buf, &c->scratch, JSON_COMPACT) == 0)
            rc = 0;
        else if (rc)
            rc = CH_ENOMEM;
    }
    json_decref(body); /* stolen, even on failure */
    if (rc == 0)
        rc = ch_http_respond(r, status, "application/json", c->scratch.data, c->scratch.len);
    else if (rc == CH_ENOMEM)
        ch_http_respond_error(r, 500, "internal_error", "the response could not be rendered");
    return rc;
}

int ch_http_respond_error(struct ch_http_req *r, int status, const char *code, const char *fmt, ...)
{
    struct ch_http_conn *c = r->conn;
    char msg[512];
    va_list ap;
    int rc = can_respond(c);

    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ch_buf_reset(&c->scratch);
    rc = ch_buf_append_str(&c->scratch, "{\"error\":");
    if (!rc)
        rc = ch_buf_append_json_str(&c->scratch, code, strlen(code));
    if (!rc)
        rc = ch_buf_append_str(&c->scratch, ",\"message\":");
    if (!rc)
        rc = ch_buf_append_json_str(&c->scratch, msg, strlen(msg));
    if (!rc)
        rc = ch_buf_append_char(&c->scratch, '}');
    if (rc) {
        ch_http_conn_drop(c, "no memory for an error response");
        return rc;
    }
    return ch_http_respond(r, status, "application/json", c->scratch.data, c->scratch.len);
}

/* RFC 9110 5.6.2 token characters. */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 32 || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch))
            return false;
    }
    return true;
}

int ch_http_add_header(struct ch_http_req *r, const char *name, const char *value)
{
    static const char *const reserved[] = {
        "content-length", "transfer-encoding", "connection", "date", "x-request-id",
    };
    struct ch_http_conn *c = r->conn;
    size_t start;
    int rc = can_respond(c);

    if (rc)
        return rc;
    if (!is_token(name) || strpbrk(value, "\r\n"))
        return CH_EINVAL; /* no header injection */
    /* The server owns framing and the common headers. */
    for (size_t i = 0; i < CH_ARRAY_SIZE(reserved); i++) {
        if (strcasecmp(name, reserved[i]) == 0)
            return CH_EINVAL;
    }
    start = c->rhdrs.len;
    rc = ch_buf_append_str(&c->rhdrs, name);
    if (!rc)
        rc = ch_buf_append(&c->rhdrs, ": ", 2);
    if (!rc)
        rc = ch_buf_append_str(&c->rhdrs, value);
    if (!rc)
        rc = ch_buf_append(&c->rhdrs, "\r\n", 2);
    if (rc) {
        c->rhdrs.len = start;
        if (c->rhdrs.data)
            c->rhdrs.data[start] = '\0';
    }
    return rc;
}
