/*
 * test_curlm.c: outbound HTTP (src/net/curlm*.c) against a small HTTP/1.1
 * server running in the same uv loop on 127.0.0.1.  The server answers by
 * path: /echo, /chunks (five chunks 40 ms apart), /slowhead (head after
 * 400 ms), /stall (10 of 100 body bytes, then silence), /big and
 * /bigchunked (100 kB), /bighead (20 kB of header), /429 (Retry-After),
 * /drop (closes mid-body), /redirect (302 to /echo), /continue (100 then
 * 200).  Every test closes the manager and the server and asserts
 * uv_loop_close() == 0 and that chela's allocator is back where it was.
 */
#include <http_parser.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/curl_dl.h"
#include "net/curlm.h"

/* ------------------------------------------------------------------ */
/* The in-loop server                                                  */
/* ------------------------------------------------------------------ */

enum smode { S_IDLE, S_SLOWHEAD, S_CHUNKS, S_STALL };

struct srv;
struct sconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct srv *srv;
    struct sconn *next;
    http_parser parser;
    bool closing, in_value;
    int closed_handles;
    enum smode mode;
    int step;
    char rbuf[16384];
    char url[256], field[64], xtest[128], ctype[128];
    char body[4096];
    size_t body_len;
};

struct srv {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    int port;
    int accepts;
    int chunks_sent;
    int requests;
    char ua[64]; /* User-Agent of the last request */
    struct sconn *conns;
};

struct wr {
    uv_write_t req;
    char data[];
};

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    free(ch_container_of(w, struct wr, req));
}

static void swrite(struct sconn *c, const char *p, size_t n)
{
    struct wr *w;
    uv_buf_t b;

    if (c->closing)
        return;
    w = malloc(sizeof(*w) + n);
    memcpy(w->data, p, n);
    b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written))
        free(w);
}

static void swritef(struct sconn *c, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    swrite(c, buf, (size_t)n);
}

static void on_sconn_closed(uv_handle_t *h)
{
    struct sconn *c = h->data;
    struct sconn **pp;

    if (++c->closed_handles < 2)
        return;
    for (pp = &c->srv->conns; *pp != c; pp = &(*pp)->next)
        ;
    *pp = c->next;
    free(c);
}

static void sconn_close(struct sconn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_sconn_closed);
    uv_close((uv_handle_t *)&c->timer, on_sconn_closed);
}

