/*
 * text.c: UTF-8 helpers for tool results.  Everything a tool returns ends
 * up in a JSON string sent to a provider, and jansson refuses invalid
 * UTF-8, so bytes from the network are sanitised (invalid sequences become
 * U+FFFD, RFC 3629 rules: no overlongs, no surrogates, nothing above
 * U+10FFFF) and cut only on code point boundaries.  Charsets other than
 * UTF-8 are converted with glibc's iconv.
 */
#include <errno.h>
#include <iconv.h>
#include <string.h>
#include <strings.h>

#include "tools/internal.h"

static const char replacement[3] = {(char)0xEF, (char)0xBF, (char)0xBD}; /* U+FFFD */

int text_append_utf8(struct ch_buf *b, const char *p, size_t n)
{
    return ch_buf_append_utf8_clean(b, p, n);
}

size_t text_count_chars(const char *p, size_t n)
{
    size_t count = 0;

    for (size_t i = 0; i < n; i++)
        count += ((unsigned char)p[i] & 0xC0) != 0x80;
    return count;
}

size_t text_prefix_chars(const char *p, size_t n, size_t max_chars)
{
    size_t chars = 0, i;

    for (i = 0; i < n; i++) {
        if (((unsigned char)p[i] & 0xC0) != 0x80) {
            if (chars == max_chars)
                break;
            chars++;
        }
    }
    return i;
}

size_t text_prefix_bytes(const char *p, size_t n, size_t max_bytes)
{
    size_t i;

    if (n <= max_bytes)
        return n;
    /* Back up over continuation bytes to the start of the split sequence. */
    i = max_bytes;
    while (i > 0 && ((unsigned char)p[i] & 0xC0) == 0x80)
        i--;
    return i;
}

int text_append_cp(struct ch_buf *b, uint32_t cp)
{
    char u[4];

    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return ch_buf_append(b, replacement, sizeof(replacement));
    if (cp < 0x80) {
        u[0] = (char)cp;
        return ch_buf_append(b, u, 1);
    }
    if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        return ch_buf_append(b, u, 2);
    }
    if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        return ch_buf_append(b, u, 3);
    }
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    return ch_buf_append(b, u, 4);
}

static bool is_utf8_name(const char *cs)
{
    return !cs || !*cs || !strcasecmp(cs, "utf-8") || !strcasecmp(cs, "utf8") || !strcasecmp(cs, "us-ascii") ||
           !strcasecmp(cs, "ascii");
}

int text_to_utf8(const char *charset, const char *p, size_t n, struct ch_buf *out)
{
    char chunk[4096];
    char *in = (char *)p; /* iconv's prototype is not const-correct */
    size_t inleft = n;
    iconv_t cd;
    int rc = 0;

    if (is_utf8_name(charset))
        return text_append_utf8(out, p, n);
    /* "//" would select iconv suffixes (//TRANSLIT); a label never has it. */
    if (strstr(charset, "/") || strlen(charset) > 40)
        return text_append_utf8(out, p, n);
    cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1) /* unknown label: the best guess is UTF-8 */
        return text_append_utf8(out, p, n);
    while (inleft > 0 && rc == 0) {
        char *o = chunk;
        size_t oleft = sizeof(chunk);
        size_t r = iconv(cd, &in, &inleft, &o, &oleft);
        int e = errno;

        /* iconv's output is valid UTF-8 already, but NUL still must go. */
        rc = text_append_utf8(out, chunk, sizeof(chunk) - oleft);
        if (r != (size_t)-1 || rc)
            continue;
        if (e == E2BIG)
            continue;
        /* EILSEQ or EINVAL (truncated input): replace one byte, go on. */
        if (rc == 0)
            rc = ch_buf_append(out, replacement, sizeof(replacement));
        in++;
        inleft--;
    }
    iconv_close(cd);
    return rc;
}

const char *text_find_ci(const char *p, size_t n, const char *needle)
{
    size_t m = strlen(needle);

    if (m == 0 || m > n)
        return m == 0 ? p : NULL;
    for (size_t i = 0; i + m <= n; i++) {
        if (strncasecmp(p + i, needle, m) == 0)
            return p + i;
    }
    return NULL;
}
