/*
 * openai_files.c: the OpenResponses input parts chela translates for
 * /v1/responses beyond text: `input_image` in OpenClaw's form (`source`:
 * `{type: "url", url}` or `{type: "base64", media_type, data}`) as well as
 * OpenAI's (`image_url`), and `input_file` with a text file's data.
 *
 * A file's text reaches the model as OpenClaw renders it, a block
 *   <file name="notes.md" mime="text/markdown">
 *   ...the text...
 *   </file>
 * (OpenClaw puts the blocks into that run's system prompt; chela makes
 * them a part of the user's message, so a session's later turns still
 * have the file).  Types in gateway.http.endpoints.responses.files.
 * allowedMimes: UTF-8 text, and PDF, whose text openai_pdf.c extracted
 * before (the part is an input_text by now); maxBytes decoded, cut to
 * maxChars code points.  A file by URL was fetched into data before
 * (openai_resp_fetch.c); one by file_id is refused.  Chat Completions'
 * file parts (OpenAI's {type: "file", file: {file_data, filename}}) get the
 * same treatment under chatCompletions.files (ch_oa_chat_files).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/openai.h"

/* "data:<mime>;base64,<data>" (a new string part's url). */
static json_t *data_url(const char *mime, const char *data)
{
    char *u = ch_sprintf("data:%s;base64,%s", mime, data);
    json_t *s = u ? json_string(u) : NULL;

    ch_free(u);
    return s;
}

json_t *ch_oa_resp_image(const json_t *p, char *err, size_t cap, const char *where)
{
    const json_t *src = json_object_get(p, "source"), *url = json_object_get(p, "image_url");
    const char *st = json_string_value(json_object_get(src, "type"));
    const char *mime = json_string_value(json_object_get(src, "media_type"));
    const char *data = json_string_value(json_object_get(src, "data"));
    json_t *u = NULL;

    if (json_is_string(url))
        u = json_incref((json_t *)url);
    else if (st && !strcmp(st, "url") && json_is_string(json_object_get(src, "url")))
        u = json_incref(json_object_get(src, "url"));
    else if (st && !strcmp(st, "base64") && mime && data && !strpbrk(mime, ";,"))
        u = data_url(mime, data); /* the data: URL checks (type, base64) follow */
    if (!u) {
        snprintf(err, cap,
                 "%s: an input_image needs image_url or a source {type: url, url} or {type: base64, "
                 "media_type, data}",
                 where);
        return NULL;
    }
    return json_pack("{s:s, s:{s:o}}", "type", "image_url", "image_url", "url", u);
}

bool ch_oa_mime_listed(const json_t *list, const char *const *def, size_t ndef, const char *mime)
{
    const json_t *v;
    size_t i;

    if (!json_array_size(list)) /* [] means the defaults, as in OpenClaw */
        for (i = 0; i < ndef; i++)
            if (!strcasecmp(def[i], mime))
                return true;
    json_array_foreach(list, i, v)
    {
        if (json_string_value(v) && !strcasecmp(json_string_value(v), mime))
            return true;
    }
    return false;
}

int64_t ch_oa_setting(const struct ch_config *cfg, const char *prefix, const char *name, int64_t def)
{
    char key[128];

    snprintf(key, sizeof(key), "%s%s", prefix, name);
    return ch_config_int(cfg, key, def);
}

bool ch_oa_file_mime_ok(const struct ch_config *cfg, const char *prefix, const char *mime)
{
    char key[96];

    static const char *const def[] = {"text/plain", "text/markdown",    "text/html",
                                      "text/csv",   "application/json", "application/pdf"};

    snprintf(key, sizeof(key), "%sallowedMimes", prefix);
    return ch_oa_mime_listed(ch_config_get(cfg, key), def, CH_ARRAY_SIZE(def), mime);
}

bool ch_oa_file_source(const json_t *p, const char **name, char *mime, size_t mcap, const char **data, char *err,
                       size_t cap, const char *where)
{
    const json_t *src = json_object_get(p, "source");
    const char *st = json_string_value(json_object_get(src, "type"));
    const char *fd = json_string_value(json_object_get(p, "file_data")), *m = NULL, *comma;

    *name = json_string_value(json_object_get(src ? src : p, "filename"));
    if (st && !strcmp(st, "base64")) {
        m = json_string_value(json_object_get(src, "media_type"));
        *data = json_string_value(json_object_get(src, "data"));
    } else if (fd && !strncmp(fd, "data:", 5) && (comma = strchr(fd, ',')) && comma - fd > 12 &&
               !strncmp(comma - 7, ";base64", 7)) {
        snprintf(mime, mcap, "%.*s", (int)(comma - 7 - (fd + 5)), fd + 5);
        *data = comma + 1;
    } else if ((st && !strcmp(st, "url")) || json_object_get(p, "file_url") || json_object_get(p, "file_id")) {
        /* a URL is fetched first (openai_resp_fetch.c): one left here is not a string */
        snprintf(err, cap, "%s: a file_id needs OpenAI's Files API; send the file's data or its URL", where);
        return false;
    }
    if (m)
        snprintf(mime, mcap, "%s", m);
    if (!*data || !mime[0]) {
        snprintf(err, cap, "%s: an input_file needs a source {type: base64, media_type, data} or file_data", where);
        return false;
    }
    mime[strcspn(mime, "; ")] = '\0'; /* "text/plain; charset=utf-8": UTF-8 is all chela reads */
    return true;
}

