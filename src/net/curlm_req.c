/*
 * curlm_req.c: one outbound transfer.  submit checks the request and sets
 * the easy handle up; curl's header and write callbacks assemble the final
 * response head (skipping 1xx and followed redirects), enforce the caps
 * and stream body chunks out; one uv timer per request enforces the
 * first-byte, idle and total deadlines (curl enforces connect) and also
 * defers adds and aborts out of curl's callbacks.  finish is the single
 * place that reports the outcome: state QUEUED -> RUNNING -> DONE, then
 * the timer closes and its close callback frees the request.  Building
 * the request is curlm_submit.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net/curlm_int.h"

static void on_req_timer(uv_timer_t *t);

const char *ch_curlm_timeout_name(enum ch_curlm_timeout t)
{
    static const char *const names[] = {"none", "connect", "first-byte", "idle", "total"};

    return (unsigned)t < CH_ARRAY_SIZE(names) ? names[t] : "unknown";
}

/* ------------------------------------------------------------------ */
/* Response heads                                                      */
/* ------------------------------------------------------------------ */

bool ch_curlm_head_next(const struct ch_curlm_head *head, size_t *iter, struct ch_str *name, struct ch_str *value)
{
    const char *p = head->raw.p;
    size_t len = head->raw.len, i = *iter;
    bool first = i == 0;

    while (p && i < len) {
        const char *line = p + i, *nl = memchr(line, '\n', len - i), *colon;
        size_t n = nl ? (size_t)(nl - line) : len - i;

        i += nl ? n + 1 : n;
        if (n && line[n - 1] == '\r')
            n--;
        /* The status line, blank lines, and folded continuations. */
        if (first || n == 0 || line[0] == ' ' || line[0] == '\t') {
            first = false;
            continue;
        }
        colon = memchr(line, ':', n);
        if (!colon)
            continue;
        *name = (struct ch_str){line, (size_t)(colon - line)};
        *value = ch_str_trim((struct ch_str){colon + 1, n - (size_t)(colon - line) - 1});
        *iter = i;
        return true;
    }
    *iter = len;
    return false;
}

struct ch_str ch_curlm_head_get(const struct ch_curlm_head *head, const char *name)
{
    struct ch_str k, v;
    size_t it = 0;

    while (ch_curlm_head_next(head, &it, &k, &v)) {
        if (ch_str_eq_ci(k, name))
            return v;
    }
    return (struct ch_str){NULL, 0};
}

/* ------------------------------------------------------------------ */
/* Deadlines                                                           */
/* ------------------------------------------------------------------ */

/* The earliest deadline that applies now, UINT64_MAX if none. */
static uint64_t next_deadline(const struct ch_curlm_req *req, enum ch_curlm_timeout *which)
{
    uint64_t best = UINT64_MAX, d;

    *which = CH_CURLM_TIMEOUT_NONE;
    if (!req->head_done && req->first_byte_ms != CH_CURLM_NO_TIMEOUT) {
        best = req->start_ms + req->first_byte_ms;
        *which = CH_CURLM_TIMEOUT_FIRST_BYTE;
    }
    if (req->got_byte && req->idle_ms != CH_CURLM_NO_TIMEOUT) {
        d = req->last_rx_ms + req->idle_ms;
        if (d < best) {
            best = d;
            *which = CH_CURLM_TIMEOUT_IDLE;
        }
    }
    if (req->total_ms != CH_CURLM_NO_TIMEOUT) {
        d = req->start_ms + req->total_ms;
        if (d < best) {
            best = d;
            *which = CH_CURLM_TIMEOUT_TOTAL;
        }
    }
    return best;
}

/* Arm the timer for the next deadline.  Bytes arriving only move the idle
 * deadline later, so the timer is not re-armed per chunk: when it fires
 * early it re-arms for what is left (one wakeup per idle period at most). */
static void arm_deadline(struct ch_curlm_req *req)
{
    enum ch_curlm_timeout which;
    uint64_t d = next_deadline(req, &which), now = uv_now(req->m->loop);

    req->armed_ms = d;
    if (d == UINT64_MAX)
        uv_timer_stop(&req->timer);
    else
        uv_timer_start(&req->timer, on_req_timer, d > now ? d - now : 0, 0);
}

