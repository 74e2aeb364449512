/*
 * json5_lex.c: the lexical half of the JSON5 parser (spec.json5.org 1.0.0).
 *
 * White space and comments, quoted strings with every JSON5 escape,
 * identifier names (numbers: json5_number.c; ${VAR}: json5_env.c).
 * Every function reads s[i..len) and never past it, keeps line/column in
 * step (a column counts code points; CR LF is one line break), and reports
 * the first problem through j5_fail with the position where it starts.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config/json5_int.h"

int j5_fail_at(struct j5 *p, int code, int line, int col, size_t off, const char *fmt, ...)
{
    char what[128];
    va_list ap;

    if (!p->err || p->err->code)
        return code; /* keep the first error: later ones are consequences */
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    p->err->code = code;
    p->err->line = line;
    p->err->column = col;
    p->err->offset = off;
    snprintf(p->err->msg, sizeof(p->err->msg), "line %d, column %d: %s", line, col, what);
    return code;
}

int j5_fail(struct j5 *p, const char *fmt, ...)
{
    char what[128];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return j5_fail_at(p, CH_EINVAL, p->line, p->col, p->i, "%s", what);
}

/* A scratch buffer refused to grow: out of memory, or (never in practice,
 * since decoded text is shorter than the capped input) over its cap. */
static int buf_fail(struct j5 *p, int rc)
{
    return j5_fail_at(p, rc, p->line, p->col, p->i, "%s", ch_strerror(rc));
}

/*
 * Decode one UTF-8 sequence; returns its length, or 0 when it is invalid
 * (truncated, overlong, a surrogate, above U+10FFFF), as RFC 3629 asks.
 */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len, k;
    uint32_t c;

    if (n == 0)
        return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        c = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        c = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[k] & 0x3F);
    }
    if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10FFFF)) || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

static size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool j5_utf8_valid(const char *s, size_t n)
{
    uint32_t cp;
    size_t k;

    while (n) {
        k = utf8_decode((const unsigned char *)s, n, &cp);
        if (!k)
            return false;
        s += k;
        n -= k;
    }
    return true;
}

/* JSON5 WhiteSpace other than line terminators: ECMAScript's list plus Zs. */
static bool cp_is_space(uint32_t cp)
{
    return cp == 0x09 || cp == 0x0B || cp == 0x0C || cp == 0x20 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

static bool cp_is_line_break(uint32_t cp)
{
    return cp == 0x0A || cp == 0x0D || cp == 0x2028 || cp == 0x2029;
}

void j5_advance(struct j5 *p, size_t n)
{
    while (n-- && p->i < p->len) {
        if ((p->s[p->i] & 0xC0) != 0x80)
            p->col++;
        p->i++;
    }
}

static void newline(struct j5 *p, size_t n)
{
    p->i += n;
    p->line++;
    p->col = 1;
}

/* Length of the line terminator at p->i (CR LF counts as one), or 0. */
static size_t line_break_len(const struct j5 *p)
{
    const unsigned char *s = p->s + p->i;
    size_t n = p->len - p->i;

    if (n == 0)
        return 0;
    if (s[0] == '\n')
        return 1;
    if (s[0] == '\r')
        return n > 1 && s[1] == '\n' ? 2 : 1;
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0xA8 || s[2] == 0xA9))
        return 3;
    return 0;
}

void j5_describe(const struct j5 *p, char *out, size_t n)
{
    uint32_t cp;
    unsigned char c;

    if (p->i >= p->len) {
        snprintf(out, n, "end of input");
        return;
    }
    c = p->s[p->i];
    if (c >= 0x21 && c < 0x7F)
        snprintf(out, n, "'%c'", c);
    else if (c < 0x80)
        snprintf(out, n, "control character 0x%02X", c);
    else if (utf8_decode(p->s + p->i, p->len - p->i, &cp))
        snprintf(out, n, "character U+%04X", (unsigned)cp);
    else
        snprintf(out, n, "invalid UTF-8 byte 0x%02X", c);
}

