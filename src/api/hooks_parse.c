/*
 * hooks_parse.c: a hook body -> a validated run request (OpenClaw's
 * normalizeAgentPayload and resolveHookSessionKey, spec section 3).  Like
 * OpenClaw, unknown keys are ignored and loosely typed optional fields
 * fall back to their defaults; unlike it, the message is never trimmed or
 * wrapped (seed 000's text must reach the model byte for byte), and a
 * caller's sessionKey is allowed by default (hooks.allowRequestSessionKey).
 * Every refusal here is a 400 {"ok":false,"error":...}, counted and logged.
 */
#include <string.h>

#include "api/hooks.h"
#include "providers/client.h"

#define MAX_NAME 256
#define MAX_CHANNEL 64
#define MAX_TO 512
#define MAX_THINKING 32
#define MAX_IDEM 1024
#define MAX_URL 2048
#define MAX_CB_HEADERS 32
#define MAX_CB_HEADER_VALUE 8192
#define MAX_SECRET 1024
#define MAX_TIMEOUT_S 86400
/* A rendered mapping field, before the field's own bound applies. */
#define MAX_FIELD (MAX_TO + MAX_NAME + CH_STORE_MAX_KEY_BYTES)
/* A rendered text that is not UTF-8 (positive: no CH_E* code means it). */
#define NOT_UTF8 1
/* A rendered mapping message: the store's bound on one message, halved
 * as the agent does for run messages. */
#define MAX_MESSAGE (CH_STORE_MAX_CONTENT_BYTES / 2)

void ch_hook_in_release(struct ch_hook_in *in)
{
    ch_free(in->message);
    ch_free(in->message_json);
    ch_free(in->session_key);
    ch_free(in->model);
    ch_free(in->idem);
    json_decref(in->hook);
    memset(in, 0, sizeof(*in));
}

/* A string member trimmed of white space, or NULL when absent, not a
 * string, or blank (OpenClaw's `typeof x === "string" && x.trim()`). */
static char *opt_trimmed(const json_t *body, const char *key, size_t max, bool *too_long)
{
    const json_t *v = json_object_get(body, key);
    struct ch_str s;

    if (!json_is_string(v))
        return NULL;
    s = ch_str_trim(ch_str_from(json_string_value(v)));
    while (s.len && (s.p[0] == '\n' || s.p[0] == '\r')) {
        s.p++;
        s.len--;
    }
    while (s.len && (s.p[s.len - 1] == '\n' || s.p[s.len - 1] == '\r'))
        s.len--;
    if (s.len == 0)
        return NULL;
    if (s.len > max) {
        *too_long = true;
        return NULL;
    }
    return ch_str_dup(s);
}

static bool is_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

/* ---- model ---- */

/* The model must resolve now (aliases included: `model: "gpt"`), so a
 * typo is a 400 naming what is configured, not a failed run later. */
static int check_model(struct ch_api *a, struct ch_http_req *r, const char *model)
{
    struct ch_llm_catalog *cat = ch_llm_client_catalog(ch_agent_llm(a->agent));
    struct ch_llm_target t;
    struct ch_error err = {0};

    if (!cat || cat->provider_count == 0) {
        ch_hooks_refuse(a, r, 503, CH_HOOK_R_UNAVAILABLE,
                        "no LLM provider is configured: set models.providers in the config, or ANTHROPIC_API_KEY, "
                        "OPENAI_API_KEY or GEMINI_API_KEY");
        return CH_ENOTFOUND;
    }
    if (model && ch_llm_catalog_resolve(cat, model, &t, &err) != 0) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_MODEL, "%s", err.msg[0] ? err.msg : "unknown model");
        return CH_EINVAL;
    }
    return 0;
}

/* ---- callback ---- */

static bool url_ok(const char *u)
{
    size_t n = strlen(u);

    if (n > MAX_URL || (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f)
            return false;
    return n > (u[4] == 's' ? 8u : 7u);
}

static bool header_name_ok(const char *s)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";

    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr(tchar, *s)))
            return false;
    return true;
}