/* Record why we are stopping curl; the first reason wins. */
static void stop(struct ch_curlm_req *req, int rc, enum ch_curlm_timeout t, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void stop(struct ch_curlm_req *req, int rc, enum ch_curlm_timeout t, const char *fmt, ...)
{
    va_list ap;

    if (req->stop_rc)
        return;
    req->stop_rc = rc;
    req->stop_timeout = t;
    va_start(ap, fmt);
    vsnprintf(req->msg, sizeof(req->msg), fmt, ap);
    va_end(ap);
}

/* A deadline started and may come before the armed one. */
static void rearm_if_earlier(struct ch_curlm_req *req)
{
    enum ch_curlm_timeout which;

    if (req->stop_rc == 0 && next_deadline(req, &which) < req->armed_ms)
        arm_deadline(req);
}

/* A response byte arrived (head or body). */
static void note_rx(struct ch_curlm_req *req)
{
    req->last_rx_ms = uv_now(req->m->loop);
    if (req->got_byte)
        return;
    req->got_byte = true;
    req->t_first_ns = uv_hrtime();
    rearm_if_earlier(req); /* the idle deadline starts now */
}

/* ------------------------------------------------------------------ */
/* Finishing                                                           */
/* ------------------------------------------------------------------ */

static int err_from_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_OK: return 0;
    case CURLE_OPERATION_TIMEDOUT: return CH_ETIMEDOUT;
    case CURLE_FILESIZE_EXCEEDED: return CH_E_TOO_LARGE;
    case CURLE_OUT_OF_MEMORY: return CH_ENOMEM;
    case CURLE_BAD_FUNCTION_ARGUMENT: return CH_EINVAL;
    /* Not the caller's input: submit checked the URL and its scheme, so at
     * transfer time these come from the peer, an answer that is not HTTP
     * ("Received HTTP/0.9 when not allowed": a banner, TLS bytes on an
     * http:// URL) or a Location curl cannot parse or may not follow. */
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    default: return CH_EIO; /* connect, reset, TLS, truncated, redirects */
    }
}

static void on_req_closed(uv_handle_t *h)
{
    struct ch_curlm_req *req = h->data;
    struct ch_curlm *m = req->m;

    if (req->prev)
        req->prev->next = req->next;
    else
        m->reqs = req->next;
    if (req->next)
        req->next->prev = req->prev;
    ch_free(req);
    curlm_req_gone(m);
}

/* Release everything but the timer, then close it; freed in its close cb. */
static void req_release(struct ch_curlm_req *req)
{
    /* A pinned request's handle never served a normal one: not reused. */
    if (req->resolve)
        curl_easy_cleanup(req->easy);
    else
        curlm_easy_put(req->m, req->easy, &req->shape);
    req->easy = NULL;
    curlm_hdrs_unref(req->hdrs);
    req->hdrs = NULL;
    curl_slist_free_all(req->resolve);
    curlm_url_unref(req->url); /* after the reset: the handle no longer points at it */
    req->url = NULL;
    ch_free(req->body);
    ch_buf_release(&req->head);
    req->headers = req->resolve = NULL;
    req->body = NULL;
    uv_close((uv_handle_t *)&req->timer, on_req_closed);
}

static int fire_headers(struct ch_curlm_req *req)
{
    int rc = 0;

    req->head_pending = false;
    req->head_fired = true;
    if (req->on_headers)
        rc = req->on_headers(req, &req->view, req->data);
    if (rc > 0)
        rc = CH_ECANCELED; /* the contract asks for a CH_E*; keep rc negative */
    if (rc)
        stop(req, rc, CH_CURLM_TIMEOUT_NONE, "stopped by on_headers (%s)", ch_strerror(rc));
    return rc;
}

