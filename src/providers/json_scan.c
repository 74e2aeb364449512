/*
 * json_scan.c: a non-allocating JSON scanner for the hot path of stream
 * decoding.  jansson builds a tree of allocated values per SSE event (about
 * 200 instructions per byte); a streamed reply is dozens to thousands of
 * small chunks, so the OpenAI decoder first tries this scanner, which
 * validates a document into a flat token array on the stack and decodes
 * only the strings it reads.
 *
 * It accepts a strict subset of what jansson accepts, never more: an
 * object or array at the top, valid UTF-8, no "\u0000", integers of at
 * most 18 digits, at most LLM_JSCAN_MAX_DEPTH levels.  Anything else
 * (including plain malformed input) returns CH_EINVAL and the caller
 * parses with jansson instead, which then gives its usual error text.
 */
#include <string.h>

#include "providers/internal.h"

struct scan {
    const unsigned char *p;
    size_t n, i;
    struct llm_jdoc *doc;
};

static inline void skip_ws(struct scan *s)
{
    const unsigned char *p = s->p;
    size_t i = s->i, n = s->n;

    /* Providers send compact JSON: the usual byte is no space at all. */
    while (i < n && p[i] <= ' ' && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    s->i = i;
}

static inline int new_tok(struct scan *s, enum llm_jtype type)
{
    struct llm_jdoc *d = s->doc;

    if (d->count >= d->cap)
        return -1;
    d->toks[d->count] = (struct llm_jtok){.type = (uint8_t)type, .start = (uint32_t)s->i};
    return (int)d->count++;
}

static int hex4(const unsigned char *p, size_t avail, unsigned *out)
{
    unsigned v = 0;

    if (avail < 4)
        return -1;
    for (int k = 0; k < 4; k++) {
        unsigned c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF. */
bool llm_utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = p[i];
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            k = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else
            return false;
        if (n - i <= k)
            return false;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t j = 2; j <= k; j++)
            if ((p[i + j] & 0xC0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

static int scan_string(struct scan *s, int ti)
{
    const unsigned char *p = s->p;
    size_t i = s->i + 1, n = s->n;
    bool high = false, esc = false;
    unsigned cp, lo;

    for (;;) {
        /* The plain run (16 bytes a step where SSE2 is); the tests below
         * decide on the byte that ends it exactly as they did for every
         * byte. */
        i += ch_json_plain_len((const char *)p + i, n - i, true);
        if (i >= n)
            return -1;
        unsigned c = p[i];
        if (c == '"')
            break;
        if (c < 0x20)
            return -1;
        if (c >= 0x80) {
            high = true;
            i++;
            continue;
        }
        if (c != '\\') {
            i++;
            continue;
        }
        esc = true;
        if (++i >= n)
            return -1;
        c = p[i];
        if (c != 'u') {
            if (!strchr("\"\\/bfnrt", (int)c) || c == 0)
                return -1;
            i++;
            continue;
        }
        if (hex4(p + i + 1, n - i - 1, &cp))
            return -1;
        i += 5;
        if (cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
            return -1;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (n - i < 6 || p[i] != '\\' || p[i + 1] != 'u' || hex4(p + i + 2, n - i - 2, &lo) || lo < 0xDC00 ||
                lo > 0xDFFF)
                return -1;
            i += 6;
        }
    }
    if (high && !llm_utf8_valid(p + s->i + 1, i - s->i - 1))
        return -1;
    if (ti >= 0) {
        s->doc->toks[ti].start = (uint32_t)(s->i + 1);
        s->doc->toks[ti].len = (uint32_t)(i - s->i - 1);
        s->doc->toks[ti].escaped = esc;
    }
    s->i = i + 1;
    return 0;
}

static int scan_number(struct scan *s, struct llm_jtok *t)
{
    const unsigned char *p = s->p;
    size_t i = s->i, n = s->n, digits = 0;

    if (i < n && p[i] == '-')
        i++;
    if (i >= n || p[i] < '0' || p[i] > '9')
        return -1;
    if (p[i] == '0') {
        i++;
        digits = 1;
    } else {
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++, digits++;
    }
    t->is_int = true;
    if (i < n && p[i] == '.') {
        t->is_int = false;
        if (++i >= n || p[i] < '0' || p[i] > '9')
            return -1;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        t->is_int = false;
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= n || p[i] < '0' || p[i] > '9')
            return -1;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    /* jansson fails on integers past int64 and reals past double; leave
     * any long number to it. */
    if ((t->is_int && digits > 18) || i - s->i > 32)
        return -1;
    t->len = (uint32_t)(i - s->i);
    s->i = i;
    return 0;
}

static int scan_value(struct scan *s, int depth);

static int scan_container(struct scan *s, int ti, bool is_obj, int depth)
{
    unsigned char close = is_obj ? '}' : ']';
    uint32_t count = 0;

    s->i++;
    skip_ws(s);
    if (s->i < s->n && s->p[s->i] == close) {
        s->i++;
        goto done;
    }
    for (;;) {
        if (is_obj) {
            skip_ws(s);
            if (s->i >= s->n || s->p[s->i] != '"')
                return -1;
            int ki = new_tok(s, LLM_J_STR);
            if (ki < 0 || scan_string(s, ki))
                return -1;
            s->doc->toks[ki].end = s->doc->count;
            skip_ws(s);
            if (s->i >= s->n || s->p[s->i] != ':')
                return -1;
            s->i++;
        }
        if (scan_value(s, depth + 1))
            return -1;
        count++;
        skip_ws(s);
        if (s->i >= s->n)
            return -1;
        if (s->p[s->i] == ',') {
            s->i++;
            continue;
        }
        if (s->p[s->i] != close)
            return -1;
        s->i++;
        break;
    }
done:
    s->doc->toks[ti].count = count;
    return 0;
}

static int scan_literal(struct scan *s, const char *word, size_t len, enum llm_jtype type)
{
    int ti;

    if (s->n - s->i < len || memcmp(s->p + s->i, word, len))
        return -1;
    ti = new_tok(s, type);
    if (ti < 0)
        return -1;
    s->doc->toks[ti].len = (uint32_t)len;
    s->doc->toks[ti].end = s->doc->count;
    s->i += len;
    return 0;
}

static int scan_value(struct scan *s, int depth)
{
    int ti, rc;

    skip_ws(s);
    if (s->i >= s->n || depth > LLM_JSCAN_MAX_DEPTH)
        return -1;
    switch (s->p[s->i]) {
    case '{':
    case '[':
        ti = new_tok(s, s->p[s->i] == '{' ? LLM_J_OBJ : LLM_J_ARR);
        if (ti < 0)
            return -1;
        rc = scan_container(s, ti, s->p[s->i] == '{', depth);
        break;
    case '"':
        ti = new_tok(s, LLM_J_STR);
        if (ti < 0)
            return -1;
        rc = scan_string(s, ti);
        break;
    case 't': return scan_literal(s, "true", 4, LLM_J_TRUE);
    case 'f': return scan_literal(s, "false", 5, LLM_J_FALSE);
    case 'n': return scan_literal(s, "null", 4, LLM_J_NULL);
    default:
        ti = new_tok(s, LLM_J_NUM);
        if (ti < 0)
            return -1;
        rc = scan_number(s, &s->doc->toks[ti]);
        break;
    }
    if (rc)
        return -1;
    s->doc->toks[ti].end = s->doc->count;
    return 0;
}

int llm_jscan(struct llm_jdoc *doc, const char *p, size_t n)
{
    struct scan s = {(const unsigned char *)p, n, 0, doc};

    doc->src = p;
    doc->count = 0;
    if (n > UINT32_MAX / 2)
        return CH_EINVAL;
    skip_ws(&s);
    if (s.i >= n || (p[s.i] != '{' && p[s.i] != '['))
        return CH_EINVAL; /* jansson wants an object or an array at the top */
    if (scan_value(&s, 1))
        return CH_EINVAL;
    skip_ws(&s);
    return s.i == n ? 0 : CH_EINVAL;
}

int llm_jget(const struct llm_jdoc *d, int obj, const char *key)
{
    size_t klen = strlen(key);
    int found = -1;
    uint32_t i;

    if (obj < 0 || d->toks[obj].type != LLM_J_OBJ)
        return -1;
    /* Keys with escapes are compared decoded only when they could match. */
    for (i = (uint32_t)obj + 1; i < d->toks[obj].end; i = d->toks[i + 1].end) {
        const struct llm_jtok *k = &d->toks[i];
        if (!k->escaped
                ? k->len == klen && (klen == 0 || (d->src[k->start] == key[0] && !memcmp(d->src + k->start, key, klen)))
                : k->len >= klen && llm_jstr_eq(d, (int)i, key, klen))
            found = (int)i + 1; /* jansson keeps the last duplicate */
    }
    return found;
}

int llm_jnext(const struct llm_jdoc *d, int parent, int cur)
{
    int next = cur < 0 ? parent + 1 : (int)d->toks[cur].end;

    return next < (int)d->toks[parent].end ? next : -1;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t llm_jstr_decode(const struct llm_jdoc *d, int ti, char *out)
{
    const struct llm_jtok *t = &d->toks[ti];
    const unsigned char *p = (const unsigned char *)d->src + t->start;
    size_t i = 0, o = 0;
    unsigned cp, lo;

    if (!t->escaped) {
        memcpy(out, p, t->len);
        out[t->len] = '\0';
        return t->len;
    }
    /* The scan validated every escape; decoded text is never longer. */
    while (i < t->len) {
        if (p[i] != '\\') {
            out[o++] = (char)p[i++];
            continue;
        }
        switch (p[i + 1]) {
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u':
            hex4(p + i + 2, 4, &cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                hex4(p + i + 8, 4, &lo);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            o += put_utf8(out + o, cp);
            i += 6;
            continue;
        default: out[o++] = (char)p[i + 1]; break; /* " \ / */
        }
        i += 2;
    }
    out[o] = '\0';
    return o;
}

bool llm_jstr_eq(const struct llm_jdoc *d, int ti, const char *s, size_t n)
{
    char buf[64];

    if (d->toks[ti].len >= sizeof(buf))
        return false; /* no key we look up is that long */
    return llm_jstr_decode(d, ti, buf) == n && !memcmp(buf, s, n);
}

bool llm_jint(const struct llm_jdoc *d, int ti, int64_t *out)
{
    const struct llm_jtok *t;
    const char *p;
    int64_t v = 0;
    bool neg;

    if (ti < 0 || d->toks[ti].type != LLM_J_NUM || !d->toks[ti].is_int)
        return false;
    t = &d->toks[ti];
    p = d->src + t->start;
    neg = p[0] == '-';
    for (uint32_t i = neg; i < t->len; i++)
        v = v * 10 + (p[i] - '0'); /* at most 18 digits: no overflow */
    *out = neg ? -v : v;
    return true;
}
