/*
 * api.c: the route table and the middleware chain, in the order issue #2
 * fixes: request id (done by the http layer), IP allowlist, CORS,
 * authentication, scope check, rate limit, then the handler.  Everything
 * up to the rate limit runs in on_head, before a body byte is read, so an
 * unauthenticated client cannot make the gateway buffer a body.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "api/hooks.h"
#include "api/openai.h"
#include "api/outbox_int.h"

static const struct ch_route routes[] = {
    /* OpenAI-compatible (openai_compat.c); off unless enabled in config. */
    {CH_M_POST, "/v1/chat/completions", ch_openai_completions, CH_SCOPE_CHAT | R_JSON | R_OPENAI, 20 * 1024 * 1024},
    {CH_M_POST, "/tools/invoke", ch_tools_invoke, CH_SCOPE_CHAT, 2 * 1024 * 1024},
    {CH_M_POST, "/v1/embeddings", ch_openai_embeddings, CH_SCOPE_CHAT | R_JSON | R_OPENAI, 8 * 1024 * 1024},
    {CH_M_POST, "/v1/responses", ch_openai_responses, CH_SCOPE_CHAT | R_JSON | R_OPENAI, 20 * 1024 * 1024},
    {CH_M_GET, "/v1/models", ch_openai_models, CH_SCOPE_READ | R_OPENAI, 0},
    {CH_M_GET, "/v1/models/*", ch_openai_model, CH_SCOPE_READ | R_OPENAI, 0},
    {CH_M_GET, "/health", ch_health_live, R_PUBLIC, 0},
    {CH_M_GET, "/healthz", ch_health_live, R_PUBLIC, 0},
    {CH_M_GET, "/api/health", ch_health_live, R_PUBLIC, 0},
    {CH_M_GET, "/ready", ch_health_ready, R_PUBLIC, 0},
    {CH_M_GET, "/readyz", ch_health_ready, R_PUBLIC, 0},
    {CH_M_GET, "/startup", ch_health_startup, R_PUBLIC, 0},
    {CH_M_GET, "/startupz", ch_health_startup, R_PUBLIC, 0},
    {CH_M_GET, "/health/detail", ch_health_detail, CH_SCOPE_READ, 0},
    {CH_M_GET, "/metrics", ch_metrics_handler, CH_SCOPE_READ | R_METRICS, 0},
    {CH_M_GET, "/api/v1/tokens", ch_tokens_rest_list, CH_SCOPE_ADMIN, 0},
    {CH_M_POST, "/api/v1/tokens", ch_tokens_rest_create, CH_SCOPE_ADMIN | R_JSON, 64 * 1024},
    {CH_M_DELETE, "/api/v1/tokens/:name", ch_tokens_rest_delete, CH_SCOPE_ADMIN, 0},
    {CH_M_POST, "/api/v1/chat", ch_rest_chat, CH_SCOPE_CHAT | R_JSON, 0},
    {CH_M_POST, "/api/v1/chat/stream", ch_rest_chat_stream, CH_SCOPE_CHAT | R_JSON, 0},
    {CH_M_GET, "/api/v1/sessions", ch_rest_sessions_list, CH_SCOPE_READ, 0},
    {CH_M_GET, "/api/v1/sessions/:key", ch_rest_sessions_show, CH_SCOPE_READ, 0},
    {CH_M_DELETE, "/api/v1/sessions/:key", ch_rest_sessions_delete, CH_SCOPE_ADMIN, 0},
    {CH_M_POST, "/api/v1/sessions/:key/reset", ch_rest_sessions_reset, CH_SCOPE_ADMIN, 4096},
    {CH_M_POST, "/sessions/:key/kill", ch_rest_sessions_kill, CH_SCOPE_ADMIN, 4096},
    {CH_M_GET, "/sessions/:key/history", ch_rest_sessions_history, CH_SCOPE_READ, 0},
    {CH_M_GET, "/api/v1/conversations", ch_rest_conversations_list, CH_SCOPE_READ, 0},
    {CH_M_GET, "/api/v1/conversations/:id", ch_rest_conversations_show, CH_SCOPE_READ, 0},
    {CH_M_DELETE, "/api/v1/conversations/:id", ch_rest_conversations_delete, CH_SCOPE_ADMIN, 0},
    {CH_M_GET, "/api/v1/models", ch_rest_models, CH_SCOPE_READ, 0},
    {CH_M_GET, "/api/v1/runs", ch_rest_runs_list, CH_SCOPE_READ, 0},
    {CH_M_GET, "/api/v1/runs/:id", ch_rest_runs_get, CH_SCOPE_READ, 0},
    {CH_M_POST, "/api/v1/runs/:id/abort", ch_rest_runs_abort, CH_SCOPE_CHAT, 4096},
    /* The outbox and outgoing webhooks (rest_deliveries.c, issue #4 items 2-3). */
    {CH_M_GET, "/api/v1/deliveries", ch_rest_deliveries_list, CH_SCOPE_ADMIN, 0},
    {CH_M_GET, "/api/v1/deliveries/:id", ch_rest_deliveries_get, CH_SCOPE_ADMIN, 0},
    {CH_M_POST, "/api/v1/deliveries/:id/retry", ch_rest_deliveries_retry, CH_SCOPE_ADMIN, 4096},
    {CH_M_GET, "/api/v1/webhooks", ch_rest_webhooks_list, CH_SCOPE_ADMIN, 0},
    {CH_M_POST, "/api/v1/webhooks", ch_rest_webhooks_create, CH_SCOPE_ADMIN | R_JSON, 64 * 1024},
    {CH_M_DELETE, "/api/v1/webhooks/:id", ch_rest_webhooks_delete, CH_SCOPE_ADMIN, 0},
    /* OpenClaw device pairing (rest_devices.c, issue #5). */
    {CH_M_GET, "/api/v1/devices", ch_rest_devices_list, CH_SCOPE_ADMIN, 0},
    {CH_M_POST, "/api/v1/devices/:id/approve", ch_rest_devices_approve, CH_SCOPE_ADMIN, 4096},
    {CH_M_POST, "/api/v1/devices/:id/reject", ch_rest_devices_reject, CH_SCOPE_ADMIN, 4096},
    {CH_M_DELETE, "/api/v1/devices/:id", ch_rest_devices_remove, CH_SCOPE_ADMIN, 0},
    /* Hooks (hooks*.c, issue #4 item 1).  ch_hooks_on_head matches them
     * under hooks.path (so a configured path works) with hooks.token auth;
     * reached through the router they are answered 404 (hooks disabled,
     * or outside the configured path).  Any method: a GET on a disabled
     * hook path is a 404 too, not a 405. */
    {CH_HOOK_METHODS, "/hooks/agent", ch_hooks_agent, R_HOOK, 0},
    {CH_HOOK_METHODS, "/hooks/wake", ch_hooks_wake, R_HOOK, 0},
    {CH_HOOK_METHODS, "/hooks/*", ch_hooks_mapped, R_HOOK, 0},
    /* Sends and skills (rest_send.c, rest_skills.c, issue #4 item 4). */
    {CH_M_POST, "/api/v1/send", ch_rest_send, CH_SCOPE_SEND | R_JSON, 0},
    {CH_M_GET, "/api/v1/skills", ch_rest_skills, CH_SCOPE_READ, 0},
    /* Seed 004's Django client (docs/compatibility.md). */
    {CH_M_POST, "/api/messages/send", ch_rest_messages_send, CH_SCOPE_SEND | R_JSON, 0},
    {CH_M_POST, "/api/messages/broadcast", ch_rest_messages_broadcast, CH_SCOPE_SEND | R_JSON, 0},
    {CH_M_GET, "/api/sessions/:id", ch_rest_sessions_show, CH_SCOPE_READ, 0},
    {CH_M_POST, "/api/sessions/:id/reset", ch_rest_seed_session_reset, CH_SCOPE_ADMIN, 4096},
};

