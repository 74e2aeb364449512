/*
 * parse.c: the http-parser glue, free of sockets and clocks so that unit
 * tests and tests/fuzz/fuzz_http.c drive it directly (STYLE.md 8.7).
 *
 * The target, header names and values are copied into one capped head
 * buffer as http-parser hands them over (possibly split across reads),
 * recorded as offsets, and turned into slices once the head is complete.
 * The parser is paused at headers-complete and at message-complete, so
 * the connection decides about limits, 100-continue and 413 before a
 * single body byte is parsed.  RFC 9112 sections 2-7; every limit here
 * comes from the limits table (STYLE.md 8.6).
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/internal.h"

static void set_err(struct ch_http_parse *p, int status, const char *code, const char *msg)
{
    /* The first reason wins: a callback's 414 must not become the 400
     * http-parser reports for the aborted callback. */
    if (p->err_status)
        return;
    p->err_status = status;
    p->err_code = code;
    snprintf(p->err_msg, sizeof(p->err_msg), "%s", msg);
}

static int head_append(struct ch_http_parse *p, const char *at, size_t n)
{
    int rc = ch_buf_append(&p->head, at, n);

    if (rc == CH_E_TOO_LARGE)
        set_err(p, 431, "header_too_large", "the request head is too large");
    else if (rc)
        set_err(p, 500, "internal_error", "out of memory");
    return rc ? -1 : 0;
}

static int on_url(http_parser *hp, const char *at, size_t n)
{
    struct ch_http_parse *p = hp->data;

    if (p->url_len + n > p->max_uri_bytes) {
        set_err(p, 414, "uri_too_long", "the request target is too long");
        return -1;
    }
    p->url_len += n;
    return head_append(p, at, n);
}

static int trailer_bytes(struct ch_http_parse *p, size_t n)
{
    /* Trailers are read and dropped; they are bounded like a head. */
    p->trailer_bytes += n;
    if (p->trailer_bytes > p->max_head_bytes) {
        set_err(p, 431, "header_too_large", "the request trailers are too large");
        return -1;
    }
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t n)
{
    struct ch_http_parse *p = hp->data;
    struct ch_http_hdr_off *o;

    if (p->phase != CH_HTTP_PH_HEAD)
        return trailer_bytes(p, n);
    if (p->nhdr == 0 || p->in_value) {
        /* A new field starts; a split name just continues the last one. */
        if (p->nhdr >= p->max_headers) {
            set_err(p, 431, "header_too_large", "too many header fields");
            return -1;
        }
        if (p->nhdr == p->offs_cap) {
            size_t ncap = p->offs_cap ? p->offs_cap * 2 : 16;
            struct ch_http_hdr_off *no;
            if (ncap > p->max_headers)
                ncap = p->max_headers;
            no = ch_realloc(p->offs, ncap * sizeof(*no));
            if (!no) {
                set_err(p, 500, "internal_error", "out of memory");
                return -1;
            }
            p->offs = no;
            p->offs_cap = ncap;
        }
        o = &p->offs[p->nhdr++];
        memset(o, 0, sizeof(*o));
        o->name_off = (uint32_t)p->head.len;
        p->in_value = false;
    }
    o = &p->offs[p->nhdr - 1];
    o->name_len += (uint32_t)n;
    /* http-parser (non-strict) lets SP into names; RFC 9112 5.1 says a
     * space before the colon is a 400, as it is a smuggling vector. */
    if (memchr(at, ' ', n) || memchr(at, '\t', n)) {
        set_err(p, 400, "bad_request", "whitespace in a header field name");
        return -1;
    }
    return head_append(p, at, n);
}

static int on_header_value(http_parser *hp, const char *at, size_t n)
{
    struct ch_http_parse *p = hp->data;
    struct ch_http_hdr_off *o;

    if (p->phase != CH_HTTP_PH_HEAD)
        return trailer_bytes(p, n);
    if (p->nhdr == 0)
        return -1; /* http-parser never sends a value first */
    o = &p->offs[p->nhdr - 1];
    if (!p->in_value) {
        o->value_off = (uint32_t)p->head.len;
        p->in_value = true;
    }
    o->value_len += (uint32_t)n;
    return head_append(p, at, n);
}

