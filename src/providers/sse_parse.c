/*
 * sse_parse.c: an incremental Server-Sent Events parser.
 *
 * Implements the WHATWG HTML "event stream interpretation" rules
 * (html.spec.whatwg.org, section 9.2.6): one leading UTF-8 BOM is dropped,
 * lines end in CRLF, LF or CR, a blank line dispatches the pending event,
 * `:` starts a comment, and `event`, `data`, `id`, `retry` are the only
 * fields.  Input may be split anywhere, even between the CR and LF of one
 * line ending.  A line that fits inside one chunk is parsed in place; only
 * a line split across chunks is copied, so nothing is allocated per byte.
 */
#include <string.h>

#include "providers/providers.h"

static const unsigned char utf8_bom[3] = {0xEF, 0xBB, 0xBF};

void ch_sse_parser_init(struct ch_sse_parser *p, size_t max_line, size_t max_data, ch_sse_event_cb cb, void *data)
{
    memset(p, 0, sizeof(*p));
    if (!max_line)
        max_line = CH_SSE_MAX_LINE_BYTES;
    if (!max_data)
        max_data = CH_SSE_MAX_DATA_BYTES;
    ch_buf_init(&p->line, max_line);
    /* Every data line is stored with its "\n"; the last one is dropped on
     * dispatch, so the buffer may hold one byte more than the cap. */
    ch_buf_init(&p->data, max_data + 1);
    ch_buf_init(&p->type, max_line);
    ch_buf_init(&p->id, max_line);
    p->retry_ms = -1;
    p->cb = cb;
    p->cb_data = data;
}

void ch_sse_parser_release(struct ch_sse_parser *p)
{
    ch_buf_release(&p->line);
    ch_buf_release(&p->data);
    ch_buf_release(&p->type);
    ch_buf_release(&p->id);
}

static int dispatch(struct ch_sse_parser *p)
{
    struct ch_sse_event ev;
    int rc;

    /* WHATWG: an event with an empty data buffer is not dispatched, but its
     * type is still forgotten. */
    if (p->data.len == 0) {
        ch_buf_reset(&p->type);
        return 0;
    }
    ev.type = p->type.len ? (struct ch_str){p->type.data, p->type.len} : CH_STR("message");
    ev.data = (struct ch_str){p->data.data, p->data.len - 1};
    ev.id = p->id.len ? (struct ch_str){p->id.data, p->id.len} : CH_STR("");
    rc = p->cb ? p->cb(&ev, p->cb_data) : 0;
    ch_buf_reset(&p->type);
    ch_buf_reset(&p->data);
    return rc;
}

static int set_retry(struct ch_sse_parser *p, const char *v, size_t n)
{
    int64_t ms = 0;
    size_t i;

    /* Only ASCII digits count; anything else (or overflow) is ignored. */
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9' || ms > (INT64_MAX - 9) / 10)
            return 0;
        ms = ms * 10 + (v[i] - '0');
    }
    p->retry_ms = ms;
    return 0;
}

static int process_line(struct ch_sse_parser *p, const char *s, size_t n)
{
    const char *colon, *v;
    size_t namelen, vlen;
    int rc;

    if (n == 0)
        return dispatch(p);
    if (s[0] == ':')
        return 0; /* comment: servers send these as keep-alives */
    colon = memchr(s, ':', n);
    if (colon) {
        namelen = (size_t)(colon - s);
        v = colon + 1;
        vlen = n - namelen - 1;
        if (vlen && v[0] == ' ') {
            v++;
            vlen--;
        }
    } else {
        namelen = n;
        v = "";
        vlen = 0;
    }
    if (namelen == 4 && memcmp(s, "data", 4) == 0) {
        rc = ch_buf_append(&p->data, v, vlen);
        if (!rc)
            rc = ch_buf_append_char(&p->data, '\n');
        return rc;
    }
    if (namelen == 5 && memcmp(s, "event", 5) == 0) {
        ch_buf_reset(&p->type);
        return ch_buf_append(&p->type, v, vlen);
    }
    if (namelen == 2 && memcmp(s, "id", 2) == 0) {
        if (memchr(v, '\0', vlen))
            return 0; /* WHATWG: an id containing NUL is ignored */
        ch_buf_reset(&p->id);
        return ch_buf_append(&p->id, v, vlen);
    }
    if (namelen == 5 && memcmp(s, "retry", 5) == 0)
        return set_retry(p, v, vlen);
    return 0; /* unknown fields are ignored */
}

/* Leading BOM: match up to three bytes; on a mismatch, the bytes matched so
 * far were ordinary content and go to the line buffer. */
static int skip_bom(struct ch_sse_parser *p, const unsigned char **s, const unsigned char *end)
{
    while (!p->started && *s < end) {
        if (**s == utf8_bom[p->bom_seen]) {
            (*s)++;
            if (++p->bom_seen == sizeof(utf8_bom))
                p->started = true;
            continue;
        }
        p->started = true;
        if (p->bom_seen)
            return ch_buf_append(&p->line, utf8_bom, p->bom_seen);
    }
    return 0;
}

int ch_sse_parser_feed(struct ch_sse_parser *p, const void *buf, size_t n)
{
    const unsigned char *s = buf, *end = s + n, *q, *cr;
    size_t len;
    int rc;

    if (p->rc)
        return p->rc;
    rc = skip_bom(p, &s, end);
    while (!rc && s < end) {
        if (p->skip_lf) {
            p->skip_lf = false;
            if (*s == '\n') {
                s++;
                continue;
            }
        }
        /* The line ends at the first CR or LF: glibc's memchr scans a
         * word or vector at a time where a byte loop cost ~5 instructions
         * a byte. */
        q = memchr(s, '\n', (size_t)(end - s));
        if (!q)
            q = end;
        cr = memchr(s, '\r', (size_t)(q - s));
        if (cr)
            q = cr;
        len = (size_t)(q - s);
        /* The cap applies to the whole line whichever way it was split, so
         * every chunking of the same input gives the same result. */
        if (len > p->line.max - p->line.len) {
            rc = CH_E_TOO_LARGE;
            break;
        }
        if (q == end) {
            rc = ch_buf_append(&p->line, s, len);
            break;
        }
        if (p->line.len == 0) {
            rc = process_line(p, (const char *)s, len);
        } else {
            rc = ch_buf_append(&p->line, s, len);
            if (!rc)
                rc = process_line(p, p->line.data, p->line.len);
            ch_buf_reset(&p->line);
        }
        if (*q == '\r') {
            if (q + 1 == end)
                p->skip_lf = true;
            else if (q[1] == '\n')
                q++;
        }
        s = q + 1;
    }
    p->rc = rc;
    return rc;
}

int ch_sse_parser_finish(struct ch_sse_parser *p)
{
    /* A final line without its terminator and any event without its blank
     * line are dropped (WHATWG: "incomplete event ... discarded"). */
    ch_buf_reset(&p->line);
    ch_buf_reset(&p->data);
    ch_buf_reset(&p->type);
    return p->rc;
}
