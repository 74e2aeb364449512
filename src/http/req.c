/*
 * req.c: what an owner asks of a request: headers, query and path
 * parameters, references that keep the connection alive across async
 * work (freed only once closed and unreferenced, STYLE.md 8.10 items
 * 1-2), and the close notification.
 */
#include <string.h>

#include "http/internal.h"

const struct ch_str *ch_http_req_header(const struct ch_http_req *r, const char *name)
{
    for (size_t i = 0; i < r->header_count; i++) {
        if (ch_str_eq_ci(r->headers[i].name, name))
            return &r->headers[i].value;
    }
    return NULL;
}

int ch_http_req_query(const struct ch_http_req *r, const char *name, char *out, size_t outcap)
{
    const char *p = r->query.p, *end = r->query.p + r->query.len;
    size_t nlen = strlen(name);

    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;

        if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0) {
            struct ch_str v = eq ? (struct ch_str){eq + 1, (size_t)(stop - eq - 1)} : (struct ch_str){stop, 0};
            return ch_url_decode(v, out, outcap, NULL);
        }
        p = amp ? amp + 1 : end;
    }
    return CH_ENOTFOUND;
}

struct ch_str ch_http_req_param(const struct ch_http_req *r, size_t i)
{
    if (i >= r->param_count)
        return (struct ch_str){"", 0};
    return r->params[i];
}

void ch_http_req_ref(struct ch_http_req *r)
{
    r->conn->refs++;
}

static void conn_free_maybe(struct ch_http_conn *c)
{
    if (c->refs == 0 && c->handles == 0 && c->state == CH_HTTP_CLOSING) {
        struct ch_http_server *s = c->srv;
        ch_http_link_del(&c->all);
        ch_http_link_del(&c->flushq);
        ch_http_parse_release(&c->parse);
        ch_buf_release(&c->req.body);
        ch_buf_release(&c->in);
        ch_buf_release(&c->out);
        ch_buf_release(&c->inflight);
        ch_buf_release(&c->rhdrs);
        ch_buf_release(&c->scratch);
        ch_free(c);
        ch_http_server_conn_gone(s);
    }
}

void ch_http_req_unref(struct ch_http_req *r)
{
    struct ch_http_conn *c = r->conn;

    if (c->refs > 0)
        c->refs--;
    conn_free_maybe(c);
}

/* libuv close callback for both handles of a connection. */
void ch_http_conn_on_closed(uv_handle_t *h)
{
    struct ch_http_conn *c = h->data;

    c->handles--;
    conn_free_maybe(c);
}

bool ch_http_req_is_closed(const struct ch_http_req *r)
{
    const struct ch_http_conn *c = r->conn;
    return !c || c->state == CH_HTTP_CLOSING || c->state == CH_HTTP_LINGER;
}

void ch_http_req_on_too_large(struct ch_http_req *r, void (*cb)(struct ch_http_req *r, void *data), void *data)
{
    r->conn->on_too_large = cb;
    r->conn->on_too_large_data = data;
}

void ch_http_req_on_close(struct ch_http_req *r, void (*cb)(struct ch_http_req *r, void *data), void *data)
{
    r->conn->on_close = cb;
    r->conn->on_close_data = data;
}

size_t ch_http_req_queued_bytes(const struct ch_http_req *r)
{
    return ch_http_conn_queued(r->conn);
}

bool ch_http_req_wants_upgrade(const struct ch_http_req *r)
{
    return r->conn && r->conn->is_upgrade;
}

const char *ch_http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