static int on_headers_complete(http_parser *hp)
{
    struct ch_http_parse *p = hp->data;

    if (p->phase != CH_HTTP_PH_HEAD)
        return 0; /* end of the trailers */
    /* The slices array is sized here, where a failure can still be a
     * clean 500, so that fill cannot fail. */
    if (p->nhdr > p->hdrs_cap) {
        struct ch_http_header *nh = ch_realloc(p->hdrs, p->nhdr * sizeof(*nh));
        if (!nh) {
            set_err(p, 500, "internal_error", "out of memory");
            return -1;
        }
        p->hdrs = nh;
        p->hdrs_cap = p->nhdr;
    }
    p->ev = CH_HTTP_EV_HEAD;
    p->next_phase = CH_HTTP_PH_BODY;
    http_parser_pause(hp, 1);
    return 0;
}

static int on_chunk_header(http_parser *hp)
{
    struct ch_http_parse *p = hp->data;

    /* Refuse a chunk that cannot fit before reading any of it. */
    if (p->body && hp->content_length > p->body->max - p->body->len) {
        set_err(p, 413, "payload_too_large", "the request body is too large");
        return -1;
    }
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
    struct ch_http_parse *p = hp->data;
    int rc;

    if (!p->body)
        return 0;
    rc = ch_buf_append(p->body, at, n);
    if (rc == CH_E_TOO_LARGE)
        set_err(p, 413, "payload_too_large", "the request body is too large");
    else if (rc)
        set_err(p, 500, "internal_error", "out of memory");
    return rc ? -1 : 0;
}

static int on_message_complete(http_parser *hp)
{
    struct ch_http_parse *p = hp->data;

    p->ev = CH_HTTP_EV_DONE;
    p->next_phase = CH_HTTP_PH_DONE;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

void ch_http_parse_init(struct ch_http_parse *p, const struct ch_limits *l)
{
    memset(p, 0, sizeof(*p));
    p->max_head_bytes = (size_t)l->v[CH_LIMIT_MAX_HEAD_BYTES];
    p->max_headers = (size_t)l->v[CH_LIMIT_MAX_HEADERS];
    p->max_uri_bytes = (size_t)l->v[CH_LIMIT_MAX_URI_BYTES];
    ch_buf_init(&p->head, p->max_head_bytes);
    http_parser_init(&p->hp, HTTP_REQUEST);
    p->hp.data = p;
}

void ch_http_parse_release(struct ch_http_parse *p)
{
    ch_buf_release(&p->head);
    ch_free(p->offs);
    ch_free(p->hdrs);
    p->offs = NULL;
    p->hdrs = NULL;
    p->offs_cap = p->hdrs_cap = p->nhdr = 0;
}

void ch_http_parse_next(struct ch_http_parse *p)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);

    if (p->head.cap > CH_HTTP_KEEP_BYTES)
        ch_buf_release(&p->head);
    else
        ch_buf_reset(&p->head);
    p->nhdr = 0;
    p->url_len = 0;
    p->head_bytes = 0;
    p->body_raw_bytes = 0;
    p->max_body_raw = 0;
    p->trailer_bytes = 0;
    p->body = NULL;
    p->in_value = false;
    p->prev_lf = false;
    p->err_status = 0;
    p->err_code = NULL;
    p->err_msg[0] = '\0';
    p->phase = p->next_phase = CH_HTTP_PH_HEAD;
    p->ev = CH_HTTP_EV_MORE;
    /* After a pause at message-complete the parser already waits for the
     * next request line; anything else (an error) needs a fresh start. */
    if (e == HPE_PAUSED)
        http_parser_pause(&p->hp, 0);
    else if (e != HPE_OK)
        http_parser_init(&p->hp, HTTP_REQUEST);
    p->hp.data = p;
}

/*
 * obs-fold (a header line starting with SP/HTAB, RFC 9112 5.2) is
 * rejected: http-parser would quietly join the lines, and proxies that
 * split them instead would see other headers than we do.
 */
static bool has_obs_fold(struct ch_http_parse *p, const char *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p->prev_lf && (d[i] == ' ' || d[i] == '\t'))
            return true;
        p->prev_lf = d[i] == '\n';
    }
    return false;
}

