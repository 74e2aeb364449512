/*
 * oc_methods_misc.c: the method table, the per-request checks of an
 * AUTHED connection (spec 1.2, 1.7, 2.2) and the methods that need no
 * store: models.list, agents.list, config.get, logs.tail, system-presence,
 * channels.status, cron.list/status, send, wake, system-event.
 *
 * Order of the checks: a valid request frame (else `invalid request
 * frame: ...`), the credential and the rate limit (oc_guard.c), the
 * method's scope (a method missing from the table needs operator.admin,
 * as in the reference), then `unknown method: <m>`, then the closed
 * params schema (`invalid <method> params: ...`).
 */
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"
#include "providers/client.h"

static void m_health(struct oc_req *q);
static void m_models_list(struct oc_req *q);
static void m_agents_list(struct oc_req *q);
static void m_config_get(struct oc_req *q);
static void m_logs_tail(struct oc_req *q);
static void m_system_presence(struct oc_req *q);
static void m_channels_status(struct oc_req *q);
static void m_cron_list(struct oc_req *q);
static void m_cron_status(struct oc_req *q);
static void m_send(struct oc_req *q);
static void m_wake(struct oc_req *q);
static void m_system_event(struct oc_req *q);

#define R OC_NEED_READ
#define W OC_NEED_WRITE
#define A OC_NEED_ADMIN
#define P OC_NEED_PAIRING
/* Scopes from the published methods map (spec 1.7). */
static const struct oc_method methods[] = {
    {"health", R, true, m_health},
    {"status", R, true, ch_oc_m_status},
    {"logs.tail", R, true, m_logs_tail},
    {"usage.status", R, true, ch_oc_m_usage_status},
    {"usage.cost", R, true, ch_oc_m_usage_cost},
    {"channels.status", R, true, m_channels_status},
    {"config.get", R, true, m_config_get},
    {"models.list", R, true, m_models_list},
    {"agents.list", R, true, m_agents_list},
    {"sessions.list", R, true, ch_oc_m_sessions_list},
    {"sessions.preview", R, true, ch_oc_m_sessions_preview},
    {"sessions.get", R, false, ch_oc_m_sessions_get},
    {"sessions.usage", R, false, ch_oc_m_sessions_usage},
    {"sessions.patch", A, true, ch_oc_m_sessions_patch},
    {"sessions.reset", A, true, ch_oc_m_sessions_reset},
    {"sessions.delete", A, true, ch_oc_m_sessions_delete},
    {"sessions.compact", A, true, ch_oc_m_sessions_compact},
    {"cron.list", R, true, m_cron_list},
    {"cron.status", R, true, m_cron_status},
    {"system-presence", R, true, m_system_presence},
    {"system-event", A, true, m_system_event},
    {"wake", W, true, m_wake},
    {"send", W, true, m_send},
    {"agent", W, true, ch_oc_m_agent},
    {"agent.wait", W, true, ch_oc_m_agent_wait},
    {"chat.send", W, true, ch_oc_m_chat_send},
    {"chat.history", R, true, ch_oc_m_chat_history},
    {"chat.abort", W, true, ch_oc_m_chat_abort},
    {"chat.inject", A, false, ch_oc_m_chat_inject},
    {"tools.invoke", W, true, ch_oc_m_tools_invoke},
    {"device.pair.list", P, true, ch_oc_m_device_pair_list},
    {"device.pair.approve", P, true, ch_oc_m_device_pair_approve},
    {"device.pair.reject", P, true, ch_oc_m_device_pair_reject},
    {"device.pair.remove", P, true, ch_oc_m_device_pair_remove},
    {"device.token.rotate", P, true, ch_oc_m_device_token_rotate},
    {"device.token.revoke", P, true, ch_oc_m_device_token_revoke},
};
#undef R
#undef W
#undef A
#undef P

static const char *const events[] = {
    "connect.challenge",   "agent", "chat", "presence", "tick", "shutdown", "health", "device.pair.requested",
    "device.pair.resolved"};

const struct oc_method *ch_oc_method_find(const char *name)
{
    for (size_t i = 0; i < CH_ARRAY_SIZE(methods); i++)
        if (!strcmp(methods[i].name, name))
            return &methods[i];
    return NULL;
}

