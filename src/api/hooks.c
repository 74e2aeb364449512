/*
 * hooks.c: the /hooks surface up to the body (OpenClaw spec section 3,
 * "Hooks"): configuration, which paths are hooks, the checks OpenClaw
 * makes in its order (query token 400, auth 401 / 429 after 20 failures in
 * 60 s, method 405, bare base 404, then size 413), and the per-outcome
 * counters /metrics shows.  Every refusal is counted and logged with its
 * reason: a webhook is never ignored silently.  The handlers that read the
 * body are in hooks_agent.c; delivery of results in hooks_deliver.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/hooks.h"

#define FAIL_LIMIT CH_HOOK_FAIL_LIMIT
#define FAIL_WINDOW_MS CH_HOOK_FAIL_WINDOW_MS
#define MAX_BASE_PATH 128

static const char *const reason_names[CH_HOOK_R__COUNT] = {
    "agent",       "wake",           "mapping",      "replay",      "completed",    "disabled",     "not_found",
    "method",      "token_in_query", "unauthorized", "throttled",   "too_large",    "invalid_json", "invalid",
    "session_key", "model",          "queue_full",   "unavailable", "storage_full", "internal",     "client_gone",
};

static const char *const dlv_names[CH_HOOK_D__COUNT] = {"queued", "invalid_json", "skipped", "failed", "webhook"};

const char *ch_hook_reason_name(enum ch_hook_reason r)
{
    return (unsigned)r < CH_HOOK_R__COUNT ? reason_names[r] : "?";
}

/* ---- configuration ---- */

static void config_release(struct ch_hooks *h)
{
    ch_free(h->base);
    ch_free(h->default_key);
    json_decref(h->prefixes);
    json_decref(h->mappings);
    json_decref(h->callback);
    h->base = h->default_key = NULL;
    h->prefixes = h->mappings = h->callback = NULL;
    memset(h->token_hash, 0, sizeof(h->token_hash));
    ch_wipe(h->token_pad, sizeof(h->token_pad));
    h->token_len = 0;
}

/* hooks.presets: ["gmail"] adds OpenClaw's Gmail mapping after the
 * configured ones, and <base>/gmail takes a batch of hooks.gmail.maxBytes
 * messages: OpenClaw's min(32 MiB, 100 x (3 x maxBytes + 8 KiB)). */
static int load_presets(const struct ch_config *c, struct ch_hooks *h)
{
    const json_t *presets = ch_config_get(c, "hooks.presets"), *p;
    size_t i;

    json_array_foreach(presets, i, p)
    {
        if (strcmp(json_string_value(p) ? json_string_value(p) : "", "gmail") || h->gmail_max_body)
            continue; /* the schema admits gmail alone; a repeat adds nothing */
        int64_t per = ch_config_int(c, "hooks.gmail.maxBytes", 20000);
        json_t *m = ch_hooks_gmail_preset(ch_config_str(c, "hooks.gmail.model", NULL),
                                          ch_config_str(c, "hooks.gmail.thinking", NULL));
        if (!m || json_array_append_new(h->mappings, m) != 0)
            return CH_ENOMEM;
        h->gmail_max_body = (size_t)CH_MIN(32LL * 1024 * 1024, 100 * (per * 3 + 8192));
    }
    return 0;
}

/* hooks.path: "/x[/y]" without a trailing slash; "/" alone is refused as
 * OpenClaw does (every path would be a hook). */
static int load_base(struct ch_hooks *h, const char *p, struct ch_error *err)
{
    static const char *const taken[] = {"/api", "/v1", "/health", "/healthz", "/ready", "/readyz", "/metrics"};
    size_t n = p ? strlen(p) : 0;

    while (n > 1 && p[n - 1] == '/')
        n--;
    if (n < 2 || p[0] != '/' || n > MAX_BASE_PATH)
        return ch_error_set(err, CH_EINVAL, "hooks.path must be an absolute path other than \"/\" (at most %d bytes)",
                            MAX_BASE_PATH);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] <= 0x20 || p[i] == '?' || p[i] == '#' || p[i] == 0x7f)
            return ch_error_set(err, CH_EINVAL, "hooks.path must not contain spaces, '?' or '#'");
    /* Hooks are matched before the route table: a base over the API's own
     * paths would take them over. */
    for (size_t i = 0; i < CH_ARRAY_SIZE(taken); i++) {
        size_t t = strlen(taken[i]);
        if (n >= t && !memcmp(p, taken[i], t) && (n == t || p[t] == '/'))
            return ch_error_set(err, CH_EINVAL, "hooks.path must not be under %s (the gateway's own paths)", taken[i]);
    }
    h->base = ch_malloc(n + 1);
    if (!h->base)
        return CH_ENOMEM;
    memcpy(h->base, p, n);
    h->base[n] = '\0';
    h->base_len = n;
    return 0;
}

