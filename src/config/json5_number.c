/*
 * json5_number.c: JSON5 numbers (spec.json5.org section 6): decimal with
 * optional leading or trailing '.', exponents, hex integers, an explicit
 * '+' or '-'.  Integers become json_integer when they fit int64 (else an
 * error, never a silent double); anything with '.' or an exponent becomes
 * json_real through strtod.  Infinity and NaN are recognised only to give
 * a clear error, since jansson cannot hold non-finite numbers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/json5_int.h"

static bool is_digit(const struct j5 *p, size_t at)
{
    return at < p->len && p->s[at] >= '0' && p->s[at] <= '9';
}

static bool word_at(const struct j5 *p, size_t at, const char *w)
{
    size_t n = strlen(w);

    return p->len - at >= n && memcmp(p->s + at, w, n) == 0;
}

/* Accumulate digits into a magnitude; false on uint64 overflow. */
static bool add_digit(uint64_t *m, unsigned base, unsigned d)
{
    if (*m > (UINT64_MAX - d) / base)
        return false;
    *m = *m * base + d;
    return true;
}

/* Longest number text handed to strtod; longer literals are surely mistakes. */
#define MAX_NUMBER_CHARS 512

int j5_number(struct j5 *p, json_t **out)
{
    int line = p->line, col = p->col;
    size_t start = p->i, at, digits_from;
    bool neg = false, is_real = false, ok = true;
    uint64_t mag = 0;
    json_t *v;

    at = start; /* scans ahead; p->i moves only once the whole number is read */
    if (p->s[at] == '+' || p->s[at] == '-')
        neg = p->s[at++] == '-';
    if (word_at(p, at, "Infinity") || word_at(p, at, "NaN"))
        return j5_fail(p, "Infinity and NaN are not supported (configuration numbers must be "
                          "finite)");
    if (at + 1 < p->len && p->s[at] == '0' && (p->s[at + 1] == 'x' || p->s[at + 1] == 'X')) {
        at += 2;
        digits_from = at;
        for (; at < p->len && j5_hex_value(p->s[at]) >= 0; at++)
            ok = ok && add_digit(&mag, 16, (unsigned)j5_hex_value(p->s[at]));
        if (at == digits_from)
            return j5_fail_at(p, CH_EINVAL, line, col, start, "0x must be followed by hex digits");
    } else {
        digits_from = at;
        for (; is_digit(p, at); at++)
            ok = ok && add_digit(&mag, 10, (unsigned)(p->s[at] - '0'));
        if (at - digits_from > 1 && p->s[digits_from] == '0')
            return j5_fail_at(p, CH_EINVAL, line, col, start, "leading zeros are not allowed in numbers");
        if (at < p->len && p->s[at] == '.') {
            is_real = true;
            at++;
            if (at - 1 == digits_from && !is_digit(p, at))
                return j5_fail_at(p, CH_EINVAL, line, col, start, "expected digits around '.'");
            while (is_digit(p, at))
                at++;
        } else if (at == digits_from) {
            return j5_fail_at(p, CH_EINVAL, line, col, start, "expected a digit after the sign");
        }
        if (at < p->len && (p->s[at] == 'e' || p->s[at] == 'E')) {
            is_real = true;
            at++;
            if (at < p->len && (p->s[at] == '+' || p->s[at] == '-'))
                at++;
            if (!is_digit(p, at))
                return j5_fail_at(p, CH_EINVAL, line, col, start, "expected digits in exponent");
            while (is_digit(p, at))
                at++;
        }
    }
    /* "12abc" or "0x1g" is one bad token, not a number followed by junk. */
    if (at < p->len && (j5_ascii_ident(p->s[at], false) || p->s[at] == '.'))
        return j5_fail_at(p, CH_EINVAL, line, col, start, "invalid character '%c' in number", p->s[at]);
    if (!is_real) {
        /* int64 holds -2^63 .. 2^63-1: the negative side is one larger. */
        if (!ok || mag > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
            return j5_fail_at(p, CH_EINVAL, line, col, start, "integer out of range (a 64-bit signed integer)");
        v = json_integer(neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(json_int_t)mag) : (json_int_t)mag);
    } else {
        char buf[MAX_NUMBER_CHARS + 1];
        size_t from = start + (p->s[start] == '+'); /* strtod accepts '+', but be plain */
        double d;

        if (at - from > MAX_NUMBER_CHARS)
            return j5_fail_at(p, CH_EINVAL, line, col, start, "number longer than %d characters", MAX_NUMBER_CHARS);
        memcpy(buf, p->s + from, at - from);
        buf[at - from] = '\0';
        /* The daemon never calls setlocale, so the decimal point is '.'. */
        errno = 0;
        d = strtod(buf, NULL);
        if (errno == ERANGE && (d > 1.0 || d < -1.0))
            return j5_fail_at(p, CH_EINVAL, line, col, start, "number out of range (larger than a double)");
        v = json_real(d);
    }
    if (!v)
        return j5_fail_at(p, CH_ENOMEM, line, col, start, "out of memory");
    j5_advance(p, at - p->i);
    *out = v;
    return 0;
}