static int check_headers(struct ch_api *a, struct ch_http_req *r, const json_t *hs)
{
    const char *k;
    const json_t *v;

    if (!json_is_object(hs) || json_object_size(hs) > MAX_CB_HEADERS) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "callback.headers must be an object of at most %d strings",
                        MAX_CB_HEADERS);
        return CH_EINVAL;
    }
    json_object_foreach((json_t *)hs, k, v)
    {
        const char *s = json_string_value(v);
        if (!header_name_ok(k) || !s || json_string_length(v) > MAX_CB_HEADER_VALUE || strpbrk(s, "\r\n") ||
            strlen(s) != json_string_length(v)) {
            ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID,
                            "callback.headers: '%.64s' needs a token name and a one-line string value", k);
            return CH_EINVAL;
        }
    }
    return 0;
}

/*
 * meta.hook.callback: the body's callback merged over hooks.callback for
 * url and mode.  Headers and a secret from the body are stored with the
 * run (they must survive a restart); the configured ones are merged in
 * at delivery time and never written to the store, and only for a URL of
 * hooks.callback.url's origin (ch_hooks_same_origin): anyone holding the
 * hook token may name a callback URL, and must not receive the
 * credentials meant for the configured receiver.  in->cb_withheld: this
 * request's URL is another origin and configured credentials exist.
 * `callback: false` opts out of a configured default.
 */
static int parse_callback(struct ch_api *a, struct ch_http_req *r, const json_t *body, struct ch_hook_in *in)
{
    const json_t *cb = json_object_get(body, "callback"), *def = a->hooks->callback, *v;
    const char *url, *mode;
    json_t *out;

    if (json_is_false(cb) || (!cb && !json_string_value(json_object_get(def, "url"))))
        return 0;
    if (cb && !json_is_null(cb) && !json_is_object(cb)) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "callback must be an object {url, headers?, mode?, secret?}");
        return CH_EINVAL;
    }
    url = json_string_value(json_object_get(cb, "url"));
    if (url && (json_object_size(json_object_get(def, "headers")) || json_string_value(json_object_get(def, "secret"))))
        in->cb_withheld = !ch_hooks_same_origin(url, json_string_value(json_object_get(def, "url")));
    if (!url)
        url = json_string_value(json_object_get(def, "url"));
    if (!url || !url_ok(url)) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID,
                        "callback.url must be an http:// or https:// URL of at most %d "
                        "bytes",
                        MAX_URL);
        return CH_EINVAL;
    }
    v = json_object_get(cb, "mode");
    mode = json_string_value(v) ? json_string_value(v) : json_string_value(json_object_get(def, "mode"));
    if (!mode)
        mode = "envelope";
    if ((v && !json_is_null(v) && !json_is_string(v)) || (strcmp(mode, "raw") && strcmp(mode, "envelope"))) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "callback.mode must be \"raw\" or \"envelope\"");
        return CH_EINVAL;
    }
    out = json_pack("{s:s, s:s}", "url", url, "mode", mode);
    if (!out)
        return CH_ENOMEM;
    v = json_object_get(cb, "headers");
    if (v && !json_is_null(v)) {
        if (check_headers(a, r, v) != 0) {
            json_decref(out);
            return CH_EINVAL;
        }
        json_object_set(out, "headers", (json_t *)v);
    }
    v = json_object_get(cb, "secret");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > MAX_SECRET) {
            json_decref(out);
            ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "callback.secret must be a string of 1-%d bytes", MAX_SECRET);
            return CH_EINVAL;
        }
        json_object_set(out, "secret", (json_t *)v);
    }
    json_object_set_new(in->hook, "callback", out);
    return 0;
}

/* ---- the shared optional fields ---- */

struct opt_fields {
    char *name, *agent_id, *channel, *to, *thinking, *model, *account_id;
};

static void opt_release(struct opt_fields *o)
{
    ch_free(o->name);
    ch_free(o->agent_id);
    ch_free(o->channel);
    ch_free(o->to);
    ch_free(o->thinking);
    ch_free(o->model);
    ch_free(o->account_id);
}

/* name, agentId, channel, to, accountId, thinking, model, wakeMode,
 * deliver, timeoutSeconds, sessionMode: the same rules for a body and a
 * rendered mapping. */
