/*
 * tools_loop.h: a real uv loop, a curlm manager and a registry for the
 * tools tests, plus a small HTTP/1.1 server on 127.0.0.1 in the same
 * loop.  The server records the last request (method, target, headers,
 * body) and answers by path (see srv_respond).  Every test closes the
 * registry, the manager and the server, and asserts uv_loop_close() == 0
 * and that chela's allocator is back where it started.
 */
#ifndef CH_TOOLS_LOOP_H
#define CH_TOOLS_LOOP_H

#include <http_parser.h>
#include <strings.h>

#include "tools_test.h"

#define U __attribute__((unused))

/* ------------------------------------------------------------------ */
/* The in-loop server                                                  */
/* ------------------------------------------------------------------ */

struct srv;
struct sconn {
    uv_tcp_t tcp;
    struct srv *srv;
    struct sconn *next;
    http_parser parser;
    bool closing, in_value;
    char rbuf[16384];
    char url[512], field[128];
    char headers[8192]; /* "name: value\n" as received */
    char body[65536];
    size_t body_len;
};

struct srv {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    int port;
    int requests;
    int closed; /* connections closed (EOF, reset, or by us) */
    char method[16], url[512], headers[8192], body[65536];
    size_t body_len;
    struct sconn *conns;
};

struct wr {
    uv_write_t req;
    char data[];
};

static U void on_written(uv_write_t *w, int status)
{
    (void)status;
    free(ch_container_of(w, struct wr, req));
}

static U void swrite(struct sconn *c, const void *p, size_t n)
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

static U void swritef(struct sconn *c, const char *fmt, ...)
{
    char buf[16384];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    swrite(c, buf, (size_t)n);
}

static U void on_sconn_closed(uv_handle_t *h)
{
    struct sconn *c = h->data;
    struct sconn **pp;

    for (pp = &c->srv->conns; *pp != c; pp = &(*pp)->next)
        ;
    *pp = c->next;
    c->srv->closed++;
    free(c);
}

static U void sconn_close(struct sconn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_sconn_closed);
}

static U void send_body(struct sconn *c, int status, const char *ctype, const void *body, size_t n)
{
    swritef(c, "HTTP/1.1 %d X\r\n%s%s%sContent-Length: %zu\r\n\r\n", status, ctype ? "Content-Type: " : "",
            ctype ? ctype : "", ctype ? "\r\n" : "", n);
    swrite(c, body, n);
}

static U void redirect(struct sconn *c, const char *location)
{
    swritef(c, "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 3\r\n\r\nbye", location);
}

#define TEST_PAGE                                                                                                      \
    "<!doctype html><html><head><title>Test &amp; Page</title><script>var x='<p>no</p>';"                              \
    "</script><style>p{}</style></head><body><nav>Menu</nav><h1>Hello</h1><p>First "                                   \
    "<a href=\"/x\">linked</a> paragraph.</p><footer>Foot</footer></body></html>"

