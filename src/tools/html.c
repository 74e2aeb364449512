/*
 * html.c: readable text from an HTML page, for web_fetch.
 *
 * Not a conforming HTML5 parser (no tree building): one forward pass that
 * tokenises tags, comments and text, which is enough to get what a reader
 * would see.  Dropped: script, style, noscript, iframe,
 * textarea (raw text: skipped to their end tag), and nav, header, footer,
 * svg, math, template (skipped with a small stack so unbalanced markup
 * cannot hide the rest of the page forever).  Head content needs no rule:
 * it is void elements and raw text, plus the title.  Kept: the title (emitted
 * first), text with entities decoded and whitespace collapsed, block
 * elements on their own lines (a blank line around paragraphs, headings
 * as "# ", list items as "- ", table cells separated by " | "), link
 * text, and <pre> whitespace as is.  Input is UTF-8; output is capped by
 * the caller's buffer.
 */
#include <string.h>
#include <strings.h>

#include "tools/internal.h"

#define MAX_SKIP_DEPTH 32
#define MAX_TITLE_BYTES 1024

struct html {
    struct ch_buf *out;
    struct ch_buf title;
    bool title_done;
    int pending_nl; /* newlines owed before the next text (0..2) */
    bool pending_space, pending_cell;
    int trail_nl; /* newlines at the end of out */
    int pre_depth;
    char skip[MAX_SKIP_DEPTH][12];
    int skip_n; /* open skipped elements; beyond the stack, skip_extra */
    int skip_extra;
    int rc;
};

static const char *const raw_skip[] = {"script",   "style", "noscript", "iframe",
                                       "textarea", "xmp",   "noembed",  "noframes"};
static const char *const nested_skip[] = {"nav", "header", "footer", "svg", "math", "template"};
static const char *const void_tags[] = {"area",  "base", "br",   "col",   "embed",  "hr",    "img",
                                        "input", "link", "meta", "param", "source", "track", "wbr"};
static const char *const para_tags[] = {"p",       "table",  "blockquote", "pre",      "hr",      "section",
                                        "article", "figure", "address",    "fieldset", "details", "h1",
                                        "h2",      "h3",     "h4",         "h5",       "h6"};
static const char *const line_tags[] = {"div",  "li",      "ul",         "ol",      "dl",     "tr",     "dt",
                                        "dd",   "caption", "figcaption", "summary", "option", "legend", "aside",
                                        "main", "body",    "center",     "form",    "thead",  "tbody",  "tfoot"};

static bool in_set(const char *name, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(name, set[i]))
            return true;
    return false;
}
#define IN(name, set) in_set(name, set, CH_ARRAY_SIZE(set))

/* ------------------------------------------------------------------ */
/* Output                                                               */
/* ------------------------------------------------------------------ */

static void put(struct html *h, const char *p, size_t n)
{
    if (h->rc == 0 && n)
        h->rc = ch_buf_append(h->out, p, n);
}

/* Emit what whitespace is owed, then nothing: called before visible text. */
static void flush_pending(struct html *h)
{
    if (h->out->len > 0) {
        if (h->pending_nl) {
            for (int i = h->trail_nl; i < h->pending_nl; i++)
                put(h, "\n", 1);
        } else if (h->pending_cell && h->trail_nl == 0) {
            put(h, " | ", 3);
        } else if (h->pending_space && h->trail_nl == 0) {
            put(h, " ", 1);
        }
    }
    h->pending_nl = 0;
    h->pending_space = h->pending_cell = false;
}

static void put_visible(struct html *h, const char *p, size_t n)
{
    flush_pending(h);
    put(h, p, n);
    h->trail_nl = 0;
}

static void block_break(struct html *h, int n)
{
    if (n > h->pending_nl)
        h->pending_nl = n;
    h->pending_space = h->pending_cell = false;
}

