/*
 * fetch_body.c: what web_fetch and http_request do with a response body,
 * without I/O.  Content-Type parsing, text-or-binary decisions (declared
 * type first, a sniff of the first bytes when there is none), charset
 * conversion to UTF-8 (the header's charset, else a <meta charset> in the
 * first 2 KiB of an HTML page), HTML to text, and the cut to maxChars.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tools/internal.h"

#define META_SNIFF_BYTES 2048
#define SNIFF_BYTES 1024

static void copy_lower(char *dst, size_t cap, const char *p, size_t n)
{
    size_t i;

    n = CH_MIN(n, cap - 1);
    for (i = 0; i < n; i++)
        dst[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] - 'A' + 'a' : p[i]);
    dst[i] = '\0';
}

static struct ch_str trim_ws(struct ch_str s)
{
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t'))
        s.p++, s.len--;
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* A charset label: letters, digits, - _ . : ( ); anything else ends it. */
static size_t label_len(const char *p, size_t n)
{
    size_t i = 0;

    while (i < n && ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9') ||
                     p[i] == '-' || p[i] == '_' || p[i] == '.' || p[i] == ':'))
        i++;
    return i;
}

void ctype_parse(struct ch_str ct, char *mime, size_t mcap, char *charset, size_t ccap)
{
    const char *semi = ct.p ? memchr(ct.p, ';', ct.len) : NULL;
    struct ch_str type = {ct.p, semi ? (size_t)(semi - ct.p) : ct.len};
    const char *cs;

    mime[0] = charset[0] = '\0';
    if (!ct.p)
        return;
    type = trim_ws(type);
    copy_lower(mime, mcap, type.p, type.len);
    if (!semi)
        return;
    cs = text_find_ci(semi, ct.len - (size_t)(semi - ct.p), "charset=");
    if (cs) {
        const char *v = cs + 8;
        size_t rest = ct.len - (size_t)(v - ct.p);
        if (rest && (*v == '"' || *v == '\''))
            v++, rest--;
        copy_lower(charset, ccap, v, label_len(v, rest));
    }
}

enum body_kind ctype_kind(const char *mime)
{
    static const char *const text_types[] = {
        "application/json",         "application/xml",      "application/javascript", "application/ecmascript",
        "application/x-javascript", "application/x-ndjson", "application/yaml",       "application/x-yaml",
        "application/toml",         "application/csv",      "application/x-sh",       "application/sql",
        "application/graphql",      "message/rfc822",
    };
    size_t n = strlen(mime);

    if (n == 0)
        return BODY_UNKNOWN;
    if (!strcmp(mime, "text/html") || !strcmp(mime, "application/xhtml+xml"))
        return BODY_HTML;
    if (!strncmp(mime, "text/", 5))
        return BODY_TEXT;
    if ((n > 5 && !strcmp(mime + n - 5, "+json")) || (n > 4 && !strcmp(mime + n - 4, "+xml")))
        return BODY_TEXT;
    for (size_t i = 0; i < CH_ARRAY_SIZE(text_types); i++)
        if (!strcmp(mime, text_types[i]))
            return BODY_TEXT;
    return BODY_BINARY; /* image/, audio/, video/, octet-stream, pdf, zip, fonts, ... */
}

enum body_kind body_sniff(const char *p, size_t n)
{
    size_t i, lim = CH_MIN(n, (size_t)SNIFF_BYTES);

    for (i = 0; i < lim; i++) {
        unsigned char c = (unsigned char)p[i];
        /* Control bytes other than whitespace and ESC/FF mark binary
         * (WHATWG MIME sniffing's "binary data byte"). */
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != 0x1B)
            return BODY_BINARY;
    }
    for (i = 0; i < lim && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'); i++)
        ;
    if (text_find_ci(p + i, CH_MIN(lim - i, (size_t)16), "<!doctype html") == p + i ||
        text_find_ci(p + i, CH_MIN(lim - i, (size_t)16), "<html") == p + i ||
        text_find_ci(p + i, CH_MIN(lim - i, (size_t)16), "<head") == p + i)
        return BODY_HTML;
    return BODY_TEXT;
}

/* <meta charset="x"> or <meta http-equiv=... content="...; charset=x">. */
static void meta_charset(const char *p, size_t n, char *out, size_t cap)
{
    const char *end = p + CH_MIN(n, (size_t)META_SNIFF_BYTES), *m = p;

    while ((m = text_find_ci(m, (size_t)(end - m), "<meta")) != NULL) {
        const char *gt = memchr(m, '>', (size_t)(end - m));
        const char *cs;

        if (!gt)
            return;
        cs = text_find_ci(m, (size_t)(gt - m), "charset=");
        if (cs) {
            cs += 8;
            while (cs < gt && (*cs == '"' || *cs == '\'' || *cs == ' '))
                cs++;
            copy_lower(out, cap, cs, label_len(cs, (size_t)(gt - cs)));
            return;
        }
        m = gt;
    }
}

void fetch_text_release(struct fetch_text *ft)
{
    ch_free(ft->text);
    ch_free(ft->title);
    memset(ft, 0, sizeof(*ft));
}

int fetch_render(const char *body, size_t len, const char *charset, enum body_kind kind, size_t max_chars,
                 struct fetch_text *out)
{
    struct ch_buf utf8, text;
    char cs[40];
    size_t keep;
    int rc;

    memset(out, 0, sizeof(*out));
    snprintf(cs, sizeof(cs), "%s", charset ? charset : "");
    if (!cs[0] && kind == BODY_HTML)
        meta_charset(body, len, cs, sizeof(cs));
    /* Legacy two-byte charsets can grow by half in UTF-8; invalid bytes
     * become 3-byte U+FFFD.  3x is the worst case. */
    ch_buf_init(&utf8, len * 3 + 16);
    ch_buf_init(&text, len * 3 + 4096);
    rc = text_to_utf8(cs, body, len, &utf8);
    if (rc == 0 && kind == BODY_HTML)
        rc = html_to_text(utf8.data ? utf8.data : "", utf8.len, &text, &out->title);
    else if (rc == 0)
        rc = ch_buf_append(&text, utf8.data ? utf8.data : "", utf8.len);
    ch_buf_release(&utf8);
    if (rc)
        goto out;
    out->chars = text_count_chars(text.data ? text.data : "", text.len);
    if (out->chars > max_chars) {
        keep = text_prefix_chars(text.data, text.len, max_chars);
        text.len = keep;
        text.data[keep] = '\0';
        out->truncated = true;
        rc = ch_buf_appendf(&text,
                            "\n\n[truncated: %zu of %zu characters shown; ask for a "
                            "larger maxChars (up to 100000) to see more]",
                            max_chars, out->chars);
        if (rc)
            goto out;
    }
    if (!text.data && (rc = ch_buf_append(&text, "", 0)) != 0)
        goto out;
    out->text = ch_buf_detach(&text, &out->len);
out:
    ch_buf_release(&text);
    if (rc)
        fetch_text_release(out);
    return rc;
}