static int load_config(struct ch_api *a, struct ch_hooks *h, struct ch_error *err)
{
    const struct ch_config *c = a->cfg;
    const char *tok = ch_config_str(c, "hooks.token", NULL), *dk;
    char canon[CH_SESSION_KEY_MAX + 1];
    const json_t *v;
    int rc;

    h->enabled = ch_config_bool(c, "hooks.enabled", false);
    if ((rc = load_base(h, ch_config_str(c, "hooks.path", "/hooks"), err)) != 0)
        return rc;
    h->has_token = tok && *tok;
    if (h->has_token) {
        size_t n = strlen(tok);
        ch_sha256_hex(tok, n, h->token_hash);
        if (n <= sizeof(h->token_pad)) {
            memcpy(h->token_pad, tok, n);
            h->token_len = n;
        }
    }
    h->max_body = (size_t)ch_config_size(c, "hooks.maxBodyBytes", 262144);
    h->allow_request_key = ch_config_bool(c, "hooks.allowRequestSessionKey", true);
    dk = ch_config_str(c, "hooks.defaultSessionKey", NULL);
    if (dk && *dk) {
        if (!ch_hooks_key_ok(dk))
            return ch_error_set(err, CH_EINVAL,
                                "hooks.defaultSessionKey must be 1-%d printable characters without "
                                "spaces",
                                CH_STORE_MAX_KEY_BYTES);
        /* Kept as written (the prefix check reads it so); runs go to its
         * canonical key, which must exist. */
        if (ch_api_session_key(dk, canon) != 0)
            return ch_error_set(err, CH_EINVAL,
                                "hooks.defaultSessionKey is not a session key: agent:<id>:<key>, or a key of at "
                                "most %d bytes as agent:main:<key>",
                                CH_SESSION_KEY_MAX);
        if (!(h->default_key = ch_strdup(dk)))
            return CH_ENOMEM;
    }
    /* OpenClaw's agent allowlist: chela's one agent is `main`, so the list
     * either admits every hook or none ([] admits none, "*" all). */
    v = ch_config_get(c, "hooks.allowedAgentIds");
    h->main_allowed = !json_is_array(v);
    for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
        struct ch_str id = ch_str_trim(ch_str_from(json_string_value(json_array_get(v, i))));
        h->main_allowed = h->main_allowed || ch_str_eq_cstr(id, "*") || ch_str_eq_ci(id, "main");
    }
    v = ch_config_get(c, "hooks.allowedSessionKeyPrefixes");
    h->prefixes = json_is_array(v) ? json_deep_copy(v) : json_array();
    v = ch_config_get(c, "hooks.mappings");
    h->mappings = json_is_array(v) ? json_deep_copy(v) : json_array();
    if (h->mappings && (rc = load_presets(c, h)) != 0)
        return rc;
    v = ch_config_get(c, "hooks.callback");
    h->callback = json_is_object(v) && json_object_size(v) ? json_deep_copy(v) : NULL;
    if (!h->prefixes || !h->mappings || (v && json_object_size(v) && !h->callback))
        return CH_ENOMEM;
    h->retry_max = (int)ch_config_int(c, "hooks.retry.maxAttempts", 3);
    h->retry_backoff_ms = ch_config_int(c, "hooks.retry.backoffMs", 5000);
    if (h->enabled && !h->has_token)
        ch_log_info("hooks: hooks.token is not set; hooks accept the gateway token and API tokens with the chat "
                    "scope");
    return ch_hooks_map_check(h->mappings, err);
}