static U void srv_respond(struct sconn *c)
{
    const char *path = c->url;
    char buf[512];
    static char big[200001];

    if (!strcmp(path, "/callback")) {
        const char *ok = "{\"status\":\"ok\",\"request_id\":\"r1\",\"analysis_result_id\":7}";
        swritef(c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-RateLimit-Remaining: "
                "41\r\nSet-Cookie: s=secret\r\nContent-Length: %zu\r\n\r\n%s",
                strlen(ok), ok);
    } else if (!strcmp(path, "/page") || !strncmp(path, "/page?", 6)) {
        send_body(c, 200, "text/html; charset=utf-8", TEST_PAGE, strlen(TEST_PAGE));
    } else if (!strcmp(path, "/bigpage")) {
        size_t n = 0;
        n += (size_t)sprintf(big, "<html><title>Big</title><body><p>");
        while (n < 60000)
            n += (size_t)sprintf(big + n, "word%zu ", n);
        n += (size_t)sprintf(big + n, "</p></body></html>");
        send_body(c, 200, "text/html", big, n);
    } else if (!strcmp(path, "/text")) {
        send_body(c, 200, "text/plain", "plain  text\n<b>not html</b>\n", 28);
    } else if (!strcmp(path, "/latin1")) {
        send_body(c, 200, "text/html; charset=ISO-8859-1", "<p>caf\xe9</p>", 12);
    } else if (!strcmp(path, "/png")) {
        send_body(c, 200, "image/png", "\x89PNG\r\n\x1a\n\0\0", 10);
    } else if (!strcmp(path, "/nosniff-bin")) {
        send_body(c, 200, NULL, "\x01\x02\x03\x00\xff", 5);
    } else if (!strcmp(path, "/404")) {
        send_body(c, 404, "text/html", "<p>Not here</p>", 15);
    } else if (!strcmp(path, "/big")) {
        memset(big, 'x', sizeof(big) - 1);
        send_body(c, 200, "text/plain", big, sizeof(big) - 1);
    } else if (!strcmp(path, "/huge")) {
        swritef(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6000000\r\n\r\n");
    } else if (!strcmp(path, "/redir-private")) {
        redirect(c, "http://10.0.0.1/");
    } else if (!strcmp(path, "/redir-meta")) {
        redirect(c, "http://169.254.169.254/latest/meta-data/");
    } else if (!strcmp(path, "/redir-rel")) {
        redirect(c, "/page");
    } else if (!strcmp(path, "/redir-loop")) {
        redirect(c, "/redir-loop");
    } else if (!strcmp(path, "/redir-ftp")) {
        redirect(c, "ftp://files.example/x");
    } else if (!strcmp(path, "/redir-name")) {
        snprintf(buf, sizeof(buf), "http://pinned.test:%d/page", c->srv->port);
        redirect(c, buf);
    } else if (!strcmp(path, "/hang")) {
        /* no answer: the client's deadline must end it */
    } else {
        send_body(c, 404, "text/plain", "no", 2);
    }
}

static U void scat(char *dst, size_t cap, const char *p, size_t n)
{
    size_t len = strlen(dst);

    if (n > cap - 1 - len)
        n = cap - 1 - len;
    memcpy(dst + len, p, n);
    dst[len + n] = '\0';
}

static U int on_surl(http_parser *p, const char *at, size_t n)
{
    struct sconn *c = p->data;
    scat(c->url, sizeof(c->url), at, n);
    return 0;
}

static U int on_shfield(http_parser *p, const char *at, size_t n)
{
    struct sconn *c = p->data;
    if (c->in_value) {
        scat(c->headers, sizeof(c->headers), "\n", 1);
        c->field[0] = '\0';
    }
    c->in_value = false;
    scat(c->headers, sizeof(c->headers), at, n);
    return 0;
}

static U int on_shvalue(http_parser *p, const char *at, size_t n)
{
    struct sconn *c = p->data;
    if (!c->in_value)
        scat(c->headers, sizeof(c->headers), ": ", 2);
    c->in_value = true;
    scat(c->headers, sizeof(c->headers), at, n);
    return 0;
}

static U int on_sbody(http_parser *p, const char *at, size_t n)
{
    struct sconn *c = p->data;
    n = CH_MIN(n, sizeof(c->body) - c->body_len);
    memcpy(c->body + c->body_len, at, n);
    c->body_len += n;
    return 0;
}

static U int on_smessage(http_parser *p)
{
    struct sconn *c = p->data;
    struct srv *s = c->srv;

    if (c->in_value)
        scat(c->headers, sizeof(c->headers), "\n", 1);
    s->requests++;
    snprintf(s->method, sizeof(s->method), "%s", http_method_str(p->method));
    memcpy(s->url, c->url, sizeof(s->url));
    memcpy(s->headers, c->headers, sizeof(s->headers));
    memcpy(s->body, c->body, c->body_len);
    s->body_len = c->body_len;
    srv_respond(c);
    c->url[0] = c->field[0] = c->headers[0] = '\0';
    c->body_len = 0;
    c->in_value = false;
    return 0;
}

static const http_parser_settings srv_settings = {
    .on_url = on_surl,
    .on_header_field = on_shfield,
    .on_header_value = on_shvalue,
    .on_body = on_sbody,
    .on_message_complete = on_smessage,
};

static U void on_salloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct sconn *c = h->data;
    (void)hint;
    *b = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static U void on_sread(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct sconn *c = s->data;

    if (n < 0) {
        sconn_close(c);
        return;
    }
    http_parser_execute(&c->parser, &srv_settings, b->base, (size_t)n);
    if (c->parser.http_errno != HPE_OK)
        sconn_close(c);
}

static U void on_sconn(uv_stream_t *l, int status)
{
    struct srv *srv = l->data;
    struct sconn *c = calloc(1, sizeof(*c));

    assert_int_equal(status, 0);
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = srv->conns;
    srv->conns = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_salloc, on_sread);
}

static U void srv_start(struct srv *srv, uv_loop_t *loop)
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