static int parse_common(struct ch_api *a, struct ch_http_req *r, const json_t *src, struct ch_hook_in *in, json_t *hook)
{
    struct opt_fields o = {0};
    const json_t *v;
    bool long_field = false;
    const char *wake, *mode;
    int rc = CH_EINVAL;

    o.name = opt_trimmed(src, "name", MAX_NAME, &long_field);
    o.agent_id = opt_trimmed(src, "agentId", CH_STORE_MAX_ID_BYTES, &long_field);
    o.channel = opt_trimmed(src, "channel", MAX_CHANNEL, &long_field);
    o.to = opt_trimmed(src, "to", MAX_TO, &long_field);
    o.thinking = opt_trimmed(src, "thinking", MAX_THINKING, &long_field);
    o.model = opt_trimmed(src, "model", CH_LLM_MAX_REF_BYTES - 1, &long_field);
    o.account_id = opt_trimmed(src, "accountId", CH_STORE_MAX_ID_BYTES, &long_field);
    if (long_field) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID,
                        "name, agentId, channel, to, accountId, thinking or model is longer than chela allows");
        goto out;
    }
    /* OpenClaw v4's rules for the channel account (a v4 field: the v3
     * rules for channel and to stay as they were). */
    v = json_object_get(src, "accountId");
    if (v && !json_is_null(v) && !json_is_false(json_object_get(src, "deliver"))) {
        const char *why = !o.account_id                ? "accountId must be a non-empty string for hook delivery"
                          : !o.channel || !o.to        ? "accountId requires channel and to for hook delivery"
                          : !strcmp(o.channel, "last") ? "channel must name a concrete channel for hook delivery"
                                                       : NULL;
        if (why) {
            ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "%s", why);
            goto out;
        }
    }
    /* OpenClaw v4: isolated (the default) starts the session afresh for
     * each run; persistent continues its transcript. */
    v = json_object_get(src, "sessionMode");
    mode = json_string_value(v);
    if (v && !json_is_null(v) && (!mode || (strcmp(mode, "isolated") && strcmp(mode, "persistent")))) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "sessionMode must be isolated or persistent");
        goto out;
    }
    in->isolated = !mode || strcmp(mode, "persistent");
    v = json_object_get(src, "model");
    if (v && !json_is_null(v) && !o.model) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "model required"); /* OpenClaw's words for model: "" */
        goto out;
    }
    if (check_model(a, r, o.model) != 0)
        goto out;
    wake = json_string_value(json_object_get(src, "wakeMode"));
    v = json_object_get(src, "timeoutSeconds");
    if (json_is_number(v) && json_number_value(v) >= 1)
        in->timeout_s = (int64_t)CH_MIN(json_number_value(v), (double)MAX_TIMEOUT_S);
    json_object_set_new(hook, "name", json_string(o.name ? o.name : "Hook"));
    json_object_set_new(hook, "wakeMode",
                        json_string(wake && !strcmp(wake, "next-heartbeat") ? "next-heartbeat" : "now"));
    json_object_set_new(hook, "deliver", json_boolean(!json_is_false(json_object_get(src, "deliver"))));
    json_object_set_new(hook, "channel", json_string(o.channel ? o.channel : "last"));
    if (o.agent_id)
        json_object_set_new(hook, "agentId", json_string(o.agent_id));
    if (o.to)
        json_object_set_new(hook, "to", json_string(o.to));
    if (o.thinking)
        json_object_set_new(hook, "thinking", json_string(o.thinking));
    if (o.account_id) /* the channel account the reply goes out through */
        json_object_set_new(hook, "accountId", json_string(o.account_id));
    json_object_set_new(hook, "sessionMode", json_string(in->isolated ? "isolated" : "persistent"));
    in->model = o.model;
    o.model = NULL;
    rc = 0;
out:
    opt_release(&o);
    return rc;
}

/* Idempotency-Key, X-OpenClaw-Idempotency-Key, then body idempotencyKey. */
static int parse_idem(struct ch_api *a, struct ch_http_req *r, const json_t *body, struct ch_hook_in *in)
{
    const struct ch_str *hv = ch_http_req_header(r, "idempotency-key");
    struct ch_str s = {NULL, 0};
    const json_t *v;

    if (!hv)
        hv = ch_http_req_header(r, "x-openclaw-idempotency-key");
    if (hv) {
        s = ch_str_trim(*hv);
    } else if ((v = json_object_get(body, "idempotencyKey")) && !json_is_null(v)) {
        if (!json_is_string(v)) {
            ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "idempotencyKey must be a string");
            return CH_EINVAL;
        }
        s = ch_str_trim(ch_str_from(json_string_value(v)));
    }
    if (!s.p || s.len == 0)
        return 0;
    if (s.len > MAX_IDEM || memchr(s.p, '\0', s.len)) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "the idempotency key must be 1-%d bytes", MAX_IDEM);
        return CH_EINVAL;
    }
    in->idem = ch_str_dup(s);
    return in->idem ? 0 : CH_ENOMEM;
}

