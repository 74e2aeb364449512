/*
 * server.c: the listener, admission and graceful shutdown.  Over
 * limits.maxConnections a client is still accepted (else the backlog
 * fills and everyone waits) but gets a canned 503 from a small struct,
 * never a full connection (redis acceptCommonHandler).  Shutdown closes
 * the listener and idle connections at once, lets in-flight requests
 * finish (their responses say Connection: close), and closes the rest
 * when the grace period ends.
 */
#include <stdio.h>
#include <string.h>

#include "http/internal.h"

/* How long a refused client may keep its socket while it reads the 503. */
#define REJECT_LINGER_MS 1000

struct ch_http_reject {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t sreq;
    struct ch_http_server *srv; /* borrowed */
    int handles;
    bool is_spare; /* the server's preallocated one */
};

static void on_connection(uv_stream_t *l, int status);

static void maybe_done(struct ch_http_server *s);

static void on_server_handle_closed(uv_handle_t *h)
{
    struct ch_http_server *s = h->data;

    s->handles--;
    maybe_done(s);
}

static void maybe_done(struct ch_http_server *s)
{
    if (!s->stopping || s->nconns || s->nrejects)
        return;
    if (!uv_is_closing((uv_handle_t *)&s->grace)) {
        uv_timer_stop(&s->grace);
        uv_close((uv_handle_t *)&s->grace, on_server_handle_closed);
        return;
    }
    if (s->handles == 0 && s->stop_cb) {
        void (*cb)(void *) = s->stop_cb;
        s->stop_cb = NULL;
        cb(s->stop_data);
    }
}

void ch_http_server_conn_gone(struct ch_http_server *s)
{
    s->nconns--;
    maybe_done(s);
}

static void reject_closed(uv_handle_t *h)
{
    struct ch_http_reject *j = h->data;
    struct ch_http_server *s = j->srv;

    if (--j->handles > 0)
        return;
    s->nrejects--;
    if (j->is_spare)
        s->spare = j;
    else
        ch_free(j);
    if (s->accept_pending && !s->stopping) {
        /* libuv holds an accepted socket until someone takes it. */
        s->accept_pending = false;
        on_connection((uv_stream_t *)&s->listener, 0);
    }
    maybe_done(s);
}

static void reject_close(struct ch_http_reject *j)
{
    if (uv_is_closing((uv_handle_t *)&j->tcp))
        return;
    uv_close((uv_handle_t *)&j->tcp, reject_closed);
    uv_close((uv_handle_t *)&j->timer, reject_closed);
}

static void reject_on_timer(uv_timer_t *t)
{
    reject_close(t->data);
}

static void reject_on_shutdown(uv_shutdown_t *req, int status)
{
    if (status < 0)
        reject_close(req->data);
}

static void reject_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct ch_http_reject *j = h->data;
    struct ch_http_server *s = j->srv;

    /* Whatever the refused client sends is dropped: any buffer will do. */
    if (!s->rbuf)
        s->rbuf = ch_malloc(CH_HTTP_READ_BYTES);
    buf->base = s->rbuf;
    buf->len = s->rbuf ? CH_HTTP_READ_BYTES : 0;
}

static void reject_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0)
        reject_close(st->data);
}

static void reject_send_503(struct ch_http_reject *j)
{
    static const char body[] = "{\"error\":\"overloaded\",\"message\":\"too many connections; retry later\"}";
    char msg[512], date[30];
    int n;
    uv_buf_t b;

    n = snprintf(msg, sizeof(msg),
                 "HTTP/1.1 503 Service Unavailable\r\nDate: %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\nRetry-After: 1\r\n"
                 "X-Request-Id: %s-r%llx\r\n\r\n%s",
                 ch_http_date(date), sizeof(body) - 1, j->srv->rid_prefix, (unsigned long long)++j->srv->rid_seq, body);
    /* A fresh socket's send buffer takes 300 bytes whole; if it does not,
     * the client was not going to read it anyway. */
    b = uv_buf_init(msg, (unsigned)n);
    uv_try_write((uv_stream_t *)&j->tcp, &b, 1);
}