json_t *ch_oc_methods_json(void)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < CH_ARRAY_SIZE(methods); i++)
        if (methods[i].advertised)
            json_array_append_new(a, json_string(methods[i].name));
    return a;
}

json_t *ch_oc_events_json(void)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < CH_ARRAY_SIZE(events); i++)
        json_array_append_new(a, json_string(events[i]));
    return a;
}

/* ---- dispatch ---- */

static bool has_scope(unsigned scopes, enum oc_need need)
{
    if (scopes & OC_SCOPE_ADMIN)
        return true;
    if (need == OC_NEED_READ)
        return scopes & (OC_SCOPE_READ | OC_SCOPE_WRITE);
    if (need == OC_NEED_WRITE)
        return scopes & OC_SCOPE_WRITE;
    if (need == OC_NEED_PAIRING)
        return scopes & OC_SCOPE_PAIRING;
    return false;
}

void ch_oc_dispatch(struct oc_conn *c, const json_t *frame)
{
    static const char *const need_name[] = {"operator.read", "operator.write", "operator.admin", "operator.pairing"};
    enum oc_wording w = c->protocol >= 4 ? OC_WORDING_V4 : OC_WORDING_V3;
    const json_t *idv = json_object_get(frame, "id");
    const char *id = json_is_string(idv) && json_string_length(idv) ? json_string_value(idv) : "invalid";
    const struct oc_method *m;
    const struct oc_node *schema;
    struct oc_req q = {0};
    struct ch_buf errs;
    json_t *params, *empty = NULL;
    const char *method;
    enum oc_need need;
    char msg[96];

    ch_buf_init(&errs, 4096);
    ch_buf_append_str(&errs, "invalid request frame: ");
    if (ch_oc_schema_check(&ch_oc_request_frame_schema, frame, w, &errs) != 0) {
        ch_oc_res_err(c, id, "INVALID_REQUEST", errs.data, NULL);
        goto out;
    }
    method = json_string_value(json_object_get(frame, "method"));
    m = ch_oc_method_find(method);
    need = m ? (enum oc_need)m->need : OC_NEED_ADMIN;
    /* A token revoked, expired or narrowed since connect ends the
     * connection; then each request counts against its rate limit. */
    if (!ch_oc_guard_request(c, id))
        goto out;
    if (!has_scope(c->scopes, need)) {
        snprintf(msg, sizeof(msg), "missing scope: %s", need_name[need]);
        if (c->protocol >= 4)
            ch_oc_res_err(c, id, "FORBIDDEN", msg,
                          json_pack("{s:s, s:s, s:[s]}", "code", "MISSING_SCOPE", "missingScope", need_name[need],
                                    "requiredScopes", need_name[need]));
        else
            ch_oc_res_err(c, id, "INVALID_REQUEST", msg, NULL);
        goto out;
    }
    if (!m) {
        ch_buf_reset(&errs);
        ch_buf_appendf(&errs, "unknown method: %.200s", method);
        ch_oc_res_err(c, id, "INVALID_REQUEST", errs.data, NULL);
        goto out;
    }
    params = json_object_get(frame, "params");
    if (!params || json_is_null(params))
        params = empty = json_object();
    ch_buf_reset(&errs);
    ch_buf_appendf(&errs, "invalid %s params: ", method);
    schema = ch_oc_method_schema(method);
    if (schema ? ch_oc_schema_check(schema, params, w, &errs) != 0 : !json_is_object(params)) {
        if (!schema)
            ch_buf_append_str(&errs, "must be object");
        ch_oc_res_err(c, id, "INVALID_REQUEST", errs.data, NULL);
        goto out;
    }
    q.conn = c;
    q.id = id;
    q.method = m->name;
    q.params = params;
    m->fn(&q);
out:
    json_decref(empty);
    ch_buf_release(&errs);
}

void ch_oc_unavailable(struct oc_req *q, const char *what)
{
    char msg[256];

    snprintf(msg, sizeof(msg), "%s is unavailable: %s", q->method, what);
    ch_oc_res_err(q->conn, q->id, "UNAVAILABLE", msg, NULL);
}

/* ---- simple methods ---- */

