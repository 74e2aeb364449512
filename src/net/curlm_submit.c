/*
 * curlm_submit.c: turning a struct ch_curlm_request into a configured curl
 * easy handle.  Everything a caller gives is checked here, synchronously,
 * so that bad input (a malformed URL, a header with CR/LF, a file:// URL)
 * fails ch_curlm_submit with CH_EINVAL and an explanation instead of
 * surfacing later as a transfer error.  The transfer itself is
 * curlm_req.c; the manager is curlm.c.
 */
#include <stdio.h>
#include <string.h>

#include "net/curlm_int.h"

#define MAX_URL_BYTES (64 * 1024) /* far above any real API URL; curl allows 8 MB */
#define MAX_METHOD_BYTES 16
#define MAX_FIELD_BYTES (16 * 1024) /* one request header line */
#define MAX_PIN_BYTES 512           /* "host:port:addr[,addr...]" */

static bool is_tchar(unsigned char c)
{
    /* RFC 9110 5.6.2 token characters. */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool valid_token(const char *s, size_t max)
{
    size_t n = 0;

    for (; s[n]; n++) {
        if (n >= max || !is_tchar((unsigned char)s[n]))
            return false;
    }
    return n > 0;
}

/* No CR, LF or other controls but HT: they would split the request. */
static bool valid_text(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

struct curlm_url *curlm_url_ref(struct curlm_url *u)
{
    u->refs++;
    return u;
}

void curlm_url_unref(struct curlm_url *u)
{
    if (!u || --u->refs > 0)
        return;
    curl_url_cleanup(u->uh);
    curl_free(u->norm);
    ch_free(u->text);
    ch_free(u);
}

/* The parsed URL as a reference, or NULL when out of memory (the caller
 * then hands curl the text). */
static struct curlm_url *url_keep(CURLU *u, const char *text, bool https)
{
    struct curlm_url *k = ch_calloc(1, sizeof(*k));

    if (!k || !(k->text = ch_strdup(text)) || curl_url_get(u, CURLUPART_URL, &k->norm, 0) != CURLUE_OK) {
        if (k)
            ch_free(k->text);
        ch_free(k);
        curl_url_cleanup(u);
        return NULL;
    }
    k->uh = u;
    k->https = https;
    k->refs = 1;
    return k;
}

/* On success *out is a reference to the parsed URL, or NULL: curl then
 * parses r->url itself (any protocol allowed, or out of memory). */
static int check_url(struct ch_curlm *m, const struct ch_curlm_request *r, bool *is_https, struct curlm_url **out,
                     struct ch_error *err)
{
    CURLU *u;
    CURLUcode uc;
    char *scheme = NULL;
    int rc = CH_EINVAL;

    *out = NULL;
    if (strlen(r->url) > MAX_URL_BYTES)
        return ch_error_set(err, CH_EINVAL, "URL longer than %d bytes", MAX_URL_BYTES);
    /* The same text gets the same verdict: skip curl's URL parser. */
    if (!r->allow_any_protocol && m->last_url && !strcmp(m->last_url->text, r->url)) {
        *is_https = m->last_url->https;
        *out = curlm_url_ref(m->last_url);
        return 0;
    }
    u = curl_url();
    if (!u)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    /* Without CURLU_NON_SUPPORT_SCHEME this also refuses schemes this curl
     * was built without; control characters and spaces are refused. */
    uc = curl_url_set(u, CURLUPART_URL, r->url, 0);
    if (uc != CURLUE_OK) {
        rc =
            ch_error_set(err, uc == CURLUE_OUT_OF_MEMORY ? CH_ENOMEM : CH_EINVAL, "bad URL: %s", curl_url_strerror(uc));
        goto out;
    }
    uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (uc != CURLUE_OK) {
        rc =
            ch_error_set(err, uc == CURLUE_OUT_OF_MEMORY ? CH_ENOMEM : CH_EINVAL, "bad URL: %s", curl_url_strerror(uc));
        goto out;
    }
    if (!r->allow_any_protocol && strcmp(scheme, "http") && strcmp(scheme, "https")) {
        rc = ch_error_set(err, CH_EINVAL, "URL scheme %.16s is not allowed (http, https)", scheme);
        goto out;
    }
    *is_https = !strcmp(scheme, "https");
    rc = 0;
    if (!r->allow_any_protocol) {
        struct curlm_url *k = url_keep(u, r->url, *is_https);

        u = NULL; /* url_keep took it */
        if (k) {
            curlm_url_unref(m->last_url);
            m->last_url = k;
            *out = curlm_url_ref(k);
        }
    }
out:
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

static int slist_add(struct curl_slist **list, const char *s)
{
    struct curl_slist *n = curl_slist_append(*list, s); /* copies s */

    if (!n)
        return CH_ENOMEM; /* *list is unchanged and still ours */
    *list = n;
    return 0;
}

void curlm_hdrs_unref(struct curlm_hdrs *h)
{
    if (!h || --h->refs > 0)
        return;
    for (struct curl_slist *s = h->list; s; s = s->next)
        ch_wipe(s->data, strlen(s->data));
    curl_slist_free_all(h->list);
    if (h->key)
        ch_wipe(h->key, h->key_len);
    ch_free(h->key);
    ch_free(h);
}

/* Whether h was built from exactly these headers. */
static bool hdrs_same(const struct curlm_hdrs *h, const struct ch_curlm_request *r, bool has_body)
{
    const char *k = h->key, *end = h->key + h->key_len;

    if (h->count != r->header_count || h->has_body != has_body)
        return false;
    for (size_t i = 0; i < r->header_count; i++) {
        const struct ch_curlm_header *x = &r->headers[i];
        size_t nl, vl;

        if (!x->name || !x->value)
            return false;
        nl = strlen(x->name);
        vl = strlen(x->value);
        if ((size_t)(end - k) < nl + vl + 2 || memcmp(k, x->name, nl + 1) || memcmp(k + nl + 1, x->value, vl + 1))
            return false;
        k += nl + vl + 2;
    }
    return k == end;
}

static int build_list(struct curlm_hdrs *hd, const struct ch_curlm_request *r, bool has_body, struct ch_error *err)
{
    struct ch_buf line, key;
    bool has_expect = false, has_ctype = false;
    int rc = 0;

    ch_buf_init(&line, MAX_FIELD_BYTES);
    ch_buf_init(&key, SIZE_MAX);
    for (size_t i = 0; i < r->header_count; i++) {
        const struct ch_curlm_header *h = &r->headers[i];

        if (!h->name || !h->value || !valid_token(h->name, MAX_FIELD_BYTES) || !valid_text(h->value)) {
            rc = ch_error_set(err, CH_EINVAL, "request header %zu: bad name or value", i);
            goto out;
        }
        has_expect |= ch_str_eq_ci(ch_str_from(h->name), "expect");
        has_ctype |= ch_str_eq_ci(ch_str_from(h->name), "content-type");
        ch_buf_reset(&line);
        /* curl reads "Name:" as "remove this header"; "Name;" sends it empty. */
        rc = ch_buf_append_str(&line, h->name);
        if (!rc && h->value[0]) {
            rc = ch_buf_append(&line, ": ", 2);
            rc = rc ? rc : ch_buf_append_str(&line, h->value);
        } else if (!rc) {
            rc = ch_buf_append_char(&line, ';');
        }
        if (rc == CH_E_TOO_LARGE) {
            rc = ch_error_set(err, CH_EINVAL, "request header %zu longer than %d bytes", i, MAX_FIELD_BYTES);
            goto out;
        }
        if (rc || (rc = slist_add(&hd->list, line.data)) != 0)
            goto out;
        rc = ch_buf_append(&key, h->name, strlen(h->name) + 1);
        rc = rc ? rc : ch_buf_append(&key, h->value, strlen(h->value) + 1);
        if (rc)
            goto out;
    }
    /* curl sends "Expect: 100-continue" for large bodies and then waits up
     * to a second for a 100 that many servers never send. */
    if (!has_expect && (rc = slist_add(&hd->list, "Expect:")) != 0)
        goto out;
    /* Without this, curl labels every body application/x-www-form-urlencoded. */
    if (has_body && !has_ctype)
        rc = slist_add(&hd->list, "Content-Type:");
out:
    if (line.data)
        ch_wipe(line.data, line.cap); /* may have held an API key */
    ch_buf_release(&line);
    if (!rc) {
        hd->key = key.data; /* NULL when there were no headers */
        hd->key_len = key.len;
        hd->count = r->header_count;
        hd->has_body = has_body;
    } else {
        if (key.data)
            ch_wipe(key.data, key.cap);
        ch_buf_release(&key);
    }
    if (rc == CH_ENOMEM)
        ch_error_set(err, rc, "out of memory");
    return rc;
}

/* req->hdrs: the manager's last list when the headers are the same, else
 * a new one, which becomes the last. */
static int build_headers(struct ch_curlm_req *req, const struct ch_curlm_request *r, bool has_body,
                         struct ch_error *err)
{
    struct ch_curlm *m = req->m;
    struct curlm_hdrs *hd;
    int rc;

    if (m->last_hdrs && hdrs_same(m->last_hdrs, r, has_body)) {
        hd = m->last_hdrs;
        hd->refs++;
    } else {
        hd = ch_calloc(1, sizeof(*hd));
        if (!hd)
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        hd->refs = 1;
        rc = build_list(hd, r, has_body, err);
        if (rc) {
            curlm_hdrs_unref(hd);
            return rc;
        }
        curlm_hdrs_unref(m->last_hdrs);
        m->last_hdrs = hd;
        hd->refs++;
    }
    req->hdrs = hd;
    req->headers = hd->list;
    return 0;
}

static int build_resolve(struct ch_curlm_req *req, const struct ch_curlm_request *r, struct ch_error *err)
{
    for (size_t i = 0; i < r->resolve_count; i++) {
        const char *pin = r->resolve[i];

        if (!pin || strlen(pin) > MAX_PIN_BYTES || !valid_text(pin) || !strchr(pin, ':'))
            return ch_error_set(err, CH_EINVAL, "resolve pin %zu: want host:port:addr", i);
        if (slist_add(&req->resolve, pin))
            return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    return 0;
}

static uint32_t pick(uint32_t v, uint32_t def)
{
    return v ? v : def;
}

/* The options every request sets, on a fresh handle or a reused one. */
static CURLcode setup_request(struct ch_curlm_req *req, const struct ch_curlm_request *r, bool has_body,
                              const void *body)
{
    CURL *e = req->easy;
    CURLcode cc = CURLE_OK;
    uint32_t connect_ms = pick(r->connect_timeout_ms, CH_CURLM_DEF_CONNECT_TIMEOUT_MS);

#define SET(opt, val)                                                                                                  \
    do {                                                                                                               \
        if (cc == CURLE_OK)                                                                                            \
            cc = curl_easy_setopt(e, opt, val);                                                                        \
    } while (0)
    SET(CURLOPT_PRIVATE, req);
    SET(CURLOPT_URL, req->url ? req->url->norm : r->url);
    /* Not when curl follows redirects: older curls re-read CURLOPT_CURLU
     * for every hop instead of the Location they were sent to.  NULL
     * drops a reused handle's last one. */
    SET(CURLOPT_CURLU, req->url && r->max_redirects <= 0 ? req->url->uh : NULL);
    SET(CURLOPT_ERRORBUFFER, req->errbuf);
    SET(CURLOPT_HEADERDATA, req);
    SET(CURLOPT_WRITEDATA, req);
    SET(CURLOPT_HTTPHEADER, req->headers);
    /* The one deadline curl enforces: it spans DNS, TCP and TLS, which our
     * timer cannot see.  NO_TIMEOUT leaves curl's own 300 s. */
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms == CH_CURLM_NO_TIMEOUT ? 0L : (long)connect_ms);
    /* No CURLOPT_MAXFILESIZE: it refuses a larger Content-Length before
     * the head reaches us, and the caller would never learn the status.
     * The header callback refuses it once the head is reported, still
     * before any body byte, and the write callback caps bodies of no
     * declared length (curlm_req.c). */
    if (r->max_redirects > 0)
        SET(CURLOPT_MAXREDIRS, r->max_redirects);
    if (has_body) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        SET(CURLOPT_POSTFIELDS, body ? body : ""); /* borrowed by curl */
    }
    return cc;
}

/* The options of the request's shape (req->shape) and of the manager:
 * a reused handle of the same shape has them already. */
static CURLcode setup_handle(struct ch_curlm_req *req)
{
    struct ch_curlm *m = req->m;
    const struct curlm_shape *sh = &req->shape;
    CURL *e = req->easy;
    CURLcode cc = CURLE_OK;

    SET(CURLOPT_NOSIGNAL, 1L); /* the resolver is a thread, not SIGALRM */
    /* Our own socket and close calls let a connection's poll outlive each
     * transfer (curlm.c, parking): no epoll_ctl per request. */
    SET(CURLOPT_OPENSOCKETFUNCTION, curlm_open_socket);
    SET(CURLOPT_OPENSOCKETDATA, m);
    SET(CURLOPT_CLOSESOCKETFUNCTION, curlm_close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, m);
    SET(CURLOPT_HEADERFUNCTION, curlm_req_on_header);
    SET(CURLOPT_WRITEFUNCTION, curlm_req_on_write);
    SET(CURLOPT_USERAGENT, m->user_agent);
    SET(CURLOPT_PROXY, m->proxy); /* "" also ignores the *_proxy environment */
    if (m->ca_file)
        SET(CURLOPT_CAINFO, m->ca_file);
    /* A proxy's CONNECT reply would otherwise reach on_header as a head. */
    SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    SET(CURLOPT_HTTP_VERSION, m->no_http2 ? (long)CURL_HTTP_VERSION_1_1 : (long)CURL_HTTP_VERSION_2TLS);
    /* Wait for a connection that may multiplex rather than open another,
     * but only where h2 can be negotiated: curl counts a cleartext
     * HTTP/1.1 connection as "might multiplex" too, and would park every
     * further transfer to that host until one completes. */
    if (sh->pipewait)
        SET(CURLOPT_PIPEWAIT, 1L);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_TCP_KEEPIDLE, m->keepalive_s);
    SET(CURLOPT_TCP_KEEPINTVL, m->keepalive_s);
    if (sh->follow)
        SET(CURLOPT_FOLLOWLOCATION, 1L);
    if (!sh->any_protocol) {
        SET(CURLOPT_PROTOCOLS_STR, "http,https");
        SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    }
    if (req->resolve) {
        /* A pinned request must connect to the checked address: never
         * reuse a connection another request made to that host name, never
         * leave this one for others, and keep the pins out of the shared
         * DNS cache (it resolves in the multi's own cache instead).  Its
         * handle is its own (never pooled). */
        SET(CURLOPT_RESOLVE, req->resolve);
        SET(CURLOPT_FRESH_CONNECT, 1L);
        SET(CURLOPT_FORBID_REUSE, 1L);
    } else {
        SET(CURLOPT_SHARE, m->share);
    }
    if (sh->has_body) {
        if (strcmp(sh->method, "POST"))
            SET(CURLOPT_CUSTOMREQUEST, sh->method);
    } else if (!strcmp(sh->method, "HEAD")) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (strcmp(sh->method, "GET")) {
        SET(CURLOPT_CUSTOMREQUEST, sh->method);
    }
#undef SET
    return cc;
}

static int setup_easy(struct ch_curlm_req *req, const struct ch_curlm_request *r, bool has_body, const void *body,
                      bool same_shape, struct ch_error *err)
{
    CURLcode cc = setup_request(req, r, has_body, body);

    if (cc == CURLE_OK && !same_shape)
        cc = setup_handle(req);
    if (cc == CURLE_OK)
        return 0;
    return ch_error_set(err, cc == CURLE_OUT_OF_MEMORY ? CH_ENOMEM : CH_EIO, "curl_easy_setopt: %s",
                        curl_easy_strerror(cc));
}

static int check_request(struct ch_curlm *m, const struct ch_curlm_request *r, const char **method, bool *is_https,
                         struct curlm_url **url, struct ch_error *err)
{
    int rc;

    if (!r->url || !r->on_done)
        return ch_error_set(err, CH_EINVAL, "a request needs a url and on_done");
    if (m->closing)
        return ch_error_set(err, CH_ECLOSED, "outbound HTTP is closing");
    if (r->body_len && !r->body)
        return ch_error_set(err, CH_EINVAL, "body_len without a body");
    if (r->header_count && !r->headers)
        return ch_error_set(err, CH_EINVAL, "header_count without headers");
    if (r->resolve_count && !r->resolve)
        return ch_error_set(err, CH_EINVAL, "resolve_count without pins");
    if (r->max_redirects < 0)
        return ch_error_set(err, CH_EINVAL, "negative max_redirects");
    *method = r->method ? r->method : r->body_len ? "POST" : "GET";
    for (const char *c = *method; *c; c++) {
        if (*c < 'A' || *c > 'Z' || c - *method >= MAX_METHOD_BYTES)
            return ch_error_set(err, CH_EINVAL, "bad method");
    }
    if (!**method)
        return ch_error_set(err, CH_EINVAL, "bad method");
    /* The first request loads libcurl and creates the multi handle; if
     * libcurl cannot be loaded, each request fails with CH_EIO saying so. */
    rc = curlm_start(m, err);
    if (rc)
        return rc;
    return check_url(m, r, is_https, url, err);
}

static void fill_limits(struct ch_curlm_req *req, const struct ch_curlm_request *r)
{
    req->first_byte_ms = pick(r->first_byte_timeout_ms, CH_CURLM_DEF_FIRST_BYTE_TIMEOUT_MS);
    req->idle_ms = pick(r->idle_timeout_ms, CH_CURLM_DEF_IDLE_TIMEOUT_MS);
    req->total_ms = pick(r->total_timeout_ms, CH_CURLM_DEF_TOTAL_TIMEOUT_MS);
    req->max_header_bytes = r->max_header_bytes ? r->max_header_bytes : CH_CURLM_DEF_MAX_HEADER_BYTES;
    req->max_body_bytes = r->max_body_bytes ? r->max_body_bytes : CH_CURLM_DEF_MAX_BODY_BYTES;
    req->max_redirects = r->max_redirects;
    req->alloc_failures = ch_curl_alloc_failures();
    req->armed_ms = UINT64_MAX;
    /* The head buffer's own cap only backs up the head_bytes check. */
    ch_buf_init(&req->head, req->max_header_bytes);
}

int ch_curlm_submit(struct ch_curlm *m, const struct ch_curlm_request *r, struct ch_curlm_req **out,
                    struct ch_error *err)
{
    struct ch_curlm_req *req = NULL;
    void *taken = r && r->body_mode == CH_CURLM_BODY_TAKE ? (void *)r->body : NULL;
    const void *body;
    const char *method = NULL;
    bool has_body, is_https = false, same_shape = false;
    struct curlm_url *url = NULL;
    int rc = CH_EINVAL;

    if (!r) {
        ch_error_set(err, rc, "no request");
        goto out;
    }
    rc = check_request(m, r, &method, &is_https, &url, err);
    if (rc)
        goto out;
    rc = CH_ENOMEM;
    req = ch_calloc(1, sizeof(*req));
    if (!req)
        goto out;
    req->m = m;
    req->url = url;
    url = NULL;
    fill_limits(req, r);
    body = r->body;
    if (r->body_mode == CH_CURLM_BODY_TAKE) {
        req->body = taken;
        taken = NULL;
    } else if (r->body_mode == CH_CURLM_BODY_COPY && r->body_len) {
        req->body = ch_malloc(r->body_len);
        if (!req->body)
            goto out;
        memcpy(req->body, r->body, r->body_len);
        body = req->body;
    }
    has_body = r->body_len > 0 || !strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH");
    ch_str_copy(req->shape.method, sizeof(req->shape.method), method); /* checked: fits */
    req->shape.has_body = has_body;
    req->shape.pipewait = is_https && !m->no_http2;
    req->shape.follow = r->max_redirects > 0;
    req->shape.any_protocol = r->allow_any_protocol;
    /* Pinned requests get a handle of their own (see setup_handle). */
    req->easy = r->resolve_count ? curl_easy_init() : curlm_easy_get(m, &req->shape, &same_shape);
    if (!req->easy)
        goto out;
    rc = build_headers(req, r, has_body, err);
    if (!rc)
        rc = build_resolve(req, r, err);
    if (!rc)
        rc = setup_easy(req, r, has_body, body, same_shape, err);
    if (rc)
        goto out;

    req->id = ++m->next_id;
    req->on_headers = r->on_headers;
    req->on_data = r->on_data;
    req->on_done = r->on_done;
    req->data = r->data;
    req->start_ms = uv_now(m->loop);
    req->t_start_ns = uv_hrtime();
    if (m->in_curl) {
        /* Inside a curl callback curl refuses new handles; the request
         * timer adds it on the next iteration. */
        req->state = CURLM_REQ_QUEUED;
    } else {
        CURLMcode mc = curl_multi_add_handle(m->multi, req->easy);
        if (mc != CURLM_OK) {
            rc = ch_error_set(err, mc == CURLM_OUT_OF_MEMORY ? CH_ENOMEM : CH_EIO, "curl_multi_add_handle: %s",
                              curl_multi_strerror(mc));
            goto out;
        }
        req->in_multi = true;
        req->state = CURLM_REQ_RUNNING;
    }
    /* From here nothing fails: the timer makes req a loop handle that
     * only its close callback may free. */
    uv_timer_init(m->loop, &req->timer);
    req->timer.data = req;
    req->next = m->reqs;
    if (m->reqs)
        m->reqs->prev = req;
    m->reqs = req;
    m->live_reqs++;
    m->stats.total++;
    m->stats.in_flight++;
    curlm_req_launch(req);
    rc = 0;
out:
    if (rc) {
        ch_free(taken);
        if (req) {
            if (req->easy)
                curl_easy_cleanup(req->easy);
            curl_slist_free_all(req->resolve);
            curlm_hdrs_unref(req->hdrs);
            ch_buf_release(&req->head);
            ch_free(req->body);
            curlm_url_unref(req->url); /* after curl_easy_cleanup */
            ch_free(req);
        }
        curlm_url_unref(url);
        req = NULL;
    }
    if (!rc && out)
        *out = req;
    return rc;
}