static void send_echo(struct sconn *c)
{
    char body[8192];
    int n = snprintf(body, sizeof(body), "method=%s x-test=%s ctype=%s body=%.*s", http_method_str(c->parser.method),
                     c->xtest, c->ctype, (int)c->body_len, c->body);

    swritef(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", n, body);
}

static void on_stimer(uv_timer_t *t)
{
    struct sconn *c = t->data;

    if (c->mode == S_SLOWHEAD) {
        send_echo(c);
    } else if (c->mode == S_CHUNKS) {
        if (c->step < 5) {
            swritef(c, "7\r\nchunk-%d\r\n", c->step++);
            c->srv->chunks_sent++;
            uv_timer_start(&c->timer, on_stimer, 40, 0);
            return;
        }
        swritef(c, "0\r\n\r\n");
    }
    c->mode = S_IDLE;
}

static void respond(struct sconn *c)
{
    const char *path = c->url;
    char big[100001];

    c->srv->requests++;
    if (!strcmp(path, "/echo")) {
        send_echo(c);
    } else if (!strcmp(path, "/chunks")) {
        swritef(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        c->mode = S_CHUNKS;
        c->step = 0;
        uv_timer_start(&c->timer, on_stimer, 40, 0);
    } else if (!strcmp(path, "/slowhead")) {
        c->mode = S_SLOWHEAD;
        uv_timer_start(&c->timer, on_stimer, 400, 0);
    } else if (!strcmp(path, "/stall")) {
        swritef(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
        c->mode = S_STALL;
    } else if (!strcmp(path, "/big") || !strcmp(path, "/bigchunked")) {
        memset(big, 'x', sizeof(big) - 1);
        if (path[4] == 'c')
            swritef(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n");
        else
            swritef(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
        swrite(c, big, 100000);
        if (path[4] == 'c')
            swritef(c, "\r\n0\r\n\r\n");
    } else if (!strcmp(path, "/bighead")) {
        swritef(c, "HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < 200; i++)
            swritef(c, "X-Pad-%03d: %090d\r\n", i, i);
        swritef(c, "Content-Length: 0\r\n\r\n");
    } else if (!strcmp(path, "/429")) {
        swritef(c, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
                   "retry-after-ms:   7000 \r\nContent-Length: 2\r\n\r\nno");
    } else if (!strcmp(path, "/drop")) {
        memset(big, 'y', 100);
        swritef(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        swrite(c, big, 100);
        sconn_close(c);
    } else if (!strcmp(path, "/redirect")) {
        swritef(c, "HTTP/1.1 302 Found\r\nLocation: /echo\r\nContent-Length: 5\r\n\r\nmoved");
    } else if (!strcmp(path, "/continue")) {
        swritef(c, "HTTP/1.1 100 Continue\r\n\r\n");
        send_echo(c);
    } else {
        swritef(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
}

static void cat(char *dst, size_t cap, const char *p, size_t n)
{
    size_t len = strlen(dst);

    if (n > cap - 1 - len)
        n = cap - 1 - len;
    memcpy(dst + len, p, n);
    dst[len + n] = '\0';
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct sconn *c = p->data;
    cat(c->url, sizeof(c->url), at, n);
    return 0;
}

static int on_hfield(http_parser *p, const char *at, size_t n)
{
    struct sconn *c = p->data;
    if (c->in_value)
        c->field[0] = '\0';
    c->in_value = false;
    cat(c->field, sizeof(c->field), at, n);
    return 0;
}

static int on_hvalue(http_parser *p, const char *at, size_t n)
{
    struct sconn *c = p->data;
    c->in_value = true;
    if (!strcasecmp(c->field, "user-agent")) {
        c->srv->ua[0] = '\0';
        cat(c->srv->ua, sizeof(c->srv->ua), at, n);
    } else if (!strcasecmp(c->field, "x-test"))
        cat(c->xtest, sizeof(c->xtest), at, n);
    else if (!strcasecmp(c->field, "content-type"))
        cat(c->ctype, sizeof(c->ctype), at, n);
    return 0;
}

static int on_sbody(http_parser *p, const char *at, size_t n)
{
    struct sconn *c = p->data;
    n = CH_MIN(n, sizeof(c->body) - c->body_len);
    memcpy(c->body + c->body_len, at, n);
    c->body_len += n;
    return 0;
}

static int on_smessage(http_parser *p)
{
    struct sconn *c = p->data;
    respond(c);
    c->url[0] = c->field[0] = c->xtest[0] = c->ctype[0] = '\0';
    c->body_len = 0;
    c->in_value = false;
    return 0;
}

static const http_parser_settings psettings = {
    .on_url = on_url,
    .on_header_field = on_hfield,
    .on_header_value = on_hvalue,
    .on_body = on_sbody,
    .on_message_complete = on_smessage,
};

static void on_salloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct sconn *c = h->data;
    (void)hint;
    *b = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_sread(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct sconn *c = s->data;

    if (n < 0) {
        sconn_close(c);
        return;
    }
    http_parser_execute(&c->parser, &psettings, b->base, (size_t)n);
    if (c->parser.http_errno != HPE_OK)
        sconn_close(c);
}

static void on_sconn(uv_stream_t *l, int status)
{
    struct srv *srv = l->data;
    struct sconn *c = calloc(1, sizeof(*c));

    assert_int_equal(status, 0);
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = srv->conns;
    srv->conns = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    srv->accepts++;
    uv_read_start((uv_stream_t *)&c->tcp, on_salloc, on_sread);
}

static void srv_start(struct srv *srv, uv_loop_t *loop)
{
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_init(loop, &srv->tcp), 0);
    srv->tcp.data = srv;
    assert_int_equal(uv_tcp_bind(&srv->tcp, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv->tcp, 128, on_sconn), 0);
    uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&ss, &len);
    srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void srv_close(struct srv *srv)
{
    if (!uv_is_closing((uv_handle_t *)&srv->tcp))
        uv_close((uv_handle_t *)&srv->tcp, NULL);
    for (struct sconn *c = srv->conns; c; c = c->next)
        sconn_close(c);
}

/* ------------------------------------------------------------------ */
/* Fixture and recording callbacks                                     */
/* ------------------------------------------------------------------ */

static void count_active(uv_handle_t *h, void *arg);

struct fx {
    uv_loop_t loop;
    struct srv srv;
    struct ch_curlm *m;
    int m_closed;
    int dones;
    bool in_api_call;  /* set around abort/close: on_done must not run then */
    size_t live_bytes; /* chela allocator at setup */
};

struct rec {
    struct fx *fx;
    struct ch_curlm_req *req;
    int order_errors;
    int heads, datas, dones;
    long head_status;
    char retry_after[32], retry_after_ms[32], ctype[64], location[64];
    char body[8192];
    size_t body_len;
    int rc;
    enum ch_curlm_timeout to;
    long status;
    bool had_head;
    char msg[256], ip[64], url[512];
    uint64_t first_byte_us, total_us, body_bytes, head_bytes, bytes_out;
    long new_conns;
    /* behaviour */
    int abort_at_data; /* 1-based on_data call that aborts */
    int fail_at_data;  /* 1-based on_data call that returns fail_rc */
    int fail_rc;
    bool check_chunks;
    const struct ch_curlm_request *then; /* submit this from on_done */
    struct rec *then_rec;
    bool submit_in_data; /* ... or from the first on_data */
};

static void copy_str(char *dst, size_t cap, struct ch_str s)
{
    snprintf(dst, cap, "%.*s", (int)s.len, s.p ? s.p : "");
}

static int rec_headers(struct ch_curlm_req *req, const struct ch_curlm_head *h, void *data)
{
    struct rec *r = data;

    r->order_errors += r->heads || r->datas || r->dones || req != r->req;
    r->heads++;
    r->head_status = h->status;
    copy_str(r->retry_after, sizeof(r->retry_after), ch_curlm_head_get(h, "RETRY-AFTER"));
    copy_str(r->retry_after_ms, sizeof(r->retry_after_ms), ch_curlm_head_get(h, "retry-after-ms"));
    copy_str(r->ctype, sizeof(r->ctype), ch_curlm_head_get(h, "content-type"));
    copy_str(r->location, sizeof(r->location), ch_curlm_head_get(h, "Location"));
    return 0;
}

static void submit_ok(struct fx *fx, const struct ch_curlm_request *q, struct rec *r);

static int rec_data(struct ch_curlm_req *req, const char *p, size_t n, void *data)
{
    struct rec *r = data;
    char want[16];

    r->order_errors += !r->heads || r->dones || req != r->req;
    if (r->check_chunks) {
        /* Chunk k arrives before the server has sent chunk k+1. */
        snprintf(want, sizeof(want), "chunk-%d", r->datas);
        assert_int_equal(n, 7);
        assert_memory_equal(p, want, 7);
        assert_int_equal(r->fx->srv.chunks_sent, r->datas + 1);
    }
    r->datas++;
    n = CH_MIN(n, sizeof(r->body) - 1 - r->body_len);
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    if (r->submit_in_data && r->datas == 1)
        submit_ok(r->fx, r->then, r->then_rec);
    if (r->abort_at_data == r->datas) {
        r->fx->in_api_call = true;
        ch_curlm_abort(req);
        ch_curlm_abort(req); /* twice: a no-op */
        r->fx->in_api_call = false;
    }
    return r->fail_at_data == r->datas ? r->fail_rc : 0;
}

static void rec_done(struct ch_curlm_req *req, const struct ch_curlm_result *res, void *data)
{
    struct rec *r = data;

    assert_false(r->fx->in_api_call);
    r->order_errors += r->dones || req != r->req;
    r->dones++;
    r->fx->dones++;
    r->rc = res->rc;
    r->to = res->timeout;
    r->status = res->status;
    r->had_head = res->head != NULL;
    assert_true(res->head == NULL || res->head->status == res->status);
    snprintf(r->msg, sizeof(r->msg), "%s", res->msg);
    snprintf(r->ip, sizeof(r->ip), "%s", res->primary_ip);
    snprintf(r->url, sizeof(r->url), "%s", res->effective_url);
    r->first_byte_us = res->first_byte_us;
    r->total_us = res->total_us;
    r->body_bytes = res->body_bytes;
    r->head_bytes = res->head_bytes;
    r->bytes_out = res->bytes_out;
    r->new_conns = res->new_connections;
    if (r->then && !r->submit_in_data)
        submit_ok(r->fx, r->then, r->then_rec);
}

static void submit_ok(struct fx *fx, const struct ch_curlm_request *q, struct rec *r)
{
    struct ch_error err = {0};
    struct ch_curlm_request copy = *q;

    r->fx = fx;
    copy.on_headers = rec_headers;
    copy.on_data = rec_data;
    copy.on_done = rec_done;
    copy.data = r;
    assert_int_equal(ch_curlm_submit(fx->m, &copy, &r->req, &err), 0);
}

static void url_for(struct fx *fx, const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "http://127.0.0.1:%d%s", fx->srv.port, path);
}

static void on_guard(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Run the loop until *counter reaches target; fail after 10 s. */
static void run_until(struct fx *fx, const int *counter, int target)
{
    uv_timer_t guard;
    bool expired = false;

    uv_timer_init(&fx->loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, 10000, 0);
    while (*counter < target && !expired)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_false(expired);
}

static void on_m_closed(void *data)
{
    ((struct fx *)data)->m_closed++;
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    fx->live_bytes = ch_alloc_live_bytes();
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    srv_start(&fx->srv, &fx->loop);
    assert_int_equal(ch_curlm_new(&fx->loop, NULL, &fx->m), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    if (fx->m && !fx->m_closed) {
        fx->in_api_call = true;
        ch_curlm_close(fx->m, on_m_closed, fx);
        fx->in_api_call = false;
    }
    run_until(fx, &fx->m_closed, 1);
    srv_close(&fx->srv);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(fx->m_closed, 1);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    assert_int_equal(ch_alloc_live_bytes(), fx->live_bytes);
    free(fx);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Cases                                                               */
/* ------------------------------------------------------------------ */

static void test_get_echo(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_header hs[] = {{"X-Test", "hello"}};
    struct ch_curlm_request q = {.headers = hs, .header_count = 1};
    struct rec r = {0};
    char url[128];

    url_for(fx, "/echo", url, sizeof(url));
    q.url = url;
    /* The environment's proxy is ignored unless configured. */
    setenv("http_proxy", "http://127.0.0.1:9", 1);
    submit_ok(fx, &q, &r);
    assert_int_equal(r.dones, 0); /* never inside submit */
    run_until(fx, &r.dones, 1);
    unsetenv("http_proxy");
    assert_string_equal(fx->srv.ua, "chela/" CH_VERSION);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.order_errors, 0);
    assert_true(r.had_head);
    assert_string_equal(r.ctype, "text/plain");
    assert_string_equal(r.body, "method=GET x-test=hello ctype= body=");
    assert_int_equal(r.body_bytes, strlen(r.body));
    assert_true(r.head_bytes > 0 && r.bytes_out > 0);
    assert_string_equal(r.ip, "127.0.0.1");
    assert_string_equal(r.url, url);
    assert_int_equal(r.new_conns, 1);
    assert_true(r.first_byte_us > 0 && r.first_byte_us <= r.total_us);
    assert_string_equal(r.msg, "");
}

static void test_post_bodies(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_header hs[] = {{"Content-Type", "application/json"}, {"X-Test", "p"}};
    struct ch_curlm_request q = {.headers = hs, .header_count = 2};
    struct rec r[4] = {{0}};
    char url[128], borrowed[] = "{\"b\":2}";
    char *taken = ch_strdup("{\"c\":3}");

    url_for(fx, "/echo", url, sizeof(url));
    q.url = url;
    q.body = "{\"a\":1}"; /* copied */
    q.body_len = 7;
    submit_ok(fx, &q, &r[0]);
    q.body = borrowed;
    q.body_mode = CH_CURLM_BODY_BORROW;
    submit_ok(fx, &q, &r[1]);
    q.body = taken;
    q.body_mode = CH_CURLM_BODY_TAKE;
    q.method = "PUT";
    submit_ok(fx, &q, &r[2]);
    q.method = "DELETE"; /* no body, no Content-Type */
    q.body = NULL;
    q.body_len = 0;
    q.body_mode = CH_CURLM_BODY_COPY;
    q.header_count = 0;
    submit_ok(fx, &q, &r[3]);
    run_until(fx, &fx->dones, 4);
    assert_string_equal(r[0].body, "method=POST x-test=p ctype=application/json body={\"a\":1}");
    assert_string_equal(r[1].body, "method=POST x-test=p ctype=application/json body={\"b\":2}");
    assert_string_equal(r[2].body, "method=PUT x-test=p ctype=application/json body={\"c\":3}");
    assert_string_equal(r[3].body, "method=DELETE x-test= ctype= body=");
    for (int i = 0; i < 4; i++)
        assert_int_equal(r[i].rc, 0);
}

/* Idle handles keep their options for the next request of the same
 * shape (method, body, redirects) and are reset for another: one request
 * at a time, so each reuses the last handle, through changes of shape and
 * back; nothing of a request (method, body, headers, following) may leak
 * into the next. */
static void test_handle_reuse(void **state)
{
    static const struct {
        const char *method, *path, *body;
        int hdr, redirects;
        const char *want; /* NULL: the 302 itself */
    } seq[] = {
        {NULL, "/echo", NULL, 1, 0, "method=GET x-test=r ctype= body="},
        {NULL, "/echo", "{\"a\":1}", 1, 0, "method=POST x-test=r ctype=application/json body={\"a\":1}"},
        {NULL, "/echo", "{\"b\":22}", 0, 0, "method=POST x-test= ctype= body={\"b\":22}"},
        {"PUT", "/echo", "{\"c\":3}", 1, 0, "method=PUT x-test=r ctype=application/json body={\"c\":3}"},
        {NULL, "/echo", NULL, 0, 0, "method=GET x-test= ctype= body="},
        {"DELETE", "/echo", NULL, 1, 0, "method=DELETE x-test=r ctype= body="},
        {"DELETE", "/echo", NULL, 0, 0, "method=DELETE x-test= ctype= body="},
        {NULL, "/redirect", NULL, 0, 3, "method=GET x-test= ctype= body="},
        {NULL, "/redirect", NULL, 0, 0, NULL},
        {NULL, "/redirect", NULL, 0, 3, "method=GET x-test= ctype= body="},
        {NULL, "/echo", "{\"d\":4}", 1, 0, "method=POST x-test=r ctype=application/json body={\"d\":4}"},
        {NULL, "/echo", NULL, 1, 0, "method=GET x-test=r ctype= body="},
    };
    struct fx *fx = *state;
    struct ch_curlm_header hs[] = {{"Content-Type", "application/json"}, {"X-Test", "r"}};

    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
            struct ch_curlm_request q = {0};
            struct rec r = {0};
            char url[128];

            url_for(fx, seq[i].path, url, sizeof(url));
            q.url = url;
            q.method = seq[i].method;
            q.max_redirects = seq[i].redirects;
            if (seq[i].body) {
                q.body = seq[i].body;
                q.body_len = strlen(seq[i].body);
            }
            if (seq[i].hdr) {
                q.headers = seq[i].body ? hs : hs + 1;
                q.header_count = seq[i].body ? 2 : 1;
            }
            submit_ok(fx, &q, &r);
            run_until(fx, &r.dones, 1);
            assert_int_equal(r.rc, 0);
            if (seq[i].want) {
                assert_int_equal(r.status, 200);
                assert_string_equal(r.body, seq[i].want);
            } else {
                assert_int_equal(r.status, 302);
                assert_string_equal(r.body, "moved");
            }
        }
    }
}

static void test_streaming_chunks(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {0};
    struct rec r = {.check_chunks = true};
    char url[128];

    url_for(fx, "/chunks", url, sizeof(url));
    q.url = url;
    submit_ok(fx, &q, &r);
    run_until(fx, &r.dones, 1);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.datas, 5);
    assert_int_equal(r.order_errors, 0);
    assert_string_equal(r.body, "chunk-0chunk-1chunk-2chunk-3chunk-4");
}

static void test_first_byte_timeout(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {.first_byte_timeout_ms = 100};
    struct ch_curlm_stats st;
    struct rec r = {0};
    char url[128];

    url_for(fx, "/slowhead", url, sizeof(url));
    q.url = url;
    submit_ok(fx, &q, &r);
    run_until(fx, &r.dones, 1);
    assert_int_equal(r.rc, CH_ETIMEDOUT);
    assert_int_equal(r.to, CH_CURLM_TIMEOUT_FIRST_BYTE);
    assert_string_equal(ch_curlm_timeout_name(r.to), "first-byte");
    assert_true(r.total_us >= 90000 && r.total_us < 390000);
    assert_int_equal(r.heads, 0);
    assert_false(r.had_head);
    assert_int_equal(r.status, 0);
    ch_curlm_stats_get(fx->m, &st);
    assert_int_equal(st.timed_out, 1);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.in_flight, 0);
}

static void test_idle_timeout(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {.idle_timeout_ms = 150};
    struct rec r = {0};
    char url[128];

    url_for(fx, "/stall", url, sizeof(url));
    q.url = url;
    submit_ok(fx, &q, &r);
    run_until(fx, &r.dones, 1);
    assert_int_equal(r.rc, CH_ETIMEDOUT);
    assert_int_equal(r.to, CH_CURLM_TIMEOUT_IDLE);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_bytes, 10);
    assert_true(r.total_us >= 140000);
    assert_non_null(strstr(r.msg, "150 ms"));
}

static void test_total_timeout(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {.total_timeout_ms = 100};
    struct rec r = {0};
    char url[128];

    url_for(fx, "/chunks", url, sizeof(url)); /* 5 x 40 ms: never idle */
    q.url = url;
    submit_ok(fx, &q, &r);
    run_until(fx, &r.dones, 1);
    assert_int_equal(r.rc, CH_ETIMEDOUT);
    assert_int_equal(r.to, CH_CURLM_TIMEOUT_TOTAL);
    assert_true(r.datas < 5); /* stopped before the end */
}

static void test_connect_timeout(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {.connect_timeout_ms = 200};
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int lfd, cfd[3];
    struct rec r = {0};
    char url[128];

    /* A listener that never accepts, with its backlog filled: the kernel
     * drops further SYNs, so curl's connect hangs until its timeout. */
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(0x7f000001);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 0), 0);
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    for (int i = 0; i < 3; i++) {
        cfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(cfd[i], (struct sockaddr *)&sa, sizeof(sa));
    }
    usleep(50000);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(sa.sin_port));
    q.url = url;
    submit_ok(fx, &q, &r);
    run_until(fx, &r.dones, 1);
    assert_int_equal(r.rc, CH_ETIMEDOUT);
    assert_int_equal(r.to, CH_CURLM_TIMEOUT_CONNECT);
    assert_true(r.msg[0] != '\0');
    for (int i = 0; i < 3; i++)
        close(cfd[i]);
    close(lfd);
}

static void test_body_caps(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {.max_body_bytes = 1000};
    struct rec r[2] = {{0}};
    char url[2][128];

    url_for(fx, "/big", url[0], sizeof(url[0]));        /* Content-Length: refused early */
    url_for(fx, "/bigchunked", url[1], sizeof(url[1])); /* no length: the write cap */
    for (int i = 0; i < 2; i++) {
        q.url = url[i];
        submit_ok(fx, &q, &r[i]);
    }
    run_until(fx, &fx->dones, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r[i].rc, CH_E_TOO_LARGE);
        assert_true(r[i].body_bytes <= 1000);
        assert_int_equal(r[i].order_errors, 0);
    }
    assert_int_equal(r[0].body_bytes, 0);
    assert_int_equal(r[1].heads, 1);
    assert_non_null(strstr(r[1].msg, "1000"));
}