/*
 * A middleware refusal in the shape the route's clients parse: the common
 * {"error","message"}, or OpenAI's {error:{message,type,code}} on /v1.
 */
static void refuse(struct ch_http_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void refuse(struct ch_http_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (r->route && (r->route->flags & R_OPENAI))
        ch_openai_error(r, status,
                        status == 401   ? "authentication_error"
                        : status == 403 ? "permission_error"
                        : status == 429 ? "rate_limit_error"
                                        : "invalid_request_error",
                        code, "%s", msg);
    else
        ch_http_respond_error(r, status, code, "%s", msg);
}

static const char *scope_name(unsigned need)
{
    if (need & CH_SCOPE_ADMIN)
        return "admin";
    if (need & CH_SCOPE_READ)
        return "read";
    if (need & CH_SCOPE_SEND)
        return "send";
    return "chat";
}

/* The presented secret: Authorization: Bearer <t>, else x-openclaw-token. */
static bool find_secret(const struct ch_http_req *r, struct ch_str *out)
{
    const struct ch_str *h = ch_http_req_header(r, "authorization");

    if (h) {
        struct ch_str v = ch_str_trim(*h);
        if (v.len > 7 && ch_str_eq_ci((struct ch_str){v.p, 7}, "bearer ")) {
            *out = ch_str_trim((struct ch_str){v.p + 7, v.len - 7});
            return out->len > 0;
        }
    }
    h = ch_http_req_header(r, "x-openclaw-token");
    if (h) {
        *out = ch_str_trim(*h);
        return out->len > 0;
    }
    return false;
}

static bool query_has_token(const struct ch_http_req *r)
{
    char tmp[8];
    int rc = ch_http_req_query(r, "token", tmp, sizeof(tmp));
    return rc == 0 || rc == CH_E_TOO_LARGE;
}

/*
 * A presented secret that matches nothing counts toward the address's
 * lockout; a request without one does not (OpenClaw: AUTH_TOKEN_MISSING is
 * not a failed attempt).  It guesses nothing, and counting it would let any
 * web page the user opens lock the user's own token out with a few
 * credential-less GETs to 127.0.0.1.
 */
static int refuse_auth(struct ch_api *a, struct ch_http_req *r, int64_t now, bool presented)
{
    a->metrics.auth_failures++;
    if (presented)
        ch_auth_fail_record(a, r->remote_addr, now);
    ch_http_add_header(r, "WWW-Authenticate", "Bearer");
    refuse(r, 401, "unauthorized",
           "missing, invalid, expired or revoked token; send it as Authorization: Bearer <token>");
    return CH_ECANCELED;
}

/* Authentication, scope and rate limit for a route that needs a token. */
static int authorize(struct ch_api *a, struct ch_http_req *r, unsigned flags)
{
    int64_t now = ch_now_ms(), wait;
    struct ch_auth_entry *e;
    struct ch_str secret;
    unsigned need = flags & R_SCOPES;

    if (query_has_token(r)) {
        refuse(r, 400, "token_in_query",
               "tokens are not accepted in the query string; send Authorization: Bearer <token> "
               "or x-openclaw-token: <token>");
        return CH_ECANCELED;
    }
    wait = ch_auth_fail_check(a, r->remote_addr, now);
    if (wait > 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", (long long)((wait + 999) / 1000));
        ch_http_add_header(r, "Retry-After", ra);
        refuse(r, 429, "too_many_failed_attempts",
               "too many failed authentication attempts from this address; retry in %s s", ra);
        return CH_ECANCELED;
    }
    if (!find_secret(r, &secret))
        return refuse_auth(a, r, now, false);
    e = ch_auth_find(a, secret.p, secret.len);
    if (!e)
        return refuse_auth(a, r, now, true);
    e->refs++;
    r->owner_data = e;
    r->token_name = e->name;
    e->last_used_ms = now;
    if (e->from_db)
        e->dirty = true;
    if (need && !(e->scopes & CH_SCOPE_ADMIN) && !(e->scopes & need)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "token '%s' lacks scope '%s', which this route needs", e->name, scope_name(need));
        if (r->route->flags & R_OPENAI) {
            refuse(r, 403, "forbidden", "%s", msg);
            return CH_ECANCELED;
        }
        ch_http_respond_json(
            r, 403,
            json_pack("{s:s, s:s, s:s}", "error", "forbidden", "message", msg, "missingScope", scope_name(need)));
        return CH_ECANCELED;
    }
    if (ch_rate_check(a, r, e) != 0)
        return CH_ECANCELED;
    return 0;
}

