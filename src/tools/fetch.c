/*
 * fetch.c: the web_fetch tool, GET a page and return readable text, with
 * SSRF protection stricter than flux-openclaw's (seed-integrations 3.9).
 *
 * One hop: RESOLVING (uv_getaddrinfo on the thread pool, never blocking
 * the loop) -> every address checked (loopback, private, link-local,
 * CGNAT, multicast, reserved, ... see hosts.c; one bad address refuses
 * the host) -> FETCHING with the connection pinned to the checked
 * addresses (CURLOPT_RESOLVE through curlm: a second DNS answer cannot
 * switch it, i.e. no rebinding) -> a 3xx ends the hop and the next one
 * starts from scratch with the Location (scheme, host, resolution and pin
 * all re-checked; at most 5) -> CONVERTING on the thread pool (charset,
 * HTML to text, maxChars).  Hosts in tools.web.fetch.allowHosts skip the
 * address check for that hop only.  10 s for all hops, 5 MB per body.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tools/internal.h"

#define FETCH_TIMEOUT_MS TOOLS_FETCH_TIMEOUT_MS
#define FETCH_MAX_BODY_BYTES TOOLS_FETCH_MAX_BODY_BYTES
#define FETCH_MAX_REDIRECTS TOOLS_FETCH_MAX_REDIRECTS
#define FETCH_MAX_ADDRS 16
#define FETCH_MAX_PIN_BYTES TOOLS_FETCH_MAX_PIN_BYTES
#define FETCH_DEF_CHARS 20000
#define FETCH_MIN_CHARS 100
#define FETCH_MAX_CHARS TOOLS_FETCH_MAX_CHARS
#define FETCH_ERROR_CHARS 2000 /* text shown with an HTTP error status */

static void hop_begin(struct fetch *f);

static void fetch_free(struct fetch *f)
{
    tool_url_release(&f->url);
    ch_free(f->first_url);
    ch_free(f->prev_url);
    ch_free(f->location);
    ch_buf_release(&f->body);
    fetch_text_release(&f->out);
    if (f->has_only)
        host_list_release(&f->only);
    ch_free(f->b64);
    ch_free(f);
}

/* Report and free: the single way a fetch ends. */
void tools_fetch_end(struct fetch *f, bool is_error, json_t *json, const char *fmt, ...)
{
    struct ch_buf b;
    va_list ap;

    /* Room for maxChars code points of 4 bytes plus the header lines. */
    ch_buf_init(&b, FETCH_MAX_CHARS * 4 + 8192);
    va_start(ap, fmt);
    ch_buf_vappendf(&b, fmt, ap);
    va_end(ap);
    if (f->image && b.len >= 9 && !memcmp(b.data, "web_fetch", 9))
        memcpy(b.data, "image URL", 9); /* the same checks, told as what they were for */
    ch_tool_call_set_state(f->call, NULL);
    ch_tool_call_reply(f->call, is_error, b.data ? b.data : "web_fetch failed", b.len, json);
    ch_buf_release(&b);
    fetch_free(f);
}

/* "" on the first hop, else " (redirect 2, from <url>)". */
static const char *hop_note(const struct fetch *f, char *buf, size_t cap)
{
    if (!f->hops)
        return "";
    snprintf(buf, cap, " (redirect %d, from %.300s)", f->hops, f->prev_url ? f->prev_url : "?");
    return buf;
}

/* The address as inet_ntop writes it for its own family (no unmapping:
 * the text goes into a curl pin, where the family must match). */
static void sa_text(const struct sockaddr *sa, char *out, size_t cap)
{
    const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                             : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;

    if (!inet_ntop(sa->sa_family, a, out, (socklen_t)cap))
        snprintf(out, cap, "?");
}

static const char *blocked(const struct fetch *f, const struct sockaddr *sa)
{
    const char *why = sockaddr_block_reason(sa);

    if (why && f->t->test_loopback_is_public && !strcmp(why, "loopback"))
        return NULL;
    return why;
}