static void test_header_cap(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {.max_header_bytes = 4096};
    struct rec r = {0};
    char url[128];

    url_for(fx, "/bighead", url, sizeof(url));
    q.url = url;
    submit_ok(fx, &q, &r);
    run_until(fx, &r.dones, 1);
    assert_int_equal(r.rc, CH_E_TOO_LARGE);
    assert_int_equal(r.heads, 0);
    assert_true(r.head_bytes > 4096 && r.head_bytes < 4096 + 200);
}

static void test_429_retry_after(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {0};
    struct rec r = {0};
    char url[128];

    url_for(fx, "/429", url, sizeof(url));
    q.url = url;
    submit_ok(fx, &q, &r);
    run_until(fx, &r.dones, 1);
    assert_int_equal(r.rc, 0); /* an HTTP error status is still a response */
    assert_int_equal(r.status, 429);
    assert_int_equal(r.head_status, 429);
    assert_string_equal(r.retry_after, "7");
    assert_string_equal(r.retry_after_ms, "7000");
    assert_string_equal(r.body, "no");
}

static void test_refused_and_dropped(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {0};
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    struct rec r[2] = {{0}};
    char url[2][128];
    int fd;

    /* A port that was just free: nothing listens there now. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(0x7f000001);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    snprintf(url[0], sizeof(url[0]), "http://127.0.0.1:%d/", ntohs(sa.sin_port));
    url_for(fx, "/drop", url[1], sizeof(url[1]));
    for (int i = 0; i < 2; i++) {
        q.url = url[i];
        submit_ok(fx, &q, &r[i]);
    }
    run_until(fx, &fx->dones, 2);
    assert_int_equal(r[0].rc, CH_EIO);
    assert_int_equal(r[0].status, 0);
    assert_false(r[0].had_head);
    assert_non_null(strstr(r[0].msg, "onnect"));
    assert_int_equal(r[1].rc, CH_EIO);
    assert_int_equal(r[1].status, 200);
    assert_int_equal(r[1].body_bytes, 100);
    assert_true(r[1].msg[0] != '\0');
}

static void on_abort_timer(uv_timer_t *t)
{
    struct rec *r = t->data;

    r->fx->in_api_call = true;
    ch_curlm_abort(r->req);
    r->fx->in_api_call = false;
    assert_int_equal(r->dones, 0);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_abort(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {0};
    struct rec r[4] = {{0}};
    struct ch_curlm_stats st;
    uv_timer_t t;
    char url[2][128];

    url_for(fx, "/slowhead", url[0], sizeof(url[0]));
    url_for(fx, "/chunks", url[1], sizeof(url[1]));
    q.url = url[0];
    submit_ok(fx, &q, &r[0]); /* aborted from a timer while waiting */
    q.url = url[1];
    r[1].abort_at_data = 2; /* aborted inside on_data */
    submit_ok(fx, &q, &r[1]);
    r[2].fail_at_data = 1; /* on_data returns a code */
    r[2].fail_rc = CH_EPERM;
    submit_ok(fx, &q, &r[2]);
    q.url = url[0];
    submit_ok(fx, &q, &r[3]); /* aborted right after submit */
    fx->in_api_call = true;
    ch_curlm_abort(r[3].req);
    fx->in_api_call = false;
    uv_timer_init(&fx->loop, &t);
    t.data = &r[0];
    r[0].fx = fx;
    uv_timer_start(&t, on_abort_timer, 50, 0);
    run_until(fx, &fx->dones, 4);
    assert_int_equal(r[0].rc, CH_ECANCELED);
    assert_true(r[0].total_us < 300000);
    assert_int_equal(r[1].rc, CH_ECANCELED);
    assert_int_equal(r[1].datas, 2); /* nothing after the abort */
    assert_int_equal(r[2].rc, CH_EPERM);
    assert_int_equal(r[2].datas, 1);
    assert_int_equal(r[3].rc, CH_ECANCELED);
    assert_int_equal(r[3].heads + r[3].datas, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(r[i].order_errors, 0);
    ch_curlm_stats_get(fx->m, &st);
    assert_int_equal(st.canceled, 3);
    assert_int_equal(st.failed, 4);
}

static void test_connection_reuse(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {0};
    struct rec r[3] = {{0}};
    char url[128];

    url_for(fx, "/echo", url, sizeof(url));
    q.url = url;
    r[0].then = &q; /* the second starts from the first's on_done */
    r[0].then_rec = &r[1];
    r[1].then = &q;
    r[1].then_rec = &r[2];
    submit_ok(fx, &q, &r[0]);
    run_until(fx, &fx->dones, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].rc, 0);
    assert_int_equal(fx->srv.accepts, 1);
    assert_int_equal(fx->srv.requests, 3);
    assert_int_equal(r[0].new_conns, 1);
    assert_int_equal(r[1].new_conns, 0);
    assert_int_equal(r[2].new_conns, 0);
}