int ch_hooks_new(struct ch_api *a, struct ch_error *err)
{
    struct ch_hooks *h = ch_calloc(1, sizeof(*h));
    int rc;

    if (!h)
        return CH_ENOMEM;
    ch_map_init(&h->fails);
    h->started_ms = ch_now_ms();
    a->hooks = h;
    rc = load_config(a, h, err);
    if (rc == 0)
        rc = ch_hooks_deliver_start(a);
    return rc; /* on failure ch_api_free frees a->hooks */
}

int ch_hooks_reload(struct ch_api *a, struct ch_error *err)
{
    struct ch_hooks *h = a->hooks, fresh;
    int rc;

    if (!h)
        return 0;
    /* Build the new settings aside; keep the old ones if they are bad. */
    memset(&fresh, 0, sizeof(fresh));
    rc = load_config(a, &fresh, err);
    if (rc) {
        config_release(&fresh);
        return rc;
    }
    config_release(h);
    h->enabled = fresh.enabled;
    h->base = fresh.base;
    h->base_len = fresh.base_len;
    h->has_token = fresh.has_token;
    memcpy(h->token_hash, fresh.token_hash, sizeof(h->token_hash));
    memcpy(h->token_pad, fresh.token_pad, sizeof(h->token_pad));
    h->token_len = fresh.token_len;
    ch_wipe(fresh.token_pad, sizeof(fresh.token_pad));
    h->max_body = fresh.max_body;
    h->gmail_max_body = fresh.gmail_max_body;
    h->allow_request_key = fresh.allow_request_key;
    h->main_allowed = fresh.main_allowed;
    h->default_key = fresh.default_key;
    h->prefixes = fresh.prefixes;
    h->mappings = fresh.mappings;
    h->callback = fresh.callback;
    h->retry_max = fresh.retry_max;
    h->retry_backoff_ms = fresh.retry_backoff_ms;
    return 0;
}

void ch_hooks_free(struct ch_api *a)
{
    struct ch_hooks *h = a->hooks;
    struct ch_map_entry *e;
    size_t it = 0;

    if (!h)
        return;
    ch_hooks_deliver_stop(a);
    while ((e = ch_map_next(&h->fails, &it)) != NULL)
        ch_free(e->value);
    ch_map_release(&h->fails);
    config_release(h);
    ch_free(h);
    a->hooks = NULL;
}

/* ---- counting and refusing ---- */

void ch_hooks_count(struct ch_api *a, const struct ch_http_req *r, bool accepted, enum ch_hook_reason why,
                    const char *detail)
{
    struct ch_hooks *h = a->hooks;

    if (!h || (unsigned)why >= CH_HOOK_R__COUNT)
        return;
    h->counts[accepted ? 0 : 1][why]++;
    if (!accepted && !r) /* the client is gone; its request is no longer readable */
        ch_log_warn("hooks: refused a request whose client left: %s%s%s", reason_names[why],
                    detail && *detail ? ": " : "", detail ? detail : "");
    else if (!accepted)
        ch_log_warn("hooks: refused %s %.*s from %s (request %s): %s%s%s", r->method_name,
                    (int)CH_MIN(r->path.len, (size_t)200), r->path.p, r->remote_addr, r->request_id, reason_names[why],
                    detail && *detail ? ": " : "", detail ? detail : "");
}

int ch_hooks_refuse(struct ch_api *a, struct ch_http_req *r, int status, enum ch_hook_reason why, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ch_hooks_count(a, r, false, why, msg);
    ch_http_respond_json(r, status, json_pack("{s:b, s:s}", "ok", 0, "error", msg));
    return CH_ECANCELED;
}

/* OpenClaw answers the pre-body refusals as plain text; so does chela. */
static int refuse_text(struct ch_api *a, struct ch_http_req *r, int status, enum ch_hook_reason why, const char *text)
{
    ch_hooks_count(a, r, false, why, NULL);
    ch_http_respond(r, status, "text/plain; charset=utf-8", text, strlen(text));
    return CH_ECANCELED;
}

/* The presented secret: Authorization: Bearer <t>, else x-openclaw-token
 * (OpenClaw's extractHookToken order). */