/* UTF-8 of cp into u; U+FFFD for 0, surrogates and > U+10FFFF. */
static size_t utf8_encode(uint32_t cp, char u[4])
{
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        cp = 0xFFFD;
    if (cp < 0x80) {
        u[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One decoded code point of body text. */
static void put_cp(struct html *h, uint32_t cp)
{
    char u[4];
    size_t n;

    if (cp == 0xAD || cp == 0x200B || cp == 0xFEFF)
        return; /* soft hyphen, zero-width space, BOM: invisible */
    if (h->pre_depth > 0 && (cp == ' ' || cp == '\t' || cp == '\n')) {
        flush_pending(h);
        u[0] = (char)cp;
        put(h, u, 1);
        h->trail_nl = cp == '\n' ? h->trail_nl + 1 : 0;
        return;
    }
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == 0xA0) {
        h->pending_space = true;
        return;
    }
    n = utf8_encode(cp, u);
    put_visible(h, u, n);
}

/* ------------------------------------------------------------------ */
/* Entities                                                             */
/* ------------------------------------------------------------------ */

static const struct {
    const char *name;
    uint16_t cp;
    bool legacy;
} entities[] = {
    {"amp", '&', true},        {"lt", '<', true},         {"gt", '>', true},         {"quot", '"', true},
    {"apos", '\'', false},     {"nbsp", 0xA0, true},      {"copy", 0xA9, true},      {"reg", 0xAE, true},
    {"trade", 0x2122, false},  {"hellip", 0x2026, false}, {"mdash", 0x2014, false},  {"ndash", 0x2013, false},
    {"lsquo", 0x2018, false},  {"rsquo", 0x2019, false},  {"sbquo", 0x201A, false},  {"ldquo", 0x201C, false},
    {"rdquo", 0x201D, false},  {"bdquo", 0x201E, false},  {"laquo", 0xAB, false},    {"raquo", 0xBB, false},
    {"bull", 0x2022, false},   {"middot", 0xB7, false},   {"deg", 0xB0, false},      {"times", 0xD7, false},
    {"divide", 0xF7, false},   {"euro", 0x20AC, false},   {"pound", 0xA3, false},    {"yen", 0xA5, false},
    {"cent", 0xA2, false},     {"sect", 0xA7, false},     {"para", 0xB6, false},     {"plusmn", 0xB1, false},
    {"frac12", 0xBD, false},   {"frac14", 0xBC, false},   {"frac34", 0xBE, false},   {"shy", 0xAD, false},
    {"ensp", 0x2002, false},   {"emsp", 0x2003, false},   {"thinsp", 0x2009, false}, {"larr", 0x2190, false},
    {"rarr", 0x2192, false},   {"uarr", 0x2191, false},   {"darr", 0x2193, false},   {"le", 0x2264, false},
    {"ge", 0x2265, false},     {"ne", 0x2260, false},     {"minus", 0x2212, false},  {"prime", 0x2032, false},
    {"micro", 0xB5, false},    {"iexcl", 0xA1, false},    {"iquest", 0xBF, false},   {"eacute", 0xE9, false},
    {"egrave", 0xE8, false},   {"agrave", 0xE0, false},   {"aacute", 0xE1, false},   {"ccedil", 0xE7, false},
    {"uuml", 0xFC, false},     {"ouml", 0xF6, false},     {"auml", 0xE4, false},     {"Uuml", 0xDC, false},
    {"Ouml", 0xD6, false},     {"Auml", 0xC4, false},     {"szlig", 0xDF, false},    {"ntilde", 0xF1, false},
    {"hearts", 0x2665, false}, {"check", 0x2713, false},  {"zwnj", 0x200C, false},   {"zwj", 0x200D, false},
};

/* HTML's mapping of numeric references 0x80..0x9F (windows-1252). */
static const uint16_t c1_map[32] = {
    0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178,
};

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Decode the reference at p ('&' included); 0 if it is not one. */
static size_t decode_entity(const char *p, size_t n, uint32_t *cp)
{
    size_t i = 1, start;
    uint32_t v = 0;

    if (n > 2 && p[1] == '#') {
        bool hex = n > 3 && (p[2] == 'x' || p[2] == 'X');
        i = start = hex ? 3 : 2;
        while (i < n && i - start < 8) {
            char c = p[i];
            int d = c >= '0' && c <= '9'          ? c - '0'
                    : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                  : -1;
            if (d < 0)
                break;
            v = v * (hex ? 16 : 10) + (uint32_t)d;
            i++;
        }
        if (i == start)
            return 0;
        if (i < n && p[i] == ';')
            i++;
        if (v >= 0x80 && v <= 0x9F)
            v = c1_map[v - 0x80];
        *cp = v; /* 0, surrogates and > 0x10FFFF become U+FFFD later */
        return i;
    }
    while (i < n && i < 12 && is_alnum(p[i]))
        i++;
    for (size_t k = 0; k < CH_ARRAY_SIZE(entities); k++) {
        size_t len = strlen(entities[k].name);
        if (len != i - 1 || memcmp(p + 1, entities[k].name, len))
            continue;
        if (i < n && p[i] == ';') {
            *cp = entities[k].cp;
            return i + 1;
        }
        /* "&amp" without ";" only for the legacy names, as browsers do. */
        if (entities[k].legacy && (i >= n || p[i] != '=')) {
            *cp = entities[k].cp;
            return i;
        }
    }
    return 0;
}

/* Decode and emit text (or append it to the title). */
static void emit_text(struct html *h, const char *p, size_t n, bool to_title)
{
    size_t i = 0;

    while (i < n && h->rc == 0) {
        uint32_t cp;
        size_t k = p[i] == '&' ? decode_entity(p + i, n - i, &cp) : 0;

        if (k) {
            i += k;
        } else if ((unsigned char)p[i] < 0x80) {
            cp = (unsigned char)p[i++];
        } else {
            /* A multi-byte sequence: copy it whole (the input is valid UTF-8). */
            size_t j = i + 1;
            while (j < n && ((unsigned char)p[j] & 0xC0) == 0x80)
                j++;
            if (to_title)
                ch_buf_append(&h->title, p + i, j - i);
            else
                put_visible(h, p + i, j - i);
            i = j;
            continue;
        }
        if (to_title) {
            if (cp == '\n' || cp == '\t' || cp == '\r' || cp == 0xA0)
                cp = ' ';
            if (cp != ' ' || (h->title.len && h->title.data[h->title.len - 1] != ' '))
                text_append_cp(&h->title, cp); /* capped: a long title is cut */
        } else {
            put_cp(h, cp);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Tags                                                                 */
/* ------------------------------------------------------------------ */

/* Skip past the end tag </name ...> from p; returns the new position. */
static size_t skip_raw(const char *in, size_t len, size_t pos, const char *name, size_t *content_end)
{
    char needle[16] = "</";
    const char *e, *gt;

    strncat(needle, name, sizeof(needle) - 3);
    e = text_find_ci(in + pos, len - pos, needle);
    if (!e) {
        *content_end = len;
        return len;
    }
    *content_end = (size_t)(e - in);
    gt = memchr(e, '>', (size_t)(in + len - e));
    return gt ? (size_t)(gt - in) + 1 : len;
}

static void start_tag(struct html *h, const char *name, bool self_closing)
{
    bool is_void = IN(name, void_tags);

    if (h->skip_n > 0 || h->skip_extra > 0) {
        if (IN(name, nested_skip) && !self_closing && !is_void) {
            if (h->skip_n < MAX_SKIP_DEPTH)
                strcpy(h->skip[h->skip_n++], name);
            else
                h->skip_extra++;
        }
        return;
    }
    if (IN(name, nested_skip)) {
        if (!self_closing)
            strcpy(h->skip[h->skip_n++], name);
        return;
    }
    if (!strcmp(name, "br")) {
        h->pending_nl = CH_MIN(CH_MAX(h->pending_nl, h->trail_nl) + 1, 2);
        h->pending_space = false;
        return;
    }
    if (!strcmp(name, "td") || !strcmp(name, "th")) {
        h->pending_cell = true;
        return;
    }
    if (IN(name, para_tags))
        block_break(h, 2);
    else if (IN(name, line_tags))
        block_break(h, 1);
    if (!strcmp(name, "pre"))
        h->pre_depth++;
    if (name[0] == 'h' && name[1] >= '1' && name[1] <= '6' && !name[2]) {
        static const char hashes[] = "###### ";
        int level = name[1] - '0';
        put_visible(h, hashes + 6 - level, (size_t)level + 1);
    } else if (!strcmp(name, "li")) {
        put_visible(h, "- ", 2);
    }
}

static void end_tag(struct html *h, const char *name)
{
    if (h->skip_extra > 0) {
        if (IN(name, nested_skip))
            h->skip_extra--;
        return;
    }
    if (h->skip_n > 0) {
        /* Pop to the matching element; an end tag with no match is ignored. */
        for (int i = h->skip_n - 1; i >= 0; i--) {
            if (!strcmp(h->skip[i], name)) {
                h->skip_n = i;
                break;
            }
        }
        return;
    }
    if (!strcmp(name, "pre") && h->pre_depth > 0)
        h->pre_depth--;
    if (IN(name, para_tags))
        block_break(h, 2);
    else if (IN(name, line_tags))
        block_break(h, 1);
}

/* Parse a tag at in[pos] == '<'; returns the position after it, or pos
 * when it is not a tag (a literal '<'). */
static size_t handle_tag(struct html *h, const char *in, size_t len, size_t pos)
{
    size_t i = pos + 1, n = 0, content_end;
    bool end = false, self_closing = false;
    char name[12];
    const char *gt;

    if (i < len && in[i] == '!') {
        if (len - i >= 3 && !memcmp(in + i, "!--", 3)) {
            const char *e = i + 3 <= len ? memmem(in + i + 3, len - i - 3, "-->", 3) : NULL;
            return e ? (size_t)(e - in) + 3 : len;
        }
        gt = memchr(in + i, '>', len - i); /* doctype, CDATA */
        return gt ? (size_t)(gt - in) + 1 : len;
    }
    if (i < len && in[i] == '?') {
        gt = memchr(in + i, '>', len - i);
        return gt ? (size_t)(gt - in) + 1 : len;
    }
    if (i < len && in[i] == '/') {
        end = true;
        i++;
    }
    if (i >= len || !((in[i] >= 'a' && in[i] <= 'z') || (in[i] >= 'A' && in[i] <= 'Z')))
        return pos;
    while (i < len && (is_alnum(in[i]) || in[i] == '-' || in[i] == ':')) {
        if (n < sizeof(name) - 1)
            name[n++] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] - 'A' + 'a' : in[i]);
        else
            n = sizeof(name); /* too long for any tag we know */
        i++;
    }
    name[CH_MIN(n, sizeof(name) - 1)] = '\0';
    if (n == sizeof(name))
        name[0] = '\0';
    /* Attributes: a quoted value may hold '>'. */
    while (i < len && in[i] != '>') {
        if (in[i] == '"' || in[i] == '\'') {
            const char *q = memchr(in + i + 1, in[i], len - i - 1);
            i = q ? (size_t)(q - in) + 1 : len;
            continue;
        }
        self_closing = in[i] == '/';
        i++;
    }
    if (i >= len)
        return len; /* a tag cut off at the end: drop it */
    i++;
    if (end) {
        end_tag(h, name);
        return i;
    }
    if (IN(name, raw_skip))
        return skip_raw(in, len, i, name, &content_end);
    if (!strcmp(name, "title")) {
        size_t next = skip_raw(in, len, i, name, &content_end);
        if (!h->title_done && h->skip_n == 0 && h->skip_extra == 0) { /* not svg's <title> */
            emit_text(h, in + i, content_end - i, true);
            h->title_done = true;
        }
        return next;
    }
    start_tag(h, name, self_closing);
    /* A newline right after <pre> is not content (HTML 13.2.6.4.7). */
    if (!strcmp(name, "pre") && h->skip_n == 0 && h->skip_extra == 0) {
        if (i < len && in[i] == '\r')
            i++;
        if (i < len && in[i] == '\n')
            i++;
    }
    return i;
}

int html_to_text(const char *in, size_t len, struct ch_buf *out, char **title)
{
    struct html h = {.out = out};
    size_t pos = 0, start = out->len;
    char *t;

    ch_buf_init(&h.title, MAX_TITLE_BYTES);
    while (pos < len && h.rc == 0) {
        const char *lt = memchr(in + pos, '<', len - pos);
        size_t stop = lt ? (size_t)(lt - in) : len, next;

        if (stop > pos && h.skip_n == 0 && h.skip_extra == 0)
            emit_text(&h, in + pos, stop - pos, false);
        if (!lt)
            break;
        next = handle_tag(&h, in, len, stop);
        if (next == stop) { /* a literal '<' */
            if (h.skip_n == 0 && h.skip_extra == 0)
                put_cp(&h, '<');
            next = stop + 1;
        }
        pos = next;
    }
    /* Trim a trailing space of the title, then put it first. */
    while (h.title.len && h.title.data[h.title.len - 1] == ' ')
        h.title.data[--h.title.len] = '\0';
    t = h.title.data && h.title.data[0] == ' ' ? h.title.data + 1 : h.title.data;
    if (h.rc == 0 && t && *t) {
        size_t tl = strlen(t), body = out->len - start;
        bool sep = body > 0;
        /* Insert "title\n\n" before the body text. */
        h.rc = ch_buf_reserve(out, tl + 2);
        if (h.rc == 0) {
            memmove(out->data + start + tl + (sep ? 2 : 0), out->data + start, body + 1);
            memcpy(out->data + start, t, tl);
            if (sep)
                memcpy(out->data + start + tl, "\n\n", 2);
            out->len += tl + (sep ? 2 : 0);
            out->data[out->len] = '\0';
        }
    }
    if (h.rc == 0 && title && t && *t && !(*title = ch_strdup(t)))
        h.rc = CH_ENOMEM;
    ch_buf_release(&h.title);
    return h.rc;
}