static void reject(struct ch_http_server *s)
{
    struct ch_http_reject *j = NULL;

    s->stats.conns_rejected++;
    /* Refusals are bounded too: past as many as there are connections,
     * only the spare is used, one at a time. */
    if (s->nrejects < (size_t)s->limits->v[CH_LIMIT_MAX_CONNECTIONS])
        j = ch_calloc(1, sizeof(*j));
    if (!j && s->spare) {
        j = s->spare;
        s->spare = NULL;
        memset(j, 0, sizeof(*j));
        j->is_spare = true;
    }
    if (!j) {
        /* Leave it in libuv, which stops accepting until we take it. */
        s->accept_pending = true;
        return;
    }
    j->srv = s;
    uv_tcp_init(s->net->loop, &j->tcp);
    uv_timer_init(s->net->loop, &j->timer);
    j->tcp.data = j->timer.data = j->sreq.data = j;
    j->handles = 2;
    s->nrejects++;
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&j->tcp) != 0) {
        reject_close(j);
        return;
    }
    reject_send_503(j);
    if (uv_shutdown(&j->sreq, (uv_stream_t *)&j->tcp, reject_on_shutdown) != 0 ||
        uv_read_start((uv_stream_t *)&j->tcp, reject_alloc, reject_on_read) != 0) {
        reject_close(j);
        return;
    }
    uv_timer_start(&j->timer, reject_on_timer, REJECT_LINGER_MS, 0);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct ch_http_server *s = l->data;

    if (status < 0) {
        /* EMFILE comes in bursts (libuv drops the waiting connections to
         * get out of it), so one line per 10 s says how many were lost. */
        uint64_t now = uv_now(s->net->loop);
        s->accept_errs++;
        if (!s->accept_err_ms || now - s->accept_err_ms >= 10000) {
            ch_log_warn("http accept: %s (%llu failed accepts%s)", uv_strerror(status),
                        (unsigned long long)s->accept_errs,
                        status == UV_EMFILE || status == UV_ENFILE ? "; raise the open-file limit" : "");
            s->accept_err_ms = now ? now : 1;
            s->accept_errs = 0;
        }
        return;
    }
    if (s->nconns >= (size_t)s->limits->v[CH_LIMIT_MAX_CONNECTIONS] || s->stopping) {
        reject(s);
        return;
    }
    if (ch_http_conn_accept(s) != 0)
        reject(s); /* no memory for a connection: refuse this one politely */
}

static void on_tick(void *data)
{
    struct ch_http_server *s = data;
    uint64_t now, soft_ms;

    if (!s->soft_over)
        return;
    /* Rare (a reader over the soft cap), so a walk of all connections. */
    now = uv_now(s->net->loop);
    soft_ms = (uint64_t)s->limits->v[CH_LIMIT_WRITE_QUEUE_SOFT_MS];
    for (struct ch_http_link *l = s->conns.next; l != &s->conns; l = l->next) {
        struct ch_http_conn *c = ch_container_of(l, struct ch_http_conn, all);
        if (c->soft_since_ms && now - c->soft_since_ms >= soft_ms && c->state != CH_HTTP_CLOSING) {
            ch_log_info("http conn %llu %s: over the soft write cap for %llu ms; closing", (unsigned long long)c->id,
                        c->req.remote_addr, (unsigned long long)soft_ms);
            ch_http_conn_drop(c, "slow reader");
        }
    }
}

int ch_http_server_new(struct ch_net *net, const struct ch_http_server_opts *o, struct ch_http_server **out)
{
    struct ch_http_server *s = NULL;
    uint8_t rnd[4];
    int rc = CH_EINVAL;

    if (!net || !o || !o->limits || !o->on_request)
        goto out;
    rc = CH_ENOMEM;
    s = ch_calloc(1, sizeof(*s));
    if (!s)
        goto out;
    s->spare = ch_calloc(1, sizeof(*s->spare));
    if (!s->spare)
        goto out;
    s->net = net;
    s->o = *o;
    s->limits = o->limits;
    ch_http_link_init(&s->conns);
    ch_http_link_init(&s->flushq);
    if (ch_random_bytes(rnd, sizeof(rnd)) != 0) {
        uint64_t t = ch_mono_ns();
        memcpy(rnd, &t, sizeof(rnd));
    }
    ch_hex_encode(rnd, sizeof(rnd), s->rid_prefix);
    if ((rc = ch_net_on_flush(net, ch_http_server_flush, s)) != 0)
        goto out;
    if ((rc = ch_net_on_tick(net, on_tick, s)) != 0) {
        ch_net_off_flush(net, ch_http_server_flush, s);
        goto out;
    }
    /* Last: from here on the server owns a handle and must be shut down. */
    uv_timer_init(net->loop, &s->grace);
    s->grace.data = s;
    s->handles = 1;
    rc = 0;
out:
    if (rc && s) {
        ch_free(s->spare);
        ch_free(s);
        s = NULL;
    }
    *out = s;
    return rc;
}