static bool find_secret(const struct ch_http_req *r, struct ch_str *out)
{
    const struct ch_str *h = ch_http_req_header(r, "authorization");

    if (h) {
        struct ch_str v = ch_str_trim(*h);
        if (v.len > 7 && ch_str_eq_ci((struct ch_str){v.p, 7}, "bearer ")) {
            *out = ch_str_trim((struct ch_str){v.p + 7, v.len - 7});
            if (out->len > 0)
                return true;
        }
    }
    h = ch_http_req_header(r, "x-openclaw-token");
    if (h) {
        *out = ch_str_trim(*h);
        return out->len > 0;
    }
    return false;
}

/*
 * The presented secret against hooks.token in time that depends on neither
 * the token's bytes nor its length: both zero-padded to the same size and
 * compared whole, lengths folded in.  A token longer than the pad, or a
 * presented secret longer than it, is compared by SHA-256 digest (the
 * digest costs ~6,000 instructions, a tenth of an accepted hook's loop
 * work once the body decode was made cheap).
 */
static bool token_matches(const struct ch_hooks *h, struct ch_str s)
{
    unsigned char pad[CH_HOOK_TOKEN_PAD] = {0};
    char hex[65];
    bool ok;

    if (h->token_len == 0 || s.len > sizeof(pad)) {
        ch_sha256_hex(s.p, s.len, hex);
        return ch_ct_eq(hex, h->token_hash, 64);
    }
    memcpy(pad, s.p, s.len);
    ok = ch_ct_eq(pad, h->token_pad, sizeof(pad)) & (s.len == h->token_len);
    ch_wipe(pad, sizeof(pad));
    return ok;
}

/*
 * hooks.token when set (compared in constant time, token_matches);
 * else the gateway's credentials: the gateway token or password, or an
 * API token with the chat scope (admin implies it).
 */
/* A missing secret is told apart from a wrong one: only a wrong one is a
 * guess and counts toward a lockout (check_auth). */
enum hook_auth { HOOK_AUTH_OK, HOOK_AUTH_MISSING, HOOK_AUTH_BAD };

static enum hook_auth authenticate(struct ch_api *a, struct ch_http_req *r)
{
    struct ch_hooks *h = a->hooks;
    struct ch_auth_entry *e;
    struct ch_str s;

    if (!find_secret(r, &s))
        return HOOK_AUTH_MISSING;
    if (h->has_token) {
        if (!token_matches(h, s))
            return HOOK_AUTH_BAD;
        r->token_name = "hooks.token";
        return HOOK_AUTH_OK;
    }
    e = ch_auth_find(a, s.p, s.len);
    if (!e || !(e->scopes & (CH_SCOPE_CHAT | CH_SCOPE_ADMIN)))
        return HOOK_AUTH_BAD;
    e->refs++; /* dropped by api_on_done, as for every API credential */
    r->owner_data = e;
    r->token_name = e->name;
    e->last_used_ms = ch_now_ms();
    if (e->from_db)
        e->dirty = true;
    return HOOK_AUTH_OK;
}