/* The server closes the kept-alive connection while it is idle (its poll
 * parked, curlm.c): the parked poll sees the close and stops, and the next
 * request finds the cached connection dead and opens a new one. */
static void test_parked_connection_closed(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {0};
    struct rec r[2] = {{0}};
    char url[128];
    int active = 0;

    url_for(fx, "/echo", url, sizeof(url));
    q.url = url;
    submit_ok(fx, &q, &r[0]);
    run_until(fx, &r[0].dones, 1);
    for (struct sconn *c = fx->srv.conns; c; c = c->next)
        sconn_close(c);
    for (int i = 0; i < 20; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    uv_walk(&fx->loop, count_active, &active);
    assert_int_equal(active, 1); /* the listener only */
    submit_ok(fx, &q, &r[1]);
    run_until(fx, &r[1].dones, 1);
    assert_int_equal(r[0].rc, 0);
    assert_int_equal(r[1].rc, 0);
    assert_int_equal(r[1].status, 200);
    assert_int_equal(r[1].new_conns, 1);
    assert_int_equal(fx->srv.accepts, 2);
}

/* Easy handles are pooled and reset between requests: a request on a
 * reused handle carries nothing of the previous one (method, headers,
 * body, pins), and the cached URL verdict never lets another scheme by. */
static void test_reused_handles_start_clean(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_header hs[] = {{"Content-Type", "application/json"}, {"X-Test", "first"}};
    struct ch_curlm_request q = {.headers = hs, .header_count = 2, .method = "PUT", .body = "{}", .body_len = 2};
    struct ch_curlm_request plain = {0};
    struct ch_error err = {0};
    struct rec r[4] = {{0}};
    char url[128], purl[128], pin[64];
    const char *pins[] = {pin};

    url_for(fx, "/echo", url, sizeof(url));
    q.url = plain.url = url;
    submit_ok(fx, &q, &r[0]);
    run_until(fx, &fx->dones, 1);
    submit_ok(fx, &plain, &r[1]);
    run_until(fx, &fx->dones, 2);
    assert_string_equal(r[0].body, "method=PUT x-test=first ctype=application/json body={}");
    assert_string_equal(r[1].body, "method=GET x-test= ctype= body=");
    assert_int_equal(r[1].new_conns, 0); /* and the connection was reused */
    /* The URL verdict is cached per text, not per scheme. */
    plain.url = "ftp://127.0.0.1/x";
    assert_int_equal(ch_curlm_submit(fx->m, &plain, NULL, &err), CH_EINVAL);
    plain.url = "file:///etc/passwd";
    assert_int_equal(ch_curlm_submit(fx->m, &plain, NULL, &err), CH_EINVAL);
    /* A pinned request gets a handle of its own; the next plain request
     * after it resolves normally and reuses the plain connection. */
    snprintf(purl, sizeof(purl), "http://pinned.invalid:%d/echo", fx->srv.port);
    snprintf(pin, sizeof(pin), "pinned.invalid:%d:127.0.0.1", fx->srv.port);
    plain.url = purl;
    plain.resolve = pins;
    plain.resolve_count = 1;
    submit_ok(fx, &plain, &r[2]);
    run_until(fx, &fx->dones, 3);
    plain.url = url;
    plain.resolve = NULL;
    plain.resolve_count = 0;
    submit_ok(fx, &plain, &r[3]);
    run_until(fx, &fx->dones, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(r[i].rc, 0);
    assert_int_equal(r[2].new_conns, 1);
    assert_int_equal(r[3].new_conns, 0);
    assert_string_equal(r[3].body, "method=GET x-test= ctype= body=");
    assert_int_equal(fx->srv.accepts, 2);
}

static void test_hundred_concurrent(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_header hs[1] = {{"X-Test", NULL}};
    struct ch_curlm_request q = {.headers = hs, .header_count = 1};
    struct rec *r = calloc(100, sizeof(*r));
    struct ch_curlm_stats st;
    char url[128], tag[100][16], want[128];

    url_for(fx, "/echo", url, sizeof(url));
    q.url = url;
    for (int i = 0; i < 100; i++) {
        snprintf(tag[i], sizeof(tag[i]), "n%d", i);
        hs[0].value = tag[i];
        submit_ok(fx, &q, &r[i]);
    }
    ch_curlm_stats_get(fx->m, &st);
    assert_int_equal(st.in_flight, 100);
    run_until(fx, &fx->dones, 100);
    for (int i = 0; i < 100; i++) {
        snprintf(want, sizeof(want), "method=GET x-test=n%d ctype= body=", i);
        assert_int_equal(r[i].rc, 0);
        assert_string_equal(r[i].body, want);
    }
    /* Per-host cap: at most that many connections for 100 requests. */
    assert_true(fx->srv.accepts >= 1 && fx->srv.accepts <= CH_CURLM_DEF_MAX_HOST_CONNS);
    ch_curlm_stats_get(fx->m, &st);
    assert_int_equal(st.total, 100);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.failed, 0);
    assert_true(st.bytes_in > 100 * 40 && st.bytes_out > 100 * 40);
    free(r);
}

static int heads_seen;
static int count_head(struct ch_curlm_req *req, const struct ch_curlm_head *h, void *data)
{
    heads_seen++;
    return 0;
}

static void test_close_in_flight(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {0};
    struct ch_error err = {0};
    struct rec r[5] = {{0}};
    char url[128];

    url_for(fx, "/stall", url, sizeof(url));
    q.url = url;
    for (int i = 0; i < 5; i++)
        submit_ok(fx, &q, &r[i]);
    run_until(fx, &fx->srv.requests, 5); /* all in flight, stalled */
    fx->in_api_call = true;
    ch_curlm_close(fx->m, on_m_closed, fx);
    fx->in_api_call = false;
    assert_int_equal(fx->dones, 0);
    q.on_done = rec_done;
    q.on_headers = count_head;
    assert_int_equal(ch_curlm_submit(fx->m, &q, NULL, &err), CH_ECLOSED);
    run_until(fx, &fx->m_closed, 1);
    assert_int_equal(fx->dones, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(r[i].rc, CH_ECANCELED);
        assert_int_equal(r[i].dones, 1);
    }
    assert_int_equal(heads_seen, 0);
}

static void test_submit_errors(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_header bad[] = {{"X-Evil", "a\r\nInjected: 1"}};
    struct ch_curlm_header badname[] = {{"X Evil", "a"}};
    const char *badpin[] = {"no-colons-here"};
    struct ch_curlm_request q = {.on_done = rec_done};
    struct ch_error err = {0};
    char url[128];

    url_for(fx, "/echo", url, sizeof(url));
    assert_int_equal(ch_curlm_submit(fx->m, &q, NULL, &err), CH_EINVAL); /* no URL */
    q.url = "ftp://127.0.0.1/x";
    assert_int_equal(ch_curlm_submit(fx->m, &q, NULL, &err), CH_EINVAL);
    assert_non_null(strstr(err.msg, "ftp"));
    q.url = "file:///etc/passwd";
    assert_int_equal(ch_curlm_submit(fx->m, &q, NULL, &err), CH_EINVAL);
    q.url = "http://exa mple.com/";
    assert_int_equal(ch_curlm_submit(fx->m, &q, NULL, &err), CH_EINVAL);
    q.url = "http://[::1/";
    assert_int_equal(ch_curlm_submit(fx->m, &q, NULL, &err), CH_EINVAL);
    q.url = url;
    q.headers = bad;
    q.header_count = 1;
    assert_int_equal(ch_curlm_submit(fx->m, &q, NULL, &err), CH_EINVAL);
    q.headers = badname;
    assert_int_equal(ch_curlm_submit(fx->m, &q, NULL, &err), CH_EINVAL);
    q.header_count = 0;
    q.method = "GET /x HTTP/1.1\r\n";
    assert_int_equal(ch_curlm_submit(fx->m, &q, NULL, &err), CH_EINVAL);
    q.method = "";
    assert_int_equal(ch_curlm_submit(fx->m, &q, NULL, &err), CH_EINVAL);
    q.method = NULL;
    q.resolve = badpin;
    q.resolve_count = 1;
    assert_int_equal(ch_curlm_submit(fx->m, &q, NULL, &err), CH_EINVAL);
    q.resolve_count = 0;
    /* A taken body is freed even when submit fails (LeakSanitizer). */
    q.url = "gopher://x/";
    q.body = ch_strdup("taken");
    q.body_len = 5;
    q.body_mode = CH_CURLM_BODY_TAKE;
    assert_int_equal(ch_curlm_submit(fx->m, &q, NULL, &err), CH_EINVAL);
    assert_int_equal(ch_curlm_submit(fx->m, NULL, NULL, NULL), CH_EINVAL);
    assert_int_equal(fx->dones, 0);
}

static void test_redirects(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {0};
    struct rec r[2] = {{0}};
    char url[128], want[160];

    url_for(fx, "/redirect", url, sizeof(url));
    q.url = url;
    submit_ok(fx, &q, &r[0]); /* default: returned, not followed */
    q.max_redirects = 3;
    submit_ok(fx, &q, &r[1]);
    run_until(fx, &fx->dones, 2);
    assert_int_equal(r[0].rc, 0);
    assert_int_equal(r[0].status, 302);
    assert_string_equal(r[0].location, "/echo");
    assert_string_equal(r[0].body, "moved");
    assert_string_equal(r[0].url, url);
    assert_int_equal(r[1].rc, 0);
    assert_int_equal(r[1].heads, 1);
    assert_int_equal(r[1].head_status, 200);
    assert_string_equal(r[1].body, "method=GET x-test= ctype= body=");
    url_for(fx, "/echo", want, sizeof(want));
    assert_string_equal(r[1].url, want);
}

static void test_interim_and_pins(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {0};
    struct rec r[3] = {{0}};
    char url[2][128], pin[64];
    const char *pins[] = {pin};

    url_for(fx, "/continue", url[0], sizeof(url[0]));
    q.url = url[0];
    submit_ok(fx, &q, &r[0]);
    /* A pinned name (never in DNS) connects to the pinned address, and
     * pinned requests neither reuse nor leave connections. */
    snprintf(url[1], sizeof(url[1]), "http://pinned.invalid:%d/echo", fx->srv.port);
    snprintf(pin, sizeof(pin), "pinned.invalid:%d:127.0.0.1", fx->srv.port);
    q.url = url[1];
    q.resolve = pins;
    q.resolve_count = 1;
    r[1].then = &q;
    r[1].then_rec = &r[2];
    run_until(fx, &fx->dones, 1);
    submit_ok(fx, &q, &r[1]);
    run_until(fx, &fx->dones, 3);
    assert_int_equal(r[0].rc, 0);
    assert_int_equal(r[0].heads, 1);
    assert_int_equal(r[0].status, 200);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(r[i].rc, 0);
        assert_string_equal(r[i].ip, "127.0.0.1");
        assert_int_equal(r[i].new_conns, 1);
    }
    assert_int_equal(fx->srv.accepts, 3);
}

