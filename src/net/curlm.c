/*
 * curlm.c: libcurl's multi interface on the libuv loop (the pattern of
 * curl's docs/examples/multi-uv.c).  curl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION: one uv_poll_t each) and when to call it back
 * (CURLMOPT_TIMERFUNCTION: one uv_timer_t); we answer every readiness or
 * expiry with curl_multi_socket_action and then collect finished transfers
 * from curl_multi_info_read.  This file also owns the manager's lifetime:
 * close aborts every request, waits until each is freed, then cleans up
 * curl and closes every handle, freeing in the last close callback.
 * One transfer's own logic lives in curlm_req.c.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/curlm_int.h"

/* ------------------------------------------------------------------ */
/* Handles and their close callbacks                                   */
/* ------------------------------------------------------------------ */

static void manager_free(struct ch_curlm *m)
{
    void (*cb)(void *) = m->close_cb;
    void *data = m->close_data;

    ch_free(m->user_agent);
    ch_free(m->proxy);
    ch_free(m->ca_file);
    curlm_url_unref(m->last_url);
    curlm_hdrs_unref(m->last_hdrs);
    ch_free(m);
    if (cb)
        cb(data);
}

static void handle_closed(struct ch_curlm *m)
{
    m->open_handles--;
    if (m->torn_down && m->open_handles == 0)
        manager_free(m);
}

static void on_sock_closed(uv_handle_t *h)
{
    struct curlm_sock *s = h->data;
    struct ch_curlm *m = s->m;

    ch_free(s);
    handle_closed(m);
}

static void on_timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

/* Stop watching s and close it.  The poll must stop before curl closes the
 * descriptor (curl calls REMOVE first, or for a parked poll the close
 * callback), so epoll never sees a stale fd. */
static void sock_close(struct ch_curlm *m, struct curlm_sock *s)
{
    uv_poll_stop(&s->poll);
    /* curl forgot a parked fd when it removed it. */
    if (!m->in_cleanup && m->multi && !s->parked)
        curl_multi_assign(m->multi, s->fd, NULL);
    if (s->prev)
        s->prev->next = s->next;
    else
        m->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* A poll for fd, not yet started; NULL with *err CH_ENOMEM, or CH_EIO if
 * libuv refused. */
static struct curlm_sock *sock_new(struct ch_curlm *m, curl_socket_t fd, int *err)
{
    struct curlm_sock *s = ch_calloc(1, sizeof(*s));
    int rc;

    *err = CH_ENOMEM;
    if (!s)
        return NULL;
    /* Fails with EEXIST if libuv still watches fd; cannot happen since
     * a poll is closed before (or as) its descriptor is. */
    rc = uv_poll_init_socket(m->loop, &s->poll, fd);
    if (rc) {
        ch_log_warn("curlm: uv_poll_init_socket(%d): %s", (int)fd, uv_strerror(rc));
        ch_free(s);
        *err = CH_EIO;
        return NULL;
    }
    s->fd = fd;
    s->m = m;
    s->poll.data = s;
    s->next = m->socks;
    if (m->socks)
        m->socks->prev = s;
    m->socks = s;
    m->open_handles++;
    return s;
}

/* The open poll for fd, if any (parked, or made by curlm_open_socket).  A
 * linear walk: there are as many as open connections, and it runs once
 * per transfer, not per event. */
static struct curlm_sock *sock_find(struct ch_curlm *m, curl_socket_t fd)
{
    for (struct curlm_sock *s = m->socks; s; s = s->next) {
        if (s->fd == fd)
            return s;
    }
    return NULL;
}

/* (Re-)arm s for events; libuv's uv_poll_start always deletes the fd from
 * epoll and adds it back, so an unchanged mask is not passed on. */
static void sock_watch(struct curlm_sock *s, int events, uv_poll_cb cb)
{
    if (events == s->events && uv_is_active((uv_handle_t *)&s->poll))
        return;
    uv_poll_start(&s->poll, events, cb);
    s->events = events;
}

/* ------------------------------------------------------------------ */
/* Driving curl                                                        */
/* ------------------------------------------------------------------ */

static void collect_done(struct ch_curlm *m)
{
    CURLMsg *msg;
    int left;

    /* Finishing removes the easy handle, which invalidates msg: copy out
     * first.  on_done may submit (add) or abort others meanwhile; curl
     * allows both here because no curl call is on the stack. */
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        CURL *easy = msg->easy_handle;
        CURLcode cc = msg->data.result;
        struct ch_curlm_req *req = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&req);
        if (req)
            curlm_req_finish_curl(req, cc);
    }
}

