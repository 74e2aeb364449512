/*
 * openai_compat.c: the OpenAI-compatible API (off unless
 * gateway.http.endpoints.chatCompletions.enabled).  `model` names either
 * the agent (`openclaw`, `openclaw/<agentId>`, `openclaw:<agentId>`,
 * `agent:<id>`: a run of the agent loop with its tools and transcript) or
 * a configured `provider/model` (a pass-through call that still uses the
 * gateway's keys, retries and fallback, and records usage and cost).
 * Errors are in OpenAI's shape {error:{message,type,code}} so the official
 * SDKs report them properly.
 */
#include <string.h>

#include "api/openai.h"

bool ch_openai_enabled(struct ch_api *a)
{
    return ch_config_bool(a->cfg, "gateway.http.endpoints.chatCompletions.enabled", false) ||
           ch_config_bool(a->cfg, "gateway.http.endpoints.responses.enabled", false);
}

bool ch_openai_is_agent_model(const char *m, const char **agent_id)
{
    static const char *prefixes[] = {"openclaw/", "openclaw:", "agent:"};
    *agent_id = "main";
    if (!strcmp(m, "openclaw"))
        return true;
    for (size_t i = 0; i < CH_ARRAY_SIZE(prefixes); i++)
        if (!strncmp(m, prefixes[i], strlen(prefixes[i]))) {
            *agent_id = m + strlen(prefixes[i]);
            return true;
        }
    return false;
}

static json_t *model_obj(const char *id, const char *owner)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created", (json_int_t)1700000000, "owned_by",
                     owner);
}

void ch_openai_models(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    json_t *list = json_array(), *cat = NULL, *m;
    size_t i;

    if (!ch_openai_enabled(a) || !a->agent) {
        ch_openai_error(r, 404, "invalid_request_error", "not_found",
                        "the OpenAI-compatible API is disabled; set gateway.http.endpoints.chatCompletions.enabled");
        json_decref(list);
        return;
    }
    json_array_append_new(list, model_obj("openclaw", "chela"));
    json_array_append_new(list, model_obj("openclaw/default", "chela")); /* what Open WebUI setups pick */
    json_array_append_new(list, model_obj("openclaw/main", "chela"));
    cat = ch_llm_catalog_models_json(ch_llm_client_catalog(ch_agent_llm(a->agent)));
    json_array_foreach(cat, i, m)
    {
        const char *id = json_string_value(json_object_get(m, "id"));
        const char *prov = json_string_value(json_object_get(m, "provider"));
        if (id)
            json_array_append_new(list, model_obj(id, prov ? prov : "chela"));
    }
    json_decref(cat);
    ch_http_respond_json(r, 200, json_pack("{s:s, s:o}", "object", "list", "data", list));
}

void ch_openai_model(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    char id[512];
    const char *agent;
    struct ch_llm_target t;
    size_t n;

    if (!ch_openai_enabled(a) || !a->agent) {
        ch_openai_error(r, 404, "invalid_request_error", "not_found",
                        "the OpenAI-compatible API is disabled; set gateway.http.endpoints.chatCompletions.enabled");
        return;
    }
    if (ch_url_decode_path(ch_http_req_param(r, 0), id, sizeof(id), &n) != 0 || n == 0) {
        ch_openai_error(r, 400, "invalid_request_error", "invalid_model", "bad model id in the path");
        return;
    }
    /* Not UTF-8: no model's name (`provider/<anything>` would resolve). */
    if (!ch_oa_utf8_ok(id, n)) {
        ch_openai_error(r, 404, "invalid_request_error", "model_not_found", "The model '%s' does not exist", id);
        return;
    }
    if (ch_openai_is_agent_model(id, &agent)) {
        if (strcmp(agent, "main") && strcmp(agent, "default")) /* one agent here */
            ch_openai_error(r, 404, "invalid_request_error", "model_not_found", "unknown agent '%s'", agent);
        else
            ch_http_respond_json(r, 200, model_obj(id, "chela"));
        return;
    }
    if (ch_llm_catalog_resolve(ch_llm_client_catalog(ch_agent_llm(a->agent)), id, &t, NULL) != 0) {
        ch_openai_error(r, 404, "invalid_request_error", "model_not_found", "The model '%s' does not exist", id);
        return;
    }
    ch_http_respond_json(r, 200, model_obj(id, t.provider->id));
}

