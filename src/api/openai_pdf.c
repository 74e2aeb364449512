/*
 * openai_pdf.c: PDF `input_file` parts of /v1/responses.  OpenClaw gives
 * the model a PDF's text (its first files.pdf.maxPages pages) as the file
 * block of a text file; so does chela, with poppler's `pdftotext` (Debian's
 * poppler-utils, found on PATH) in a child process per file: the PDF on
 * its stdin, the text read from its stdout.  A parser of untrusted files
 * thus runs outside the gateway's process: a crafted PDF can crash or hang
 * only the child, which is killed after files.timeoutMs, once its text
 * passes what files.maxChars can use, when the client leaves, and at
 * shutdown.  At most CH_OA_PDF_MAX_RUNNING children run at once (more: a
 * 503 to retry).
 *
 * Each part becomes an input_text part holding its
 *   <file name="report.pdf" mime="application/pdf"> ... </file>
 * block (openai_files.c renders it), so the request stored with the run
 * replays without extracting again; then ch_oa_resp_go goes on.  The
 * page images OpenClaw adds for a PDF with little text are not made: such
 * a block says the pages had no text.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/openai.h"

#define KEY "gateway.http.endpoints.responses.files."

struct pdf_batch;

struct ch_oa_pdf_job {
    struct pdf_batch *b;
    struct ch_oa_pdf_job *next, *prev; /* a->pdf_jobs: the running ones */
    json_t *part;                      /* borrowed from b->body */
    char where[64];
    char *name;
    uint8_t *pdf;
    size_t pdf_len;
    uv_process_t proc;
    uv_pipe_t in, out;
    uv_timer_t timer;
    uv_write_t w;
    struct ch_buf text;
    size_t cap; /* stdout bytes kept */
    int open;   /* handles not yet closed */
    bool exited, killed, timed_out, full, spawned;
    int64_t status;
    int spawn_err;
};

struct pdf_batch {
    struct ch_api *api;
    struct ch_http_req *req; /* ref held */
    json_t *body;            /* ref held */
    size_t n, pending;
    int64_t timeout_ms, max_chars, pages;
    char err[400]; /* the first failure */
    struct ch_oa_pdf_job jobs[CH_OA_FETCH_MAX];
};

/* The child leads its own process group (UV_PROCESS_DETACHED: setsid),
 * so whatever it started dies with it and frees the stdout pipe. */
static void kill_job(struct ch_oa_pdf_job *j)
{
    if (j->spawned && !j->exited && !j->killed) {
        j->killed = true;
        uv_kill(-j->proc.pid, SIGKILL);
    }
}

/* The length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
    uint32_t cp;

    if (p[0] < 0xc2 || p[0] > 0xf4 || n < len)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    cp = len == 2   ? (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f)
         : len == 3 ? (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f)
                    : (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 | (uint32_t)(p[2] & 0x3f) << 6 |
                          (p[3] & 0x3f);
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

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
            if ((len = utf8_seq(in + i, t->len - i)) > 0) {
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

static void batch_finish(struct pdf_batch *b)
{
    struct ch_api *a = b->api;
    struct ch_http_req *r = b->req;

    ch_http_req_on_close(r, NULL, NULL); /* b is going */
    if (ch_http_req_is_closed(r) || a->shutting_down) {
        if (!ch_http_req_is_closed(r))
            ch_openai_error(r, 503, "api_error", "unavailable", "the gateway is shutting down");
    } else if (b->err[0]) {
        ch_openai_param_error(r, "invalid_input", "input", b->err);
    } else {
        ch_oa_resp_go(a, r, b->body);
    }
    ch_http_req_unref(r);
    json_decref(b->body);
    ch_free(b);
}

