/*
 * buf.c: the capped growable buffer (curl dynbuf).  Every buffer that
 * holds input has a cap from birth; going past it is CH_E_TOO_LARGE and
 * the buffer is left as it was, so the caller can still answer 413/431.
 */
#include <stdio.h>
#include <string.h>

#include "core/core.h"

void ch_buf_init(struct ch_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void ch_buf_release(struct ch_buf *b)
{
    ch_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void ch_buf_reset(struct ch_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int ch_buf_reserve(struct ch_buf *b, size_t extra)
{
    size_t need, ncap;
    char *p;

    if (extra > b->max || b->len > b->max - extra)
        return CH_E_TOO_LARGE;
    need = b->len + extra + 1; /* room for the NUL */
    if (need <= b->cap)
        return 0;
    ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    /* Never allocate far past the cap: a 1 MiB cap needs at most 1 MiB+1. */
    if (ncap > b->max + 1)
        ncap = CH_MAX(need, b->max + 1);
    p = ch_realloc(b->data, ncap);
    if (!p)
        return CH_ENOMEM;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int ch_buf_append(struct ch_buf *b, const void *p, size_t n)
{
    int rc = ch_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int ch_buf_append_str(struct ch_buf *b, const char *s)
{
    return ch_buf_append(b, s, strlen(s));
}

int ch_buf_append_char(struct ch_buf *b, char c)
{
    return ch_buf_append(b, &c, 1);
}

int ch_buf_vappendf(struct ch_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n, rc;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return CH_EINVAL;
    rc = ch_buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int ch_buf_appendf(struct ch_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = ch_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int ch_buf_append_json_str(struct ch_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = b->len;
    int rc = ch_buf_append_char(b, '"');

    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': rc = ch_buf_append(b, "\\\"", 2); break;
        case '\\': rc = ch_buf_append(b, "\\\\", 2); break;
        case '\n': rc = ch_buf_append(b, "\\n", 2); break;
        case '\r': rc = ch_buf_append(b, "\\r", 2); break;
        case '\t': rc = ch_buf_append(b, "\\t", 2); break;
        default:
            if (c < 0x20) {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                rc = ch_buf_append(b, e, 6);
            } else {
                rc = ch_buf_append_char(b, (char)c);
            }
        }
    }
    if (rc == 0)
        rc = ch_buf_append_char(b, '"');
    if (rc) { /* leave the buffer as it was */
        b->len = start;
        if (b->data)
            b->data[start] = '\0';
    }
    return rc;
}

void ch_buf_consume(struct ch_buf *b, size_t n)
{
    if (n >= b->len) {
        ch_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *ch_buf_detach(struct ch_buf *b, size_t *len)
{
    char *d = b->data;

    if (len)
        *len = b->len;
    if (!d)
        d = ch_strdup("");
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return d;
}
