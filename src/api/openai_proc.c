/*
 * openai_proc.c: one child process on the loop, for the readers of files
 * sent to the OpenAI-compatible endpoints (openai_pdf.c: pdftotext and
 * pdftoppm).  The child gets the input bytes on its stdin and its stdout
 * is read into a buffer, both through pipes on the loop; it leads its own
 * process group (UV_PROCESS_DETACHED: setsid), so killing the group also
 * ends whatever it started and frees the stdout pipe.  It is killed after
 * its time, once its stdout passes the cap (the rest is not wanted), by
 * ch_oa_proc_kill, and at shutdown.  The start of its stderr is kept for
 * the error message; `done` fires once, after every handle
 * has closed, on a later loop iteration.
 */
#include <signal.h>
#include <string.h>

#include "api/openai.h"

struct ch_oa_proc {
    struct ch_api *api;
    struct ch_oa_proc *next, *prev; /* a->procs: the spawned ones */
    ch_oa_proc_done done;
    void *data;
    uv_process_t proc;
    uv_pipe_t in, out, err;
    uv_timer_t timer;
    uv_write_t w;
    struct ch_buf out_buf;
    char err_buf[CH_OA_PROC_ERR_BYTES + 1];
    char err_scratch[4096]; /* stderr past err_buf is read here and dropped */
    size_t cap;
    int open; /* handles not yet closed */
    bool spawned, exited;
    struct ch_oa_proc_result res;
};

void ch_oa_proc_kill(struct ch_oa_proc *p)
{
    if (p && p->spawned && !p->exited && !p->res.killed) {
        p->res.killed = true;
        uv_kill(-p->proc.pid, SIGKILL);
    }
}

void ch_oa_proc_shutdown(struct ch_api *a)
{
    for (struct ch_oa_proc *p = a->procs; p; p = p->next)
        ch_oa_proc_kill(p);
}

static void on_closed(uv_handle_t *h)
{
    struct ch_oa_proc *p = h->data;

    if (--p->open > 0)
        return;
    if (p->spawned) {
        if (p->prev)
            p->prev->next = p->next;
        else
            p->api->procs = p->next;
        if (p->next)
            p->next->prev = p->prev;
    }
    p->res.out = &p->out_buf;
    p->res.err = p->err_buf;
    p->done(&p->res, p->data);
    ch_buf_release(&p->out_buf);
    ch_free(p);
}

static void close_one(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_closed);
}

static void close_stream(uv_pipe_t *pipe)
{
    uv_read_stop((uv_stream_t *)pipe);
    close_one((uv_handle_t *)pipe);
}

/* The timer goes last: once the child has exited and both its outputs
 * are read to their end (or given up). */
static void maybe_finish(struct ch_oa_proc *p)
{
    if (p->exited && uv_is_closing((uv_handle_t *)&p->out) && uv_is_closing((uv_handle_t *)&p->err))
        close_one((uv_handle_t *)&p->timer);
}

static void on_exit_cb(uv_process_t *h, int64_t status, int sig)
{
    struct ch_oa_proc *p = h->data;

    p->exited = true;
    p->res.status = sig ? -sig : status;
    close_one((uv_handle_t *)h);
    /* Killed: its output is not wanted.  Else what it wrote before exiting
     * is read to the end (the timer still bounds that).  A child gone
     * before reading all of its stdin: the write fails and closes that pipe. */
    if (p->res.killed) {
        close_stream(&p->out);
        close_stream(&p->err);
    }
    maybe_finish(p);
}

static void on_timeout(uv_timer_t *t)
{
    struct ch_oa_proc *p = t->data;

    p->res.timed_out = true;
    ch_oa_proc_kill(p);
    if (p->exited) { /* exited, but its outputs are held open */
        close_stream(&p->out);
        close_stream(&p->err);
        maybe_finish(p);
    }
}

static void on_written(uv_write_t *w, int status)
{
    struct ch_oa_proc *p = w->data;

    (void)status; /* EPIPE: the child stopped reading; its exit says why */
    close_one((uv_handle_t *)&p->in);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct ch_oa_proc *p = h->data;

    (void)hint;
    if (ch_buf_reserve(&p->out_buf, 65536) != 0) {
        *buf = uv_buf_init(NULL, 0); /* UV_ENOBUFS follows */
        return;
    }
    *buf = uv_buf_init(p->out_buf.data + p->out_buf.len, (unsigned)(p->out_buf.cap - p->out_buf.len - 1));
}