/* OpenClaw v4: a persistent session is one the caller names, and a direct
 * request may continue one only under hooks.allowedSessionKeyPrefixes. */
static int persistent_ok(struct ch_api *a, struct ch_http_req *r, const struct ch_hook_in *in, const char *key,
                         bool mapping)
{
    const char *why = NULL;

    if (in->isolated)
        return 0;
    if (mapping && !key && !a->hooks->default_key)
        why = "sessionKey or hooks.defaultSessionKey is required when mapped hook sessionMode is persistent";
    else if (!mapping && !key)
        why = "sessionKey is required when sessionMode is persistent";
    else if (!mapping && !json_array_size(a->hooks->prefixes))
        why = "hooks.allowedSessionKeyPrefixes is required when direct hook sessionMode is persistent";
    if (why)
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_SESSION_KEY, "%s", why);
    return why ? CH_EINVAL : 0;
}

int ch_hooks_parse_agent(struct ch_api *a, struct ch_http_req *r, const json_t *body, struct ch_hook_in *in)
{
    const json_t *msg = json_object_get(body, "message");
    bool long_key = false;
    char *key = NULL;
    int rc = CH_EINVAL;

    memset(in, 0, sizeof(*in));
    in->source = "hook";
    in->ok_reason = CH_HOOK_R_AGENT;
    if (!json_is_string(msg) || is_blank(json_string_value(msg))) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "message required");
        goto out;
    }
    if (json_string_length(msg) > MAX_MESSAGE) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "message is longer than %d bytes", MAX_MESSAGE);
        goto out;
    }
    if (!(in->hook = json_pack("{s:s}", "kind", "agent")) || !(in->message = ch_strdup(json_string_value(msg)))) {
        rc = CH_ENOMEM;
        goto out;
    }
    key = opt_trimmed(body, "sessionKey", CH_STORE_MAX_KEY_BYTES, &long_key);
    if (long_key) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_SESSION_KEY, "sessionKey is longer than %d bytes", CH_STORE_MAX_KEY_BYTES);
        goto out;
    }
    if ((rc = ch_hooks_resolve_key(a, r, key, true, in)) != 0 || (rc = parse_common(a, r, body, in, in->hook)) != 0 ||
        (rc = persistent_ok(a, r, in, key, false)) != 0 || (rc = parse_callback(a, r, body, in)) != 0 ||
        (rc = parse_idem(a, r, body, in)) != 0)
        goto out;
    in->wait = json_is_true(json_object_get(body, "waitForCompletion"));
    rc = 0;
out:
    ch_free(key);
    if (rc) {
        /* CH_EINVAL: answered where it was found; anything else was not. */
        if (rc != CH_EINVAL)
            ch_hooks_refuse(a, r, 500, CH_HOOK_R_INTERNAL, "out of memory");
        ch_hook_in_release(in);
    }
    return rc ? CH_EINVAL : 0;
}

/*
 * Render one optional template field of mapping m into dst.  A field that
 * renders blank is absent, so its default applies (OpenClaw's
 * renderOptional).  CH_E_TOO_LARGE past MAX_FIELD, NOT_UTF8 when the text
 * is no JSON string (it would vanish from dst), CH_ENOMEM.
 */
static int render_field(const json_t *m, const char *key, const struct ch_hook_tpl_ctx *ctx, json_t *dst)
{
    const char *tpl = json_string_value(json_object_get(m, key));
    struct ch_buf b;
    int rc;

    if (!tpl)
        return 0;
    ch_buf_init(&b, MAX_FIELD);
    /* A ch_buf is NUL-terminated after any append: a text of exactly the
     * cap fits, no terminator needs appending. */
    rc = ch_hooks_render(tpl, ctx, &b);
    if (rc == 0 && b.data && !is_blank(b.data)) {
        if (!ch_utf8_valid(b.data, strlen(b.data)))
            rc = NOT_UTF8;
        else if (json_object_set_new(dst, key, json_string(b.data)) != 0)
            rc = CH_ENOMEM;
    }
    ch_buf_release(&b);
    return rc;
}

