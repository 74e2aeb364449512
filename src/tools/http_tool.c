/*
 * http_tool.c: the http_request tool.  One request (GET, POST, PUT, PATCH,
 * DELETE or HEAD) to a host the operator listed in tools.http.allowHosts;
 * this is how an agent posts a callback such as seed 000's
 * (POST http://localhost:8000/api/v1/openclaw/callback with a Bearer
 * header and a JSON body).  No redirect is followed: a 3xx comes back with
 * its Location for the model to see.  The answer is the status, a fixed
 * set of response headers and the body, cut at the result cap.  Header
 * values (they carry tokens) are never logged.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tools/internal.h"

#define MAX_REQ_HEADERS 50
#define MAX_BODY_BYTES (1024 * 1024) /* request body */
#define HEAD_ROOM 4096               /* result bytes kept for status and headers */
#define MAX_SHOWN_HEADERS 30
#define MAX_HEADER_VALUE_SHOWN 512

/* Headers the model may not set: framing and routing belong to curl, and
 * Host would let it reach another virtual host behind an allowed address. */
static const char *const forbidden_headers[] = {
    "host",    "content-length", "transfer-encoding", "connection",          "expect", "upgrade", "te",
    "trailer", "keep-alive",     "proxy-connection",  "proxy-authorization",
};

/* Response headers worth showing the model. */
static const char *const shown_headers[] = {
    "content-type",  "content-length", "location",      "retry-after",  "www-authenticate", "etag",
    "last-modified", "date",           "cache-control", "x-request-id", "request-id",
};

struct http_call {
    struct ch_tool_call *call; /* borrowed */
    struct ch_curlm_req *req;  /* borrowed, valid until on_done */
    char *url;                 /* owned: for messages */
    struct ch_buf body;        /* capped at the result cap minus HEAD_ROOM */
    uint64_t body_total;       /* bytes received, shown or not */
    bool truncated;            /* we stopped reading at the cap */
    long status;
    char mime[96], charset[40];
    char encoding[32];       /* a Content-Encoding other than identity, else "" */
    json_t *headers;         /* owned: the shown response headers */
    struct ch_buf head_text; /* "name: value\n" lines */
};

static void http_call_free(struct http_call *h)
{
    if (!h)
        return;
    ch_free(h->url);
    ch_buf_release(&h->body);
    ch_buf_release(&h->head_text);
    json_decref(h->headers);
    ch_free(h);
}

static bool has_prefix_ci(struct ch_str s, const char *prefix)
{
    size_t n = strlen(prefix);

    return s.len >= n && !strncasecmp(s.p, prefix, n);
}

static bool header_shown(struct ch_str name)
{
    /* Rate-limit headers tell the model when it may call again. */
    if (has_prefix_ci(name, "x-ratelimit-") || has_prefix_ci(name, "ratelimit-"))
        return true;
    for (size_t i = 0; i < CH_ARRAY_SIZE(shown_headers); i++)
        if (ch_str_eq_ci(name, shown_headers[i]))
            return true;
    return false;
}

static int on_http_headers(struct ch_curlm_req *req, const struct ch_curlm_head *head, void *data)
{
    struct http_call *h = data;
    struct ch_str name, value;
    size_t it = 0, shown = 0;
    struct ch_buf clean;
    char lname[64];

    (void)req;
    ch_buf_init(&clean, 3 * MAX_HEADER_VALUE_SHOWN);
    h->status = head->status;
    ctype_parse(ch_curlm_head_get(head, "content-type"), h->mime, sizeof(h->mime), h->charset, sizeof(h->charset));
    /* chela sends no Accept-Encoding and curl decodes nothing, so such a
     * body is compressed bytes whatever its type says: not shown as text. */
    value = ch_curlm_head_get(head, "content-encoding");
    if (value.p && value.len && !ch_str_eq_ci(value, "identity")) {
        ch_buf_reset(&clean);
        if (text_append_utf8(&clean, value.p, CH_MIN(value.len, sizeof(h->encoding) - 1)) == 0 && clean.data)
            snprintf(h->encoding, sizeof(h->encoding), "%s", clean.data);
        else
            snprintf(h->encoding, sizeof(h->encoding), "?");
    }
    while (ch_curlm_head_next(head, &it, &name, &value) && shown < MAX_SHOWN_HEADERS) {
        if (!header_shown(name) || name.len >= sizeof(lname))
            continue;
        for (size_t i = 0; i < name.len; i++)
            lname[i] = (char)(name.p[i] >= 'A' && name.p[i] <= 'Z' ? name.p[i] - 'A' + 'a' : name.p[i]);
        lname[name.len] = '\0';
        /* Header bytes are not promised to be UTF-8; JSON strings must be. */
        ch_buf_reset(&clean);
        if (text_append_utf8(&clean, value.p, CH_MIN(value.len, (size_t)MAX_HEADER_VALUE_SHOWN)))
            continue;
        json_object_set_new(h->headers, lname, json_string(clean.data ? clean.data : ""));
        ch_buf_appendf(&h->head_text, "%s: %s\n", lname, clean.data ? clean.data : "");
        shown++;
    }
    ch_buf_release(&clean);
    return 0;
}