int ch_oa_file_block(struct ch_buf *b, const char *name, const char *mime, const char *text, size_t len,
                     size_t max_chars)
{
    size_t chars = 0, i, at;

    ch_buf_append_str(b, "<file name=\"");
    /* 200 bytes of the name, cut between characters and cleaned: the block
     * goes into a JSON string, which jansson refuses unless UTF-8. */
    at = b->len;
    ch_oa_clean_text(b, name, strlen(name), 200);
    for (char *c = b->data ? b->data + at : NULL; c && *c; c++)
        if (*c == '"' || *c == '<' || *c == '>' || *c == '&' || (unsigned char)*c < 0x20)
            *c = '_';
    ch_buf_appendf(b, "\" mime=\"%s\">\n", mime);
    for (i = 0; i < len; i++) {
        if (((unsigned char)text[i] & 0xc0) != 0x80 && chars++ == max_chars)
            break;
        if (text[i] == '<' && !strncmp(text + i, "</file", 6)) /* the block's own end, escaped */
            ch_buf_append_str(b, "&lt;");
        else
            ch_buf_append_char(b, text[i]);
    }
    if (i < len)
        ch_buf_appendf(b, "\n[truncated at %zu characters]", max_chars);
    return ch_buf_append_str(b, "\n</file>");
}

json_t *ch_oa_resp_file(const struct ch_config *cfg, const char *prefix, const json_t *p, char *err, size_t cap,
                        const char *where)
{
    size_t max_bytes = (size_t)ch_oa_setting(cfg, prefix, "maxBytes", 5242880);
    size_t max_chars = (size_t)ch_oa_setting(cfg, prefix, "maxChars", 60000);
    const char *name = NULL, *data = NULL;
    char mime[128] = "";
    uint8_t *raw = NULL;
    size_t n = 0, dlen;
    json_t *check, *part = NULL;
    struct ch_buf b;

    if (!ch_oa_file_source(p, &name, mime, sizeof(mime), &data, err, cap, where))
        return NULL;
    if (!ch_oa_file_mime_ok(cfg, prefix, mime)) {
        snprintf(err, cap, "%s: unsupported file MIME type: %.100s", where, mime);
        return NULL;
    }
    if (!strcasecmp(mime, "application/pdf")) { /* openai_pdf.c made every PDF text before */
        snprintf(err, cap, "%s: this PDF was not read", where);
        return NULL;
    }
    dlen = strlen(data);
    if (dlen / 4 * 3 > max_bytes + 3) {
        snprintf(err, cap, "%s: file too large (limit: %zu bytes)", where, max_bytes);
        return NULL;
    }
    raw = ch_malloc(dlen / 4 * 3 + 4);
    if (!raw || ch_base64_decode(data, dlen, raw, dlen / 4 * 3 + 4, &n) != 0 || n > max_bytes) {
        snprintf(err, cap, "%s: %s", where,
                 !raw            ? "out of memory"
                 : n > max_bytes ? "file too large"
                                 : "the file's data is not base64");
        ch_free(raw);
        return NULL;
    }
    check = json_stringn((const char *)raw, n); /* jansson refuses bytes that are not UTF-8 */
    if (!check || memchr(raw, '\0', n)) {
        snprintf(err, cap, "%s: the file is not UTF-8 text", where);
    } else {
        ch_buf_init(&b, n + n / 2 + 1024); /* "</file" escaped grows by half at most */
        if (ch_oa_file_block(&b, name && *name ? name : "file", mime, (const char *)raw, n, max_chars) == 0)
            part = json_pack("{s:s, s:s%}", "type", "text", "text", b.data, b.len);
        ch_buf_release(&b);
        if (!part)
            snprintf(err, cap, "%s: out of memory", where);
    }
    json_decref(check);
    ch_free(raw);
    return part;
}

int ch_oa_chat_files(struct ch_api *a, struct ch_http_req *r, json_t *body)
{
    char err[400] = "", where[64];
    json_t *it, *p, *part;
    size_t i, k;

    json_array_foreach(json_object_get(body, "messages"), i, it)
    {
        json_array_foreach(json_object_get(it, "content"), k, p)
        {
            const char *t = json_string_value(json_object_get(p, "type"));
            const json_t *file = json_object_get(p, "file");
            if (!t || strcmp(t, "file") || ch_oa_pdf_part(a->cfg, CH_OA_CHAT_FILES, p, true))
                continue; /* not a file, or a PDF: ch_oa_pdfs reads it */
            snprintf(where, sizeof(where), "messages[%zu].content[%zu]", i, k);
            if (!json_is_object(file)) {
                snprintf(err, sizeof(err), "%s: a file part needs a file object {file_data, filename}", where);
                part = NULL;
            } else {
                part = ch_oa_resp_file(a->cfg, CH_OA_CHAT_FILES, file, err, sizeof(err), where);
            }
            if (!part) {
                ch_openai_param_error(r, "invalid_input", "messages", err);
                return -1;
            }
            json_array_set_new(json_object_get(it, "content"), k, part);
        }
    }
    return ch_oa_pdfs(a, r, body, true);
}
