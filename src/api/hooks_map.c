/*
 * hooks_map.c: hooks.mappings[] and their templates (OpenClaw spec
 * section 3, `POST /hooks/<name>`; hooks-mapping.ts semantics).  A mapping
 * matches on match.path (the sub-path, slashes trimmed) and match.source
 * (payload.source); its templates render `{{payload.x}}`, `{{headers.x}}`,
 * `{{query.x}}`, `{{path}}` and `{{now}}`.  Pure functions over the
 * request and the JSON body: no I/O, so unit tests and fuzzers can drive
 * them directly.
 */
#include <stdio.h>
#include <string.h>

#include "api/hooks.h"

#define MAX_TEMPLATE_BYTES (64 * 1024) /* one template in the config */
#define MAX_EXPR_BYTES 512             /* one {{ expression }} */
#define MAX_QUERY_VALUE 8192           /* a decoded ?name= value */
#define MAX_PATH_SEGMENTS 32

bool ch_hooks_key_ok(const char *key)
{
    return ch_agent_session_key_valid(key);
}

static struct ch_str trim_slashes(struct ch_str s)
{
    while (s.len && s.p[0] == '/') {
        s.p++;
        s.len--;
    }
    while (s.len && s.p[s.len - 1] == '/')
        s.len--;
    return s;
}

static struct ch_str trim_ws(struct ch_str s)
{
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t' || s.p[0] == '\n' || s.p[0] == '\r')) {
        s.p++;
        s.len--;
    }
    while (s.len &&
           (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t' || s.p[s.len - 1] == '\n' || s.p[s.len - 1] == '\r'))
        s.len--;
    return s;
}

const json_t *ch_hooks_map_find(const json_t *mappings, struct ch_str path, const json_t *payload)
{
    size_t i;
    const json_t *m;

    path = trim_slashes(path);
    json_array_foreach(mappings, i, m)
    {
        const json_t *match = json_object_get(m, "match");
        const char *mp = json_string_value(json_object_get(match, "path"));
        const char *ms = json_string_value(json_object_get(match, "source"));

        if (mp) {
            struct ch_str want = trim_slashes(trim_ws(ch_str_from(mp)));
            if (want.len && !ch_str_eq(want, path))
                continue;
        }
        if (ms) {
            struct ch_str want = trim_ws(ch_str_from(ms));
            const char *src = json_string_value(json_object_get(payload, "source"));
            if (want.len && (!src || !ch_str_eq_cstr(want, src)))
                continue;
        }
        return m;
    }
    return NULL;
}

static int check_template(const json_t *m, const char *key, bool required, size_t idx, struct ch_error *err)
{
    const json_t *v = json_object_get(m, key);

    if (!v || json_is_null(v)) {
        if (required)
            return ch_error_set(err, CH_EINVAL, "hooks.mappings[%zu]: %s is required for its action", idx, key);
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) > MAX_TEMPLATE_BYTES ||
        strlen(json_string_value(v)) != json_string_length(v))
        return ch_error_set(err, CH_EINVAL, "hooks.mappings[%zu].%s must be a string of at most %d bytes", idx, key,
                            MAX_TEMPLATE_BYTES);
    if (required && json_string_length(v) == 0)
        return ch_error_set(err, CH_EINVAL, "hooks.mappings[%zu].%s must not be empty", idx, key);
    return 0;
}

/* forEach names a top-level payload key (OpenClaw: no '.', '[' or ']',
 * and not a prototype key). */
static int check_for_each(const json_t *v, size_t idx, struct ch_error *err)
{
    const char *k = json_string_value(v);

    if (!v || json_is_null(v))
        return 0;
    if (!k || !*k || json_string_length(v) > MAX_EXPR_BYTES || strlen(k) != json_string_length(v) ||
        strpbrk(k, ".[]") || !strcmp(k, "__proto__") || !strcmp(k, "prototype") || !strcmp(k, "constructor"))
        return ch_error_set(err, CH_EINVAL, "hooks.mappings[%zu].forEach must be a top-level payload key", idx);
    return 0;
}