static void fill_info(struct ch_curlm_req *req, struct ch_curlm_result *res)
{
    curl_off_t t = 0, up = 0;
    long reqsize = 0;
    char *s = NULL;

    curl_easy_getinfo(req->easy, CURLINFO_CONNECT_TIME_T, &t);
    res->connect_us = (uint64_t)t;
    t = 0;
    curl_easy_getinfo(req->easy, CURLINFO_APPCONNECT_TIME_T, &t);
    res->tls_us = (uint64_t)t;
    curl_easy_getinfo(req->easy, CURLINFO_NUM_CONNECTS, &res->new_connections);
    curl_easy_getinfo(req->easy, CURLINFO_REQUEST_SIZE, &reqsize);
    curl_easy_getinfo(req->easy, CURLINFO_SIZE_UPLOAD_T, &up);
    res->bytes_out = (uint64_t)reqsize + (uint64_t)up;
    if (curl_easy_getinfo(req->easy, CURLINFO_PRIMARY_IP, &s) == CURLE_OK && s)
        res->primary_ip = s;
    s = NULL;
    if (curl_easy_getinfo(req->easy, CURLINFO_EFFECTIVE_URL, &s) == CURLE_OK && s)
        res->effective_url = s;
}

/* The one place a request ends: report, then release.  cc is curl's code
 * (CURLE_OK when curl did not finish it: our deadline, abort, close). */
static void finish(struct ch_curlm_req *req, CURLcode cc)
{
    struct ch_curlm *m = req->m;
    struct ch_curlm_result res = {.msg = "", .primary_ip = "", .effective_url = ""};

    if (req->state == CURLM_REQ_DONE)
        return;
    req->state = CURLM_REQ_DONE;
    uv_timer_stop(&req->timer);
    if (req->in_multi) {
        /* Closes the connection if the transfer was cut short. */
        curl_multi_remove_handle(m->multi, req->easy);
        req->in_multi = false;
    }
    /* A head held back as a possible redirect that curl did not follow
     * (no body, or the redirect limit) is still the answer. */
    if (req->head_pending && req->stop_rc == 0)
        fire_headers(req);
    if (req->stop_rc) {
        /* Our reason beats curl's CURLE_WRITE_ERROR, or its CURLE_OK when
         * an abort raced the end of the transfer. */
        res.rc = req->stop_rc;
        res.timeout = req->stop_timeout;
        res.msg = req->msg;
    } else if (cc == CURLE_OUT_OF_MEMORY && ch_curl_alloc_failures() == req->alloc_failures) {
        /* No allocation failed: what curl 7.88 calls out of memory was one
         * of its own caps, met by the response (a header line over 100 KiB,
         * a chunk trailer over its limit).  The server's doing, not ours. */
        res.rc = CH_E_TOO_LARGE;
        res.msg = "a response line is longer than libcurl accepts (a header or trailer line over its limit)";
    } else if (cc != CURLE_OK) {
        res.rc = err_from_curl(cc);
        /* The only curl timeout we set is the connect one. */
        if (res.rc == CH_ETIMEDOUT)
            res.timeout = CH_CURLM_TIMEOUT_CONNECT;
        res.msg = req->errbuf[0] ? req->errbuf : curl_easy_strerror(cc);
    }
    if (req->easy)
        fill_info(req, &res);
    if (req->head_fired) {
        res.head = &req->view;
        res.status = req->view.status;
    }
    res.first_byte_us = req->t_first_ns ? (req->t_first_ns - req->t_start_ns) / 1000 : 0;
    res.total_us = (uv_hrtime() - req->t_start_ns) / 1000;
    res.head_bytes = req->head_bytes;
    res.body_bytes = req->body_bytes;

    m->stats.in_flight--;
    m->stats.bytes_in += req->head_bytes + req->body_bytes;
    m->stats.bytes_out += res.bytes_out;
    if (res.rc) {
        m->stats.failed++;
        m->stats.canceled += res.rc == CH_ECANCELED;
        m->stats.timed_out += res.rc == CH_ETIMEDOUT;
    }
    ch_log_debug("curlm: req %llu done rc=%d status=%ld %s%s%s %llu us", (unsigned long long)req->id, res.rc,
                 res.status, res.timeout ? ch_curlm_timeout_name(res.timeout) : "", res.rc ? " " : "", res.msg,
                 (unsigned long long)res.total_us);
    req->on_done(req, &res, req->data);
    req_release(req);
}