static void test_submit_inside_data(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {0}, q2 = {0};
    struct rec r[2] = {{0}};
    char url[2][128];

    url_for(fx, "/chunks", url[0], sizeof(url[0]));
    url_for(fx, "/echo", url[1], sizeof(url[1]));
    q.url = url[0];
    q2.url = url[1];
    r[0].then = &q2;
    r[0].then_rec = &r[1];
    r[0].submit_in_data = true; /* curl forbids adding there: deferred */
    submit_ok(fx, &q, &r[0]);
    run_until(fx, &fx->dones, 2);
    assert_int_equal(r[0].rc, 0);
    assert_int_equal(r[1].rc, 0);
    assert_int_equal(r[1].status, 200);
}

/* Handles that keep the loop alive: a cached connection's parked poll is
 * active but unreferenced (curlm.c), so it does not count. */
static void count_active(uv_handle_t *h, void *arg)
{
    if (uv_is_active(h) && uv_has_ref(h) && !uv_is_closing(h))
        (*(int *)arg)++;
}

static void test_idle_manager_arms_nothing(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_request q = {0};
    struct rec r = {0};
    char url[128];
    int active = 0;

    url_for(fx, "/echo", url, sizeof(url));
    q.url = url;
    submit_ok(fx, &q, &r);
    run_until(fx, &r.dones, 1);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    /* Only the server's listener and its kept-alive connection remain:
     * no curl timer, no poll on the cached connection. */
    uv_walk(&fx->loop, count_active, &active);
    assert_int_equal(active, 2);
}