static void drive(struct ch_curlm *m, curl_socket_t fd, int flags)
{
    CURLMcode mc;
    int running;

    /* in_curl tells curlm_req.c that user callbacks run inside curl, where
     * curl forbids adding or removing handles (CURLM_RECURSIVE_API_CALL). */
    m->in_curl++;
    mc = curl_multi_socket_action(m->multi, fd, flags, &running);
    m->in_curl--;
    if (mc != CURLM_OK)
        ch_log_warn("curlm: socket_action: %s", curl_multi_strerror(mc));
    collect_done(m);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct curlm_sock *s = h->data;
    int flags = 0;

    if (s->parked) {
        /* An idle connection became readable (the server closed it, most
         * likely): nobody reads it until curl reuses or closes it, so stop
         * watching rather than wake up for it on every iteration. */
        uv_poll_stop(&s->poll);
        s->events = 0;
        return;
    }
    if (status < 0) {
        /* libuv reports POLLERR (a reset, a refused connect) as an error,
         * and has stopped the poll.  Not CURL_CSELECT_ERR: curl then fails
         * the transfer without reading ("select/poll returned error"), and
         * a whole answer that arrived before the reset is lost (a receiver
         * that says 401 and closes without reading the request body resets
         * the connection; the 401 was in our socket).  curl's own poll
         * loop treats POLLERR as readable (Curl_socket_check): wake it for
         * what it waits for, so its recv() returns the buffered bytes and
         * then the socket's own error ("Connection reset by peer"). */
        events = s->events;
    }
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    /* s may be closed (REMOVE) inside drive, but is freed only in its
     * close callback, on a later phase of this loop iteration. */
    drive(s->m, s->fd, flags);
    /* After an error curl usually ends the transfer (REMOVE closes s).  If
     * it still wants the socket with the same mask it does not tell us
     * again, and the poll libuv stopped would leave it waiting for a
     * deadline: watch it again. */
    if (status < 0 && !uv_is_closing((uv_handle_t *)h) && !uv_is_active((uv_handle_t *)h) && s->events && !s->parked)
        uv_poll_start(h, s->events, on_poll);
}

