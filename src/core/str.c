/*
 * str.c: borrowed slices and small parsers (sizes, durations, decimal,
 * percent-decoding) shared by config, http and the CLI.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"

struct ch_str ch_str_from(const char *cstr)
{
    struct ch_str s = {cstr, cstr ? strlen(cstr) : 0};
    return s;
}

bool ch_str_eq(struct ch_str a, struct ch_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool ch_str_eq_cstr(struct ch_str a, const char *b)
{
    return ch_str_eq(a, ch_str_from(b));
}

bool ch_str_eq_ci(struct ch_str a, const char *b)
{
    size_t n = strlen(b);
    return a.len == n && (n == 0 || strncasecmp(a.p, b, n) == 0);
}

bool ch_str_has_prefix(struct ch_str a, const char *prefix)
{
    size_t n = strlen(prefix);
    return a.len >= n && memcmp(a.p, prefix, n) == 0;
}

char *ch_str_dup(struct ch_str s)
{
    char *d = ch_malloc(s.len + 1);
    if (!d)
        return NULL;
    if (s.len)
        memcpy(d, s.p, s.len);
    d[s.len] = '\0';
    return d;
}

size_t ch_str_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

char *ch_str_join(struct ch_str a, const char *b)
{
    size_t bl = strlen(b);
    char *d = ch_malloc(a.len + bl + 1);

    if (!d)
        return NULL;
    if (a.len)
        memcpy(d, a.p, a.len);
    memcpy(d + a.len, b, bl + 1);
    return d;
}

struct ch_str ch_str_trim(struct ch_str s)
{
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
        s.len--;
    return s;
}

int ch_str_to_u64(struct ch_str s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (s.len == 0 || s.len > 20)
        return CH_EINVAL;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d;
        if (s.p[i] < '0' || s.p[i] > '9')
            return CH_EINVAL;
        d = (unsigned)(s.p[i] - '0');
        if (v > (max - d) / 10)
            return CH_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Accepts B, KB, MB, GB (powers of 1024, as nginx and seed 002 mean them)
 * and KiB/MiB/GiB spellings, case-insensitive, optional space. */
int ch_parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v;
    uint64_t mult = 1;

    if (!s || !*s)
        return CH_EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || v < 0 || !isfinite(v))
        return CH_EINVAL;
    while (*end == ' ')
        end++;
    if (!*end || !strcasecmp(end, "b"))
        mult = 1;
    else if (!strcasecmp(end, "kb") || !strcasecmp(end, "kib") || !strcasecmp(end, "k"))
        mult = 1024;
    else if (!strcasecmp(end, "mb") || !strcasecmp(end, "mib") || !strcasecmp(end, "m"))
        mult = 1024 * 1024;
    else if (!strcasecmp(end, "gb") || !strcasecmp(end, "gib") || !strcasecmp(end, "g"))
        mult = 1024ull * 1024 * 1024;
    else
        return CH_EINVAL;
    if (v * (double)mult > 9.0e18)
        return CH_EINVAL;
    *out = (uint64_t)(v * (double)mult);
    return 0;
}

int ch_parse_duration_ms(const char *s, int64_t *out)
{
    char *end;
    double v;
    double mult;

    if (!s || !*s)
        return CH_EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || v < 0 || !isfinite(v))
        return CH_EINVAL;
    if (!*end || !strcmp(end, "s"))
        mult = 1000;
    else if (!strcmp(end, "ms"))
        mult = 1;
    else if (!strcmp(end, "m"))
        mult = 60e3;
    else if (!strcmp(end, "h"))
        mult = 3600e3;
    else if (!strcmp(end, "d"))
        mult = 86400e3;
    else if (!strcmp(end, "w"))
        mult = 7 * 86400e3;
    else
        return CH_EINVAL;
    if (v * mult > 9.0e15)
        return CH_EINVAL;
    *out = (int64_t)(v * mult);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int url_decode(struct ch_str in, char *out, size_t outcap, size_t *outlen, bool form)
{
    size_t o = 0;

    if (outcap == 0)
        return CH_E_TOO_LARGE;
    for (size_t i = 0; i < in.len; i++) {
        char c = in.p[i];
        if (c == '+' && form) {
            c = ' ';
        } else if (c == '%') {
            int hi, lo;
            if (i + 2 >= in.len)
                return CH_EINVAL;
            hi = hexval(in.p[i + 1]);
            lo = hexval(in.p[i + 2]);
            if (hi < 0 || lo < 0)
                return CH_EINVAL;
            c = (char)(hi * 16 + lo);
            i += 2;
            if (c == '\0' && !form)
                return CH_EINVAL;
        }
        if (o + 1 >= outcap)
            return CH_E_TOO_LARGE;
        out[o++] = c;
    }
    out[o] = '\0';
    if (outlen)
        *outlen = o;
    return 0;
}

int ch_url_decode(struct ch_str in, char *out, size_t outcap, size_t *outlen)
{
    return url_decode(in, out, outcap, outlen, true);
}

int ch_url_decode_path(struct ch_str in, char *out, size_t outcap, size_t *outlen)
{
    return url_decode(in, out, outcap, outlen, false);
}

/* The userinfo of a URL prints a password and its query often a key:
 * logs, errors and read-scope answers show scheme://host[:port]/path. */
void ch_url_for_log(const char *url, char *out, size_t cap)
{
    const char *p = url ? strstr(url, "://") : NULL, *host, *at, *end;

    if (!cap)
        return;
    if (!p) {
        snprintf(out, cap, "?");
        return;
    }
    host = p + 3;
    end = host + strcspn(host, "/?#");
    for (at = host; at < end; at++)
        if (*at == '@') /* the last one ends the userinfo */
            host = at + 1;
    end += strcspn(end, "?#");
    snprintf(out, cap, "%.*s://%.*s", (int)(p - url), url, (int)(end - host), host);
}
