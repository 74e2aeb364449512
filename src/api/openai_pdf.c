/*
 * openai_pdf.c: PDF `input_file` parts of /v1/responses, read as OpenClaw
 * reads them: the text of the first files.pdf.maxPages pages as the file
 * block of a text file, and each of those pages with less than
 * files.pdf.minTextChars characters of text (a scan, a chart) rendered as
 * a PNG image, within files.pdf.maxPixels pixels in all, for the model to
 * look at.  The readers are poppler's `pdftotext` and `pdftoppm` (Debian's
 * poppler-utils), each a child process (openai_proc.c), one at a time per
 * file, files side by side: a parser of untrusted files runs outside the
 * gateway, and files.timeoutMs bounds the whole of one file.
 *
 * Once every file is read, each part becomes an input_text part holding
 *   <file name="report.pdf" mime="application/pdf"> ... </file>
 * (openai_files.c renders it) followed by its page images as input_image
 * parts, so the request stored with the run replays without reading the
 * PDF again; then ch_oa_resp_go goes on.  A failed page image is left out
 * (a warning), unless the PDF has no text at all: then the part is a 400,
 * as in OpenClaw.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/openai.h"

#define MAX_PAGES 64 /* images rendered per file, whatever pdf.maxPages says */

struct pdf_batch;

struct pdf_file {
    struct pdf_batch *b;
    json_t *part;    /* borrowed from b->body */
    json_t *content; /* the array holding it */
    char where[64];
    char *name;
    uint8_t *pdf;
    size_t pdf_len;
    struct ch_oa_proc *proc; /* the child reading it now, or NULL */
    uint64_t deadline_ms;
    json_t *block;  /* the file block (a string), once the text is read */
    json_t *images; /* data URLs of the page images */
    int pages[MAX_PAGES];
    size_t npages, next_page;
    int64_t pixels_left;
    bool has_text;
    enum ch_pdf_result result; /* for /metrics: CH_PDF_OK until a failure says otherwise */
};

struct pdf_batch {
    struct ch_api *api;
    bool chat;               /* /v1/chat/completions: file parts; else /v1/responses */
    struct ch_http_req *req; /* ref held */
    json_t *body;            /* ref held */
    size_t n, pending;
    int64_t max_chars, pages, min_text, image_max_bytes, timeout_ms;
    char err[400]; /* the first failure */
    struct pdf_file files[CH_OA_FETCH_MAX];
};

/* pdftotext's text for the file block: pages apart by blank lines instead
 * of form feeds, no NULs, a byte that is not UTF-8 as '?', and a character
 * cut in two by the byte cap dropped. */
static void tidy(struct ch_buf *t)
{
    const unsigned char *in = (const unsigned char *)t->data;
    size_t o = 0, i = 0, len;

    while (i < t->len) {
        char c = (char)in[i];
        if (in[i] >= 0x80) {
            if ((len = ch_utf8_len(in + i, t->len - i)) > 0) {
                memmove(t->data + o, in + i, len);
                o += len, i += len;
                continue;
            }
            if (t->len - i < 4 && in[i] >= 0xc2) /* the tail the cap cut */
                break;
            c = '?';
        } else if (c == '\f' && o > 0 && t->data[o - 1] == '\n') {
            i++;
            continue; /* pages end "\n\n\f": one blank line between them */
        } else if (c == '\f') {
            c = '\n';
        }
        if (c != '\0')
            t->data[o++] = c;
        i++;
    }
    while (o > 0 && (t->data[o - 1] == '\n' || t->data[o - 1] == ' '))
        o--;
    t->len = o;
}

/* The pages (form-feed ended, as pdftotext writes them) whose text,
 * trimmed, is under min_text characters (OpenClaw's test): those get an
 * image. */
static void pick_pages(struct pdf_file *f, const char *p, size_t n, int64_t min_text)
{
    int page = 1;
    int64_t at = 0, first = -1, last = -1; /* code points into the page */

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\f') {
            if ((first < 0 ? 0 : last - first + 1) < min_text && f->npages < MAX_PAGES)
                f->pages[f->npages++] = page;
            page++, at = 0, first = last = -1;
        } else if ((c & 0xc0) != 0x80) {
            if (c > ' ') {
                first = first < 0 ? at : first;
                last = at;
            }
            at++;
        }
    }
}