static int check_auth(struct ch_api *a, struct ch_http_req *r)
{
    struct ch_hooks *h = a->hooks;
    struct ch_hook_fail *f;
    int64_t now = ch_now_ms(), wait = 0;
    char ra[24], key[CH_AUTH_FAIL_KEY_MAX];
    enum hook_auth got = HOOK_AUTH_BAD;
    bool own;

    /* Checked before the token, like the API's lockout: while an address
     * is throttled even a right guess is refused, so guessing stays capped
     * at 20 a minute (OpenClaw checks only after a failure).  IPv6 counts
     * by /64; an address not tracked shares the overflow bucket. */
    ch_auth_fail_key(r->remote_addr, key, sizeof(key));
    f = ch_hook_fail_get(h, key, now);
    own = f != NULL;
    if (!f)
        f = ch_hook_fail_get(h, CH_AUTH_FAIL_OVERFLOW, now);
    if (f && f->count >= FAIL_LIMIT)
        wait = f->window_start_ms + FAIL_WINDOW_MS - now;
    /* With API credentials accepted here, the gateway-wide limiter applies
     * as well: hooks must not be a side door for guessing API tokens. */
    if (!h->has_token)
        wait = CH_MAX(wait, ch_auth_fail_check(a, r->remote_addr, now));
    if (wait <= 0)
        got = authenticate(a, r);
    if (got == HOOK_AUTH_OK) {
        if (own)
            ch_free(ch_map_del(&h->fails, key, strlen(key)));
        return 0;
    }
    if (wait <= 0) {
        a->metrics.auth_failures++;
        /* No secret guesses nothing: a plain 401, not counted, so a web
         * page cannot lock the hooks' caller out with empty POSTs
         * (OpenClaw: AUTH_TOKEN_MISSING is not a failed attempt). */
        f = got == HOOK_AUTH_MISSING ? NULL : ch_hook_fail_record(h, key, now);
        if (got == HOOK_AUTH_BAD && !h->has_token)
            ch_auth_fail_record(a, r->remote_addr, now);
        if (!f || f->count <= FAIL_LIMIT) {
            ch_http_add_header(r, "WWW-Authenticate", "Bearer");
            return refuse_text(a, r, 401, CH_HOOK_R_UNAUTHORIZED, "Unauthorized");
        }
        wait = f->window_start_ms + FAIL_WINDOW_MS - now;
    }
    snprintf(ra, sizeof(ra), "%lld", (long long)CH_MAX(1, (wait + 999) / 1000));
    ch_http_add_header(r, "Retry-After", ra);
    return refuse_text(a, r, 429, CH_HOOK_R_THROTTLED, "Too Many Requests");
}

/* ---- which requests are hooks ---- */

static bool under_base(const struct ch_hooks *h, struct ch_str path)
{
    if (path.len < h->base_len || memcmp(path.p, h->base, h->base_len) != 0)
        return false;
    return path.len == h->base_len || path.p[h->base_len] == '/';
}

struct ch_str ch_hooks_subpath(const struct ch_api *a, const struct ch_http_req *r)
{
    struct ch_str s = {r->path.p, r->path.len};

    if (!a->hooks || !under_base(a->hooks, s))
        return (struct ch_str){"", 0};
    s.p += a->hooks->base_len;
    s.len -= a->hooks->base_len;
    while (s.len && s.p[0] == '/') { /* OpenClaw: subPath.replace(/^\/+/, "") */
        s.p++;
        s.len--;
    }
    return s;
}

/* The table row (api.c routes[]) that gives handler and metrics label. */
static const struct ch_route *hook_route(const struct ch_api *a, ch_http_request_cb handler)
{
    for (size_t i = 0; i < a->router.count; i++)
        if ((a->router.routes[i].flags & R_HOOK) && a->router.routes[i].handler == handler)
            return &a->router.routes[i];
    return NULL;
}

static bool query_has_token(const struct ch_http_req *r)
{
    char tmp[8];
    int rc = ch_http_req_query(r, "token", tmp, sizeof(tmp));
    return rc == 0 || rc == CH_E_TOO_LARGE;
}

/* A chunked body that outgrew its cap while being read (the http layer
 * closes the connection after this answer). */
static void too_large(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    struct ch_hooks *h = a->hooks;
    bool gmail = h->gmail_max_body && ch_str_eq_cstr(ch_hooks_subpath(a, r), "gmail");

    ch_hooks_refuse(a, r, 413, CH_HOOK_R_TOO_LARGE, "payload too large (%s is %zu)",
                    gmail ? "the limit from hooks.gmail.maxBytes" : "hooks.maxBodyBytes",
                    gmail ? h->gmail_max_body : h->max_body);
}