static int api_on_head(struct ch_http_req *r, size_t *max_body, void *data)
{
    struct ch_api *a = data;
    unsigned allowed = 0;
    const struct ch_route *rt;
    int m;

    if (ch_security_check_ip(a, r) != 0)
        return CH_ECANCELED;
    /* Hooks (hooks.c) first, as in OpenClaw's routing: under hooks.path
     * they have their own token (hooks.token), refusals and body cap. */
    if ((m = ch_hooks_on_head(a, r, max_body)) != CH_ENOTFOUND)
        return m;
    /* OpenClaw WebSocket (issue #5): an upgrade on ANY path goes to the WS
     * protocol before route matching and before HTTP auth, because that
     * protocol authenticates in its own `connect` request.  api_on_request
     * hands it over (r->route stays NULL). */
    if (ch_http_req_wants_upgrade(r)) {
        r->route_label = "ws";
        *max_body = 0;
        return 0;
    }
    if (r->method == CH_M_OPTIONS && ch_security_preflight(a, r) == 0)
        return CH_ECANCELED;
    m = ch_router_match(&a->router, r->method, r->path, r, &allowed);
    if (m == CH_ROUTE_NOT_FOUND) {
        ch_http_respond_error(r, 404, "not_found", "no route for %.*s; see docs/compatibility.md",
                              (int)CH_MIN(r->path.len, (size_t)100), r->path.p);
        return CH_ECANCELED;
    }
    if (m == CH_ROUTE_BAD_METHOD) {
        char allow[64];
        ch_http_methods_format(allowed, allow, sizeof(allow));
        ch_http_add_header(r, "Allow", allow);
        ch_http_respond_error(r, 405, "method_not_allowed", "%s is not allowed here; allowed: %s", r->method_name,
                              allow);
        return CH_ECANCELED;
    }
    rt = r->route;
    r->route_label = rt->pattern;
    if (rt->flags & R_HOOK) { /* hooks disabled, or not under hooks.path */
        ch_http_respond_error(r, 404, "not_found", "no route for %.*s; hooks are %s",
                              (int)CH_MIN(r->path.len, (size_t)100), r->path.p,
                              a->hooks && a->hooks->enabled ? "served under hooks.path" : "disabled (hooks.enabled)");
        return CH_ECANCELED;
    }
    ch_security_cors_headers(a, r);
    if (!(rt->flags & R_PUBLIC) && !((rt->flags & R_METRICS) && a->metrics_public)) {
        if (authorize(a, r, rt->flags) != 0)
            return CH_ECANCELED;
    }
    if (rt->flags & R_JSON) {
        const struct ch_str *ct = ch_http_req_header(r, "content-type");
        if (!ct || !ch_str_has_prefix(ch_str_trim(*ct), "application/json")) {
            refuse(r, 415, "unsupported_media_type", "send the body as Content-Type: application/json");
            return CH_ECANCELED;
        }
    }
    /* A route's own cap wins (OpenClaw's 20 MB for /v1, which carries
     * images; 2 MB for /tools/invoke), unless the operator set the global
     * one below its default: then that caps every route.  Only
     * authenticated callers get this far. */
    if (rt->max_body && a->max_body >= (size_t)ch_limit_def_get(CH_LIMIT_MAX_BODY_BYTES)->def)
        *max_body = rt->max_body;
    else
        *max_body = rt->max_body ? CH_MIN(rt->max_body, a->max_body) : a->max_body;
    return 0;
}