int ch_http_server_listen(struct ch_http_server *s, const char *addr, int port, struct ch_error *err)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);
    int rc;

    if (s->stopping || s->listening || uv_is_closing((uv_handle_t *)&s->listener))
        return ch_error_set(err, CH_ESTATE, "the server is already listening or stopping");
    if (port < 0 || port > 65535)
        return ch_error_set(err, CH_EINVAL, "port %d is out of range", port);
    if (!addr || (uv_ip4_addr(addr, port, (struct sockaddr_in *)&ss) != 0 &&
                  uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&ss) != 0))
        return ch_error_set(err, CH_EINVAL, "\"%.64s\" is not an IP address", addr ? addr : "");
    uv_tcp_init(s->net->loop, &s->listener);
    s->listener.data = s;
    s->handles++;
    s->listening = true;
    /* libuv sets SO_REUSEADDR (restart over TIME_WAIT) but never
     * SO_REUSEPORT, so a second gateway on the port fails here. */
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection); /* nginx's backlog */
    if (rc == 0)
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    if (rc != 0) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
        if (rc == UV_EADDRINUSE)
            return ch_error_set(err, CH_EADDRINUSE, "address already in use: %s:%d", addr, port);
        if (rc == UV_EACCES)
            return ch_error_set(err, CH_EPERM, "permission denied: %s:%d", addr, port);
        return ch_error_set(err, rc == UV_EADDRNOTAVAIL ? CH_EINVAL : CH_EIO, "cannot listen on %s:%d: %s", addr, port,
                            uv_strerror(rc));
    }
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

int ch_http_server_port(const struct ch_http_server *s)
{
    return s->port;
}

static void on_grace(uv_timer_t *t)
{
    struct ch_http_server *s = t->data;

    for (struct ch_http_link *l = s->conns.next; l != &s->conns; l = l->next) {
        struct ch_http_conn *c = ch_container_of(l, struct ch_http_conn, all);
        if (c->state != CH_HTTP_CLOSING)
            ch_http_conn_drop(c, "shutdown grace over");
    }
    maybe_done(s);
}

void ch_http_server_shutdown(struct ch_http_server *s, uint64_t grace_ms, void (*cb)(void *data), void *data)
{
    if (s->stopping)
        return;
    s->stopping = true;
    s->stop_cb = cb;
    s->stop_data = data;
    s->accept_pending = false; /* closing the listener closes that socket */
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    }
    for (struct ch_http_link *l = s->conns.next; l != &s->conns; l = l->next) {
        struct ch_http_conn *c = ch_container_of(l, struct ch_http_conn, all);
        if (c->state == CH_HTTP_CLOSING)
            continue;
        if (ch_http_conn_is_idle(c)) {
            ch_http_conn_drop(c, "shutdown");
        } else if (c->state == CH_HTTP_KEEPALIVE) {
            /* Idle but for a response still being written. */
            c->want_close = true;
            ch_http_conn_set_state(c, CH_HTTP_WRITE);
            ch_http_conn_update_reading(c);
            ch_http_conn_enlist(c);
        } else {
            c->want_close = true; /* the response in flight says close */
        }
    }
    if (s->nconns && grace_ms)
        uv_timer_start(&s->grace, on_grace, grace_ms, 0);
    else if (s->nconns)
        on_grace(&s->grace);
    maybe_done(s);
}

void ch_http_server_free(struct ch_http_server *s)
{
    if (!s)
        return;
    if (s->handles || s->nconns || s->nrejects) {
        /* Freeing under live handles would be a use-after-free later. */
        ch_log_error("http server freed before its shutdown completed; leaking it");
        return;
    }
    ch_net_off_flush(s->net, ch_http_server_flush, s);
    ch_net_off_tick(s->net, on_tick, s);
    ch_free(s->rbuf);
    ch_free(s->spare);
    ch_free(s);
}

void ch_http_server_stats(const struct ch_http_server *s, struct ch_http_stats *out)
{
    *out = s->stats;
    out->conns_open = s->nconns;
}
