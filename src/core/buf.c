/*
 * buf.c: the capped growable buffer (curl dynbuf).  Every buffer that
 * holds input has a cap from birth; going past it is CH_E_TOO_LARGE and
 * the buffer is left as it was, so the caller can still answer 413/431.
 */
#include <stdio.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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
    /* 256: most buffers hold a short JSON text or a response head; from 64
     * they were reallocated twice more on the way (~250 instructions a
     * realloc, a dozen per chat turn). */
    ncap = b->cap ? b->cap : 256;
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

int ch_buf_append_i64(struct ch_buf *b, int64_t v)
{
    char tmp[24], *e = tmp + sizeof(tmp), *q = e;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--q = '-';
    return ch_buf_append(b, q, (size_t)(e - q));
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

size_t ch_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0], v;
    size_t n;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        v = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || (v >= 0xd800 && v <= 0xdfff) || v > 0x10ffff)
        return 0;
    return n;
}

/*
 * The bytes one U+FFFD stands for at s (avail bytes there), where s starts
 * no valid sequence: the maximal subpart of the ill-formed sequence (a
 * lead byte and the continuation bytes that could still follow it), as
 * the WHATWG decoder (TextDecoder, browsers, Node) counts them, so text
 * reads as a JavaScript gateway or a browser would show it.
 */
static size_t utf8_bad_len(const unsigned char *s, size_t avail)
{
    unsigned lo = 0x80, hi = 0xbf, c = s[0];
    size_t need, i;

    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        lo = c == 0xe0 ? 0xa0 : lo; /* no overlong form */
        hi = c == 0xed ? 0x9f : hi; /* no surrogate */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        lo = c == 0xf0 ? 0x90 : lo; /* no overlong form */
        hi = c == 0xf4 ? 0x8f : hi; /* nothing past U+10FFFF */
    } else {
        return 1; /* NUL, a continuation byte, C0, C1 or F5..FF alone */
    }
    for (i = 1; i <= need && i < avail && s[i] >= lo && s[i] <= hi; i++) {
        lo = 0x80; /* only the second byte has narrower bounds */
        hi = 0xbf;
    }
    return i;
}

/*
 * Text from the network (a header, a query value, a peer's error body)
 * made fit for a JSON string: jansson refuses invalid UTF-8, and a field
 * that silently vanishes is worse than a visible U+FFFD.  Valid runs are
 * copied in one append; each ill-formed subpart (utf8_bad_len), and each
 * NUL (it would cut C strings downstream), becomes U+FFFD.
 */
int ch_buf_append_utf8_clean(struct ch_buf *b, const char *s, size_t n)
{
    static const char fffd[3] = {(char)0xef, (char)0xbf, (char)0xbd};
    const unsigned char *u = (const unsigned char *)s;
    size_t old = b->len, i = 0, run = 0, k;
    int rc = 0;

    while (i < n && rc == 0) {
        k = u[i] >= 0x80 ? ch_utf8_len(u + i, n - i) : u[i] != 0;
        if (k) {
            i += k;
            run += k;
            continue;
        }
        if (run)
            rc = ch_buf_append(b, s + i - run, run);
        run = 0;
        if (rc == 0)
            rc = ch_buf_append(b, fffd, sizeof(fffd));
        i += utf8_bad_len(u + i, n - i);
    }
    if (rc == 0 && run)
        rc = ch_buf_append(b, s + i - run, run);
    if (rc && b->data) { /* unchanged on failure */
        b->len = old;
        b->data[old] = '\0';
    }
    return rc;
}

bool ch_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k;

    for (size_t i = 0; i < n; i += k)
        if ((k = u[i] < 0x80 ? 1 : ch_utf8_len(u + i, n - i)) == 0)
            return false;
    return true;
}

/* For fixed buffers filled by snprintf from text that may be cut at any
 * byte or not be UTF-8 at all (an upstream's error message): fixed in
 * place, never longer, so a JSON answer quoting it cannot fail. */
void ch_str_utf8_fix(char *s)
{
    unsigned char *u = (unsigned char *)s;
    size_t n = ch_utf8_cut(s, strlen(s)), k;

    s[n] = '\0';
    for (size_t i = 0; i < n; i += k)
        if ((k = u[i] < 0x80 ? 1 : ch_utf8_len(u + i, n - i)) == 0) {
            u[i] = '?';
            k = 1;
        }
}

/* Where to cut UTF-8 text to at most n bytes without splitting a
 * character: n, or the start of the sequence the cut would split.  Only
 * the bytes before n are read; invalid text is cut at n. */
size_t ch_utf8_cut(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t lead = n, want;

    while (lead > 0 && n - lead < 4 && (u[lead - 1] & 0xc0) == 0x80)
        lead--;
    if (lead == 0 || u[lead - 1] < 0xc0)
        return n; /* ASCII or no lead byte in reach: nothing to split */
    lead--;
    want = u[lead] >= 0xf0 ? 4 : u[lead] >= 0xe0 ? 3 : 2;
    return lead + want > n ? lead : n;
}

/*
 * The length of the run at s[0..n) that a JSON string holds as it is: up
 * to the first '"', '\\' or control (< 0x20) and, with stop_non_ascii,
 * the first byte >= 0x80 (for callers that check UTF-8 themselves).  The
 * one scanner behind the escaper, the hook body decoder and the store's
 * JSON check: a 2 KB hook message is mostly such a run.  Sixteen bytes a
 * step with SSE2 (part of x86-64; a control is where the saturating
 * v - 0x1f is zero), then eight a word: the lowest byte the word test
 * flags is exact ("determine if a word has a byte less than n", Bit
 * Twiddling Hacks: borrows only run upwards).
 */
size_t ch_json_plain_len(const char *s, size_t n, bool stop_non_ascii)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl_max = _mm_set1_epi8(0x1f);
    for (; n - i >= 16; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                   _mm_cmpeq_epi8(_mm_subs_epu8(v, ctl_max), _mm_setzero_si128()));
        unsigned m = (unsigned)_mm_movemask_epi8(hit) | (stop_non_ascii ? (unsigned)_mm_movemask_epi8(v) : 0u);

        if (m)
            return i + (size_t)__builtin_ctz(m);
    }
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    const uint64_t high_stop = stop_non_ascii ? ~0ULL : 0;
    for (; n - i >= 8; i += 8) {
        uint64_t x, q, b, m;
        memcpy(&x, p + i, 8);
        q = x ^ (ones * '"');
        b = x ^ (ones * '\\');
        m = (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b) | (x & high_stop)) & highs;
        if (m)
            return i + (size_t)__builtin_ctzll(m) / 8;
    }
#endif
    for (; i < n; i++)
        if (p[i] < 0x20 || p[i] == '"' || p[i] == '\\' || (stop_non_ascii && p[i] >= 0x80))
            break;
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
        size_t run = ch_json_plain_len(s + i, n - i, false), esc;
        unsigned char c;
        memcpy(o, u + i, run);
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