static void test_alloc_failures(void **state)
{
    struct fx *fx = *state;
    struct ch_curlm_header hs[] = {{"Authorization", "Bearer sk-secret"}};
    struct ch_curlm_request q = {.headers = hs, .header_count = 1, .body = "{}", .body_len = 2};
    const char *pins[] = {"x.invalid:80:127.0.0.1"};
    struct ch_curlm *m2 = NULL;
    struct rec r = {0};
    char url[128];
    int rc = CH_ENOMEM, n;

    url_for(fx, "/echo", url, sizeof(url));
    q.url = url;
    q.on_headers = rec_headers;
    q.on_data = rec_data;
    q.on_done = rec_done;
    q.data = &r;
    r.fx = fx;
    for (n = 1; rc && n < 1000; n++) {
        ch_alloc_fail_after(n);
        rc = ch_curlm_submit(fx->m, &q, &r.req, NULL);
        ch_alloc_fail_after(0);
        if (rc)
            assert_int_equal(rc, CH_ENOMEM);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 2);
    run_until(fx, &r.dones, 1);
    assert_int_equal(r.rc, 0);
    q.resolve = pins;
    q.resolve_count = 1;
    for (n = 1, rc = CH_ENOMEM; rc && n < 1000; n++) {
        ch_alloc_fail_after(n);
        rc = ch_curlm_submit(fx->m, &q, &r.req, NULL);
        ch_alloc_fail_after(0);
        if (rc)
            assert_int_equal(rc, CH_ENOMEM);
    }
    assert_int_equal(rc, 0);
    ch_curlm_abort(r.req);
    run_until(fx, &r.dones, 2);
    for (n = 1, rc = CH_ENOMEM; rc && n < 1000; n++) {
        ch_alloc_fail_after(n);
        rc = ch_curlm_new(&fx->loop, NULL, &m2);
        ch_alloc_fail_after(0);
        if (rc) {
            assert_int_equal(rc, CH_ENOMEM);
            assert_null(m2);
        }
    }
    assert_int_equal(rc, 0);
    ch_curlm_close(m2, NULL, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static void test_head_lookup(void **state)
{
    static const char raw[] = "HTTP/1.1 200 OK\r\nA: 1\r\n folded\r\nnocolon\r\nB:2\r\n"
                              "Retry-After:\t 30 \r\nA: 3\r\nEmpty:\r\n";
    struct ch_curlm_head h = {.status = 200, .http_version = 11, .raw = CH_STR(raw)};
    const char *want[][2] = {{"A", "1"}, {"B", "2"}, {"Retry-After", "30"}, {"A", "3"}, {"Empty", ""}};
    struct ch_str k, v;
    size_t it = 0, n = 0;

    (void)state;
    while (ch_curlm_head_next(&h, &it, &k, &v)) {
        assert_true(n < CH_ARRAY_SIZE(want));
        assert_true(ch_str_eq_cstr(k, want[n][0]));
        assert_true(ch_str_eq_cstr(v, want[n][1]));
        n++;
    }
    assert_int_equal(n, CH_ARRAY_SIZE(want));
    assert_false(ch_curlm_head_next(&h, &it, &k, &v)); /* stays at the end */
    assert_true(ch_str_eq_cstr(ch_curlm_head_get(&h, "a"), "1"));
    assert_true(ch_str_eq_cstr(ch_curlm_head_get(&h, "retry-after"), "30"));
    assert_null(ch_curlm_head_get(&h, "retry").p);
    assert_null(ch_curlm_head_get(&h, "folded").p);
    assert_null(ch_curlm_head_get(&h, "HTTP/1.1 200 OK").p);
    h.raw = (struct ch_str){NULL, 0};
    it = 0;
    assert_false(ch_curlm_head_next(&h, &it, &k, &v));
    assert_string_equal(ch_curlm_timeout_name(CH_CURLM_TIMEOUT_IDLE), "idle");
    assert_string_equal(ch_curlm_timeout_name((enum ch_curlm_timeout)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_lookup),
        cmocka_unit_test_setup_teardown(test_get_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streaming_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_byte_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_total_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_and_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reused_handles_start_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parked_connection_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hundred_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handle_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interim_and_pins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_inside_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_manager_arms_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    int rc;

    ch_alloc_install();
    if (ch_curlm_global_init() != 0)
        return 1;
    /* libcurl is loaded at first use; load it here so its global state
     * (curl's and OpenSSL's, on our allocator) predates every test's
     * memory baseline. */
    if (ch_curl_load(NULL) != 0)
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    ch_curlm_global_cleanup();
    return rc;
}
