/*
 * json.c: compact JSON encoding for responses, byte for byte what
 * jansson's json_dumps(v, JSON_COMPACT) writes.  jansson 2.14 records
 * every object and array it enters in a cycle-check table keyed by the
 * pointer printed with snprintf, which made encoding a 1 KB /health/detail
 * body cost ~160,000 instructions; here a depth cap stands in for the
 * cycle check.  Reals follow jansson's own %.17g rules (ch_http_json_real).
 * What this file will not encode (invalid UTF-8, a depth past the cap, a
 * bare scalar) is CH_AGAIN and the caller asks jansson, which encodes it
 * or fails as before.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "http/internal.h"

/* Deeper values go to jansson whole (which also catches cycles). */
#define MAX_DEPTH 512

/* The first byte of s[0..n) at or above 0x80, eight bytes a word. */
static inline size_t ascii_len(const unsigned char *s, size_t n)
{
    size_t i = 0;

    for (; n - i >= 8; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        if (x & 0x8080808080808080ULL)
            break;
    }
    while (i < n && s[i] < 0x80)
        i++;
    return i;
}

/* jansson's dump_string without flags: the UTF-8 check here (jansson
 * refuses a string that fails it: CH_AGAIN sends the value to jansson),
 * the escaping in core (ch_buf_append_json_str, jansson's escapes). */
int ch_http_json_str(struct ch_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, k;

    while ((i += ascii_len(s + i, n - i)) < n) {
        if ((k = ch_utf8_len(s + i, n - i)) == 0)
            return CH_AGAIN;
        i += k;
    }
    return ch_buf_append_json_str(b, str, n);
}

/* "%lld" without printf's machinery (a /health/detail has twenty). */
int ch_http_json_int(struct ch_buf *b, json_int_t v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return ch_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* jansson's jsonp_dtostr at its default precision: "%.17g", ".0" when
 * neither '.' nor 'e' shows, the exponent without '+' or leading zeros.
 * The daemon never calls setlocale, so the decimal point is '.'.  json_dumpb
 * of one real cost ~4,500 instructions (its cycle-check table). */
int ch_http_json_real(struct ch_buf *b, double v)
{
    /* The last value written, per thread: a model's per-call cost repeats
     * call after call, and "%.17g" costs ~2,500 instructions. */
    static _Thread_local struct {
        uint64_t bits;
        int n; /* 0: empty */
        char num[40];
    } last;
    char num[40], *e, *start, *end;
    uint64_t bits;
    int n;

    if (!isfinite(v))
        return CH_AGAIN; /* jansson has no such value */
    memcpy(&bits, &v, sizeof(bits));
    if (last.n && last.bits == bits)
        return ch_buf_append(b, last.num, (size_t)last.n);
    n = snprintf(num, sizeof(num), "%.17g", v);
    if (n < 0 || (size_t)n >= sizeof(num) - 2)
        return CH_AGAIN;
    if (!strchr(num, '.') && !strchr(num, 'e')) {
        memcpy(num + n, ".0", 3);
        n += 2;
    }
    e = strchr(num, 'e');
    if (e) {
        start = e + 1;
        end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, (size_t)(num + n + 1 - end));
            n -= (int)(end - start);
        }
    }
    last.bits = bits;
    last.n = n;
    memcpy(last.num, num, (size_t)n + 1);
    return ch_buf_append(b, num, (size_t)n);
}

static int put_value(const json_t *v, struct ch_buf *b, int depth)
{
    size_t n;
    void *it;
    bool first = true;
    int rc = 0;

    if (depth > MAX_DEPTH)
        return CH_AGAIN;
    switch (json_typeof(v)) {
    case JSON_STRING: return ch_http_json_str(b, json_string_value(v), json_string_length(v));
    case JSON_TRUE: return ch_buf_append(b, "true", 4);
    case JSON_FALSE: return ch_buf_append(b, "false", 5);
    case JSON_NULL: return ch_buf_append(b, "null", 4);
    case JSON_INTEGER: return ch_http_json_int(b, json_integer_value(v));
    case JSON_REAL: return ch_http_json_real(b, json_real_value(v));
    case JSON_OBJECT:
        rc = ch_buf_append_char(b, '{');
        for (it = json_object_iter((json_t *)v); rc == 0 && it; it = json_object_iter_next((json_t *)v, it)) {
            if (!first)
                rc = ch_buf_append_char(b, ',');
            first = false;
            if (rc == 0)
                rc = ch_http_json_str(b, json_object_iter_key(it), json_object_iter_key_len(it));
            if (rc == 0)
                rc = ch_buf_append_char(b, ':');
            if (rc == 0)
                rc = put_value(json_object_iter_value(it), b, depth + 1);
        }
        return rc ? rc : ch_buf_append_char(b, '}');
    case JSON_ARRAY:
        n = json_array_size(v);
        rc = ch_buf_append_char(b, '[');
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (i)
                rc = ch_buf_append_char(b, ',');
            if (rc == 0)
                rc = put_value(json_array_get(v, i), b, depth + 1);
        }
        return rc ? rc : ch_buf_append_char(b, ']');
    default: return CH_AGAIN;
    }
}

int ch_http_json_dump(const json_t *v, struct ch_buf *b)
{
    return json_is_object(v) || json_is_array(v) ? ch_http_json_put(v, b) : CH_AGAIN;
}

int ch_http_json_put(const json_t *v, struct ch_buf *b)
{
    size_t start = b->len;
    int rc = v ? put_value(v, b, 0) : CH_EINVAL;

    if (rc) { /* as it was */
        b->len = start;
        if (b->data)
            b->data[start] = '\0';
    }
    return rc;
}