/* "an unspecified address", "a private address". */
static const char *article(const char *word)
{
    return word[0] && strchr("aeiou", word[0]) ? "an" : "a";
}

static void refuse(struct fetch *f, const char *addr, const char *why)
{
    char note[400], what[400];

    if (f->url.ip_family)
        snprintf(what, sizeof(what), "%s is %s %s address", addr, article(why), why);
    else
        snprintf(what, sizeof(what), "host %s resolves to %s, %s %s address", f->url.host, addr, article(why), why);
    ch_tool_call_mark_refused(f->call);
    tools_fetch_end(f, true, NULL,
                    "web_fetch refused %s%s: %s. web_fetch only reaches public "
                    "addresses; an operator can allow a host in tools.web.fetch.allowHosts.",
                    f->url.url, hop_note(f, note, sizeof(note)), what);
}

/* ------------------------------------------------------------------ */
/* Transfer                                                             */
/* ------------------------------------------------------------------ */

static int on_fetch_headers(struct ch_curlm_req *req, const struct ch_curlm_head *head, void *data)
{
    struct fetch *f = data;
    struct ch_str loc, enc;

    (void)req;
    f->status = head->status;
    if (head->status == 301 || head->status == 302 || head->status == 303 || head->status == 307 ||
        head->status == 308) {
        loc = ch_curlm_head_get(head, "location");
        if (loc.p && loc.len) {
            f->location = ch_str_dup(loc);
            return f->location ? CH_ECANCELED : CH_ENOMEM; /* the body is not needed */
        }
    }
    ctype_parse(ch_curlm_head_get(head, "content-type"), f->mime, sizeof(f->mime), f->charset, sizeof(f->charset));
    f->kind = ctype_kind(f->mime);
    /* chela sends no Accept-Encoding and curl decodes nothing: a body sent
     * compressed anyway is not the text (or image) its type names. */
    enc = ch_curlm_head_get(head, "content-encoding");
    if (enc.p && enc.len && !ch_str_eq_ci(enc, "identity")) {
        snprintf(f->mime, sizeof(f->mime), "%s-encoded data", ch_str_eq_ci(enc, "gzip") ? "gzip" : "compressed");
        f->binary = true;
        return CH_ECANCELED;
    }
    if (f->kind == BODY_BINARY && !f->image) {
        f->binary = true;
        return CH_ECANCELED;
    }
    return 0;
}

static int on_fetch_data(struct ch_curlm_req *req, const char *p, size_t n, void *data)
{
    struct fetch *f = data;

    (void)req;
    if (f->kind == BODY_UNKNOWN && f->body.len == 0 && !f->image) {
        f->kind = body_sniff(p, n);
        if (f->kind == BODY_BINARY) {
            f->binary = true;
            return CH_ECANCELED;
        }
    }
    return ch_buf_append(&f->body, p, n);
}

static void render_work(uv_work_t *w)
{
    struct fetch *f = ch_container_of(w, struct fetch, work);
    size_t max = f->status >= 400 ? CH_MIN(f->max_chars, (size_t)FETCH_ERROR_CHARS) : f->max_chars;

    f->render_rc = fetch_render(f->body.data ? f->body.data : "", f->body.len, f->charset, f->kind, max, &f->out);
}

static void render_after(uv_work_t *w, int status)
{
    struct fetch *f = ch_container_of(w, struct fetch, work);
    json_t *j;

    if (status == UV_ECANCELED || f->aborted) {
        tools_fetch_end(f, true, NULL, "web_fetch stopped");
        return;
    }
    if (f->render_rc) {
        tools_fetch_end(f, true, NULL, "web_fetch: could not convert %s: %s", f->url.url, ch_strerror(f->render_rc));
        return;
    }
    j = json_pack("{s:s, s:s, s:I, s:s, s:s?, s:I, s:b, s:i}", "url", f->first_url, "finalUrl", f->url.url, "status",
                  (json_int_t)f->status, "contentType", f->mime, "title", f->out.title, "chars",
                  (json_int_t)f->out.chars, "truncated", f->out.truncated, "redirects", f->hops);
    if (f->status >= 400)
        tools_fetch_end(f, true, j, "web_fetch: HTTP %ld from %s\n\n%s", f->status, f->url.url, f->out.text);
    else
        tools_fetch_end(f, false, j, "URL: %s\n%s%s%s\n%s", f->url.url, f->hops ? "Redirected from: " : "",
                        f->hops ? f->first_url : "", f->hops ? "\n" : "", f->out.text);
}