static void map_parser_error(struct ch_http_parse *p, enum http_errno e)
{
    char msg[96];

    switch (e) {
    case HPE_HEADER_OVERFLOW: set_err(p, 431, "header_too_large", "the request head is too large"); break;
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        set_err(p, 400, "bad_request", "conflicting Content-Length or Transfer-Encoding");
        break;
    case HPE_INVALID_CONTENT_LENGTH: set_err(p, 400, "bad_request", "invalid Content-Length"); break;
    case HPE_INVALID_TRANSFER_ENCODING: set_err(p, 400, "bad_request", "unsupported Transfer-Encoding"); break;
    default:
        snprintf(msg, sizeof(msg), "malformed request: %s", http_errno_description(e));
        set_err(p, 400, "bad_request", msg);
    }
}

enum ch_http_ev ch_http_parse_feed(struct ch_http_parse *p, const char *data, size_t len, size_t *used)
{
    size_t n;
    enum http_errno e;

    *used = 0;
    if (p->phase == CH_HTTP_PH_ERROR)
        return CH_HTTP_EV_ERROR;
    if (p->phase == CH_HTTP_PH_DONE) {
        set_err(p, 500, "internal_error", "parser fed after the message ended");
        p->phase = CH_HTTP_PH_ERROR;
        return CH_HTTP_EV_ERROR;
    }
    if (len == 0)
        return CH_HTTP_EV_MORE;
    if (HTTP_PARSER_ERRNO(&p->hp) == HPE_PAUSED)
        http_parser_pause(&p->hp, 0);
    p->ev = CH_HTTP_EV_MORE;
    n = http_parser_execute(&p->hp, &settings, data, len);
    e = HTTP_PARSER_ERRNO(&p->hp);
    *used = n;
    if (p->phase == CH_HTTP_PH_HEAD) {
        p->head_bytes += n;
        if (has_obs_fold(p, data, n))
            set_err(p, 400, "bad_request", "obsolete header line folding");
        else if (p->head_bytes > p->max_head_bytes)
            set_err(p, 431, "header_too_large", "the request head is too large");
    } else if (p->phase == CH_HTTP_PH_BODY) {
        p->body_raw_bytes += n;
        if (p->max_body_raw && p->body_raw_bytes > p->max_body_raw)
            set_err(p, 413, "payload_too_large", "the request body framing is too large");
    }
    if (p->err_status == 0 && e != HPE_OK && e != HPE_PAUSED)
        map_parser_error(p, e);
    if (p->err_status) {
        p->phase = CH_HTTP_PH_ERROR;
        return CH_HTTP_EV_ERROR;
    }
    p->phase = p->next_phase;
    return e == HPE_PAUSED ? p->ev : CH_HTTP_EV_MORE;
}

unsigned ch_http_method_bit(unsigned m)
{
    switch (m) {
    case HTTP_GET: return CH_M_GET;
    case HTTP_HEAD: return CH_M_HEAD;
    case HTTP_POST: return CH_M_POST;
    case HTTP_PUT: return CH_M_PUT;
    case HTTP_DELETE: return CH_M_DELETE;
    case HTTP_PATCH: return CH_M_PATCH;
    case HTTP_OPTIONS: return CH_M_OPTIONS;
    default: return CH_M_OTHER;
    }
}