/* ---- shared request lifecycle ---- */

void ch_oa_free(struct oa_req *o)
{
    json_decref(o->rs_body);
    if (o->sub)
        ch_agent_unsubscribe(o->sub);
    if (o->call)
        ch_llm_call_free(o->call);
    ch_buf_release(&o->text);
    ch_buf_release(&o->out);
    ch_http_req_unref(o->req);
    ch_free(o);
}

static void on_client_gone(struct ch_http_req *r, void *data)
{
    struct oa_req *o = data;
    (void)r;
    if (o->finished)
        return;
    o->finished = true;
    if (o->call)
        ch_llm_call_abort(o->call);
    if (o->agent_mode && o->api->agent && !o->api->shutting_down)
        ch_agent_abort(o->api->agent, o->run_id);
}

void ch_oa_error_for(struct oa_req *o, const char *cls, const char *msg)
{
    int status = 502;
    const char *type = "api_error";

    if (cls && !strcmp(cls, "rate_limit")) {
        status = 429;
        type = "rate_limit_error";
    } else if (cls && !strcmp(cls, "timeout")) {
        status = 504;
    } else if (cls && !strcmp(cls, "context_length")) {
        status = 400;
        type = "invalid_request_error";
        cls = "context_length_exceeded";
    }
    if (o->started) {
        ch_oa_stream_error(o, type, cls, msg);
        return;
    }
    if (!ch_http_req_is_closed(o->req))
        ch_openai_error(o->req, status, type, cls, "%s", msg);
    o->finished = true;
}

/* Reply with a whole chat.completion (reply: a neutral message, or NULL
 * and text).  Rendered straight into o->out, without a jansson tree. */
void ch_oa_respond(struct oa_req *o, const json_t *reply, const char *text, const char *finish,
                   const struct ch_llm_usage *u)
{
    ch_buf_reset(&o->out);
    if (o->responses)
        ch_rs_respond(o, reply, text, finish, u);
    else if (ch_oa_render_completion(&o->out, o, reply, text, finish, u) == 0)
        ch_http_respond(o->req, 200, "application/json", o->out.data, o->out.len);
    else
        ch_openai_error(o->req, 500, "api_error", "internal", "the response could not be rendered");
    o->finished = true;
}

/* ---- pass-through ---- */

static void pt_event(const struct ch_llm_event *e, void *data)
{
    struct oa_req *o = data;

    if (!o->stream || o->finished)
        return;
    if (!o->started && ch_oa_stream_start(o) != 0)
        return;
    if (e->type == CH_LLM_EV_TEXT_DELTA)
        ch_oa_stream_delta(o, e->text.p, e->text.len);
    else
        ch_oa_stream_tool(o, e);
}

static void pt_done(struct ch_llm_call *call, const struct ch_llm_result *res, void *data)
{
    struct oa_req *o = data;

    (void)call;
    if (res->rc == 0)
        ch_openai_record_usage(o->api, res);
    if (o->finished || ch_http_req_is_closed(o->req))
        goto out;
    if (res->rc && (res->rc == CH_EINVAL || res->rc == CH_E_TOO_LARGE) && !o->started) {
        /* The request builder refused the conversation (a tool result
         * with no call before it, over the body cap): the client's error,
         * not the upstream's. */
        ch_openai_param_error(o->req, "invalid_messages", o->responses ? "input" : "messages",
                              res->message[0] ? res->message : ch_strerror(res->rc));
        o->finished = true;
        goto out;
    }
    if (res->rc) {
        ch_oa_error_for(o, ch_llm_err_name(res->err), res->message[0] ? res->message : ch_strerror(res->rc));
        goto out;
    }
    if (o->stream) {
        if (!o->started && ch_oa_stream_start(o) != 0)
            goto out;
        o->reply = res->message_json; /* the tool calls of a response */
        ch_oa_stream_finish(o, ch_openai_finish_reason(res->stop), &res->usage);
    } else {
        ch_oa_respond(o, res->message_json, NULL, ch_openai_finish_reason(res->stop), &res->usage);
    }
out:
    ch_oa_free(o);
}