void curlm_req_finish_curl(struct ch_curlm_req *req, CURLcode cc)
{
    finish(req, cc);
}

/* ------------------------------------------------------------------ */
/* curl callbacks (inside curl_multi_socket_action)                    */
/* ------------------------------------------------------------------ */

static bool is_redirect(long status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/*
 * Whether the final head announces more body than the cap.  Checked here,
 * once the head is complete and reported, rather than by curl's
 * CURLOPT_MAXFILESIZE: curl refuses the Content-Length line while parsing
 * the head, before the head reaches us, so the caller never learnt the
 * status, and a receiver's "200 OK" with a long body became "no answer"
 * (the outbox retried a delivery that had arrived).  The body is still
 * refused before its first byte.  A malformed length is left to curl;
 * chunked framing overrides a length (RFC 9112 6.3), and HEAD, 204 and 304
 * have no body whatever the length says.
 */
static bool declares_too_much(const struct ch_curlm_req *req, long status)
{
    struct ch_str v = ch_curlm_head_get(&req->view, "content-length");
    uint64_t n = 0;

    if (!v.p || !v.len || status == 204 || status == 304 || !strcmp(req->shape.method, "HEAD") ||
        ch_curlm_head_get(&req->view, "transfer-encoding").p)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return false;
        if (n > (UINT64_MAX - 9) / 10)
            return true; /* past 2^64: past any cap */
        n = n * 10 + (uint64_t)(v.p[i] - '0');
    }
    return n > req->max_body_bytes;
}

/* CURLOPT_HEADERFUNCTION: one header line per call, CRLF included; the
 * blank line ends a head.  Returning anything but len stops the transfer
 * (CURLE_WRITE_ERROR); finish then reports stop_rc. */
size_t curlm_req_on_header(char *p, size_t size, size_t nitems, void *userdata)
{
    struct ch_curlm_req *req = userdata;
    size_t len = size * nitems;
    long status = 0, ver = 0;

    if (req->stop_rc)
        return 0;
    note_rx(req);
    req->head_bytes += len;
    if (req->head_bytes > req->max_header_bytes) {
        stop(req, CH_E_TOO_LARGE, CH_CURLM_TIMEOUT_NONE, "response head larger than %llu bytes",
             (unsigned long long)req->max_header_bytes);
        return 0;
    }
    if (req->head_fired)
        return len; /* trailers: counted against the cap, not reported */
    if (req->head_pending) {
        /* curl followed the redirect: this is the next response, and
         * the first-byte deadline applies again. */
        req->head_pending = false;
        req->head_done = false;
        ch_buf_reset(&req->head);
        rearm_if_earlier(req);
    }
    if (!(len == 2 && p[0] == '\r') && !(len == 1 && p[0] == '\n')) {
        /* Cannot exceed max: head_bytes already covers this line. */
        if (ch_buf_append(&req->head, p, len)) {
            stop(req, CH_ENOMEM, CH_CURLM_TIMEOUT_NONE, "out of memory for the response head");
            return 0;
        }
        return len;
    }
    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 100 && status < 200) {
        ch_buf_reset(&req->head); /* 100 Continue, 103 Early Hints */
        return len;
    }
    curl_easy_getinfo(req->easy, CURLINFO_HTTP_VERSION, &ver);
    req->head_done = true;
    req->view.status = status;
    req->view.http_version = ver == CURL_HTTP_VERSION_1_0   ? 10
                             : ver == CURL_HTTP_VERSION_2_0 ? 20
                             : ver == CURL_HTTP_VERSION_3   ? 30
                                                            : 11;
    req->view.raw = (struct ch_str){req->head.data ? req->head.data : "", req->head.len};
    if (req->max_redirects > 0 && is_redirect(status) && ch_curlm_head_get(&req->view, "location").p) {
        /* curl will probably follow it; report it only if it does not. */
        req->head_pending = true;
        return len;
    }
    if (fire_headers(req) || req->stop_rc)
        return 0;
    if (declares_too_much(req, status)) {
        stop(req, CH_E_TOO_LARGE, CH_CURLM_TIMEOUT_NONE, "response body larger than %llu bytes (Content-Length)",
             (unsigned long long)req->max_body_bytes);
        return 0;
    }
    return len;
}