static void m_health(struct oc_req *q)
{
    /* The sessions part is the last store read (refreshed by status and
     * sessions.list); the rest is live. */
    ch_oc_res_ok(q->conn, q->id, ch_oc_health_json(q->conn->oc));
}

static struct ch_llm_catalog *catalog(struct ch_oc *oc)
{
    return oc->api->agent ? ch_llm_client_catalog(ch_agent_llm(oc->api->agent)) : NULL;
}

static void m_models_list(struct oc_req *q)
{
    struct ch_llm_catalog *cat = catalog(q->conn->oc);
    json_t *all = cat ? ch_llm_catalog_models_json(cat) : json_array(), *out = json_array(), *m;
    size_t i;

    json_array_foreach(all, i, m)
    {
        const char *ref = json_string_value(json_object_get(m, "id"));
        const char *slash = ref ? strchr(ref, '/') : NULL;
        const char *name = json_string_value(json_object_get(m, "name"));
        json_t *row;
        if (!slash || !slash[1])
            continue;
        row = json_pack("{s:s, s:s, s:s#}", "id", slash + 1, "name", name && *name ? name : slash + 1, "provider", ref,
                        (int)(slash - ref));
        if (row && json_integer_value(json_object_get(m, "contextWindow")) > 0)
            json_object_set(row, "contextWindow", json_object_get(m, "contextWindow"));
        json_array_append_new(out, row);
    }
    json_decref(all);
    ch_oc_res_ok(q->conn, q->id, json_pack("{s:o}", "models", out ? out : json_array()));
}

static void m_agents_list(struct oc_req *q)
{
    ch_oc_res_ok(q->conn, q->id,
                 json_pack("{s:s, s:s, s:s, s:[{s:s, s:s}]}", "defaultId", "main", "mainKey", "main", "scope",
                           "per-sender", "agents", "id", "main", "name", "main"));
}

static void m_config_get(struct oc_req *q)
{
    const struct ch_config *cfg = q->conn->oc->api->cfg;
    json_t *resolved = cfg ? ch_config_redacted(cfg) : json_object();
    json_t *parsed = NULL;
    char *raw = NULL, hash[65];

    if (!resolved) {
        ch_oc_unavailable(q, "out of memory");
        return;
    }
    /* raw is the file as JSON with the secrets redacted: the file text
     * itself would carry them.  hash covers that redacted text. */
    if (cfg && cfg->file) {
        struct ch_config tmp = *cfg;
        tmp.root = cfg->file;
        parsed = ch_config_redacted(&tmp);
    }
    if (!parsed)
        parsed = json_object();
    raw = json_dumps(parsed, JSON_INDENT(2));
    ch_sha256_hex(raw ? raw : "", raw ? strlen(raw) : 0, hash);
    ch_oc_res_ok(q->conn, q->id,
                 json_pack("{s:s, s:b, s:s, s:o, s:O, s:b, s:o, s:s, s:[], s:[], s:[]}", "path",
                           cfg && cfg->path ? cfg->path : "", "exists", cfg && cfg->file_exists, "raw",
                           raw ? raw : "{}", "parsed", parsed, "resolved", resolved, "valid", 1, "config", resolved,
                           "hash", hash, "issues", "warnings", "legacyIssues"));
    ch_free(raw);
}

static void tail_line(const char *line, size_t len, void *data)
{
    json_array_append_new(data, json_stringn(line, len));
}

/* The log goes to stderr; the newest lines (masked) are kept in a bounded
 * ring in core/log.c, which is what this tails.  `cursor` is the ring's
 * line sequence: poll with the returned cursor (`openclaw logs --follow`). */