static void api_on_request(struct ch_http_req *r, void *data)
{
    if (!r->route && ch_http_req_wants_upgrade(r)) { /* see api_on_head */
        ch_oc_ws_upgrade(r, data);
        return;
    }
    r->route->handler(r, data);
}

static void api_on_done(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    uint64_t lat = ch_mono_ns() - r->start_ns;
    char st[8], bytes[24], us[24];

    ch_metrics_observe(a, r, lat);
    if (a->access_log && ch_log_enabled(CH_LOG_INFO)) {
        char path[256];
        size_t n = CH_MIN(r->path.len, sizeof(path) - 1);
        memcpy(path, r->path.p, n);
        path[n] = '\0';
        snprintf(st, sizeof(st), "%d", r->status);
        snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)r->bytes_out);
        snprintf(us, sizeof(us), "%llu", (unsigned long long)(lat / 1000));
        ch_log_kv(CH_LOG_INFO, "access", "id", r->request_id, "method", r->method_name, "path", path, "status", st,
                  "bytes", bytes, "latency_us", us, "token", r->token_name ? r->token_name : "-", "addr",
                  r->remote_addr, (const char *)NULL);
    }
    if (a->audit_on && r->token_name)
        ch_audit_record(a, r, lat);
    if (r->owner_data) {
        ch_auth_entry_unref(r->owner_data);
        r->owner_data = NULL;
        r->token_name = NULL;
    }
}

void ch_api_http_opts(struct ch_api *a, struct ch_http_server_opts *o)
{
    o->limits = a->limits;
    o->on_head = api_on_head;
    o->on_request = api_on_request;
    o->on_done = api_on_done;
    o->data = a;
}

void ch_api_attach_server(struct ch_api *a, struct ch_http_server *s)
{
    a->server = s;
}

static void on_tick(void *data)
{
    struct ch_api *a = data;
    if (!a->stopped) {
        ch_auth_tick(a);
        ch_openai_flush_usage(a);
        ch_retention_tick(a);
    }
}

static void apply_config(struct ch_api *a)
{
    a->max_body =
        (size_t)ch_config_size(a->cfg, "api.security.maxBodySize", (uint64_t)a->limits->v[CH_LIMIT_MAX_BODY_BYTES]);
    a->metrics_public = ch_config_bool(a->cfg, "metrics.public", false);
    a->access_log = ch_config_bool(a->cfg, "log.access", true);
}

