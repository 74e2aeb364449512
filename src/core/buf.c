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
    size_t room = b->data ? b->cap - b->len : 0;
    int n, rc;

    /* Format into the room there is; only a text that does not fit is
     * formatted twice (once more after growing). */
    va_copy(ap2, ap);
    n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        if (b->data)
            b->data[b->len] = '\0';
        return CH_EINVAL;
    }
    if ((size_t)n < room) {
        b->len += (size_t)n;
        return 0;
    }
    if (b->data)
        b->data[b->len] = '\0'; /* undo the partial text */
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

/*
 * Copy s[0..n) to d up to the first byte that needs an escape ('"', '\\'
 * or a control) and return how many bytes were copied.  Eight bytes a
 * word, each stored whole before it is tested (d has room for n bytes);
 * the lowest byte the test flags is exact ("determine if a word has a
 * byte less than n", Bit Twiddling Hacks: borrows only run upwards).
 */
static inline size_t copy_plain(char *d, const unsigned char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t i = 0;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; n - i >= 8; i += 8) {
        uint64_t x, q, b, m;
        memcpy(&x, s + i, 8);
        memcpy(d + i, &x, 8);
        q = x ^ (ones * '"');
        b = x ^ (ones * '\\');
        m = (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
        if (m)
            return i + (size_t)__builtin_ctzll(m) / 8;
    }
#endif
    for (; i < n && s[i] >= 0x20 && s[i] != '"' && s[i] != '\\'; i++)
        d[i] = (char)s[i];
    return i;
}

/*
 * One pass, room reserved for the text as if nothing needed an escape and
 * grown (the buffer doubles) only when escapes use it up: this writes
 * every run's request and every JSON error, 2 KB hook messages with a
 * hundred escapes included.  Past the cap the buffer is left as it was.
 */
int ch_buf_append_json_str(struct ch_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF"; /* jansson prints \u%04X */
    const unsigned char *u = (const unsigned char *)s;
    size_t start = b->len, i = 0, used;
    char *o;
    int rc;

    if ((rc = ch_buf_reserve(b, n + 2)) != 0)
        return rc;
    o = b->data + start;
    *o++ = '"';
    for (;;) {
        size_t run = copy_plain(o, u + i, n - i), esc;
        unsigned char c;
        o += run;
        if ((i += run) == n)
            break;
        c = u[i++];
        esc = (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') ? 2 : 6;
        /* Room for this escape, the rest unescaped and the closing quote
         * (the cap, not the alloc, has the last word: b->cap - 1 is it). */
        used = (size_t)(o - b->data);
        if (b->cap - 1 - used < esc + (n - i) + 1) {
            b->len = used;
            if ((rc = ch_buf_reserve(b, esc + (n - i) + 1)) != 0)
                goto fail;
            o = b->data + used;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    *o = '\0';
    b->len = (size_t)(o - b->data);
    return 0;
fail: /* leave the buffer as it was */
    b->len = start;
    b->data[start] = '\0';
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
