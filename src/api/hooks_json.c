/*
 * hooks_json.c: a fast path for decoding a hook body (a flat JSON object
 * such as seed 000's: a few keys, one 2 KB string with escapes).  jansson's
 * lexer costs ~150 instructions a byte, which was half the loop's work per
 * accepted hook; this scanner copies runs of plain bytes and decodes
 * escapes itself, and hands nested objects and arrays (rare, small) to
 * json_loadb.  It accepts only input it decodes exactly as jansson would
 * (flags 0: last duplicate wins, no NUL in strings, strict UTF-8, 64-bit
 * integers); anything else, valid or not, is CH_AGAIN and the caller runs
 * json_loadb on the whole body, which answers or words the error as before.
 * It can also report where one member's string value sits in the body,
 * when those bytes are exactly what ch_buf_append_json_str would write for
 * the decoded text: the run's stored request then copies the message
 * instead of escaping it again (2 KB, ~14,000 instructions a hook).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/hooks.h"

/* Nested values deeper than this go to jansson whole (its own cap is 2048
 * levels; ours keeps a nested parse from seeing a different depth). */
#define MAX_NEST 256

struct scan {
    const unsigned char *p, *end;
    char *tmp;  /* owned: decoded strings, at most the body's length */
    bool canon; /* the last string's escapes are all ones ch_buf_append_json_str writes */
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return CH_AGAIN;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(unsigned v, char *o)
{
    if (v < 0x80) {
        o[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        o[0] = (char)(0xc0 | v >> 6);
        o[1] = (char)(0x80 | (v & 0x3f));
        return 2;
    }
    if (v < 0x10000) {
        o[0] = (char)(0xe0 | v >> 12);
        o[1] = (char)(0x80 | ((v >> 6) & 0x3f));
        o[2] = (char)(0x80 | (v & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | v >> 18);
    o[1] = (char)(0x80 | ((v >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((v >> 6) & 0x3f));
    o[3] = (char)(0x80 | (v & 0x3f));
    return 4;
}

/* A \u escape at s->p (after the "\u"): one code point, a surrogate pair
 * combined; U+0000 and lone surrogates are left to jansson (errors). */
static int unicode_escape(struct scan *s, unsigned *out)
{
    unsigned v, lo;

    if (s->end - s->p < 4 || hex4(s->p, &v) != 0)
        return CH_AGAIN;
    s->p += 4;
    if (v == 0 || (v >= 0xdc00 && v <= 0xdfff))
        return CH_AGAIN;
    if (v >= 0xd800 && v <= 0xdbff) {
        if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' || hex4(s->p + 2, &lo) != 0 || lo < 0xdc00 ||
            lo > 0xdfff)
            return CH_AGAIN;
        s->p += 6;
        v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
    }
    *out = v;
    return 0;
}

/* Copy from p to o up to the first byte a string cannot take as it is (a
 * control, '"', '\\' or a non-ASCII byte to check) or end; returns the
 * count. */
static inline size_t copy_run(char *o, const unsigned char *p, const unsigned char *end)
{
    size_t n = ch_json_plain_len((const char *)p, (size_t)(end - p), true);

    memcpy(o, p, n);
    return n;
}

/* A string at s->p (on the opening quote), decoded into s->tmp. */
static int scan_string(struct scan *s, size_t *len)
{
    const unsigned char *p = s->p + 1;
    char *o = s->tmp;
    unsigned v;
    size_t n;

    s->canon = true;
    for (;;) {
        size_t run = copy_run(o, p, s->end);
        o += run;
        p += run;
        if (p >= s->end || *p < 0x20)
            return CH_AGAIN;
        if (*p == '"')
            break;
        if (*p >= 0x80) {
            if ((n = ch_utf8_len(p, (size_t)(s->end - p))) == 0)
                return CH_AGAIN;
            memcpy(o, p, n);
            o += n;
            p += n;
            continue;
        }
        if (++p >= s->end) /* a backslash */
            return CH_AGAIN;
        switch (*p++) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/':
            *o++ = '/';
            s->canon = false; /* written back as a plain '/' */
            break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            s->canon = false; /* rare; not worth matching \u00XX exactly */
            s->p = p;
            if (unicode_escape(s, &v) != 0)
                return CH_AGAIN;
            p = s->p;
            o += put_utf8(v, o);
            break;
        default: return CH_AGAIN;
        }
    }
    s->p = p + 1;
    *len = (size_t)(o - s->tmp);
    *o = '\0';
    return 0;
}

/* An object or array: find its end (strings skipped, brackets counted)
 * and let jansson decode exactly that span. */
static int scan_nested(struct scan *s, json_t **out)
{
    const unsigned char *start = s->p, *p = s->p;
    int depth = 0;

    for (; p < s->end; p++) {
        if (*p == '"') {
            for (p++; p < s->end && *p != '"'; p++)
                if (*p == '\\')
                    p++;
            if (p >= s->end)
                return CH_AGAIN;
        } else if (*p == '{' || *p == '[') {
            if (++depth > MAX_NEST)
                return CH_AGAIN;
        } else if (*p == '}' || *p == ']') {
            if (--depth == 0)
                break;
        }
    }
    if (p >= s->end)
        return CH_AGAIN;
    s->p = p + 1;
    *out = json_loadb((const char *)start, (size_t)(s->p - start), 0, NULL);
    return *out ? 0 : CH_AGAIN;
}

/* -?(0|[1-9][0-9]*) and nothing after it that would make it a real. */
static int scan_integer(struct scan *s, json_t **out)
{
    const unsigned char *p = s->p;
    char num[24], *e;
    long long v;
    size_t n;

    if (p < s->end && *p == '-')
        p++;
    if (p >= s->end || *p < '0' || *p > '9' || (*p == '0' && p + 1 < s->end && p[1] >= '0' && p[1] <= '9'))
        return CH_AGAIN;
    while (p < s->end && *p >= '0' && *p <= '9')
        p++;
    if (p < s->end && (*p == '.' || *p == 'e' || *p == 'E'))
        return CH_AGAIN; /* reals: jansson's strtod, not ours */
    n = (size_t)(p - s->p);
    if (n >= sizeof(num))
        return CH_AGAIN;
    memcpy(num, s->p, n);
    num[n] = '\0';
    errno = 0;
    v = strtoll(num, &e, 10);
    if (errno || *e)
        return CH_AGAIN;
    s->p = p;
    *out = json_integer(v);
    return *out ? 0 : CH_ENOMEM;
}

static int scan_literal(struct scan *s, const char *word, json_t *v, json_t **out)
{
    size_t n = strlen(word);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return CH_AGAIN;
    s->p += n;
    *out = v;
    return 0;
}

static int scan_value(struct scan *s, json_t **out)
{
    size_t len;
    int rc;

    if (s->p >= s->end)
        return CH_AGAIN;
    switch (*s->p) {
    case '"':
        if ((rc = scan_string(s, &len)) != 0)
            return rc;
        *out = json_stringn_nocheck(s->tmp, len);
        return *out ? 0 : CH_ENOMEM;
    case '{':
    case '[': return scan_nested(s, out);
    case 't': return scan_literal(s, "true", json_true(), out);
    case 'f': return scan_literal(s, "false", json_false(), out);
    case 'n': return scan_literal(s, "null", json_null(), out);
    default: return scan_integer(s, out);
    }
}

/* After a value: white space, then ',' or '}' (a letter or digit glued
 * to a literal or number is jansson's "invalid token"). */
static int scan_member_end(struct scan *s, bool *last)
{
    skip_ws(s);
    if (s->p >= s->end)
        return CH_AGAIN;
    if (*s->p == ',' || *s->p == '}') {
        *last = *s->p == '}';
        s->p++;
        return 0;
    }
    return CH_AGAIN;
}

int ch_hooks_json_object(const char *data, size_t len, json_t **out)
{
    return ch_hooks_json_object_raw(data, len, out, NULL, NULL);
}

int ch_hooks_json_object_raw(const char *data, size_t len, json_t **out, const char *raw_key, struct ch_str *raw)
{
    struct scan s = {(const unsigned char *)data, (const unsigned char *)data + len, NULL, false};
    const unsigned char *vstart;
    bool want;
    json_t *obj = NULL, *v;
    bool last = false;
    char *key;
    size_t klen;
    int rc = CH_AGAIN;

    *out = NULL;
    if (raw)
        *raw = (struct ch_str){NULL, 0};
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return CH_AGAIN;
    s.p++;
    if (!(s.tmp = ch_malloc(len + 1)) || !(obj = json_object())) {
        rc = CH_ENOMEM;
        goto out;
    }
    skip_ws(&s);
    if (s.p < s.end && *s.p == '}') {
        s.p++;
        last = true;
    }
    while (!last) {
        skip_ws(&s);
        if (s.p >= s.end || *s.p != '"' || (rc = scan_string(&s, &klen)) != 0)
            goto fail;
        /* A key's copy: the value reuses tmp.  Keys are short. */
        if (!(key = ch_strndup(s.tmp, klen))) {
            rc = CH_ENOMEM;
            goto out;
        }
        want = raw && strlen(key) == klen && !strcmp(key, raw_key);
        skip_ws(&s);
        if (s.p >= s.end || *s.p != ':') {
            ch_free(key);
            goto fail;
        }
        s.p++;
        skip_ws(&s);
        vstart = s.p;
        rc = scan_value(&s, &v);
        if (rc == 0 && want) /* the last duplicate wins, as in the object */
            *raw = *vstart == '"' && s.canon ? (struct ch_str){(const char *)vstart, (size_t)(s.p - vstart)}
                                             : (struct ch_str){NULL, 0};
        if (rc == 0 && json_object_set_new_nocheck(obj, key, v) != 0)
            rc = CH_ENOMEM;
        ch_free(key);
        if (rc == CH_ENOMEM)
            goto out;
        if (rc || (rc = scan_member_end(&s, &last)) != 0)
            goto fail;
    }
    skip_ws(&s);
    if (s.p != s.end)
        goto fail;
    *out = obj;
    obj = NULL;
    rc = 0;
    goto out;
fail:
    rc = CH_AGAIN;
out:
    if (rc && raw)
        *raw = (struct ch_str){NULL, 0};
    json_decref(obj);
    ch_free(s.tmp);
    return rc;
}