json_t *ch_hooks_gmail_preset(const char *model, const char *thinking)
{
    /* OpenClaw's hookPresetMappings.gmail, word for word: one run per
     * message of the watcher's batch, a session per message id. */
    return json_pack("{s:s, s:{s:s}, s:s, s:s, s:s, s:s, s:s, s:s, s:s*, s:s*}", "id", "gmail", "match", "path",
                     "gmail", "action", "agent", "wakeMode", "now", "name", "Gmail", "forEach", "messages",
                     "sessionKey", "hook:gmail:{{messages[0].id}}", "messageTemplate",
                     "New email from {{messages[0].from}}\nSubject: {{messages[0].subject}}\n{{messages[0].snippet}}\n"
                     "{{messages[0].body}}",
                     "model", model && *model ? model : NULL, "thinking", thinking && *thinking ? thinking : NULL);
}

int ch_hooks_map_check(const json_t *mappings, struct ch_error *err)
{
    static const char *const optional[] = {"name", "sessionKey", "to", "model", "thinking", "channel"};
    size_t i;
    const json_t *m;
    int rc;

    if (!json_is_array(mappings))
        return ch_error_set(err, CH_EINVAL, "hooks.mappings must be an array");
    json_array_foreach(mappings, i, m)
    {
        const char *action = json_string_value(json_object_get(m, "action"));
        bool wake = action && !strcmp(action, "wake");

        if (!json_is_object(m))
            return ch_error_set(err, CH_EINVAL, "hooks.mappings[%zu] must be an object", i);
        if (action && !wake && strcmp(action, "agent"))
            return ch_error_set(err, CH_EINVAL, "hooks.mappings[%zu].action must be agent or wake", i);
        /* chela has no transform modules: the templates are the mapping. */
        if (json_object_get(m, "transform"))
            return ch_error_set(err, CH_EINVAL,
                                "hooks.mappings[%zu].transform is not supported by chela; use "
                                "messageTemplate/textTemplate",
                                i);
        if ((rc = check_template(m, wake ? "textTemplate" : "messageTemplate", true, i, err)) != 0)
            return rc;
        if ((rc = check_for_each(json_object_get(m, "forEach"), i, err)) != 0)
            return rc;
        for (size_t k = 0; k < CH_ARRAY_SIZE(optional); k++)
            if ((rc = check_template(m, optional[k], false, i, err)) != 0)
                return rc;
    }
    return 0;
}

/* ---- templates ---- */

/* Walk a dotted/bracketed path ("a.b[0].c", "items.0") into v. */
static const json_t *json_walk(const json_t *v, struct ch_str path)
{
    size_t i = 0, segs = 0;

    while (v && i < path.len) {
        size_t start, n;
        bool bracket = false;

        if (path.p[i] == '.') {
            i++;
            continue;
        }
        if (++segs > MAX_PATH_SEGMENTS)
            return NULL;
        if (path.p[i] == '[') {
            bracket = true;
            i++;
        }
        start = i;
        while (i < path.len && path.p[i] != '.' && path.p[i] != '[' && path.p[i] != ']')
            i++;
        n = i - start;
        if (bracket) {
            if (i >= path.len || path.p[i] != ']')
                return NULL;
            i++;
        } else if (i < path.len && path.p[i] == ']') {
            return NULL;
        }
        if (n == 0 || n >= MAX_EXPR_BYTES)
            return NULL;
        if (json_is_array(v)) {
            uint64_t idx;
            if (ch_str_to_u64((struct ch_str){path.p + start, n}, SIZE_MAX, &idx) != 0)
                return NULL;
            v = json_array_get(v, (size_t)idx);
        } else if (json_is_object(v) && !bracket) {
            char key[MAX_EXPR_BYTES];
            memcpy(key, path.p + start, n);
            key[n] = '\0';
            v = json_object_get(v, key);
        } else {
            return NULL;
        }
    }
    return v;
}

