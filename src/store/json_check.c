/*
 * store/json_check.c: the store's input checks in C: a strict JSON (RFC
 * 8259) validator for the hot text columns (runs.request, runs.result,
 * messages.content), and ch_store_check_text for every text input.
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

/* Whether any byte of w is below 0x20 or is 0x7f.  Exact for "any" (the
 * classic has-less-than and has-zero-byte tests: a borrow can only mark a
 * byte above one that really matched).  Eight bytes at a time: a turn
 * checks some 15 ids and keys, ~4 instructions a byte in a byte loop. */
static inline bool word_has_control(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t del = w ^ (0x7f * ones);

    return (((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & highs;
}

int ch_store_check_text(const char *s, size_t max_bytes, bool required, bool multiline, const char *what, size_t *len,
                        struct ch_error *err)
{
    size_t n, i;

    if (!s) {
        if (required)
            return ch_error_set(err, CH_EINVAL, "%s is missing", what);
        if (len)
            *len = 0;
        return 0;
    }
    n = strnlen(s, max_bytes + 1);
    if (n > max_bytes)
        return ch_error_set(err, CH_E_TOO_LARGE, "%s is longer than %zu bytes", what, max_bytes);
    if (n == 0 && required)
        return ch_error_set(err, CH_EINVAL, "%s is empty", what);
    /* Identifiers and labels end up in logs and JSON: no control bytes.
     * JSON and free text (multiline) may hold newlines and tabs. */
    if (!multiline) {
        for (i = 0; n - i >= 8; i += 8) {
            uint64_t w;

            memcpy(&w, s + i, 8);
            if (word_has_control(w))
                return ch_error_set(err, CH_EINVAL, "%s contains control characters", what);
        }
        for (; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                return ch_error_set(err, CH_EINVAL, "%s contains control characters", what);
    }
    if (len)
        *len = n;
    return 0;
}