static void m_logs_tail(struct oc_req *q)
{
    const json_t *c = json_object_get(q->params, "cursor"), *lim = json_object_get(q->params, "limit");
    const json_t *mb = json_object_get(q->params, "maxBytes");
    uint64_t cursor = json_is_integer(c) && json_integer_value(c) > 0 ? (uint64_t)json_integer_value(c) : 0;
    size_t limit = json_is_integer(lim) && json_integer_value(lim) > 0 ? (size_t)json_integer_value(lim) : 200;
    size_t max_bytes = json_is_integer(mb) && json_integer_value(mb) > 0 ? (size_t)json_integer_value(mb) : 1000000;
    json_t *lines = json_array();
    bool reset = false, first = !c;
    size_t n, bytes = 0, i;
    json_t *l;

    limit = CH_MIN(limit, (size_t)5000);
    max_bytes = CH_MIN(max_bytes, (size_t)1000000);
    n = ch_log_tail(&cursor, limit, max_bytes, &reset, tail_line, lines);
    json_array_foreach(lines, i, l) bytes += json_string_length(l) + 1;
    ch_oc_res_ok(q->conn, q->id,
                 json_pack("{s:s, s:I, s:I, s:o, s:b, s:b}", "file", "stderr (the newest lines are kept in memory)",
                           "cursor", (json_int_t)cursor, "size", (json_int_t)bytes, "lines", lines, "truncated",
                           n == limit, "reset", reset && !first));
}

static void m_system_presence(struct oc_req *q)
{
    ch_oc_res_ok(q->conn, q->id, ch_oc_presence_json(q->conn->oc));
}

static void m_channels_status(struct oc_req *q)
{
    ch_oc_res_ok(q->conn, q->id,
                 json_pack("{s:I, s:[], s:{}, s:{}, s:{}, s:{}}", "ts", (json_int_t)ch_now_ms(), "channelOrder",
                           "channelLabels", "channels", "channelAccounts", "channelDefaultAccountId"));
}

static void m_cron_list(struct oc_req *q)
{
    const json_t *lim = json_object_get(q->params, "limit"), *off = json_object_get(q->params, "offset");

    /* No scheduler yet: an empty page of the v4 shape. */
    ch_oc_res_ok(q->conn, q->id,
                 json_pack("{s:[], s:i, s:I, s:I, s:b, s:n}", "jobs", "total", 0, "offset",
                           (json_int_t)(off ? json_integer_value(off) : 0), "limit",
                           (json_int_t)(lim ? json_integer_value(lim) : 50), "hasMore", 0, "nextOffset"));
}

static void m_cron_status(struct oc_req *q)
{
    ch_oc_res_ok(q->conn, q->id,
                 json_pack("{s:b, s:s, s:i, s:n}", "enabled", 0, "storePath", "", "jobs", 0, "nextWakeAtMs"));
}

static void m_send(struct oc_req *q)
{
    const char *ch = json_string_value(json_object_get(q->params, "channel"));
    char msg[256];

    /* No channel adapter exists yet: say which one was asked for. */
    snprintf(msg, sizeof(msg),
             "send: channel %s%.64s%s is not available on this gateway (no channel adapters are "
             "configured)",
             ch ? "'" : "", ch ? ch : "(default)", ch ? "'" : "");
    ch_oc_res_err(q->conn, q->id, "UNAVAILABLE", msg,
                  json_pack("{s:s, s:s}", "code", "CHANNEL_UNAVAILABLE", "channel", ch ? ch : "default"));
}

void ch_oc_system_event_push(struct ch_oc *oc, const char *text, const char *source)
{
    /* Bounded: the oldest event goes once 100 are queued (no heartbeat
     * consumes them yet; status shows them). */
    while (json_array_size(oc->events) >= 100)
        json_array_remove(oc->events, 0);
    json_array_append_new(oc->events,
                          json_pack("{s:s, s:s, s:I}", "text", text, "source", source, "ts", (json_int_t)ch_now_ms()));
}

static void m_wake(struct oc_req *q)
{
    const char *mode = json_string_value(json_object_get(q->params, "mode"));

    ch_oc_system_event_push(q->conn->oc, json_string_value(json_object_get(q->params, "text")), "wake");
    ch_oc_res_ok(q->conn, q->id, json_pack("{s:b, s:s}", "ok", 1, "mode", mode ? mode : "now"));
}

static void m_system_event(struct oc_req *q)
{
    ch_oc_system_event_push(q->conn->oc, json_string_value(json_object_get(q->params, "text")), "system-event");
    ch_oc_conn_ref(q->conn);
    q->conn->oc->presence_version++;
    ch_oc_broadcast_presence(q->conn->oc);
    ch_oc_res_ok(q->conn, q->id, json_pack("{s:b}", "ok", 1));
    ch_oc_conn_unref(q->conn);
}