static int append_value(struct ch_buf *out, const json_t *v)
{
    char *s;
    int rc;

    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v))
        return ch_buf_append(out, json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        return ch_buf_appendf(out, "%lld", (long long)json_integer_value(v));
    if (json_is_true(v))
        return ch_buf_append_str(out, "true");
    if (json_is_false(v))
        return ch_buf_append_str(out, "false");
    s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        return CH_ENOMEM;
    rc = ch_buf_append_str(out, s);
    ch_free(s);
    return rc;
}

/* Text from the request (a header, a decoded query value, the path) is
 * any bytes a client sent, while the rendered text must be UTF-8 (JSON
 * holds it, and a field that jansson refuses would vanish): it goes
 * through ch_buf_append_utf8_clean, which writes U+FFFD for ill-formed
 * sequences as a JavaScript gateway would decode them. */
static int render_expr(struct ch_str e, const struct ch_hook_tpl_ctx *ctx, struct ch_buf *out)
{
    if (ch_str_eq_cstr(e, "path"))
        return ch_buf_append_utf8_clean(out, ctx->path.p, ctx->path.len);
    if (ch_str_eq_cstr(e, "now")) {
        char t[32];
        ch_time_iso8601(ctx->now_ms, t);
        return ch_buf_append_str(out, t);
    }
    if (ch_str_has_prefix(e, "headers.")) {
        char name[MAX_EXPR_BYTES];
        const struct ch_str *h;
        size_t n = e.len - 8;

        if (!ctx->req || n == 0 || n >= sizeof(name))
            return 0;
        memcpy(name, e.p + 8, n);
        name[n] = '\0';
        h = ch_http_req_header(ctx->req, name);
        return h ? ch_buf_append_utf8_clean(out, h->p, h->len) : 0;
    }
    if (ch_str_has_prefix(e, "query.")) {
        char name[MAX_EXPR_BYTES], *val;
        size_t n = e.len - 6;
        int rc;

        if (!ctx->req || n == 0 || n >= sizeof(name))
            return 0;
        memcpy(name, e.p + 6, n);
        name[n] = '\0';
        val = ch_malloc(MAX_QUERY_VALUE);
        if (!val)
            return CH_ENOMEM;
        rc = ch_http_req_query(ctx->req, name, val, MAX_QUERY_VALUE);
        rc = rc == 0 ? ch_buf_append_utf8_clean(out, val, strlen(val)) : 0; /* absent or over the cap: empty */
        ch_free(val);
        return rc;
    }
    if (ch_str_has_prefix(e, "payload."))
        e = (struct ch_str){e.p + 8, e.len - 8};
    return append_value(out, json_walk(ctx->payload, e));
}

int ch_hooks_render(const char *tpl, const struct ch_hook_tpl_ctx *ctx, struct ch_buf *out)
{
    const char *p = tpl ? tpl : "", *open, *close;
    int rc;

    for (;;) {
        open = strstr(p, "{{");
        close = open ? strstr(open + 2, "}}") : NULL;
        if (!open || !close)
            return ch_buf_append_str(out, p); /* the rest, "{{" without "}}" included */
        if ((rc = ch_buf_append(out, p, (size_t)(open - p))) != 0)
            return rc;
        {
            struct ch_str e = trim_ws((struct ch_str){open + 2, (size_t)(close - open - 2)});
            /* OpenClaw's pattern excludes '}' from expressions; an empty or
             * oversized one is copied as written. */
            if (e.len == 0 || e.len > MAX_EXPR_BYTES || memchr(e.p, '}', e.len) || memchr(e.p, '{', e.len))
                rc = ch_buf_append(out, open, (size_t)(close + 2 - open));
            else
                rc = render_expr(e, ctx, out);
        }
        if (rc)
            return rc;
        p = close + 2;
    }
}