static void pass_through(struct oa_req *o, const json_t *body, json_t *msgs, char *system)
{
    struct ch_llm_call_opts opts = {0};
    char err[256] = "";
    const json_t *mt = json_object_get(body, "max_completion_tokens");
    json_t *tools, *sampling;
    int rc;

    if (ch_openai_sampling(o->req, body, &sampling) != 0) {
        ch_oa_free(o);
        return;
    }
    tools = ch_openai_tools_to_neutral(json_object_get(body, "tools"), err, sizeof(err));
    if (!tools && err[0]) {
        ch_openai_error(o->req, 400, "invalid_request_error", "invalid_tools", "%s", err);
        json_decref(sampling);
        ch_oa_free(o);
        return;
    }
    if (!mt)
        mt = json_object_get(body, "max_tokens");
    opts.model = o->model;
    opts.system = system;
    opts.messages = msgs;
    opts.tools = tools;
    opts.sampling = sampling;
    opts.max_tokens = json_integer_value(mt);
    opts.has_temperature = json_is_number(json_object_get(body, "temperature"));
    opts.temperature = json_number_value(json_object_get(body, "temperature"));
    opts.whole_body = !o->stream; /* nothing is sent before the end anyway */
    opts.on_event = pt_event;
    opts.on_done = pt_done;
    opts.data = o;
    rc = ch_llm_call_start(ch_agent_llm(o->api->agent), &opts, &o->call);
    json_decref(tools);
    json_decref(sampling);
    if (rc) {
        ch_openai_error(o->req, 500, "api_error", "internal", "cannot start the call: %s", ch_strerror(rc));
        ch_oa_free(o);
    }
}