static int on_http_data(struct ch_curlm_req *req, const char *p, size_t n, void *data)
{
    struct http_call *h = data;
    size_t room = h->body.max - h->body.len;

    (void)req;
    h->body_total += n;
    if (n > room) {
        ch_buf_append(&h->body, p, room);
        /* Enough for the model: stop the download instead of discarding. */
        h->truncated = true;
        return CH_ECANCELED;
    }
    return ch_buf_append(&h->body, p, n);
}

static void reply_response(struct http_call *h, const struct ch_curlm_result *res)
{
    enum body_kind kind = ctype_kind(h->mime);
    struct ch_buf out, text;
    json_t *j;
    int rc;

    if (kind == BODY_UNKNOWN)
        kind = body_sniff(h->body.data ? h->body.data : "", h->body.len);
    if (h->encoding[0])
        kind = BODY_BINARY;
    ch_buf_init(&out, h->body.max * 3 + 2 * HEAD_ROOM);
    ch_buf_init(&text, h->body.max * 3 + 16);
    rc = ch_buf_appendf(&out, "HTTP %ld\n%s\n", h->status, h->head_text.data ? h->head_text.data : "");
    if (rc == 0 && h->encoding[0] && h->body.len)
        rc = ch_buf_appendf(&out, "[body encoded with %s, which chela does not decode, not shown: %llu bytes%s]\n",
                            h->encoding, (unsigned long long)h->body_total, h->truncated ? " or more" : "");
    else if (rc == 0 && kind == BODY_BINARY && h->body.len)
        rc =
            ch_buf_appendf(&out, "[binary body of type %s not shown: %llu bytes%s]\n", h->mime[0] ? h->mime : "unknown",
                           (unsigned long long)h->body_total, h->truncated ? " or more" : "");
    else if (rc == 0 && h->body.len)
        rc = text_to_utf8(h->charset, h->body.data, h->body.len, &text);
    if (rc == 0 && text.len)
        rc = ch_buf_append(&out, text.data, text.len);
    if (rc == 0 && h->truncated)
        rc = ch_buf_appendf(&out, "\n[body truncated: the first %zu bytes shown%s]", h->body.len,
                            res->head && ch_curlm_head_get(res->head, "content-length").p ? "; content-length above"
                                                                                          : "");
    j = json_pack("{s:I, s:O, s:s%, s:b, s:I}", "status", (json_int_t)h->status, "headers", h->headers, "body",
                  kind == BODY_BINARY ? "" : (text.data ? text.data : ""), kind == BODY_BINARY ? (size_t)0 : text.len,
                  "truncated", h->truncated, "bodyBytes", (json_int_t)h->body_total);
    if (rc)
        ch_tool_call_replyf(h->call, true, "http_request: could not build the result: %s", ch_strerror(rc));
    if (rc) {
        json_decref(j);
    } else {
        ch_tool_call_reply(h->call, false, out.data, out.len, j); /* takes j */
    }
    ch_buf_release(&out);
    ch_buf_release(&text);
}

static void on_http_done(struct ch_curlm_req *req, const struct ch_curlm_result *res, void *data)
{
    struct http_call *h = data;

    (void)req;
    ch_tool_call_set_state(h->call, NULL);
    if (ch_tool_call_is_aborting(h->call))
        ch_tool_call_replyf(h->call, true, "http_request stopped"); /* the registry's text wins */
    else if (res->rc == 0 || (res->rc == CH_ECANCELED && h->truncated && res->head))
        reply_response(h, res);
    else if (res->rc == CH_ETIMEDOUT)
        ch_tool_call_replyf(h->call, true, "http_request to %s timed out (%s: %s)", h->url,
                            ch_curlm_timeout_name(res->timeout), res->msg);
    else
        ch_tool_call_replyf(h->call, true, "http_request to %s failed: %s%s%s", h->url, ch_strerror(res->rc),
                            res->msg[0] ? ": " : "", res->msg);
    http_call_free(h);
}

