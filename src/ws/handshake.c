/*
 * handshake.c: the server side of the opening handshake (RFC 6455 section
 * 4.2), with no I/O.  A request is checked in a fixed order, each failure
 * with its own status: GET over HTTP/1.1 with Upgrade: websocket and
 * Connection: upgrade (400), Sec-WebSocket-Version 13 (426, answered with
 * the version we speak), a Sec-WebSocket-Key of 16 base64 bytes (400),
 * then the Origin policy (403, the fix for cross-site WebSocket
 * hijacking: a browser always sends Origin, other clients send none, so
 * only a present and unlisted Origin is refused).
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ws/internal.h"

int ch_ws_accept_key(const char *key, size_t keylen, char out[29])
{
    /* RFC 6455 section 1.3: the GUID every server appends to the key. */
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char in[128], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    out[0] = '\0';
    if (keylen > sizeof(in) - sizeof(guid))
        return CH_EINVAL;
    memcpy(in, key, keylen);
    memcpy(in + keylen, guid, sizeof(guid) - 1);
    /* SHA-1 is what the protocol asks for here; it proves nothing about
     * security, only that the server understood the handshake. */
    if (EVP_Digest(in, keylen + sizeof(guid) - 1, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20) {
        /* Out of memory, in practice: drop what OpenSSL queued about it,
         * or the thread's error queue keeps it. */
        ERR_clear_error();
        return CH_EIO;
    }
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 chars and a NUL */
    return 0;
}

static int refuse(struct ch_ws_verdict *v, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(struct ch_ws_verdict *v, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    v->status = status;
    v->code = code;
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof(v->msg), fmt, ap);
    va_end(ap);
    return status == 403 ? CH_EPERM : CH_EINVAL;
}

/* A comma-separated header (Connection: keep-alive, Upgrade) holds token. */
static bool has_token(const struct ch_str *value, const char *token)
{
    const char *p, *end, *comma;

    if (!value || !value->p)
        return false;
    p = value->p;
    end = p + value->len;
    while (p < end) {
        comma = memchr(p, ',', (size_t)(end - p));
        if (!comma)
            comma = end;
        if (ch_str_eq_ci(ch_str_trim((struct ch_str){p, (size_t)(comma - p)}), token))
            return true;
        p = comma + 1;
    }
    return false;
}

/* Origins compare case-insensitively (scheme and host are), and a listed
 * origin written with a trailing slash still matches. */
static bool origin_allowed(const char *const *list, struct ch_str origin)
{
    for (; *list; list++) {
        struct ch_str e = ch_str_from(*list);

        if (ch_str_eq_cstr(e, "*"))
            return true; /* an operator who lists "*" means any origin */
        if (e.len > 1 && e.p[e.len - 1] == '/')
            e.len--;
        if (e.len == origin.len && strncasecmp(e.p, origin.p, e.len) == 0)
            return true;
    }
    return false;
}

int ch_ws_handshake_check(const struct ch_http_req *r, const struct ch_ws_opts *o, struct ch_ws_verdict *v)
{
    const struct ch_str *h;
    struct ch_str key;
    uint8_t raw[32];
    size_t rawlen = 0;

    memset(v, 0, sizeof(*v));
    if (r->method != CH_M_GET)
        return refuse(v, 400, "bad_request", "a WebSocket handshake must be a GET request");
    if (r->http_major != 1 || r->http_minor < 1)
        return refuse(v, 400, "bad_request", "a WebSocket handshake needs HTTP/1.1");
    if (!ch_http_req_wants_upgrade(r) || !has_token(ch_http_req_header(r, "Upgrade"), "websocket"))
        return refuse(v, 400, "bad_request", "the request does not ask for Upgrade: websocket");
    if (!has_token(ch_http_req_header(r, "Connection"), "upgrade"))
        return refuse(v, 400, "bad_request", "the request does not carry Connection: upgrade");
    /* A missing version is a client from before RFC 6455: it gets the
     * same 426 and learns the version we speak from the header. */
    h = ch_http_req_header(r, "Sec-WebSocket-Version");
    if (!h || !ch_str_eq_cstr(ch_str_trim(*h), "13"))
        return refuse(v, 426, "upgrade_required", "only WebSocket version 13 is supported");
    h = ch_http_req_header(r, "Sec-WebSocket-Key");
    key = h ? ch_str_trim(*h) : (struct ch_str){"", 0};
    /* 16 random bytes are 24 base64 characters; the length check comes
     * first so the decoder never sees more than that. */
    if (key.len != 24 || ch_base64_decode(key.p, key.len, raw, sizeof(raw), &rawlen) != 0 || rawlen != 16)
        return refuse(v, 400, "bad_request", "Sec-WebSocket-Key must be 16 bytes in base64");
    if (o->allowed_origins && o->require_origin_match) {
        h = ch_http_req_header(r, "Origin");
        if (h && !origin_allowed(o->allowed_origins, ch_str_trim(*h)))
            return refuse(v, 403, "forbidden", "origin not allowed: %.*s", (int)CH_MIN(h->len, (size_t)80), h->p);
    }
    if (ch_ws_accept_key(key.p, key.len, v->accept) != 0)
        return refuse(v, 500, "internal_error", "cannot compute Sec-WebSocket-Accept");
    return 0;
}