void ch_openai_start(struct ch_api *a, struct ch_http_req *r, const json_t *body, json_t *rs, const char *session)
{
    const json_t *so, *model = json_object_get(body, "model");
    const struct ch_str *hdr;
    char err[256] = "", hsession[CH_SESSION_KEY_MAX + 1] = "", raw[CH_STORE_MAX_KEY_BYTES + 1], agent_hdr[130],
         uuid[37], *system = NULL;
    int rc;
    json_t *msgs = NULL;
    const char *agent_id;
    struct oa_req *o;

    if (!json_is_string(model) || !*json_string_value(model) || json_string_length(model) >= 256) {
        ch_openai_param_error(r, "invalid_model", "model", "model is required");
        return;
    }
    if (ch_openai_to_neutral(json_object_get(body, "messages"), &msgs, &system, err, sizeof(err)) != 0) {
        ch_openai_param_error(r, "invalid_messages", rs ? "input" : "messages", err);
        return;
    }
    hdr = ch_http_req_header(r, "x-openclaw-session-key");
    if (!session && hdr && hdr->len) {
        /* One that is too long or not UTF-8 is refused, never cut (the
         * session rows and runs could not show it). */
        if (hdr->len > CH_STORE_MAX_KEY_BYTES || !ch_oa_utf8_ok(hdr->p, hdr->len)) {
            ch_openai_error(r, 400, "invalid_request_error", "invalid_session",
                            "x-openclaw-session-key: a session key is 1-%d bytes of UTF-8 text",
                            CH_STORE_MAX_KEY_BYTES);
            goto out;
        }
        snprintf(raw, sizeof(raw), "%.*s", (int)hdr->len, hdr->p);
        /* The run goes to the canonical key (`s1` is agent:main:s1, as in
         * OpenClaw); a malformed agent key is OpenClaw's error. */
        if ((rc = ch_api_session_key(raw, hsession)) == CH_EINVAL) {
            ch_openai_error(r, 400, "invalid_request_error", "invalid_session",
                            "Invalid --session-key \"%s\". Agent-prefixed session keys must use "
                            "agent:<agent-id>:<session-key>.",
                            raw);
            goto out;
        }
        if (rc) {
            ch_openai_error(r, 400, "invalid_request_error", "invalid_session",
                            "x-openclaw-session-key: a session key is at most %d bytes as agent:main:<key>",
                            CH_SESSION_KEY_MAX);
            goto out;
        }
        session = hsession;
        /* OpenClaw keeps these namespaces to itself, also inside an agent
         * (agent:main:subagent:x); the main session and agent:... stay
         * reachable. */
        if (ch_api_session_key_internal(session)) {
            ch_openai_error(r, 400, "invalid_request_error", "invalid_session",
                            "x-openclaw-session-key: the subagent:, cron: and acp: namespaces are reserved");
            goto out;
        }
    }
    o = ch_calloc(1, sizeof(*o));
    if (!o) {
        ch_openai_error(r, 500, "api_error", "internal", "out of memory");
        goto out;
    }
    o->api = a;
    o->req = r;
    ch_http_req_ref(r);
    ch_buf_init(&o->text, 16 << 20);
    ch_buf_init(&o->out, (size_t)CH_LLM_MAX_TEXT_BYTES * 6 + (64 << 10)); /* escaped text, worst case */
    o->responses = rs != NULL;
    o->rs_body = json_incref(rs);
    ch_uuid4(uuid);
    /* A response's id names its run in agent mode (agent_mode sets it). */
    snprintf(o->id, sizeof(o->id), "%s%s", rs ? "resp_" : "chatcmpl-", uuid);
    ch_str_copy(o->model, sizeof(o->model), json_string_value(model));
    o->created = ch_now_ms() / 1000;
    o->stream = json_is_true(json_object_get(body, "stream"));
    so = json_object_get(body, "stream_options");
    o->include_usage = json_is_true(json_object_get(so, "include_usage"));
    ch_http_req_on_close(r, on_client_gone, o);
    if (ch_openai_is_agent_model(o->model, &agent_id)) {
        /* OpenClaw's compatibility override of a bare `openclaw`. */
        if (!strcmp(o->model, "openclaw") && (hdr = ch_http_req_header(r, "x-openclaw-agent-id")) && hdr->len) {
            snprintf(agent_hdr, sizeof(agent_hdr), "%.*s", (int)CH_MIN(hdr->len, (size_t)128), hdr->p);
            agent_id = agent_hdr;
        }
        if (strcmp(agent_id, "main") && strcmp(agent_id, "default")) {
            ch_openai_error(r, 404, "invalid_request_error", "model_not_found",
                            "unknown agent '%s'; this gateway runs the agent 'main'", agent_id);
            ch_oa_free(o);
            goto out;
        }
        ch_oa_agent_mode(o, body, msgs, system, session);
    } else {
        struct ch_llm_target t;
        struct ch_error e = {0};
        if (ch_llm_catalog_resolve(ch_llm_client_catalog(ch_agent_llm(a->agent)), o->model, &t, &e) != 0) {
            ch_openai_error(r, 404, "invalid_request_error", "model_not_found", "%s", e.msg);
            ch_oa_free(o);
            goto out;
        }
        pass_through(o, body, msgs, system);
    }
out:
    json_decref(msgs);
    ch_free(system);
}

json_t *ch_openai_body(struct ch_api *a, struct ch_http_req *r, bool on, const char *what, const char *key)
{
    json_error_t jerr;
    json_t *body;

    if (!on || !a->agent) {
        ch_openai_error(r, 404, "invalid_request_error", "not_found", "the %s is disabled; set %s", what, key);
        return NULL;
    }
    body = ch_llm_json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &jerr);
    if (!json_is_object(body)) {
        ch_openai_error(r, 400, "invalid_request_error", "invalid_json", "the body must be a JSON object (%s)",
                        body ? "not an object" : jerr.text);
        json_decref(body);
        return NULL;
    }
    return body;
}

void ch_openai_completions(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    /* Each endpoint has its own switch; either serves /v1/models. */
    json_t *body = ch_openai_body(a, r, ch_config_bool(a->cfg, "gateway.http.endpoints.chatCompletions.enabled", false),
                                  "OpenAI-compatible API", "gateway.http.endpoints.chatCompletions.enabled");

    if (body && ch_oa_chat_files(a, r, body) == 0) /* else: reading PDFs, or answered */
        ch_openai_start(a, r, body, NULL, NULL);
    json_decref(body);
}