/* A rendering failure as the mapping's 400 naming what failed. */
static int render_refuse(struct ch_api *a, struct ch_http_req *r, const char *what, int rc)
{
    if (rc == CH_E_TOO_LARGE)
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "the mapping's rendered %s is longer than %d bytes", what,
                        strcmp(what, "message") ? MAX_FIELD : MAX_MESSAGE);
    else if (rc == NOT_UTF8)
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "the mapping's rendered %s is not valid UTF-8", what);
    else
        return rc; /* not answered */
    return CH_EINVAL;
}

int ch_hooks_parse_mapping(struct ch_api *a, struct ch_http_req *r, const json_t *m, const json_t *body,
                           struct ch_hook_in *in)
{
    static const char *const fields[] = {"name", "sessionKey", "to", "model", "thinking", "channel"};
    struct ch_hook_tpl_ctx ctx = {body, r, ch_hooks_subpath(a, r), ch_now_ms()};
    const char *id = json_string_value(json_object_get(m, "id"));
    json_t *rendered = json_object();
    struct ch_buf msg;
    bool long_key = false;
    char *key = NULL;
    int rc = CH_ENOMEM;

    memset(in, 0, sizeof(*in));
    in->source = "hook";
    in->ok_reason = CH_HOOK_R_MAPPING;
    /* Up to MAX_MESSAGE bytes, as a direct message: the buffer holds its
     * NUL beyond the cap. */
    ch_buf_init(&msg, MAX_MESSAGE);
    rc = rendered ? ch_hooks_render(json_string_value(json_object_get(m, "messageTemplate")), &ctx, &msg) : CH_ENOMEM;
    if (rc == 0 && msg.data && !ch_utf8_valid(msg.data, msg.len))
        rc = NOT_UTF8;
    if (rc) {
        rc = render_refuse(a, r, "message", rc);
        goto out;
    }
    for (size_t i = 0; i < CH_ARRAY_SIZE(fields); i++)
        if ((rc = render_field(m, fields[i], &ctx, rendered)) != 0) {
            rc = render_refuse(a, r, fields[i], rc);
            goto out;
        }
    rc = CH_EINVAL;
    if (!msg.data || is_blank(msg.data)) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "hook mapping requires message");
        goto out;
    }
    /* The mapping's own settings (deliver, wakeMode, timeoutSeconds) are
     * taken as configured; its string fields as rendered. */
    json_object_set(rendered, "deliver", json_object_get(m, "deliver"));
    json_object_set(rendered, "wakeMode", json_object_get(m, "wakeMode"));
    json_object_set(rendered, "timeoutSeconds", json_object_get(m, "timeoutSeconds"));
    json_object_set(rendered, "sessionMode", json_object_get(m, "sessionMode"));
    json_object_set(rendered, "agentId", json_object_get(m, "agentId"));
    /* What a fan-out item is, for its derived idempotency key: the
     * message's NUL included, as the digest always had it (keys stored
     * with earlier runs still match). */
    if ((rc = ch_hooks_scope_digest(msg.data, msg.len + 1, rendered, in->scope)) != 0)
        goto out;
    rc = CH_EINVAL;
    in->message = ch_buf_detach(&msg, NULL);
    in->hook = json_pack("{s:s, s:s?}", "kind", "mapping", "mapping", id);
    key = opt_trimmed(rendered, "sessionKey", CH_STORE_MAX_KEY_BYTES, &long_key);
    if (!in->message || !in->hook) {
        rc = CH_ENOMEM;
        goto out;
    }
    if (long_key) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_SESSION_KEY, "the mapping's sessionKey renders too long");
        goto out;
    }
    if ((rc = ch_hooks_resolve_key(a, r, key, false, in)) != 0 ||
        (rc = parse_common(a, r, rendered, in, in->hook)) != 0 || (rc = persistent_ok(a, r, in, key, true)) != 0 ||
        (rc = parse_callback(a, r, body, in)) != 0 || (rc = parse_idem(a, r, body, in)) != 0)
        goto out;
out:
    ch_free(key);
    ch_buf_release(&msg);
    json_decref(rendered);
    if (rc) {
        if (rc != CH_EINVAL) /* not answered yet */
            ch_hooks_refuse(a, r, 500, CH_HOOK_R_INTERNAL, "the mapping could not be rendered: %s", ch_strerror(rc));
        ch_hook_in_release(in);
    }
    return rc ? CH_EINVAL : 0;
}