/* A PNG's width times height (its IHDR), or 0. */
static int64_t png_pixels(const struct ch_buf *b)
{
    const unsigned char *p = (const unsigned char *)b->data;

    if (b->len < 24 || memcmp(p, "\x89PNG\r\n\x1a\n", 8) || memcmp(p + 12, "IHDR", 4))
        return 0;
    return (int64_t)((uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 | (uint32_t)p[18] << 8 | p[19]) *
           (int64_t)((uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23]);
}

/* Every file read: the parts rewritten (the last first, so the images
 * inserted after a part move none of the others), then on. */
static void batch_finish(struct pdf_batch *b)
{
    struct ch_api *a = b->api;
    struct ch_http_req *r = b->req;

    ch_http_req_on_close(r, NULL, NULL); /* b is going */
    for (size_t i = b->n; i-- > 0 && !b->err[0];) {
        struct pdf_file *f = &b->files[i];
        size_t at = 0, k;
        json_t *v;

        json_array_foreach(f->content, k, v) if (v == f->part) at = k;
        json_object_clear(f->part);
        json_object_set_new(f->part, "type", json_string(b->chat ? "text" : "input_text"));
        json_object_set(f->part, "text", f->block);
        json_array_foreach(f->images, k, v)
        {
            json_array_insert_new(f->content, at + 1 + k,
                                  b->chat ? json_pack("{s:s, s:{s:O}}", "type", "image_url", "image_url", "url", v)
                                          : json_pack("{s:s, s:O}", "type", "input_image", "image_url", v));
        }
    }
    if (ch_http_req_is_closed(r) || a->shutting_down) {
        if (!ch_http_req_is_closed(r))
            ch_openai_error(r, 503, "api_error", "unavailable", "the gateway is shutting down");
    } else if (b->err[0]) {
        ch_openai_param_error(r, "invalid_input", b->chat ? "messages" : "input", b->err);
    } else if (b->chat) {
        ch_openai_start(a, r, b->body, NULL, NULL);
    } else {
        ch_oa_resp_go(a, r, b->body);
    }
    for (size_t i = 0; i < b->n; i++) {
        json_decref(b->files[i].block);
        json_decref(b->files[i].images);
        ch_free(b->files[i].pdf);
        ch_free(b->files[i].name);
    }
    a->pdf_busy -= b->n;
    ch_http_req_unref(r);
    json_decref(b->body);
    ch_free(b);
}

static void file_fail(struct pdf_file *f, const char *why)
{
    if (!f->b->err[0])
        snprintf(f->b->err, sizeof(f->b->err), "%s: %s", f->where, why);
    if (f->result == CH_PDF_OK)
        f->result = CH_PDF_ERROR;
}

/* A reader's failure: why, counted as a timeout or a stop where it was one. */
static void proc_fail(struct pdf_file *f, const struct ch_oa_proc_result *res, const char *why)
{
    f->result = res->timed_out ? CH_PDF_TIMEOUT : res->killed && !res->full ? CH_PDF_STOPPED : CH_PDF_ERROR;
    file_fail(f, why);
}

static void file_done(struct pdf_file *f)
{
    struct ch_metrics *m = &f->b->api->metrics;

    m->pdf_files[f->result]++;
    m->pdf_page_images += json_array_size(f->images);
    ch_free(f->pdf);
    f->pdf = NULL;
    if (--f->b->pending == 0)
        batch_finish(f->b);
}

/* The reader's own reason from its stderr: OpenClaw's words for a
 * password, else its last error line (printable ASCII, at most 200
 * bytes), or "" when it said nothing. */
static void reader_says(const char *err, char *out, size_t cap)
{
    const char *line = NULL, *p, *end;
    size_t n = 0;

    out[0] = '\0';
    if (strcasestr(err, "password")) {
        snprintf(out, cap, ": PDF requires a password or password is incorrect.");
        return;
    }
    for (p = err; *p; p = *end ? end + 1 : end) {
        const char *e = strstr(p, "Error");
        end = p + strcspn(p, "\n");
        if (end > p && (!line || (e && e < end)))
            line = p;
    }
    if (!line)
        return;
    out[n++] = ':', out[n++] = ' ';
    for (p = line; *p && *p != '\n' && n + 1 < cap && p - line < 200; p++)
        out[n++] = *p >= ' ' && *p < 127 ? *p : '?';
    out[n] = '\0';
}

/* Why a child's outcome is no text: NULL when it is one. */
static const char *proc_error(const struct ch_oa_proc_result *res, const char *prog, int64_t timeout_ms, char *msg,
                              size_t cap)
{
    char says[240];

    if (res->spawn_err == UV_ENOENT)
        snprintf(msg, cap, "this gateway cannot read PDFs: %s (Debian's poppler-utils) is not installed", prog);
    else if (res->spawn_err)
        snprintf(msg, cap, "the PDF reader could not start (%s)", uv_strerror(res->spawn_err));
    else if (res->timed_out)
        snprintf(msg, cap, "PDF extraction timed out after %lld ms", (long long)timeout_ms);
    else if (res->killed && !res->full)
        snprintf(msg, cap, "PDF extraction stopped");
    else if (!res->full && res->status != 0) {
        reader_says(res->err ? res->err : "", says, sizeof(says));
        snprintf(msg, cap, "the file is not a PDF that can be read (%s exit status %lld)%s", prog,
                 (long long)res->status, says);
    } else
        return NULL;
    return msg;
}

static void render_next(struct pdf_file *f);

static void on_image(const struct ch_oa_proc_result *res, void *data)
{
    struct pdf_file *f = data;
    int64_t px = png_pixels(res->out);
    char msg[200], *b64;
    const char *why = proc_error(res, "pdftoppm", f->b->timeout_ms, msg, sizeof(msg));

    f->proc = NULL;
    if (!why && (res->full || px <= 0))
        why = res->full ? "the page image is too large" : "the page image is not a PNG";
    if (why) {
        ch_log_warn("responses: %s: page %d of the PDF left out: %s", f->where, f->pages[f->next_page - 1], why);
        if (res->killed && !res->full) { /* stopped: the client left, a timeout, shutdown */
            if (!f->has_text)
                proc_fail(f, res, why);
            file_done(f);
            return;
        }
    } else if ((b64 = ch_malloc(res->out->len / 3 * 4 + 5 + 32)) != NULL) {
        memcpy(b64, "data:image/png;base64,", 22);
        ch_base64_encode((const uint8_t *)res->out->data, res->out->len, b64 + 22);
        json_array_append_new(f->images, json_string(b64));
        ch_free(b64);
        f->pixels_left -= px;
    }
    render_next(f);
}

/* The next page image, within the pixel budget left (shared among the
 * pages still to render), or the file is done. */
static void render_next(struct pdf_file *f)
{
    struct pdf_batch *b = f->b;
    uint64_t now = uv_now(b->api->net->loop);
    char first[24], side[24];
    char *argv[] = {"pdftoppm", "-png", "-f", first, "-l", first, "-scale-to", side, "-singlefile", "-", NULL};
    size_t left = f->npages - f->next_page;
    int64_t budget = left ? f->pixels_left / (int64_t)left : 0;

    if (left == 0 || budget < 64 * 64 || b->err[0] || now >= f->deadline_ms) {
        if (left && now >= f->deadline_ms && !f->has_text) {
            f->result = CH_PDF_TIMEOUT;
            file_fail(f, "PDF extraction timed out before a page image was made");
        } else if (json_array_size(f->images) == 0 && !f->has_text && f->npages)
            file_fail(f, "PDF image extraction failed with no extractable text");
        file_done(f);
        return;
    }
    /* The long side so that even a square page stays within the budget,
     * at most 96 dpi of an A4 page's long side, as OpenClaw renders. */
    snprintf(first, sizeof(first), "%d", f->pages[f->next_page++]);
    snprintf(side, sizeof(side), "%d", (int)CH_MIN(sqrt((double)budget), 1123.0));
    if (ch_oa_proc_start(b->api, argv, f->pdf, f->pdf_len, (size_t)b->image_max_bytes, f->deadline_ms - now, on_image,
                         f, &f->proc) != 0) {
        file_fail(f, "out of memory");
        file_done(f);
    }
}

static void on_text(const struct ch_oa_proc_result *res, void *data)
{
    struct pdf_file *f = data;
    struct pdf_batch *b = f->b;
    size_t max_chars = (size_t)b->max_chars;
    struct ch_buf block;
    char msg[200];
    const char *why = proc_error(res, "pdftotext", b->timeout_ms, msg, sizeof(msg));

    f->proc = NULL;
    if (why) {
        proc_fail(f, res, why);
        file_done(f);
        return;
    }
    if (f->pixels_left > 0) /* pdf.maxPixels 0: no images */
        pick_pages(f, res->out->data, res->out->len, b->min_text);
    tidy(res->out);
    f->has_text = res->out->len > 0;
    if (!f->has_text) { /* a note of ours, not cut by maxChars */
        ch_buf_appendf(res->out, "[no text on the first %lld pages of this PDF%s]", (long long)b->pages,
                       f->npages ? "; their images follow" : "");
        max_chars = SIZE_MAX;
    }
    ch_buf_init(&block, res->out->len + res->out->len / 2 + 1024);
    if (ch_oa_file_block(&block, f->name, "application/pdf", res->out->data, res->out->len, max_chars) == 0)
        f->block = json_stringn(block.data, block.len);
    ch_buf_release(&block);
    if (!f->block || !(f->images = json_array())) {
        file_fail(f, "out of memory");
        file_done(f);
        return;
    }
    render_next(f);
}

static void on_client_close(struct ch_http_req *r, void *data)
{
    struct pdf_batch *b = data;

    (void)r;
    for (size_t i = 0; i < b->n; i++)
        ch_oa_proc_kill(b->files[i].proc);
}

/* The file of a part: OpenResponses' input_file part itself, or the
 * `file` object of Chat Completions' file part; NULL for other parts. */
static const json_t *file_of(const json_t *p, bool chat)
{
    const char *t = json_string_value(json_object_get(p, "type"));

    if (!t || strcmp(t, chat ? "file" : "input_file"))
        return NULL;
    return chat ? json_object_get(p, "file") : p;
}

/* A part holding a PDF as data, with its name and data found. */
static bool pdf_part(const struct ch_config *cfg, const char *prefix, const json_t *p, bool chat, const char **name,
                     const char **data)
{
    const json_t *file = file_of(p, chat);
    char mime[128] = "", err[8];

    return json_is_object(file) && ch_oa_file_source(file, name, mime, sizeof(mime), data, err, 0, "") &&
           !strcasecmp(mime, "application/pdf") && ch_oa_file_mime_ok(cfg, prefix, mime);
}

bool ch_oa_pdf_part(const struct ch_config *cfg, const char *prefix, const json_t *p, bool chat)
{
    const char *name, *data;

    return pdf_part(cfg, prefix, p, chat, &name, &data);
}

/* The file's bytes from its base64 data; false with b->err set. */
static bool file_load(struct pdf_file *f, const char *name, const char *data, size_t max_bytes)
{
    size_t dlen = strlen(data), cap = dlen / 4 * 3 + 4;

    if (dlen / 4 * 3 > max_bytes + 3)
        snprintf(f->b->err, sizeof(f->b->err), "%s: file too large (limit: %zu bytes)", f->where, max_bytes);
    else if (!(f->pdf = ch_malloc(cap)) || !(f->name = ch_strdup(name && *name ? name : "file.pdf")))
        snprintf(f->b->err, sizeof(f->b->err), "%s: out of memory", f->where);
    else if (ch_base64_decode(data, dlen, f->pdf, cap, &f->pdf_len) != 0)
        snprintf(f->b->err, sizeof(f->b->err), "%s: the file's data is not base64", f->where);
    else if (f->pdf_len > max_bytes)
        snprintf(f->b->err, sizeof(f->b->err), "%s: file too large (limit: %zu bytes)", f->where, max_bytes);
    return !f->b->err[0];
}

int ch_oa_pdfs(struct ch_api *a, struct ch_http_req *r, json_t *body, bool chat)
{
    const struct ch_config *cfg = a->cfg;
    const char *prefix = chat ? CH_OA_CHAT_FILES : CH_OA_RESP_FILES, *items = chat ? "messages" : "input";
    size_t max_bytes = (size_t)ch_oa_setting(cfg, prefix, "maxBytes", 5242880), i, k, n = 0;
    int64_t pixels = ch_oa_setting(cfg, prefix, "pdf.maxPixels", 4000000);
    const char *name, *data;
    struct pdf_batch *b;
    json_t *it, *p;

    json_array_foreach(json_object_get(body, items), i, it)
    {
        json_array_foreach(json_object_get(it, "content"), k, p) n += pdf_part(cfg, prefix, p, chat, &name, &data);
    }
    if (n == 0)
        return 0;
    if (a->shutting_down) { /* a child now would outlive the drain's kill */
        ch_openai_error(r, 503, "api_error", "unavailable", "the gateway is shutting down");
        return -1;
    }
    if (n > CH_OA_FETCH_MAX) {
        ch_openai_param_error(r, "invalid_input", items, "Too many PDF input files (limit: 8)");
        return -1;
    }
    if (a->pdf_busy + n > CH_OA_PDF_MAX_RUNNING) {
        ch_http_add_header(r, "Retry-After", "1");
        ch_openai_error(r, 503, "api_error", "busy", "too many PDF files are being read; retry shortly");
        return -1;
    }
    if (!(b = ch_calloc(1, sizeof(*b)))) {
        ch_openai_error(r, 500, "api_error", "internal", "out of memory");
        return -1;
    }
    b->api = a;
    b->chat = chat;
    b->timeout_ms = ch_oa_setting(cfg, prefix, "timeoutMs", 10000);
    b->max_chars = ch_oa_setting(cfg, prefix, "maxChars", 60000);
    b->pages = ch_oa_setting(cfg, prefix, "pdf.maxPages", 4);
    b->min_text = ch_oa_setting(cfg, prefix, "pdf.minTextChars", 200);
    b->image_max_bytes = ch_config_int(cfg,
                                       chat ? "gateway.http.endpoints.chatCompletions.images.maxBytes"
                                            : "gateway.http.endpoints.responses.images.maxBytes",
                                       10485760);
    json_array_foreach(json_object_get(body, items), i, it)
    {
        if (b->err[0])
            break;
        json_array_foreach(json_object_get(it, "content"), k, p)
        {
            struct pdf_file *f = &b->files[b->n];
            if (!pdf_part(cfg, prefix, p, chat, &name, &data))
                continue;
            f->b = b;
            f->part = p;
            f->content = json_object_get(it, "content");
            f->pixels_left = pixels;
            snprintf(f->where, sizeof(f->where), "%s[%zu].content[%zu]", items, i, k);
            b->n++;
            if (!file_load(f, name, data, max_bytes))
                break;
        }
    }
    if (b->err[0]) {
        ch_openai_param_error(r, "invalid_input", items, b->err);
        for (i = 0; i < b->n; i++) {
            ch_free(b->files[i].pdf);
            ch_free(b->files[i].name);
        }
        ch_free(b);
        return -1;
    }
    b->req = r;
    ch_http_req_ref(r);
    b->body = json_incref(body);
    b->pending = b->n;
    a->pdf_busy += b->n;
    ch_http_req_on_close(r, on_client_close, b);
    for (i = 0, n = b->n; i < n; i++) { /* n: b may be gone after the last file_done */
        struct pdf_file *f = &b->files[i];
        char pages[24];
        char *argv[] = {"pdftotext", "-l", pages, "-enc", "UTF-8", "-eol", "unix", "-", "-", NULL};

        snprintf(pages, sizeof(pages), "%lld", (long long)b->pages);
        f->deadline_ms = uv_now(a->net->loop) + (uint64_t)b->timeout_ms;
        /* 4 bytes a character of maxChars is all the block can use */
        if (ch_oa_proc_start(a, argv, f->pdf, f->pdf_len, (size_t)b->max_chars * 4 + 64, (uint64_t)b->timeout_ms,
                             on_text, f, &f->proc) != 0) {
            file_fail(f, "out of memory");
            file_done(f);
        }
    }
    return 1;
}