static void refuse_host(struct ch_tool_call *call, const struct ch_tools *t, const struct tool_url *u)
{
    struct ch_buf b;

    ch_buf_init(&b, 2048);
    ch_buf_appendf(&b,
                   "http_request refused: host \"%s\" (port %d) is not in "
                   "tools.http.allowHosts",
                   u->host, u->port);
    if (t->http_allow.n == 0) {
        ch_buf_append_str(&b, " (the list is empty, so http_request is disabled)");
    } else {
        ch_buf_append_str(&b, " (allowed:");
        for (size_t i = 0; i < t->http_allow.n; i++) {
            const struct host_pat *p = &t->http_allow.v[i];
            ch_buf_appendf(&b, "%s %s%s", i ? "," : "", p->wildcard ? "*." : "", p->host);
            if (p->port >= 0)
                ch_buf_appendf(&b, ":%d", p->port);
        }
        ch_buf_append_str(&b, ")");
    }
    ch_buf_append_str(&b, ". The operator can add the host to tools.http.allowHosts in the "
                          "chela configuration.");
    ch_tool_call_mark_refused(call);
    ch_tool_call_reply(call, true, b.data ? b.data : "http_request refused", b.len, NULL);
    ch_buf_release(&b);
}

/* Collect the request headers; 0, or a message in msg. */
static int collect_headers(const json_t *hdrs, struct ch_curlm_header *out, size_t *n, bool *has_ctype, char *msg,
                           size_t cap)
{
    const char *k;
    json_t *v;

    *n = 0;
    *has_ctype = false;
    if (json_object_size(hdrs) > MAX_REQ_HEADERS) {
        snprintf(msg, cap, "at most %d headers", MAX_REQ_HEADERS);
        return CH_EINVAL;
    }
    json_object_foreach((json_t *)hdrs, k, v)
    {
        for (size_t i = 0; i < CH_ARRAY_SIZE(forbidden_headers); i++) {
            if (!strcasecmp(k, forbidden_headers[i])) {
                snprintf(msg, cap, "header \"%s\" is set by chela and may not be given", k);
                return CH_EINVAL;
            }
        }
        *has_ctype |= !strcasecmp(k, "content-type");
        out[(*n)++] = (struct ch_curlm_header){k, json_string_value(v)};
    }
    return 0;
}