static void on_timeout(uv_timer_t *t)
{
    drive(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer, so an idle manager has
 * nothing armed; 0 means "as soon as possible", which a 0 ms uv timer
 * gives on the next iteration (curl forbids calling it back from here). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct ch_curlm *m = userp;

    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&m->timer);
    else
        uv_timer_start(&m->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: create, re-arm, park or drop the poll for fd. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct ch_curlm *m = userp;
    struct curlm_sock *s = socketp;
    struct ch_curlm_req *req = NULL;
    int events = 0, rc = 0;

    if (what == CURL_POLL_REMOVE) {
        if (s && s->conn && s->events == UV_READABLE && uv_is_active((uv_handle_t *)&s->poll)) {
            /* The connection goes back to curl's cache (or is about to be
             * closed: curlm_close_socket then closes the poll).  It stays
             * registered as it is, for the next transfer, unreferenced so
             * an idle manager does not keep the loop alive.  Only a socket
             * that was waiting for a response is parked: curl 7.88 closes
             * one that failed to connect without the close callback, and
             * the epoll_ctl of a changed mask would then meet a closed fd. */
            s->parked = true;
            uv_unref((uv_handle_t *)&s->poll);
        } else if (s) {
            sock_close(m, s);
        }
        return 0;
    }
    if (!s) {
        s = sock_find(m, fd);
        if (!s && !(s = sock_new(m, fd, &rc)))
            goto fail;
        if (s->parked) {
            s->parked = false;
            uv_ref((uv_handle_t *)&s->poll);
        }
        curl_multi_assign(m->multi, fd, s);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    sock_watch(s, events, on_poll);
    return 0;
fail:
    /* Without a poll the transfer would hang until a deadline: end it
     * ourselves.  Not -1: curl then declares the whole multi handle dead. */
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&req);
    if (req)
        ch_curlm_abort_rc(req, rc);
    return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: the socket curl would make, plus its poll,
 * marked so that it may be parked (we will hear of its close). */
curl_socket_t curlm_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct ch_curlm *m = clientp;
    curl_socket_t fd = socket(addr->family, addr->socktype, addr->protocol);
    struct curlm_sock *s;
    int rc;

    /* Without a poll here the socket is still fine: it gets an ordinary
     * one (never parked) when curl first names it. */
    if (fd == CURL_SOCKET_BAD || purpose != CURLSOCKTYPE_IPCXN)
        return fd;
    /* A poll already on this number belongs to a descriptor curl closed
     * without telling us: it is gone from epoll with it; drop the poll. */
    if ((s = sock_find(m, fd)) != NULL) {
        s->parked = true; /* curl no longer knows it */
        sock_close(m, s);
    }
    if ((s = sock_new(m, fd, &rc)) != NULL)
        s->conn = true;
    return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: drop fd's poll (curl has already removed
 * it), then close the descriptor as curl would. */
int curlm_close_socket(void *clientp, curl_socket_t fd)
{
    struct ch_curlm *m = clientp;
    struct curlm_sock *s = sock_find(m, fd);

    if (s) {
        s->parked = true; /* curl no longer knows it: no curl_multi_assign */
        sock_close(m, s);
    }
    return close(fd);
}

/* ------------------------------------------------------------------ */
/* Lifetime                                                            */
/* ------------------------------------------------------------------ */

static int multi_setup(struct ch_curlm *m)
{
    long total = m->max_total, host = m->max_host;
    CURLMcode mc = CURLM_OK;
    CURLSHcode sc = CURLSHE_OK;

#define MSET(opt, val)                                                                                                 \
    do {                                                                                                               \
        if (mc == CURLM_OK)                                                                                            \
            mc = curl_multi_setopt(m->multi, opt, val);                                                                \
    } while (0)
    MSET(CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    MSET(CURLMOPT_SOCKETDATA, m);
    MSET(CURLMOPT_TIMERFUNCTION, on_curl_timer);
    MSET(CURLMOPT_TIMERDATA, m);
    /* Past these, curl queues transfers internally (state PENDING). */
    MSET(CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
    MSET(CURLMOPT_MAX_HOST_CONNECTIONS, host);
    /* The idle connection cache holds as many as may be open at once. */
    MSET(CURLMOPT_MAXCONNECTS, total);
    MSET(CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
#undef MSET
    /* The share gives normal requests one DNS cache and TLS session cache
     * (resumption).  Pinned requests stay out of it: see curlm_req.c.  No
     * lock callbacks: only the loop thread ever touches it. */
    sc = curl_share_setopt(m->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    if (sc == CURLSHE_OK)
        sc = curl_share_setopt(m->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    if (mc != CURLM_OK || sc != CURLSHE_OK) {
        ch_log_error("curlm: setup: %s", mc != CURLM_OK ? curl_multi_strerror(mc) : curl_share_strerror(sc));
        return mc == CURLM_OUT_OF_MEMORY || sc == CURLSHE_NOMEM ? CH_ENOMEM : CH_EIO;
    }
    return 0;
}

int ch_curlm_new(uv_loop_t *loop, const struct ch_curlm_opts *opts, struct ch_curlm **out)
{
    static const struct ch_curlm_opts defaults;
    const struct ch_curlm_opts *o = opts ? opts : &defaults;
    struct ch_curlm *m;
    int rc = CH_ENOMEM;

    m = ch_calloc(1, sizeof(*m));
    if (!m)
        goto out;
    m->loop = loop;
    m->keepalive_s = o->keepalive_s ? o->keepalive_s : CH_CURLM_DEF_KEEPALIVE_S;
    m->no_http2 = o->no_http2;
    m->user_agent = ch_strdup(o->user_agent ? o->user_agent : "chela/" CH_VERSION);
    m->proxy = ch_strdup(o->proxy ? o->proxy : "");
    m->max_total = o->max_total_connections ? o->max_total_connections : CH_CURLM_DEF_MAX_TOTAL_CONNS;
    m->max_host = o->max_host_connections ? o->max_host_connections : CH_CURLM_DEF_MAX_HOST_CONNS;
    m->ca_file = o->ca_file ? ch_strdup(o->ca_file) : NULL;
    if (!m->user_agent || !m->proxy || (o->ca_file && !m->ca_file))
        goto out;
    rc = 0;
    uv_timer_init(loop, &m->timer); /* only fills a struct on unix */
    m->timer.data = m;
    m->open_handles = 1;
out:
    if (rc && m) {
        ch_free(m->user_agent);
        ch_free(m->proxy);
        ch_free(m->ca_file);
        ch_free(m);
        m = NULL;
    }
    if (!rc)
        *out = m;
    return rc;
}

int curlm_start(struct ch_curlm *m, struct ch_error *err)
{
    int rc;

    if (m->multi)
        return 0;
    /* The loop thread is the only one that calls libcurl, so the global
     * init inside ch_curl_load (not thread-safe) cannot race another. */
    rc = ch_curl_load(err);
    if (rc)
        return rc;
    rc = CH_ENOMEM;
    m->multi = curl_multi_init();
    m->share = curl_share_init();
    if (m->multi && m->share)
        rc = multi_setup(m);
    if (rc) {
        curl_multi_cleanup(m->multi);
        curl_share_cleanup(m->share);
        m->multi = NULL;
        m->share = NULL;
        if (rc == CH_ENOMEM)
            return ch_error_set(err, rc, "out of memory");
        return ch_error_set(err, rc, "curl refused a multi handle setting");
    }
    return 0;
}

/* Every request is freed: clean curl up, then close our handles.  Runs
 * outside any curl call (from a close callback or from ch_curlm_close). */
static void teardown(struct ch_curlm *m)
{
    m->torn_down = true;
    /* Closes cached connections; curl may still call the socket callback
     * (REMOVE) or the timer callback from inside, both safe here. */
    m->in_cleanup = true;
    while (m->idle_easy_count)
        curl_easy_cleanup(m->idle_easy[--m->idle_easy_count]);
    curl_multi_cleanup(m->multi); /* both accept NULL: never started */
    m->multi = NULL;
    m->in_cleanup = false;
    curl_share_cleanup(m->share);
    m->share = NULL;
    while (m->socks)
        sock_close(m, m->socks);
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}

static bool shape_eq(const struct curlm_shape *a, const struct curlm_shape *b)
{
    return a->has_body == b->has_body && a->pipewait == b->pipewait && a->follow == b->follow &&
           a->any_protocol == b->any_protocol && !strcmp(a->method, b->method);
}

CURL *curlm_easy_get(struct ch_curlm *m, const struct curlm_shape *shape, bool *same)
{
    size_t n = m->idle_easy_count;
    CURL *e;

    *same = false;
    if (n == 0)
        return curl_easy_init();
    /* The most recently used first: its connection is likely warm too. */
    for (size_t i = n; i-- > 0;) {
        if (shape_eq(&m->idle_shape[i], shape)) {
            e = m->idle_easy[i];
            m->idle_easy[i] = m->idle_easy[n - 1];
            m->idle_shape[i] = m->idle_shape[n - 1];
            m->idle_easy_count--;
            *same = true;
            return e;
        }
    }
    /* Another shape: no option of its last request may carry over.
     * Connections stay in the multi handle's cache. */
    e = m->idle_easy[--m->idle_easy_count];
    curl_easy_reset(e);
    return e;
}

void curlm_easy_put(struct ch_curlm *m, CURL *easy, const struct curlm_shape *shape)
{
    if (!easy)
        return;
    if (m->closing || m->idle_easy_count >= CURLM_IDLE_EASY_MAX) {
        curl_easy_cleanup(easy);
        return;
    }
    /* Nothing may point into the freed request, the headers or the body
     * while the handle waits; the next request sets its own. */
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, NULL);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(easy, CURLOPT_CURLU, NULL);
    if (shape->has_body)
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL); /* the method stays POST, as the shape says */
    m->idle_shape[m->idle_easy_count] = *shape;
    m->idle_easy[m->idle_easy_count++] = easy;
}

void curlm_req_gone(struct ch_curlm *m)
{
    m->live_reqs--;
    if (m->closing && !m->torn_down && m->live_reqs == 0)
        teardown(m);
}

void ch_curlm_close(struct ch_curlm *m, void (*cb)(void *data), void *data)
{
    if (m->closing)
        return;
    m->closing = true;
    m->close_cb = cb;
    m->close_data = data;
    /* Each abort is deferred to the request's own 0 ms timer, so no
     * on_done runs inside this call and the list is not changed under us. */
    for (struct ch_curlm_req *r = m->reqs; r; r = r->next)
        ch_curlm_abort_rc(r, CH_ECANCELED);
    /* With requests alive, the last one's free (curlm_req_gone) tears
     * down; a request on the stack (close called from its callback) is
     * alive, so teardown never runs under a curl or request callback. */
    if (m->live_reqs == 0)
        teardown(m);
}

void ch_curlm_stats_get(const struct ch_curlm *m, struct ch_curlm_stats *out)
{
    *out = m->stats;
}