int ch_hooks_on_head(struct ch_api *a, struct ch_http_req *r, size_t *max_body)
{
    struct ch_hooks *h = a->hooks;
    const struct ch_route *rt;
    const struct ch_str *cl;
    struct ch_str sub;
    uint64_t len;
    size_t cap;

    if (!h || !under_base(h, r->path))
        return CH_ENOTFOUND;
    /* Disabled: 404 for every method, as the route table would answer,
     * but counted, so a sender still posting to a disabled gateway shows.
     * An upgrade stays the WebSocket protocol's, as on any other path. */
    if (!h->enabled && ch_http_req_wants_upgrade(r))
        return CH_ENOTFOUND;
    sub = ch_hooks_subpath(a, r);
    if (ch_str_eq_cstr(sub, "agent"))
        rt = hook_route(a, ch_hooks_agent);
    else if (ch_str_eq_cstr(sub, "wake"))
        rt = hook_route(a, ch_hooks_wake);
    else
        rt = hook_route(a, ch_hooks_mapped);
    if (!rt) {
        ch_http_respond_error(r, 500, "internal", "the hook routes are missing from the route table");
        return CH_ECANCELED;
    }
    r->route = rt;
    r->route_label = rt->pattern;
    r->param_count = 0;
    if (!h->enabled) {
        ch_hooks_count(a, r, false, CH_HOOK_R_DISABLED, NULL);
        ch_http_respond_error(r, 404, "not_found", "no route for %.*s; hooks are disabled (hooks.enabled)",
                              (int)CH_MIN(r->path.len, (size_t)100), r->path.p);
        return CH_ECANCELED;
    }
    if (query_has_token(r))
        return refuse_text(a, r, 400, CH_HOOK_R_TOKEN_IN_QUERY,
                           "Hook token must be provided via Authorization: Bearer <token> or X-OpenClaw-Token header "
                           "(query parameters are not allowed).");
    if (check_auth(a, r) != 0)
        return CH_ECANCELED;
    if (r->method != CH_M_POST) {
        ch_http_add_header(r, "Allow", "POST");
        return refuse_text(a, r, 405, CH_HOOK_R_METHOD, "Method Not Allowed");
    }
    if (sub.len == 0)
        return refuse_text(a, r, 404, CH_HOOK_R_NOT_FOUND, "Not Found");
    /* A declared oversize body is refused before a byte of it is read; a
     * chunked one that grows past the cap is refused when it does
     * (too_large), in the same shape and counted the same way. */
    cap = h->gmail_max_body && ch_str_eq_cstr(sub, "gmail") ? h->gmail_max_body : h->max_body;
    cl = ch_http_req_header(r, "content-length");
    if (cl && ch_str_to_u64(ch_str_trim(*cl), UINT64_MAX, &len) == 0 && len > cap)
        return ch_hooks_refuse(a, r, 413, CH_HOOK_R_TOO_LARGE, "payload too large (%s is %zu)",
                               cap == h->max_body ? "hooks.maxBodyBytes" : "the limit from hooks.gmail.maxBytes", cap);
    *max_body = cap;
    ch_http_req_on_too_large(r, too_large, a);
    return 0;
}

/* ---- /metrics ---- */

void ch_hooks_metrics(struct ch_api *a, struct ch_buf *b)
{
    struct ch_hooks *h = a->hooks;

    if (!h)
        return;
    ch_buf_append_str(b, "# HELP chela_hook_requests_total Hook requests by outcome and reason.\n"
                         "# TYPE chela_hook_requests_total counter\n");
    for (int i = 0; i < CH_HOOK_R__COUNT; i++) {
        bool acc = i <= CH_HOOK_R_COMPLETED;
        ch_buf_appendf(b, "chela_hook_requests_total{outcome=\"%s\",reason=\"%s\"} %llu\n",
                       acc ? "accepted" : "refused", reason_names[i], (unsigned long long)h->counts[acc ? 0 : 1][i]);
    }
    ch_buf_append_str(b, "# HELP chela_hook_deliveries_total Results of ended hook runs by delivery outcome.\n"
                         "# TYPE chela_hook_deliveries_total counter\n");
    for (int i = 0; i < CH_HOOK_D__COUNT; i++)
        ch_buf_appendf(b, "chela_hook_deliveries_total{result=\"%s\"} %llu\n", dlv_names[i],
                       (unsigned long long)h->deliveries[i]);
    ch_buf_appendf(b,
                   "# HELP chela_hook_deliveries_recovered_total Callbacks queued at start for runs that ended "
                   "before a crash.\n# TYPE chela_hook_deliveries_recovered_total counter\n"
                   "chela_hook_deliveries_recovered_total %llu\n",
                   (unsigned long long)h->recovered);
}