static U void srv_close(struct srv *srv)
{
    if (!uv_is_closing((uv_handle_t *)&srv->tcp))
        uv_close((uv_handle_t *)&srv->tcp, NULL);
    for (struct sconn *c = srv->conns; c; c = c->next)
        sconn_close(c);
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

struct fx {
    uv_loop_t loop;
    struct srv srv;
    struct ch_curlm *m;
    struct ch_tools *t;
    int closed; /* registry and manager close callbacks */
    size_t live_bytes;
};

/* What a callback saw (copied, since the result is borrowed). */
struct got {
    int calls;
    bool is_error, timed_out, aborted, refused;
    char content[420000];
    size_t content_len;
    json_t *json;
    uint64_t duration_ms;
    bool in_start; /* set by the test around ch_tool_call_start */
};

static U void on_got(struct ch_tool_call *call, const struct ch_tool_result *res, void *data)
{
    struct got *g = data;

    (void)call;
    assert_false(g->in_start); /* never inside start or abort */
    g->calls++;
    g->is_error = res->is_error;
    g->timed_out = res->timed_out;
    g->aborted = res->aborted;
    g->refused = res->refused;
    assert_true(!res->refused || res->is_error);
    g->duration_ms = res->duration_ms;
    assert_true(res->content_len < sizeof(g->content));
    assert_int_equal(strlen(res->content), res->content_len);
    memcpy(g->content, res->content, res->content_len + 1);
    g->content_len = res->content_len;
    json_decref(g->json);
    g->json = res->json ? json_incref((json_t *)res->json) : NULL;
}

static U void on_guard(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Run the loop until *counter reaches target; fail after 15 s. */
static U void run_until(struct fx *fx, const int *counter, int target)
{
    uv_timer_t guard;
    bool expired = false;

    uv_timer_init(&fx->loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, 15000, 0);
    while (*counter < target && !expired)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_false(expired);
}

static U void on_fx_closed(void *data)
{
    ((struct fx *)data)->closed++;
}

/* Start a call (as the gateway's own when internal) and wait for its single result. */
static U void call_tool_as(struct fx *fx, const char *name, const char *input_json, uint64_t timeout_ms, struct got *g,
                           bool internal)
{
    json_t *in = input_json ? json_loads(input_json, 0, NULL) : NULL;

    if (input_json && !in)
        fail_msg("bad test input %s", input_json);
    g->in_start = true;
    assert_int_equal(
        (internal ? ch_tool_call_start_internal : ch_tool_call_start)(fx->t, name, in, timeout_ms, on_got, g, NULL), 0);
    g->in_start = false;
    json_decref(in);
    assert_int_equal(g->calls, 0);
    run_until(fx, &g->calls, 1);
    assert_int_equal(g->calls, 1);
}

static U void call_tool(struct fx *fx, const char *name, const char *input_json, uint64_t timeout_ms, struct got *g)
{
    call_tool_as(fx, name, input_json, timeout_ms, g, false);
}

static U void fx_open(struct fx *fx, const struct ch_tools_opts *opts)
{
    struct ch_error err = {0};

    memset(fx, 0, sizeof(*fx));
    fx->live_bytes = ch_alloc_live_bytes();
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    srv_start(&fx->srv, &fx->loop);
    assert_int_equal(ch_curlm_new(&fx->loop, NULL, &fx->m), 0);
    if (ch_tools_new(&fx->loop, fx->m, opts, &fx->t, &err))
        fail_msg("ch_tools_new: %s", err.msg);
}

static U void fx_close(struct fx *fx)
{
    if (fx->t)
        ch_tools_close(fx->t, on_fx_closed, fx);
    else
        fx->closed++;
    run_until(fx, &fx->closed, 1);
    ch_curlm_close(fx->m, on_fx_closed, fx);
    run_until(fx, &fx->closed, 2);
    srv_close(&fx->srv);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    assert_int_equal(ch_alloc_live_bytes(), fx->live_bytes);
}

static U void got_release(struct got *g)
{
    json_decref(g->json);
    g->json = NULL;
}

static U void expect_has(const struct got *g, const char *part)
{
    if (!strstr(g->content, part))
        fail_msg("result lacks \"%s\":\n%s", part, g->content);
}

static void noop_work(uv_work_t *w)
{
    (void)w;
}

/* libuv allocates its thread pool once, on first use, and keeps it: do
 * that before any test measures the allocator. */
static U void warm_thread_pool(void)
{
    uv_loop_t loop;
    uv_work_t w;

    uv_loop_init(&loop);
    uv_queue_work(&loop, &w, noop_work, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

#endif
