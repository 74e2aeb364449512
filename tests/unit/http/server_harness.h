/*
 * server_harness.h: a real chela HTTP server on a real uv loop (main
 * thread) and a blocking-socket client in a helper thread, for
 * test_server.c and test_server_limits.c.  The client records its first
 * failed check as text; the main thread asserts after the loop has run,
 * every handle closed (uv_loop_close()==0) and the heap is back where it
 * started.  Sockets time out after 5 s, so a bug fails, never hangs.
 */
#ifndef CH_TEST_SERVER_HARNESS_H
#define CH_TEST_SERVER_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "http/http.h"

#define HX_BUF (256 * 1024)

struct hx {
    uv_loop_t loop;
    struct ch_net net;
    struct ch_limits limits;
    struct ch_http_server_opts opts;
    struct ch_http_server *srv;
    int port;
    uv_async_t wake;
    pthread_t thr;
    void (*client)(struct hx *h);
    char fail[512];             /* the client's first failed check */
    uint64_t grace_ms;          /* for the final shutdown */
    struct ch_http_stats stats; /* taken when the client is done */
    /* Seen on the loop thread, read after the loop ends. */
    int done_count, close_count, upgrade_closes;
    int last_status;
    int flood_rc, flood_writes;
    size_t base_bytes;
};

struct hx_conn {
    int fd;
    size_t len;
    char buf[HX_BUF + 1]; /* +1: room for a NUL after the data */
};

struct hx_resp {
    int status;
    char *head; /* owned, NUL-terminated */
    char *body; /* owned, NUL-terminated */
    size_t body_len;
};

static void hx_failf(struct hx *h, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void hx_failf(struct hx *h, int line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (h->fail[0])
        return;
    n = snprintf(h->fail, sizeof(h->fail), "line %d: ", line);
    va_start(ap, fmt);
    vsnprintf(h->fail + n, sizeof(h->fail) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* In the client thread: record and go on, or record and return. */
#define HX_CHECK(h, cond, ...)                                                                                         \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            hx_failf((h), __LINE__, __VA_ARGS__);                                                                      \
    } while (0)
#define HX_REQUIRE(h, cond, ...)                                                                                       \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            hx_failf((h), __LINE__, __VA_ARGS__);                                                                      \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)

static uint64_t hx_now_ms(void)
{
    return ch_mono_ms();
}

static struct hx_conn *hx_open(struct hx *h)
{
    struct hx_conn *c = ch_calloc(1, sizeof(*c));
    struct sockaddr_in sa;
    struct timeval tv = {5, 0};
    int one = 1;

    if (!c)
        return NULL;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)h->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        hx_failf(h, __LINE__, "connect: %s", strerror(errno));
        close(c->fd);
        ch_free(c);
        return NULL;
    }
    return c;
}

static void hx_close(struct hx_conn *c)
{
    if (!c)
        return;
    close(c->fd);
    ch_free(c);
}

