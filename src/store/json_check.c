/*
 * store/json_check.c: a strict JSON (RFC 8259) validator for the hot text
 * columns (runs.request, runs.result, messages.content).
 *
 * Schema v5 dropped their `CHECK (json_valid(...))`: SQLite's json_valid
 * builds a parse tree of every value (~15 instructions a byte, a third of
 * a hook admission on the writer thread).  This scanner only checks the
 * grammar, without allocating, and the store refuses what it rejects
 * before the statement runs, so the columns still only ever hold JSON.
 */
#include <stdint.h>
#include <string.h>

#include "store/internal.h"

/* Nesting bound: SQLite's json_valid refuses deeper input as well. */
#define MAX_DEPTH 2000

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
        i++;
    return i;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* s[i] is the opening quote.  Returns the index after the closing one, or 0. */
static size_t scan_string(const char *s, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        unsigned char c;

        i += ch_json_plain_len(s + i, n - i, false); /* the run up to a stop byte */
        if (i >= n)
            break;
        c = (unsigned char)s[i];

        if (c == '"')
            return i + 1;
        if (c < 0x20)
            return 0; /* control characters must be escaped */
        if (c != '\\')
            continue;
        if (++i >= n)
            return 0;
        switch (s[i]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't': break;
        case 'u':
            if (n - i < 5 || !is_hex((unsigned char)s[i + 1]) || !is_hex((unsigned char)s[i + 2]) ||
                !is_hex((unsigned char)s[i + 3]) || !is_hex((unsigned char)s[i + 4]))
                return 0;
            i += 4;
            break;
        default: return 0;
        }
    }
    return 0;
}

static size_t scan_digits(const char *s, size_t i, size_t n)
{
    size_t start = i;

    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i > start ? i : 0;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?  Returns the end, or 0. */
static size_t scan_number(const char *s, size_t i, size_t n)
{
    if (s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (!(i = scan_digits(s, i, n)))
        return 0;
    if (i < n && s[i] == '.' && !(i = scan_digits(s, i + 1, n)))
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (!(i = scan_digits(s, i, n)))
            return 0;
    }
    return i;
}

static size_t scan_word(const char *s, size_t i, size_t n, const char *w, size_t wlen)
{
    return n - i >= wlen && memcmp(s + i, w, wlen) == 0 ? i + wlen : 0;
}

/* At a member: "key" ws ':'.  Returns the index after ':', or 0. */
static size_t scan_key(const char *s, size_t i, size_t n)
{
    i = skip_ws(s, i, n);
    if (i >= n || s[i] != '"' || !(i = scan_string(s, i, n)))
        return 0;
    i = skip_ws(s, i, n);
    return i < n && s[i] == ':' ? i + 1 : 0;
}

bool ch_store_json_valid(const char *s, size_t n)
{
    unsigned char is_obj[MAX_DEPTH / 8] = {0}; /* bit per open container: object (1) or array (0) */
    size_t depth = 0, i = 0;

    if (!s)
        return false;
    for (;;) {
        /* A value. */
        i = skip_ws(s, i, n);
        if (i >= n)
            return false;
        switch (s[i]) {
        case '{':
        case '[': {
            bool obj = s[i] == '{';

            if (depth == MAX_DEPTH)
                return false;
            if (obj)
                is_obj[depth / 8] |= (unsigned char)(1u << (depth % 8));
            else
                is_obj[depth / 8] &= (unsigned char)~(1u << (depth % 8));
            depth++;
            i = skip_ws(s, i + 1, n);
            if (i < n && s[i] == (obj ? '}' : ']')) {
                depth--;
                i++;
                break; /* empty container: a complete value */
            }
            if (obj && !(i = scan_key(s, i, n)))
                return false;
            continue; /* its first element */
        }
        case '"': i = scan_string(s, i, n); break;
        case 't': i = scan_word(s, i, n, "true", 4); break;
        case 'f': i = scan_word(s, i, n, "false", 5); break;
        case 'n': i = scan_word(s, i, n, "null", 4); break;
        default: i = (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) ? scan_number(s, i, n) : 0; break;
        }
        if (!i)
            return false;
        /* After a value: close containers, or a separator and the next one. */
        for (;;) {
            bool obj;

            i = skip_ws(s, i, n);
            if (depth == 0)
                return i == n;
            if (i >= n)
                return false;
            obj = (is_obj[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1u;
            if (s[i] == (obj ? '}' : ']')) {
                depth--;
                i++;
                continue;
            }
            if (s[i] != ',')
                return false;
            i++;
            if (obj && !(i = scan_key(s, i, n)))
                return false;
            break;
        }
    }
}