int j5_skip_space(struct j5 *p)
{
    uint32_t cp;
    size_t k;

    while (p->i < p->len) {
        unsigned char c = p->s[p->i];

        if ((k = line_break_len(p))) {
            newline(p, k);
        } else if (c == '/' && p->i + 1 < p->len && p->s[p->i + 1] == '/') {
            while (p->i < p->len && !line_break_len(p))
                j5_advance(p, 1);
        } else if (c == '/' && p->i + 1 < p->len && p->s[p->i + 1] == '*') {
            int line = p->line, col = p->col;
            size_t off = p->i;

            j5_advance(p, 2);
            for (;;) {
                if (p->i >= p->len)
                    return j5_fail_at(p, CH_EINVAL, line, col, off, "unterminated /* comment");
                if (p->s[p->i] == '*' && p->i + 1 < p->len && p->s[p->i + 1] == '/') {
                    j5_advance(p, 2);
                    break;
                }
                if ((k = line_break_len(p)))
                    newline(p, k);
                else
                    j5_advance(p, 1);
            }
        } else if ((k = utf8_decode(p->s + p->i, p->len - p->i, &cp)) && cp_is_space(cp)) {
            j5_advance(p, k);
        } else {
            break;
        }
    }
    return 0;
}

int j5_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Read `ndigits` hex digits at s[at]; -1 if they are not all there. */
static long read_hex(const struct j5 *p, size_t at, int ndigits)
{
    long v = 0;
    int k, h;

    for (k = 0; k < ndigits; k++) {
        if (at + (size_t)k >= p->len || (h = j5_hex_value(p->s[at + (size_t)k])) < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static int append_cp(struct j5 *p, uint32_t cp)
{
    char u[4];
    size_t n = utf8_encode(cp, u);
    int rc = ch_buf_append(&p->tmp, u, n);

    return rc ? buf_fail(p, rc) : 0;
}

/*
 * Read \uXXXX at p->i (the backslash), joining a UTF-16 surrogate pair.
 * Consumes the escape(s) and returns the code point in *cp.
 */
static int unicode_escape(struct j5 *p, uint32_t *cp)
{
    long hi, lo;

    hi = read_hex(p, p->i + 2, 4);
    if (hi < 0)
        return j5_fail(p, "\\u must be followed by 4 hex digits");
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return j5_fail(p, "unpaired low surrogate \\u%04lX", hi);
    if (hi >= 0xD800 && hi <= 0xDBFF) {
        if (p->i + 7 >= p->len || p->s[p->i + 6] != '\\' || p->s[p->i + 7] != 'u' ||
            (lo = read_hex(p, p->i + 8, 4)) < 0xDC00 || lo > 0xDFFF)
            return j5_fail(p, "high surrogate \\u%04lX must be followed by a low surrogate", hi);
        *cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
        j5_advance(p, 12);
        return 0;
    }
    *cp = (uint32_t)hi;
    j5_advance(p, 6);
    return 0;
}

/* One escape sequence inside a string; p->i is at the backslash. */
static int string_escape(struct j5 *p)
{
    static const char simple_in[] = "bfnrtv";
    static const char simple_out[] = "\b\f\n\r\t\v";
    const char *hit;
    uint32_t cp;
    size_t k;
    long v;
    unsigned char c;
    int rc;

    if (p->i + 1 >= p->len)
        return j5_fail(p, "unterminated string");
    c = p->s[p->i + 1];
    if (c && (hit = strchr(simple_in, c))) {
        j5_advance(p, 2);
        return append_cp(p, (unsigned char)simple_out[hit - simple_in]);
    }
    if (c == '0' && !(p->i + 2 < p->len && p->s[p->i + 2] >= '0' && p->s[p->i + 2] <= '9'))
        return j5_fail(p, "NUL characters (\\0) are not allowed in strings");
    if (c >= '0' && c <= '9')
        return j5_fail(p, "invalid escape '\\%c' (octal escapes are not allowed)", c);
    if (c == 'x') {
        if ((v = read_hex(p, p->i + 2, 2)) < 0)
            return j5_fail(p, "\\x must be followed by 2 hex digits");
        if (v == 0)
            return j5_fail(p, "NUL characters (\\x00) are not allowed in strings");
        j5_advance(p, 4);
        return append_cp(p, (uint32_t)v);
    }
    if (c == 'u') {
        if ((rc = unicode_escape(p, &cp)))
            return rc;
        if (cp == 0)
            return j5_fail_at(p, CH_EINVAL, p->line, p->col - 6, p->i - 6,
                              "NUL characters (\\u0000) are not allowed in strings");
        return append_cp(p, cp);
    }
    p->i++; /* past the backslash; the column is fixed below */
    p->col++;
    if ((k = line_break_len(p))) {
        newline(p, k); /* line continuation: contributes nothing */
        return 0;
    }
    /* Any other character stands for itself (JSON5 NonEscapeCharacter). */
    if (!(k = utf8_decode(p->s + p->i, p->len - p->i, &cp)))
        return j5_fail(p, "invalid UTF-8 in string");
    if (cp == 0)
        return j5_fail(p, "NUL characters are not allowed in strings");
    if ((rc = ch_buf_append(&p->tmp, p->s + p->i, k)))
        return buf_fail(p, rc);
    j5_advance(p, k);
    return 0;
}

int j5_string(struct j5 *p)
{
    unsigned char quote = p->s[p->i];
    int line = p->line, col = p->col;
    size_t off = p->i, run, k;
    uint32_t cp;
    int rc;

    ch_buf_reset(&p->tmp);
    j5_advance(p, 1);
    for (;;) {
        unsigned char c;

        /* Copy the longest run of plain ASCII at once. */
        for (run = 0; p->i + run < p->len; run++) {
            c = p->s[p->i + run];
            if (c == quote || c == '\\' || c == '\n' || c == '\r' || c == 0 || c >= 0x80)
                break;
        }
        if (run) {
            if ((rc = ch_buf_append(&p->tmp, p->s + p->i, run)))
                return buf_fail(p, rc);
            j5_advance(p, run);
        }
        if (p->i >= p->len)
            return j5_fail_at(p, CH_EINVAL, line, col, off, "unterminated string");
        c = p->s[p->i];
        if (c == quote) {
            j5_advance(p, 1);
            break;
        }
        if (c == '\\') {
            if ((rc = string_escape(p)))
                return rc;
        } else if (c == '\n' || c == '\r') {
            return j5_fail(p, "line break inside a string (write \\n, or end the line "
                              "with \\ to continue it)");
        } else if (c == 0) {
            return j5_fail(p, "NUL characters are not allowed in strings");
        } else {
            if (!(k = utf8_decode(p->s + p->i, p->len - p->i, &cp)))
                return j5_fail(p, "invalid UTF-8 in string");
            if ((rc = ch_buf_append(&p->tmp, p->s + p->i, k)))
                return buf_fail(p, rc);
            if (cp == 0x2028 || cp == 0x2029)
                newline(p, k); /* allowed raw in JSON5 strings, but they end a line */
            else
                j5_advance(p, k);
        }
    }
    return 0;
}

bool j5_ascii_ident(unsigned char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '$' || c == '_' || (!first && c >= '0' && c <= '9');
}

/* Non-ASCII identifier characters: anything that is not space or a line break
 * (a simplification of ID_Start/ID_Continue that accepts every letter). */
static bool cp_ident(uint32_t cp, bool first)
{
    if (cp < 0x80)
        return j5_ascii_ident((unsigned char)cp, first);
    return !cp_is_space(cp) && !cp_is_line_break(cp);
}

bool j5_at_ident_start(const struct j5 *p)
{
    uint32_t cp;
    unsigned char c;

    if (p->i >= p->len)
        return false;
    c = p->s[p->i];
    if (c == '\\')
        return true; /* \uXXXX; checked by j5_identifier */
    if (c < 0x80)
        return j5_ascii_ident(c, true);
    return utf8_decode(p->s + p->i, p->len - p->i, &cp) && cp_ident(cp, true);
}

int j5_identifier(struct j5 *p)
{
    bool first = true;
    uint32_t cp;
    size_t k;
    int rc;

    ch_buf_reset(&p->tmp);
    while (p->i < p->len) {
        unsigned char c = p->s[p->i];

        if (c < 0x80 && j5_ascii_ident(c, first)) {
            if ((rc = ch_buf_append_char(&p->tmp, (char)c)))
                return buf_fail(p, rc);
            j5_advance(p, 1);
        } else if (c == '\\') {
            if (p->i + 1 >= p->len || p->s[p->i + 1] != 'u')
                return j5_fail(p, "only \\u escapes are allowed in unquoted keys");
            if ((rc = unicode_escape(p, &cp)))
                return rc;
            if (!cp_ident(cp, first))
                return j5_fail_at(p, CH_EINVAL, p->line, p->col - 6, p->i - 6,
                                  "\\u%04X is not allowed in an unquoted key", (unsigned)cp);
            if ((rc = append_cp(p, cp)))
                return rc;
        } else if (c >= 0x80 && (k = utf8_decode(p->s + p->i, p->len - p->i, &cp)) && cp_ident(cp, first)) {
            if ((rc = ch_buf_append(&p->tmp, p->s + p->i, k)))
                return buf_fail(p, rc);
            j5_advance(p, k);
        } else {
            break;
        }
        first = false;
    }
    if (first)
        return j5_fail(p, "expected a key");
    return 0;
}