static int http_start(struct ch_tool_call *call, const json_t *in)
{
    struct ch_tools *t = ch_tool_call_tools(call);
    const char *method = json_string_value(json_object_get(in, "method"));
    const json_t *jbody = json_object_get(in, "body"), *jto = json_object_get(in, "timeout_ms");
    struct ch_curlm_header hdrs[MAX_REQ_HEADERS + 1];
    struct ch_curlm_request r = {0};
    struct http_call *h = NULL;
    struct tool_url u = {0};
    struct ch_error err = {0};
    char msg[400], *body = NULL;
    size_t nh = 0, body_len = 0;
    uint64_t remaining = ch_tool_call_remaining_ms(call), total;
    bool has_ctype;
    int rc;

    if (!method)
        method = jbody ? "POST" : "GET";
    rc = tool_url_parse(NULL, json_string_value(json_object_get(in, "url")), &u, msg, sizeof(msg));
    if (rc) {
        if (rc == CH_EINVAL)
            ch_tool_call_mark_refused(call);
        ch_tool_call_replyf(call, true, "http_request: %s", msg);
        return rc == CH_EINVAL ? 0 : rc;
    }
    if (!host_list_match(&t->http_allow, u.host, u.port)) {
        refuse_host(call, t, &u);
        goto out;
    }
    if (jbody && (!strcmp(method, "GET") || !strcmp(method, "HEAD"))) {
        ch_tool_call_mark_refused(call);
        ch_tool_call_replyf(call, true, "http_request: a %s request cannot have a body", method);
        goto out;
    }
    if (collect_headers(json_object_get(in, "headers"), hdrs, &nh, &has_ctype, msg, sizeof(msg))) {
        ch_tool_call_mark_refused(call);
        ch_tool_call_replyf(call, true, "http_request: %s", msg);
        goto out;
    }
    if (jbody) {
        /* A JSON value is sent as JSON text; a string as it is. */
        body = json_is_string(jbody) ? ch_strdup(json_string_value(jbody))
                                     : json_dumps(jbody, JSON_COMPACT | JSON_ENCODE_ANY);
        rc = CH_ENOMEM;
        if (!body)
            goto out;
        body_len = json_is_string(jbody) ? json_string_length(jbody) : strlen(body);
        if (body_len > MAX_BODY_BYTES) {
            ch_tool_call_mark_refused(call);
            ch_tool_call_replyf(call, true, "http_request: the body is larger than %d bytes", MAX_BODY_BYTES);
            rc = 0;
            goto out;
        }
        if (!has_ctype) {
            json_t *probe = json_is_string(jbody) ? json_loads(body, JSON_DECODE_ANY, NULL) : NULL;
            bool is_json = !json_is_string(jbody) || json_is_object(probe) || json_is_array(probe);
            json_decref(probe);
            hdrs[nh++] =
                (struct ch_curlm_header){"Content-Type", is_json ? "application/json" : "text/plain; charset=utf-8"};
        }
    }
    rc = CH_ENOMEM;
    h = ch_calloc(1, sizeof(*h));
    if (!h || !(h->url = ch_strdup(u.url)) || !(h->headers = json_object()))
        goto out;
    h->call = call;
    ch_buf_init(&h->body,
                t->max_result_bytes > 2 * HEAD_ROOM ? t->max_result_bytes - HEAD_ROOM : t->max_result_bytes / 2);
    ch_buf_init(&h->head_text, HEAD_ROOM);
    /* The registry's deadline is authoritative; curl's total is a backstop
     * just after it, or the model's own shorter timeout_ms. */
    total = jto ? CH_MIN((uint64_t)json_number_value(jto), remaining) : remaining + 1000;
    r.method = method;
    r.url = u.url;
    r.headers = hdrs;
    r.header_count = nh;
    r.body = body;
    r.body_len = body_len;
    r.body_mode = CH_CURLM_BODY_COPY;
    r.total_timeout_ms = (uint32_t)CH_MIN(total ? total : 1, (uint64_t)UINT32_MAX - 1);
    r.connect_timeout_ms = CH_MIN(r.total_timeout_ms, (uint32_t)CH_CURLM_DEF_CONNECT_TIMEOUT_MS);
    r.first_byte_timeout_ms = r.total_timeout_ms;
    r.idle_timeout_ms = CH_MIN(r.total_timeout_ms, (uint32_t)CH_CURLM_DEF_IDLE_TIMEOUT_MS);
    r.max_body_bytes = (size_t)1 << 40; /* we stop reading at our own cap */
    r.on_headers = on_http_headers;
    r.on_data = on_http_data;
    r.on_done = on_http_done;
    r.data = h;
    rc = ch_curlm_submit(t->curlm, &r, &h->req, &err);
    if (rc == CH_EINVAL || rc == CH_ECLOSED) {
        ch_tool_call_replyf(call, true, "http_request: %s", err.msg);
        rc = 0;
    }
    if (rc == 0 && h->req) {
        ch_tool_call_set_state(call, h);
        h = NULL;
    }
out:
    if (body)
        ch_wipe(body, body_len); /* it may hold a token */
    ch_free(body);
    http_call_free(h);
    tool_url_release(&u);
    return rc;
}

static void http_abort(struct ch_tool_call *call)
{
    struct http_call *h = ch_tool_call_state(call);

    if (h && h->req)
        ch_curlm_abort(h->req); /* on_http_done follows with CH_ECANCELED */
}

const struct ch_tool_spec tools_http_request_spec = {
    .name = "http_request",
    .description = "Send one HTTP request to an allowed host (tools.http.allowHosts) and get the status, "
                   "main response headers and the body (truncated when large). Use it to call APIs and "
                   "post callbacks, e.g. POST a JSON body with an Authorization: Bearer header. "
                   "Redirects are not followed.",
    .input_schema = "{\"type\":\"object\",\"properties\":{"
                    "\"method\":{\"type\":\"string\",\"enum\":[\"GET\",\"POST\",\"PUT\",\"PATCH\",\"DELETE\","
                    "\"HEAD\"],\"description\":\"default GET, or POST when a body is given\"},"
                    "\"url\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":8192,"
                    "\"description\":\"absolute http or https URL\"},"
                    "\"headers\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\","
                    "\"maxLength\":8192},\"description\":\"request headers, e.g. {\\\"Authorization\\\": "
                    "\\\"Bearer <token>\\\"}\"},"
                    "\"body\":{\"type\":[\"string\",\"object\",\"array\"],\"maxLength\":1048576,"
                    "\"description\":\"request body; an object or array is sent as JSON\"},"
                    "\"timeout_ms\":{\"type\":\"integer\",\"minimum\":100,\"maximum\":120000}"
                    "},\"required\":[\"url\"],\"additionalProperties\":false}",
    .start = http_start,
    .abort = http_abort,
};