static bool hx_send(struct hx_conn *c, const void *p, size_t n)
{
    const char *s = p;

    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

static bool hx_send_str(struct hx_conn *c, const char *s)
{
    return hx_send(c, s, strlen(s));
}

/* More bytes into c->buf: >0 read, 0 EOF, -1 error or timeout. */
static int hx_fill(struct hx_conn *c)
{
    ssize_t n;

    if (c->len >= HX_BUF)
        return -1;
    n = recv(c->fd, c->buf + c->len, HX_BUF - c->len, 0);
    if (n < 0)
        return -1;
    c->len += (size_t)n;
    return (int)n;
}

static void hx_consume(struct hx_conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Wait until c->buf holds n bytes. */
static bool hx_need(struct hx_conn *c, size_t n)
{
    while (c->len < n) {
        if (hx_fill(c) <= 0)
            return false;
    }
    return true;
}

static bool hx_header(const struct hx_resp *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);

    for (const char *l = strstr(r->head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
        const char *f = l + 2;
        if (strncasecmp(f, name, nl) == 0 && f[nl] == ':') {
            const char *v = f + nl + 1, *e = strstr(v, "\r\n");
            size_t n;
            while (*v == ' ')
                v++;
            n = (size_t)(e - v);
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

static void hx_resp_free(struct hx_resp *r)
{
    ch_free(r->head);
    ch_free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Read one response (1xx included).  0 ok, -1 error/timeout/EOF. */
static int hx_read(struct hx_conn *c, struct hx_resp *r, bool head_request)
{
    char *end;
    size_t hlen;
    char v[64];
    struct ch_buf body;

    memset(r, 0, sizeof(*r));
    for (;;) {
        c->buf[c->len] = '\0';
        if (c->len && (end = strstr(c->buf, "\r\n\r\n")) != NULL)
            break;
        if (hx_fill(c) <= 0)
            return -1;
    }
    hlen = (size_t)(end - c->buf) + 4;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    r->head = ch_strndup(c->buf, hlen);
    hx_consume(c, hlen);
    ch_buf_init(&body, HX_BUF);
    if (head_request || r->status < 200 || r->status == 204 || r->status == 304) {
        /* no body */
    } else if (hx_header(r, "content-length", v, sizeof(v))) {
        size_t n = (size_t)strtoull(v, NULL, 10);
        if (!hx_need(c, n))
            return -1;
        ch_buf_append(&body, c->buf, n);
        hx_consume(c, n);
    } else if (hx_header(r, "transfer-encoding", v, sizeof(v))) {
        for (;;) {
            char *crlf;
            size_t n;
            while (c->buf[c->len] = '\0', (crlf = strstr(c->buf, "\r\n")) == NULL)
                if (hx_fill(c) <= 0)
                    return -1;
            n = (size_t)strtoull(c->buf, NULL, 16);
            hx_consume(c, (size_t)(crlf - c->buf) + 2);
            if (!hx_need(c, n + 2))
                return -1;
            ch_buf_append(&body, c->buf, n);
            hx_consume(c, n + 2);
            if (n == 0)
                break;
        }
    } else {
        int k;
        while ((k = hx_fill(c)) > 0)
            ;
        ch_buf_append(&body, c->buf, c->len);
        hx_consume(c, c->len);
    }
    r->body_len = body.len;
    r->body = ch_buf_detach(&body, NULL);
    return 0;
}

/* The server closed: EOF (or reset) within the socket timeout. */
static bool hx_closed(struct hx_conn *c)
{
    char tmp[256];

    for (;;) {
        ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false;
    }
}

/* One request on a fresh connection; returns the status (or -1). */
static int hx_once(struct hx *h, const char *req, struct hx_resp *out)
{
    struct hx_conn *c = hx_open(h);
    struct hx_resp r;
    int st = -1;

    if (!c)
        return -1;
    if (hx_send_str(c, req) && hx_read(c, &r, strncmp(req, "HEAD ", 5) == 0) == 0) {
        st = r.status;
        if (out)
            *out = r;
        else
            hx_resp_free(&r);
    }
    hx_close(c);
    return st;
}

/* ---------------------------------------------------------------- server side */

static void hx_on_done(struct ch_http_req *r, void *data)
{
    struct hx *h = data;
    h->done_count++;
    h->last_status = r->status;
}

static void hx_on_shut(void *data)
{
    struct hx *h = data;
    ch_net_close(&h->net, NULL, NULL);
}

static void hx_on_wake(uv_async_t *a)
{
    struct hx *h = a->data;

    ch_http_server_stats(h->srv, &h->stats);
    ch_http_server_shutdown(h->srv, h->grace_ms, hx_on_shut, h);
    uv_close((uv_handle_t *)a, NULL);
}

static void *hx_client_main(void *arg)
{
    struct hx *h = arg;

    h->client(h);
    uv_async_send(&h->wake);
    return NULL;
}

/* Defaults; the test then edits h->limits or h->opts. */
static void hx_init(struct hx *h, ch_http_request_cb on_request, ch_http_head_cb on_head)
{
    memset(h, 0, sizeof(*h));
    h->base_bytes = ch_alloc_live_bytes();
    ch_limits_init(&h->limits);
    h->opts.limits = &h->limits;
    h->opts.on_request = on_request;
    h->opts.on_head = on_head;
    h->opts.on_done = hx_on_done;
    h->opts.data = h;
    h->grace_ms = 1000;
}

/* Create the loop, net and a server listening on 127.0.0.1:0. */
static void hx_start(struct hx *h)
{
    struct ch_error err;

    assert_int_equal(uv_loop_init(&h->loop), 0);
    assert_int_equal(ch_net_init(&h->net, &h->loop), 0);
    assert_int_equal(ch_http_server_new(&h->net, &h->opts, &h->srv), 0);
    if (ch_http_server_listen(h->srv, "127.0.0.1", 0, &err) != 0)
        fail_msg("listen: %s", err.msg);
    h->port = ch_http_server_port(h->srv);
    assert_true(h->port > 0);
}

/* Run client() in a thread against the loop; then shut down and check
 * that nothing is left: handles, heap, client failures. */
static void hx_go(struct hx *h, void (*client)(struct hx *h))
{
    h->client = client;
    assert_int_equal(uv_async_init(&h->loop, &h->wake, hx_on_wake), 0);
    h->wake.data = h;
    assert_int_equal(pthread_create(&h->thr, NULL, hx_client_main, h), 0);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    pthread_join(h->thr, NULL);
    ch_http_server_free(h->srv);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    ch_log_flush();
    if (h->fail[0])
        fail_msg("%s", h->fail);
}

/* Nothing allocated during the test is left. */
static void hx_check_heap(struct hx *h)
{
    assert_int_equal(ch_alloc_live_bytes(), h->base_bytes);
}

static void hx_run(struct hx *h, void (*client)(struct hx *h))
{
    hx_start(h);
    hx_go(h, client);
    hx_check_heap(h);
}

/* Allocate the process-wide state (the CSPRNG, the log buffer) before
 * the first heap baseline is taken. */
static void hx_warm_up(void)
{
    uint8_t b[4];

    ch_random_bytes(b, sizeof(b));
    ch_log_warn("test warm-up");
    ch_log_flush();
}

#endif