bool ch_http_request_id_ok(struct ch_str s)
{
    if (s.len == 0 || s.len > 64)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == ':' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* absolute-form ("http://host/p?q", RFC 9112 3.2.2): the path starts at
 * the first '/' after the authority. */
static struct ch_str origin_part(struct ch_str t)
{
    size_t skip = 0;

    if (t.len >= 7 && strncasecmp(t.p, "http://", 7) == 0)
        skip = 7;
    else if (t.len >= 8 && strncasecmp(t.p, "https://", 8) == 0)
        skip = 8;
    if (!skip)
        return t;
    for (size_t i = skip; i < t.len; i++) {
        if (t.p[i] == '/' || t.p[i] == '?')
            return (struct ch_str){t.p + i, t.len - i};
    }
    return CH_STR("/");
}

void ch_http_parse_fill(struct ch_http_parse *p, struct ch_http_req *r)
{
    const char *base = p->head.data ? p->head.data : "";
    struct ch_str t, path;
    const char *q;

    r->method = ch_http_method_bit(p->hp.method);
    r->method_name = http_method_str((enum http_method)p->hp.method);
    t = (struct ch_str){base, p->url_len};
    r->target = t;
    path = origin_part(t);
    q = memchr(path.p, '?', path.len);
    if (q) {
        r->path = (struct ch_str){path.p, (size_t)(q - path.p)};
        r->query = (struct ch_str){q + 1, path.len - (size_t)(q - path.p) - 1};
    } else {
        r->path = path;
        r->query = (struct ch_str){base + p->url_len, 0};
    }
    if (r->path.len == 0 && path.p[0] == '?')
        r->path = CH_STR("/");
    for (size_t i = 0; i < p->nhdr; i++) {
        const struct ch_http_hdr_off *o = &p->offs[i];
        p->hdrs[i].name = (struct ch_str){base + o->name_off, o->name_len};
        p->hdrs[i].value = ch_str_trim((struct ch_str){base + o->value_off, o->value_len});
        if (o->value_len == 0)
            p->hdrs[i].value = (struct ch_str){base + p->head.len, 0};
    }
    r->headers = p->hdrs;
    r->header_count = p->nhdr;
    r->http_major = p->hp.http_major;
    r->http_minor = p->hp.http_minor;
    r->keep_alive = http_should_keep_alive(&p->hp) != 0;
    r->request_id[0] = '\0';
    for (size_t i = 0; i < r->header_count; i++) {
        const struct ch_http_header *h = &r->headers[i];
        if (ch_str_eq_ci(h->name, "x-request-id")) {
            if (ch_http_request_id_ok(h->value)) {
                memcpy(r->request_id, h->value.p, h->value.len);
                r->request_id[h->value.len] = '\0';
            }
            break;
        }
    }
}

bool ch_http_parse_has_body(const struct ch_http_parse *p)
{
    if (p->hp.flags & F_CHUNKED)
        return true;
    return (p->hp.flags & F_CONTENTLENGTH) && p->hp.content_length > 0 && p->hp.content_length != ULLONG_MAX;
}

uint64_t ch_http_parse_content_length(const struct ch_http_parse *p)
{
    if ((p->hp.flags & F_CHUNKED) || !(p->hp.flags & F_CONTENTLENGTH))
        return UINT64_MAX;
    return p->hp.content_length;
}

bool ch_http_parse_is_upgrade(const struct ch_http_parse *p)
{
    return p->hp.upgrade != 0;
}

void ch_http_parse_set_body(struct ch_http_parse *p, struct ch_buf *sink, uint64_t max)
{
    p->body = sink;
    if (sink)
        sink->max = (size_t)max;
    /* Chunk framing of a body of max bytes: size lines and CRLFs of the
     * smallest chunks roughly triple it; extensions are not stored but
     * must not stream forever either. */
    p->max_body_raw = max * 4 + 64 * 1024;
}

int ch_http_parse_check(const struct ch_http_parse *p, const struct ch_http_req *r, bool *want_continue,
                        const char **code, const char **msg)
{
    const struct ch_str *expect = ch_http_req_header(r, "expect");
    bool body = ch_http_parse_has_body(p);

    *want_continue = false;
    if (r->http_major != 1) {
        *code = "http_version_not_supported";
        *msg = "only HTTP/1.0 and HTTP/1.1 are served";
        return 505;
    }
    /* http-parser refuses a non-chunked Transfer-Encoding only after the
     * head; refuse it here, before the owner sees the request. */
    if (p->hp.uses_transfer_encoding && !(p->hp.flags & F_CHUNKED)) {
        *code = "bad_request";
        *msg = "unsupported Transfer-Encoding";
        return 400;
    }
    if ((r->method & (CH_M_POST | CH_M_PUT | CH_M_PATCH)) && !(p->hp.flags & F_CHUNKED) &&
        !(p->hp.flags & F_CONTENTLENGTH)) {
        *code = "length_required";
        *msg = "send Content-Length or Transfer-Encoding: chunked";
        return 411;
    }
    if (expect) {
        if (!ch_str_eq_ci(*expect, "100-continue")) {
            *code = "expectation_failed";
            *msg = "only Expect: 100-continue is supported";
            return 417;
        }
        /* RFC 9110 10.1.1: only HTTP/1.1 clients wait, and only for a body. */
        *want_continue = body && r->http_minor >= 1;
    }
    return 0;
}