/* The outcome of one child, once all its handles are closed. */
static void job_done(struct ch_oa_pdf_job *j)
{
    struct pdf_batch *b = j->b;
    struct ch_buf block;
    json_t *text = NULL;
    char e[300] = "";

    if (j->spawned) {
        if (j->prev)
            j->prev->next = j->next;
        else
            b->api->pdf_jobs = j->next;
        if (j->next)
            j->next->prev = j->prev;
        b->api->pdf_running--;
    }
    if (j->spawn_err == UV_ENOENT)
        snprintf(e, sizeof(e),
                 "%s: this gateway cannot read PDFs: pdftotext (Debian's poppler-utils) is not installed", j->where);
    else if (j->spawn_err)
        snprintf(e, sizeof(e), "%s: the PDF reader could not start (%s)", j->where, uv_strerror(j->spawn_err));
    else if (j->timed_out)
        snprintf(e, sizeof(e), "%s: PDF extraction timed out after %lld ms", j->where, (long long)b->timeout_ms);
    else if (j->killed && !j->full)
        snprintf(e, sizeof(e), "%s: PDF extraction stopped", j->where);
    else if (!j->full && j->status != 0)
        snprintf(e, sizeof(e), "%s: the file is not a PDF that can be read (pdftotext exit status %lld)", j->where,
                 (long long)j->status);
    if (!e[0]) {
        tidy(&j->text);
        size_t max_chars = (size_t)b->max_chars;
        ch_buf_init(&block, j->text.len + j->text.len / 2 + 1024);
        if (j->text.len == 0) { /* a note of ours, not cut by maxChars */
            ch_buf_appendf(&j->text, "[no text on the first %lld pages of this PDF]", (long long)b->pages);
            max_chars = SIZE_MAX;
        }
        if (ch_oa_file_block(&block, j->name && *j->name ? j->name : "file.pdf", "application/pdf", j->text.data,
                             j->text.len, max_chars) == 0)
            text = json_stringn(block.data, block.len);
        ch_buf_release(&block);
        if (!text)
            snprintf(e, sizeof(e), "%s: the PDF's text is not UTF-8", j->where);
    }
    if (text && !b->err[0]) {
        json_object_clear(j->part);
        json_object_set_new(j->part, "type", json_string("input_text"));
        json_object_set_new(j->part, "text", text);
    } else {
        json_decref(text);
        if (!b->err[0])
            snprintf(b->err, sizeof(b->err), "%s", e);
    }
    ch_buf_release(&j->text);
    ch_free(j->pdf);
    ch_free(j->name);
    j->pdf = NULL;
    j->name = NULL;
    if (--b->pending == 0)
        batch_finish(b);
}

static void on_closed(uv_handle_t *h)
{
    struct ch_oa_pdf_job *j = h->data;

    if (--j->open == 0)
        job_done(j);
}

static void close_one(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_closed);
}

/* The timer goes last: once the child has exited and its stdout is read. */
static void close_out(struct ch_oa_pdf_job *j)
{
    uv_read_stop((uv_stream_t *)&j->out);
    close_one((uv_handle_t *)&j->out);
    if (j->exited)
        close_one((uv_handle_t *)&j->timer);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    struct ch_oa_pdf_job *j = p->data;

    j->exited = true;
    j->status = sig ? -sig : status;
    close_one((uv_handle_t *)p);
    /* Killed: its text is not wanted.  Else read what is left (the timer
     * still bounds it).  A child gone before reading all of its stdin:
     * the write fails and closes it. */
    if (j->killed || uv_is_closing((uv_handle_t *)&j->out))
        close_out(j);
}

static void on_timeout(uv_timer_t *t)
{
    struct ch_oa_pdf_job *j = t->data;

    j->timed_out = true;
    kill_job(j);
    if (j->exited) /* exited, but its stdout is held open */
        close_out(j);
}

