/*
 * test_handlers.h: the owner callbacks test_server.c and test_stream.c
 * run the server with: JSON, echo, async (a timer with a reference),
 * streams, a held stream, a flood, a pump for slow readers, an echo
 * protocol behind ch_http_upgrade, request ids, queries, and an on_head
 * that refuses /refuse.
 */
#ifndef CH_TEST_HANDLERS_H
#define CH_TEST_HANDLERS_H

#include "server_harness.h"

struct delayed {
    uv_timer_t t;
    struct ch_http_req *r;
};

static void delayed_closed(uv_handle_t *hd)
{
    ch_free(hd->data);
}

static void delayed_fire(uv_timer_t *t)
{
    struct delayed *d = t->data;

    /* An async handler checks before answering (http.h contract). */
    if (!ch_http_req_is_closed(d->r))
        ch_http_respond(d->r, 200, "text/plain", "async", 5);
    ch_http_req_unref(d->r);
    uv_close((uv_handle_t *)t, delayed_closed);
}

static void respond_later(struct hx *h, struct ch_http_req *r, uint64_t ms)
{
    struct delayed *d = ch_calloc(1, sizeof(*d));

    d->r = r;
    uv_timer_init(&h->loop, &d->t);
    d->t.data = d;
    ch_http_req_ref(r);
    uv_timer_start(&d->t, delayed_fire, ms, 0);
}

struct pump {
    uv_timer_t t;
    struct ch_http_req *r;
    struct hx *h;
    int rounds;
};

/* Writes 256 KiB every 5 ms to a client that never reads, until the
 * server gives up on it. */
static void pump_fire(uv_timer_t *t)
{
    static char chunk[256 * 1024];
    struct pump *p = t->data;
    int rc = ch_http_stream_write(p->r, chunk, sizeof(chunk));

    if (rc == 0 && ++p->rounds < 400)
        return;
    p->h->flood_rc = rc;
    p->h->flood_writes = p->rounds;
    ch_http_req_unref(p->r);
    uv_close((uv_handle_t *)t, delayed_closed);
}

static void start_pump(struct hx *h, struct ch_http_req *r)
{
    struct pump *p = ch_calloc(1, sizeof(*p));

    p->r = r;
    p->h = h;
    ch_http_req_ref(r);
    ch_http_stream_begin(r, 200, "application/octet-stream");
    uv_timer_init(&h->loop, &p->t);
    p->t.data = p;
    uv_timer_start(&p->t, pump_fire, 5, 5);
}

static void on_hold_close(struct ch_http_req *r, void *data)
{
    ((struct hx *)data)->close_count++;
}

static void echo_read(struct ch_http_conn *c, const char *p, size_t n, void *data)
{
    ch_http_conn_write(c, p, n);
    if (n >= 4 && memcmp(p + n - 4, "quit", 4) == 0)
        ch_http_conn_close(c);
}

static void echo_close(struct ch_http_conn *c, void *data)
{
    ((struct hx *)data)->upgrade_closes++;
}

static const struct ch_http_upgrade_ops echo_ops = {echo_read, echo_close};

static void on_request(struct ch_http_req *r, void *data)
{
    struct hx *h = data;
    char buf[128];

    if (ch_str_eq_cstr(r->path, "/health")) {
        ch_http_respond(r, 200, "application/json", "{\"ok\":true}", 11);
    } else if (ch_str_eq_cstr(r->path, "/echo")) {
        ch_http_respond(r, 200, "application/octet-stream", r->body.data, r->body.len);
    } else if (ch_str_eq_cstr(r->path, "/async")) {
        respond_later(h, r, 20);
    } else if (ch_str_eq_cstr(r->path, "/slow")) {
        respond_later(h, r, 300);
    } else if (ch_str_eq_cstr(r->path, "/shutdown")) {
        ch_http_server_shutdown(h->srv, 3000, hx_on_shut, h);
        respond_later(h, r, 200);
    } else if (ch_str_eq_cstr(r->path, "/stream")) {
        ch_http_stream_begin(r, 200, "text/plain");
        ch_http_stream_write(r, "a", 1);
        ch_http_stream_write(r, "", 0);
        ch_http_stream_write(r, "bb", 2);
        ch_http_stream_write(r, "ccc", 3);
        ch_http_stream_end(r);
    } else if (ch_str_eq_cstr(r->path, "/hold")) {
        ch_http_req_on_close(r, on_hold_close, h);
        ch_http_stream_begin(r, 200, "text/event-stream");
        ch_http_stream_write(r, "data: x\n\n", 9);
    } else if (ch_str_eq_cstr(r->path, "/flood")) {
        static char chunk[16 * 1024];
        int rc = 0, i;
        ch_http_stream_begin(r, 200, "application/octet-stream");
        for (i = 0; i < 100 && rc == 0; i++)
            rc = ch_http_stream_write(r, chunk, sizeof(chunk));
        h->flood_rc = rc;
        h->flood_writes = i;
        /* The connection is gone: more writes are refused, not crashes. */
        if (ch_http_stream_write(r, "x", 1) != CH_ECLOSED)
            h->flood_rc = 12345;
    } else if (ch_str_eq_cstr(r->path, "/pump")) {
        start_pump(h, r);
    } else if (ch_str_eq_cstr(r->path, "/upgrade")) {
        if (!ch_http_req_wants_upgrade(r) || ch_http_upgrade(r, "echo", &echo_ops, h) != 0)
            ch_http_respond_error(r, 400, "bad_request", "not an upgrade");
    } else if (ch_str_eq_cstr(r->path, "/reqid")) {
        ch_http_respond(r, 200, "text/plain", r->request_id, strlen(r->request_id));
    } else if (ch_str_eq_cstr(r->path, "/query")) {
        int rc = ch_http_req_query(r, "q", buf, sizeof(buf));
        if (rc)
            ch_http_respond_error(r, 400, "bad_query", "query: %s", ch_strerror(rc));
        else
            ch_http_respond(r, 200, "text/plain", buf, strlen(buf));
    } else if (ch_str_eq_cstr(r->path, "/json")) {
        bool ok = ch_http_add_header(r, "X-Custom", "yes") == 0 &&
                  ch_http_add_header(r, "X-Bad", "a\r\nInjected: 1") == CH_EINVAL &&
                  ch_http_add_header(r, "Bad Name", "v") == CH_EINVAL &&
                  ch_http_add_header(r, "Content-Length", "1") == CH_EINVAL;
        ch_http_respond_json(r, ok ? 201 : 500, json_pack("{s:[i,i]}", "a", 1, 2));
        /* A second answer is refused. */
        if (ch_http_respond(r, 200, NULL, NULL, 0) != CH_ESTATE)
            h->flood_rc = 999;
    } else {
        ch_http_respond_error(r, 404, "not_found", "no route for %.*s", (int)r->path.len, r->path.p);
    }
}

static int on_head(struct ch_http_req *r, size_t *max_body, void *data)
{
    if (ch_str_eq_cstr(r->path, "/refuse")) {
        ch_http_respond_error(r, 401, "unauthorized", "no token");
        return CH_ECANCELED;
    }
    return 0;
}

#endif