int ch_api_new(const struct ch_api_opts *o, struct ch_api **out, struct ch_error *err)
{
    struct ch_api *a;
    int rc = CH_ENOMEM;

    a = ch_calloc(1, sizeof(*a));
    if (!a)
        goto out;
    a->net = o->net;
    a->store = o->store;
    a->cfg = o->cfg;
    a->limits = o->limits;
    a->agent = o->agent;
    a->usage_baseline = o->usage_baseline;
    a->requests_baseline = o->requests_baseline;
    a->started_ms = ch_now_ms();
    a->audit_on = true;
    a->router.routes = routes;
    a->router.count = CH_ARRAY_SIZE(routes);
    a->router.memo = &a->route_memo;
    a->state_dir = ch_strdup(o->state_dir ? o->state_dir : "");
    a->audit = ch_calloc(1, sizeof(*a->audit));
    if (!a->state_dir || !a->audit)
        goto out;
    if (o->local_token && *o->local_token)
        ch_sha256_hex(o->local_token, strlen(o->local_token), a->local_hash);
    apply_config(a);
    if ((rc = ch_security_init(a, err)) != 0 || (rc = ch_auth_init(a)) != 0 || (rc = ch_rate_init(a)) != 0 ||
        (rc = ch_metrics_init(a)) != 0 || (rc = ch_auth_load_config(a)) != 0 || (rc = ch_hooks_new(a, err)) != 0 ||
        (rc = ch_webhooks_check_config(a->cfg, err)) != 0 || (rc = ch_oc_new(a)) != 0)
        goto out;
    if (a->net) {
        ch_net_on_tick(a->net, on_tick, a);
        ch_net_on_flush(a->net, ch_audit_flush, a);
    }
    rc = 0;
out:
    if (rc) {
        ch_api_free(a);
        a = NULL;
    }
    *out = a;
    return rc;
}

int ch_api_reload(struct ch_api *a, const struct ch_config *cfg, struct ch_error *err)
{
    struct ch_security fresh = {0}, old = a->sec;
    int rc;

    /* A configured webhook that could never be queued (its headers over
     * what the store keeps) is refused here as at start, not dropped at
     * every event. */
    if ((rc = ch_webhooks_check_config(cfg, err)) != 0)
        return rc;
    a->cfg = cfg;
    a->sec = fresh;
    rc = ch_security_init(a, err);
    if (rc) {
        ch_security_release(&a->sec);
        a->sec = old;
        return rc;
    }
    ch_security_release(&old);
    apply_config(a);
    ch_rate_release(&a->rate);
    if ((rc = ch_rate_init(a)) != 0 || (rc = ch_hooks_reload(a, err)) != 0)
        return rc;
    return ch_auth_load_config(a);
}

void ch_api_tokens_take(struct ch_api *a, struct ch_token_list *list)
{
    ch_auth_replace_db(a, list);
}

void ch_api_begin_shutdown(struct ch_api *a)
{
    a->shutting_down = true;
    ch_oa_proc_shutdown(a); /* the PDF readers */
    ch_oc_shutdown(a);      /* WS clients: `shutdown`, then close 1012, before the HTTP drain */
}

void ch_api_stop(struct ch_api *a)
{
    ch_oc_shutdown(a); /* WS clients: `shutdown`, then close 1012 */
    ch_auth_tick(a);   /* last-used write-back */
    ch_openai_flush_usage(a);
    ch_audit_flush(a);
    a->stopped = true;
}

void ch_api_free(struct ch_api *a)
{
    if (!a)
        return;
    ch_oc_free(a);
    ch_hooks_free(a);
    ch_auth_release(a);
    ch_rate_release(&a->rate);
    ch_security_release(&a->sec);
    ch_metrics_release(&a->metrics);
    ch_openai_release(a);
    ch_free(a->audit);
    ch_free(a->state_dir);
    ch_free(a);
}

int ch_api_json_body(struct ch_http_req *r, json_t **out)
{
    json_error_t jerr;
    json_t *v = ch_llm_json_loadb(r->body.data ? r->body.data : "", r->body.len, JSON_REJECT_DUPLICATES, &jerr);

    if (!v || !json_is_object(v)) {
        if (v)
            json_decref(v);
        ch_http_respond_error(r, 400, "invalid_request", "the body must be a JSON object (%s at line %d, column %d)",
                              v ? "not an object" : jerr.text, jerr.line, jerr.column);
        *out = NULL;
        return CH_EINVAL;
    }
    *out = v;
    return 0;
}