static void on_written(uv_write_t *w, int status)
{
    struct ch_oa_pdf_job *j = w->data;

    (void)status; /* EPIPE: the child stopped reading; its exit says why */
    close_one((uv_handle_t *)&j->in);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct ch_oa_pdf_job *j = h->data;

    (void)hint;
    if (ch_buf_reserve(&j->text, 65536) != 0) {
        *buf = uv_buf_init(NULL, 0); /* UV_ENOBUFS follows */
        return;
    }
    *buf = uv_buf_init(j->text.data + j->text.len, (unsigned)(j->text.cap - j->text.len - 1));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct ch_oa_pdf_job *j = s->data;

    (void)buf;
    if (n > 0) {
        j->text.len += (size_t)n;
        if (j->text.len > j->cap) { /* enough for maxChars: the rest is cut anyway */
            j->text.len = j->cap;
            j->full = true;
            kill_job(j);
        } else {
            return;
        }
    } else if (n == 0) {
        return;
    }
    close_out(j);
}

/* Start pdftotext for j; on failure j->spawn_err, and every handle closes. */
static void job_start(struct ch_oa_pdf_job *j, uv_loop_t *loop)
{
    struct pdf_batch *b = j->b;
    char pages[24];
    char *args[] = {"pdftotext", "-q", "-l", pages, "-enc", "UTF-8", "-eol", "unix", "-", "-", NULL};
    uv_stdio_container_t io[3];
    uv_process_options_t opt = {0};
    uv_buf_t wb = uv_buf_init((char *)j->pdf, (unsigned)j->pdf_len);
    int rc;

    snprintf(pages, sizeof(pages), "%lld", (long long)b->pages);
    uv_pipe_init(loop, &j->in, 0);
    uv_pipe_init(loop, &j->out, 0);
    uv_timer_init(loop, &j->timer);
    j->in.data = j->out.data = j->timer.data = j->proc.data = j->w.data = j;
    j->open = 3;
    io[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    io[0].data.stream = (uv_stream_t *)&j->in;
    io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    io[1].data.stream = (uv_stream_t *)&j->out;
    io[2].flags = UV_IGNORE;
    opt.file = args[0];
    opt.args = args;
    opt.stdio = io;
    opt.stdio_count = 3;
    opt.exit_cb = on_exit_cb;
    opt.flags = UV_PROCESS_DETACHED; /* its own process group: kill_job */
    rc = uv_spawn(loop, &j->proc, &opt);
    if (rc) {
        j->spawn_err = rc;
        j->open = 4;
        close_one((uv_handle_t *)&j->proc); /* initialized even when the spawn failed */
        close_one((uv_handle_t *)&j->in);
        close_one((uv_handle_t *)&j->out);
        close_one((uv_handle_t *)&j->timer);
        return;
    }
    j->spawned = true;
    j->open = 4;
    j->next = b->api->pdf_jobs;
    if (j->next)
        j->next->prev = j;
    b->api->pdf_jobs = j;
    b->api->pdf_running++;
    uv_timer_start(&j->timer, on_timeout, (uint64_t)b->timeout_ms, 0);
    if (uv_write(&j->w, (uv_stream_t *)&j->in, &wb, 1, on_written) != 0)
        close_one((uv_handle_t *)&j->in);
    if (uv_read_start((uv_stream_t *)&j->out, on_alloc, on_read) != 0) {
        kill_job(j);
        close_out(j);
    }
}

static void on_client_close(struct ch_http_req *r, void *data)
{
    struct pdf_batch *b = data;

    (void)r;
    for (size_t i = 0; i < b->n; i++)
        kill_job(&b->jobs[i]);
}

void ch_oa_pdf_shutdown(struct ch_api *a)
{
    for (struct ch_oa_pdf_job *j = a->pdf_jobs; j; j = j->next)
        kill_job(j);
}

/* A part holding a PDF as data, with the name, mime and data found. */
static bool pdf_part(const struct ch_config *cfg, const json_t *p, const char **name, const char **data)
{
    const char *t = json_string_value(json_object_get(p, "type"));
    char mime[128] = "", err[8];

    return t && !strcmp(t, "input_file") && ch_oa_file_source(p, name, mime, sizeof(mime), data, err, 0, "") &&
           !strcasecmp(mime, "application/pdf") && ch_oa_file_mime_ok(cfg, mime);
}

int ch_oa_resp_pdfs(struct ch_api *a, struct ch_http_req *r, json_t *body)
{
    size_t max_bytes = (size_t)ch_config_int(a->cfg, KEY "maxBytes", 5242880), i, k, n = 0;
    const char *name, *data;
    struct pdf_batch *b;
    json_t *it, *p;

    json_array_foreach(json_object_get(body, "input"), i, it)
    {
        json_array_foreach(json_object_get(it, "content"), k, p) n += pdf_part(a->cfg, p, &name, &data);
    }
    if (n == 0)
        return 0;
    if (a->shutting_down) { /* a child now would outlive the drain's kill */
        ch_openai_error(r, 503, "api_error", "unavailable", "the gateway is shutting down");
        return -1;
    }
    if (n > CH_OA_FETCH_MAX) {
        ch_openai_param_error(r, "invalid_input", "input", "Too many PDF input files (limit: 8)");
        return -1;
    }
    if (a->pdf_running + n > CH_OA_PDF_MAX_RUNNING) {
        ch_http_add_header(r, "Retry-After", "1");
        ch_openai_error(r, 503, "api_error", "busy", "too many PDF files are being read; retry shortly");
        return -1;
    }
    if (!(b = ch_calloc(1, sizeof(*b)))) {
        ch_openai_error(r, 500, "api_error", "internal", "out of memory");
        return -1;
    }
    b->api = a;
    b->timeout_ms = ch_config_int(a->cfg, KEY "timeoutMs", 10000);
    b->max_chars = ch_config_int(a->cfg, KEY "maxChars", 60000);
    b->pages = ch_config_int(a->cfg, KEY "pdf.maxPages", 4);
    json_array_foreach(json_object_get(body, "input"), i, it)
    {
        json_array_foreach(json_object_get(it, "content"), k, p)
        {
            struct ch_oa_pdf_job *j = &b->jobs[b->n];
            size_t dlen, cap;

            if (!pdf_part(a->cfg, p, &name, &data))
                continue;
            j->b = b;
            j->part = p;
            snprintf(j->where, sizeof(j->where), "input[%zu].content[%zu]", i, k);
            dlen = strlen(data);
            cap = dlen / 4 * 3 + 4;
            if (dlen / 4 * 3 > max_bytes + 3) {
                snprintf(b->err, sizeof(b->err), "%s: file too large (limit: %zu bytes)", j->where, max_bytes);
            } else if (!(j->pdf = ch_malloc(cap)) || !(j->name = ch_strdup(name ? name : "file.pdf"))) {
                snprintf(b->err, sizeof(b->err), "%s: out of memory", j->where);
            } else if (ch_base64_decode(data, dlen, j->pdf, cap, &j->pdf_len) != 0) {
                snprintf(b->err, sizeof(b->err), "%s: the file's data is not base64", j->where);
            } else if (j->pdf_len > max_bytes) {
                snprintf(b->err, sizeof(b->err), "%s: file too large (limit: %zu bytes)", j->where, max_bytes);
            }
            /* 4 bytes a character of maxChars, and the truncation note's worth */
            j->cap = (size_t)b->max_chars * 4 + 64;
            ch_buf_init(&j->text, j->cap + 65536 + 1);
            b->n++;
        }
    }
    if (b->err[0]) {
        ch_openai_param_error(r, "invalid_input", "input", b->err);
        for (i = 0; i < b->n; i++) {
            ch_free(b->jobs[i].pdf);
            ch_free(b->jobs[i].name);
            ch_buf_release(&b->jobs[i].text);
        }
        ch_free(b);
        return -1;
    }
    b->req = r;
    ch_http_req_ref(r);
    b->body = json_incref(body);
    b->pending = b->n;
    ch_http_req_on_close(r, on_client_close, b);
    for (i = 0; i < b->n; i++)
        job_start(&b->jobs[i], a->net->loop);
    return 1;
}