/* CURLOPT_WRITEFUNCTION: one body chunk, straight to on_data. */
size_t curlm_req_on_write(char *p, size_t size, size_t nmemb, void *userdata)
{
    struct ch_curlm_req *req = userdata;
    size_t len = size * nmemb;
    int rc;

    if (req->stop_rc)
        return 0;
    note_rx(req);
    if (req->head_pending && fire_headers(req))
        return 0;
    if (req->stop_rc)
        return 0; /* aborted inside on_headers */
    if (len > req->max_body_bytes - req->body_bytes) {
        stop(req, CH_E_TOO_LARGE, CH_CURLM_TIMEOUT_NONE, "response body larger than %llu bytes",
             (unsigned long long)req->max_body_bytes);
        return 0;
    }
    req->body_bytes += len;
    if (!req->on_data)
        return len;
    rc = req->on_data(req, p, len, req->data);
    if (rc > 0)
        rc = CH_ECANCELED;
    if (rc)
        stop(req, rc, CH_CURLM_TIMEOUT_NONE, "stopped by on_data (%s)", ch_strerror(rc));
    return req->stop_rc ? 0 : len;
}

/* ------------------------------------------------------------------ */
/* The request timer: deferred add, deferred abort, deadlines          */
/* ------------------------------------------------------------------ */

static int start_transfer(struct ch_curlm_req *req)
{
    CURLMcode mc = curl_multi_add_handle(req->m->multi, req->easy);

    if (mc != CURLM_OK) {
        ch_log_warn("curlm: add_handle: %s", curl_multi_strerror(mc));
        return mc == CURLM_OUT_OF_MEMORY ? CH_ENOMEM : CH_EIO;
    }
    req->in_multi = true;
    req->state = CURLM_REQ_RUNNING;
    arm_deadline(req);
    return 0;
}

static void on_req_timer(uv_timer_t *t)
{
    struct ch_curlm_req *req = t->data;
    enum ch_curlm_timeout which;
    uint64_t d;
    int rc;

    if (req->stop_rc) {
        finish(req, CURLE_OK);
        return;
    }
    if (req->state == CURLM_REQ_QUEUED) {
        rc = start_transfer(req);
        if (rc) {
            stop(req, rc, CH_CURLM_TIMEOUT_NONE, "could not start the transfer");
            finish(req, CURLE_OK);
        }
        return;
    }
    d = next_deadline(req, &which);
    if (d > uv_now(req->m->loop)) {
        arm_deadline(req);
        return;
    }
    if (which == CH_CURLM_TIMEOUT_FIRST_BYTE)
        stop(req, CH_ETIMEDOUT, which, "no response head after %u ms", req->first_byte_ms);
    else if (which == CH_CURLM_TIMEOUT_IDLE)
        stop(req, CH_ETIMEDOUT, which, "no data for %u ms", req->idle_ms);
    else
        stop(req, CH_ETIMEDOUT, which, "not complete after %u ms", req->total_ms);
    finish(req, CURLE_OK);
}

void ch_curlm_abort_rc(struct ch_curlm_req *req, int rc)
{
    if (!req || req->state == CURLM_REQ_DONE || req->stop_rc)
        return;
    if (rc >= 0)
        rc = CH_ECANCELED;
    stop(req, rc, CH_CURLM_TIMEOUT_NONE, "%s", rc == CH_ECANCELED ? "aborted" : ch_strerror(rc));
    /* Never inside the caller's frame (it may be a curl callback, where
     * removing the handle is forbidden): the timer finishes it. */
    uv_timer_start(&req->timer, on_req_timer, 0, 0);
    req->armed_ms = 0;
}

void ch_curlm_abort(struct ch_curlm_req *req)
{
    ch_curlm_abort_rc(req, CH_ECANCELED);
}

void curlm_req_launch(struct ch_curlm_req *req)
{
    if (req->state == CURLM_REQ_QUEUED)
        uv_timer_start(&req->timer, on_req_timer, 0, 0); /* added from the timer */
    else
        arm_deadline(req);
}