static void next_hop(struct fetch *f)
{
    struct tool_url next;
    char msg[400], note[400];
    int rc;

    if (f->hops >= f->max_redirects) {
        tools_fetch_end(f, true, NULL, "web_fetch: too many redirects (more than %d) from %s", f->max_redirects,
                        f->first_url);
        return;
    }
    rc = tool_url_parse(f->url.url, f->location, &next, msg, sizeof(msg));
    if (rc) {
        f->hops++;
        ch_free(f->prev_url);
        f->prev_url = ch_strdup(f->url.url);
        ch_tool_call_mark_refused(f->call);
        tools_fetch_end(f, true, NULL, "web_fetch refused redirect to %.300s%s: %s", f->location,
                        hop_note(f, note, sizeof(note)), msg);
        return;
    }
    f->hops++;
    ch_free(f->prev_url);
    f->prev_url = f->url.url;
    f->url.url = NULL;
    tool_url_release(&f->url);
    f->url = next;
    ch_free(f->location);
    f->location = NULL;
    hop_begin(f);
}

static void on_fetch_done(struct ch_curlm_req *req, const struct ch_curlm_result *res, void *data)
{
    struct fetch *f = data;
    const char *why = NULL;
    struct sockaddr_storage ss;
    char note[400];

    (void)req;
    f->req = NULL;
    if (f->aborted) {
        tools_fetch_end(f, true, NULL, "web_fetch stopped");
        return;
    }
    /* Belt and braces: whatever curl connected to must pass the check. */
    if (!f->allowlisted && res->primary_ip[0]) {
        memset(&ss, 0, sizeof(ss));
        if (inet_pton(AF_INET, res->primary_ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
            ss.ss_family = AF_INET;
        else if (inet_pton(AF_INET6, res->primary_ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
            ss.ss_family = AF_INET6;
        why = blocked(f, (struct sockaddr *)&ss);
        if (why) {
            refuse(f, res->primary_ip, why);
            return;
        }
    }
    if (f->location && (res->rc == 0 || res->rc == CH_ECANCELED)) {
        next_hop(f);
        return;
    }
    if (f->binary && f->image) {
        /* Only an encoded body stops an image fetch here. */
        tools_fetch_end(f, true, NULL, "web_fetch: %s%s is %s, which chela does not decode", f->url.url,
                        hop_note(f, note, sizeof(note)), f->mime);
        return;
    }
    if (f->binary) {
        tools_fetch_end(f, true, NULL,
                        "web_fetch: %s%s is %s, not text; web_fetch returns text and "
                        "HTML pages only",
                        f->url.url, hop_note(f, note, sizeof(note)), f->mime[0] ? f->mime : "binary data");
        return;
    }
    if (res->rc == CH_E_TOO_LARGE && !res->head) {
        /* No head: the head itself broke a cap (its size, a line curl
         * refuses), not the body: say which. */
        tools_fetch_end(f, true, NULL, "web_fetch: %s%s failed: %s", f->url.url, hop_note(f, note, sizeof(note)),
                        res->msg);
        return;
    }
    if (res->rc == CH_E_TOO_LARGE) {
        if (f->max_bytes % (1024 * 1024) == 0)
            tools_fetch_end(f, true, NULL, "web_fetch: %s%s is larger than %zu MB", f->url.url,
                            hop_note(f, note, sizeof(note)), f->max_bytes / (1024 * 1024));
        else
            tools_fetch_end(f, true, NULL, "web_fetch: %s%s is larger than %zu bytes", f->url.url,
                            hop_note(f, note, sizeof(note)), f->max_bytes);
        return;
    }
    if (res->rc == CH_ETIMEDOUT) {
        tools_fetch_end(f, true, NULL, "web_fetch: %s timed out (%s) within the %.1f s limit", f->url.url,
                        ch_curlm_timeout_name(res->timeout), (double)f->timeout_ms / 1000);
        return;
    }
    if (res->rc) {
        tools_fetch_end(f, true, NULL, "web_fetch: %s%s failed: %s%s%s", f->url.url, hop_note(f, note, sizeof(note)),
                        ch_strerror(res->rc), res->msg[0] ? ": " : "", res->msg);
        return;
    }
    if (f->image) {
        tools_fetch_image_done(f);
        return;
    }
    if (f->kind == BODY_UNKNOWN)
        f->kind = BODY_TEXT; /* an empty body without a type */
    f->phase = F_CONVERTING;
    if (uv_queue_work(f->t->loop, &f->work, render_work, render_after))
        tools_fetch_end(f, true, NULL, "web_fetch: the thread pool refused the conversion");
}

static void submit(struct fetch *f)
{
    static const struct ch_curlm_header hdrs[] = {
        {"Accept", "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5"},
    };
    static const struct ch_curlm_header image_hdrs[] = {
        {"Accept", "image/*;q=1.0,*/*;q=0.5"},
    };
    struct ch_curlm_request r = {0};
    const char *pins[1] = {f->pin};
    struct ch_error err = {0};
    uint64_t now = uv_now(f->t->loop), left = f->deadline_ms > now ? f->deadline_ms - now : 1;
    int rc;

    /* The registry's deadline is authoritative (its message names
     * TOOL_TIMEOUT); curl's own stays a backstop one second behind it. */
    left = CH_MIN(left, ch_tool_call_remaining_ms(f->call) + 1000);
    f->status = 0;
    f->mime[0] = f->charset[0] = '\0';
    f->kind = BODY_UNKNOWN;
    f->binary = false;
    ch_buf_release(&f->body);
    r.method = "GET";
    r.url = f->url.url;
    r.headers = f->image ? image_hdrs : hdrs;
    r.header_count = 1;
    r.resolve = pins;
    r.resolve_count = f->pin[0] ? 1 : 0;
    r.max_redirects = 0; /* followed here, each hop re-checked */
    r.total_timeout_ms = (uint32_t)left;
    r.connect_timeout_ms = (uint32_t)left;
    r.first_byte_timeout_ms = (uint32_t)left;
    r.idle_timeout_ms = (uint32_t)left;
    r.max_body_bytes = f->max_bytes;
    r.on_headers = on_fetch_headers;
    r.on_data = on_fetch_data;
    r.on_done = on_fetch_done;
    r.data = f;
    f->phase = F_FETCHING;
    rc = ch_curlm_submit(f->t->curlm, &r, &f->req, &err);
    if (rc)
        tools_fetch_end(f, true, NULL, "web_fetch: %s: %s", f->url.url, err.msg[0] ? err.msg : ch_strerror(rc));
}

/* ------------------------------------------------------------------ */
/* Resolution and checks                                                */
/* ------------------------------------------------------------------ */

/* Check every address, then pin them all: "host:port:a,b,[c]". */
static void check_and_pin(struct fetch *f, const struct sockaddr *const *sas, size_t n)
{
    char addr[INET6_ADDRSTRLEN], items[FETCH_MAX_ADDRS][INET6_ADDRSTRLEN + 3];
    size_t len, pinned = 0, k;

    if (n == 0) {
        tools_fetch_end(f, true, NULL, "web_fetch: %s has no address", f->url.host);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *why = blocked(f, sas[i]);
        if (why) {
            sa_text(sas[i], addr, sizeof(addr));
            refuse(f, addr, why);
            return;
        }
    }
    len = (size_t)snprintf(f->pin, sizeof(f->pin), "%s:%d:", f->url.host, f->url.port);
    for (size_t i = 0; i < n && pinned < FETCH_MAX_ADDRS && len < sizeof(f->pin); i++) {
        sa_text(sas[i], addr, sizeof(addr));
        snprintf(items[pinned], sizeof(items[pinned]), sas[i]->sa_family == AF_INET6 ? "[%s]" : "%s", addr);
        /* getaddrinfo may list an address more than once. */
        for (k = 0; k < pinned && strcmp(items[k], items[pinned]); k++)
            ;
        if (k < pinned)
            continue;
        /* Every address was checked, so pinning only those that fit is
         * still safe. */
        if (len + strlen(items[pinned]) + 1 >= sizeof(f->pin))
            break;
        len += (size_t)snprintf(f->pin + len, sizeof(f->pin) - len, "%s%s", pinned ? "," : "", items[pinned]);
        pinned++;
    }
    submit(f);
}

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct fetch *f = ch_container_of(req, struct fetch, gai);
    const struct sockaddr *sas[FETCH_MAX_ADDRS * 4];
    size_t n = 0;

    if (f->aborted || status == UV_EAI_CANCELED) {
        uv_freeaddrinfo(res);
        tools_fetch_end(f, true, NULL, "web_fetch stopped");
        return;
    }
    if (status) {
        char note[400];
        uv_freeaddrinfo(res);
        tools_fetch_end(f, true, NULL, "web_fetch: cannot resolve host %s%s: %s", f->url.host,
                        hop_note(f, note, sizeof(note)), uv_strerror(status));
        return;
    }
    /* The lookup itself is bounded only by the call's deadline (which
     * cancels it); past web_fetch's own limit, stop here. */
    if (uv_now(f->t->loop) >= f->deadline_ms) {
        uv_freeaddrinfo(res);
        tools_fetch_end(f, true, NULL, "web_fetch: resolving %s took longer than %d s", f->url.host,
                        FETCH_TIMEOUT_MS / 1000);
        return;
    }
    /* All addresses are checked, however many (a bad one hides anywhere). */
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        if (n == CH_ARRAY_SIZE(sas)) {
            uv_freeaddrinfo(res);
            tools_fetch_end(f, true, NULL, "web_fetch: %s has too many addresses", f->url.host);
            return;
        }
        sas[n++] = ai->ai_addr;
    }
    check_and_pin(f, sas, n);
    uv_freeaddrinfo(res);
}

static void hop_begin(struct fetch *f)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct sockaddr_storage ss[FETCH_MAX_ADDRS];
    const struct sockaddr *sas[FETCH_MAX_ADDRS];
    char port[8];
    int rc;

    f->pin[0] = '\0';
    if (f->has_only && !host_list_match(&f->only, f->url.host, f->url.port)) {
        char note[400];
        ch_tool_call_mark_refused(f->call);
        tools_fetch_end(f, true, NULL, "web_fetch refused %s%s: the host is not in the URL allowlist", f->url.url,
                        hop_note(f, note, sizeof(note)));
        return;
    }
    f->allowlisted = host_list_match(&f->t->fetch_allow, f->url.host, f->url.port);
    if (f->allowlisted) {
        submit(f); /* operator-trusted: resolved normally, not checked */
        return;
    }
    if (f->url.ip_family) {
        /* A literal: nothing to resolve, so nothing to pin. */
        memset(ss, 0, sizeof(ss[0]));
        ss[0].ss_family = (sa_family_t)f->url.ip_family;
        if (f->url.ip_family == AF_INET)
            memcpy(&((struct sockaddr_in *)&ss[0])->sin_addr, f->url.ip, 4);
        else
            memcpy(&((struct sockaddr_in6 *)&ss[0])->sin6_addr, f->url.ip, 16);
        const char *why = blocked(f, (struct sockaddr *)&ss[0]);
        if (why)
            refuse(f, f->url.host, why);
        else
            submit(f);
        return;
    }
    f->phase = F_RESOLVING;
    if (f->t->test_resolve) {
        rc = f->t->test_resolve(f->url.host, ss, FETCH_MAX_ADDRS);
        if (rc < 0) {
            tools_fetch_end(f, true, NULL, "web_fetch: cannot resolve host %s: %s", f->url.host, uv_strerror(rc));
            return;
        }
        for (int i = 0; i < rc; i++)
            sas[i] = (const struct sockaddr *)&ss[i];
        check_and_pin(f, sas, (size_t)rc);
        return;
    }
    snprintf(port, sizeof(port), "%d", f->url.port);
    rc = uv_getaddrinfo(f->t->loop, &f->gai, on_gai, f->url.host, port, &hints);
    if (rc)
        tools_fetch_end(f, true, NULL, "web_fetch: cannot resolve host %s: %s", f->url.host, uv_strerror(rc));
}

/* ------------------------------------------------------------------ */
/* The tool                                                             */
/* ------------------------------------------------------------------ */

int tools_fetch_start(struct ch_tool_call *call, const json_t *in)
{
    const json_t *jmax = json_object_get(in, "maxChars");
    struct fetch *f;
    char msg[400];
    double want;
    int rc;

    f = ch_calloc(1, sizeof(*f));
    if (!f)
        return CH_ENOMEM;
    f->call = call;
    f->t = ch_tool_call_tools(call);
    want = jmax ? json_number_value(jmax) : FETCH_DEF_CHARS;
    /* Clamped rather than refused: the model meant "more" or "less". */
    f->max_chars = want < FETCH_MIN_CHARS ? FETCH_MIN_CHARS : want > FETCH_MAX_CHARS ? FETCH_MAX_CHARS : (size_t)want;
    f->image = ch_tool_call_spec_data(call) == &tools_fetch_image_tag;
    f->max_bytes = FETCH_MAX_BODY_BYTES;
    f->max_redirects = FETCH_MAX_REDIRECTS;
    f->timeout_ms = FETCH_TIMEOUT_MS;
    if (f->image && (rc = tools_fetch_image_limits(f, in, msg, sizeof(msg))) != 0) {
        fetch_free(f);
        if (rc != CH_EINVAL)
            return rc;
        ch_tool_call_mark_refused(call);
        ch_tool_call_replyf(call, true, "image URL: %s", msg);
        return 0;
    }
    f->deadline_ms = uv_now(f->t->loop) + f->timeout_ms;
    ch_buf_init(&f->body, f->max_bytes);
    rc = tool_url_parse(NULL, json_string_value(json_object_get(in, "url")), &f->url, msg, sizeof(msg));
    if (rc == 0 && !(f->first_url = ch_strdup(f->url.url)))
        rc = CH_ENOMEM;
    if (rc) {
        bool image = f->image;
        fetch_free(f);
        if (rc != CH_EINVAL)
            return rc;
        ch_tool_call_mark_refused(call);
        ch_tool_call_replyf(call, true, "%s: %s", image ? "image URL" : "web_fetch", msg);
        return 0;
    }
    ch_tool_call_set_state(call, f);
    hop_begin(f); /* may end (and free) f already */
    return 0;
}

void tools_fetch_abort(struct ch_tool_call *call)
{
    struct fetch *f = ch_tool_call_state(call);

    if (!f)
        return;
    f->aborted = true;
    /* Each phase has exactly one pending completion; it sees `aborted`
     * and ends the fetch, so the registry hears back once. */
    if (f->phase == F_RESOLVING)
        uv_cancel((uv_req_t *)&f->gai);
    else if (f->phase == F_FETCHING && f->req)
        ch_curlm_abort(f->req);
    else if (f->phase == F_CONVERTING)
        uv_cancel((uv_req_t *)&f->work);
}