/* stderr: the first CH_OA_PROC_ERR_BYTES kept, the rest read and dropped
 * (a child blocked on a full stderr pipe would only time out). */
static void on_err_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct ch_oa_proc *p = h->data;
    size_t used = strlen(p->err_buf);

    (void)hint;
    *buf = used < CH_OA_PROC_ERR_BYTES ? uv_buf_init(p->err_buf + used, (unsigned)(CH_OA_PROC_ERR_BYTES - used))
                                       : uv_buf_init(p->err_scratch, sizeof(p->err_scratch));
}

static void on_err_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct ch_oa_proc *p = s->data;

    if (n > 0 && buf->base != p->err_scratch) { /* err_buf stays one string (its NUL byte is extra) */
        for (ssize_t i = 0; i < n; i++)
            if (buf->base[i] == '\0')
                buf->base[i] = ' ';
        buf->base[n] = '\0';
    }
    if (n < 0) {
        close_stream(&p->err);
        maybe_finish(p);
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct ch_oa_proc *p = s->data;

    (void)buf;
    if (n == 0)
        return;
    if (n > 0) {
        p->out_buf.len += (size_t)n;
        if (p->out_buf.len <= p->cap)
            return;
        p->out_buf.len = p->cap;
        p->res.full = true;
        ch_oa_proc_kill(p);
    }
    close_stream(&p->out);
    maybe_finish(p);
}

int ch_oa_proc_start(struct ch_api *a, char *const argv[], const void *in, size_t in_len, size_t out_cap,
                     uint64_t timeout_ms, ch_oa_proc_done done, void *data, struct ch_oa_proc **out)
{
    uv_loop_t *loop = a->net->loop;
    uv_stdio_container_t io[3];
    uv_process_options_t opt = {0};
    uv_buf_t wb = uv_buf_init((char *)in, (unsigned)in_len);
    struct ch_oa_proc *p = ch_calloc(1, sizeof(*p));
    int rc;

    if (!p)
        return CH_ENOMEM;
    p->api = a;
    p->done = done;
    p->data = data;
    p->cap = out_cap;
    ch_buf_init(&p->out_buf, out_cap + 65536 + 1);
    uv_pipe_init(loop, &p->in, 0);
    uv_pipe_init(loop, &p->out, 0);
    uv_pipe_init(loop, &p->err, 0);
    uv_timer_init(loop, &p->timer);
    p->in.data = p->out.data = p->err.data = p->timer.data = p->proc.data = p->w.data = p;
    p->open = 5;
    io[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    io[0].data.stream = (uv_stream_t *)&p->in;
    io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    io[1].data.stream = (uv_stream_t *)&p->out;
    io[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    io[2].data.stream = (uv_stream_t *)&p->err;
    opt.file = argv[0];
    opt.args = (char **)argv;
    opt.stdio = io;
    opt.stdio_count = 3;
    opt.exit_cb = on_exit_cb;
    opt.flags = UV_PROCESS_DETACHED; /* its own process group: ch_oa_proc_kill */
    if (out)
        *out = p;
    rc = uv_spawn(loop, &p->proc, &opt);
    if (rc) { /* reported by done, like any other outcome */
        p->res.spawn_err = rc;
        close_one((uv_handle_t *)&p->proc); /* initialized even when the spawn failed */
        close_one((uv_handle_t *)&p->in);
        close_one((uv_handle_t *)&p->out);
        close_one((uv_handle_t *)&p->err);
        close_one((uv_handle_t *)&p->timer);
        return 0;
    }
    p->spawned = true;
    p->next = a->procs;
    if (p->next)
        p->next->prev = p;
    a->procs = p;
    uv_timer_start(&p->timer, on_timeout, timeout_ms, 0);
    if (uv_write(&p->w, (uv_stream_t *)&p->in, &wb, 1, on_written) != 0)
        close_one((uv_handle_t *)&p->in);
    if (uv_read_start((uv_stream_t *)&p->err, on_err_alloc, on_err_read) != 0)
        close_stream(&p->err);
    if (uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read) != 0) {
        ch_oa_proc_kill(p);
        close_stream(&p->out);
    }
    return 0;
}
