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

static void oa_free(struct oa_req *o)
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

static void error_for(struct oa_req *o, const char *cls, const char *msg)
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
static void respond_completion(struct oa_req *o, const json_t *reply, const char *text, const char *finish,
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
        error_for(o, ch_llm_err_name(res->err), res->message[0] ? res->message : ch_strerror(res->rc));
        goto out;
    }
    if (o->stream) {
        if (!o->started && ch_oa_stream_start(o) != 0)
            goto out;
        o->reply = res->message_json; /* the tool calls of a response */
        ch_oa_stream_finish(o, ch_openai_finish_reason(res->stop), &res->usage);
    } else {
        respond_completion(o, res->message_json, NULL, ch_openai_finish_reason(res->stop), &res->usage);
    }
out:
    oa_free(o);
}

static void pass_through(struct oa_req *o, const json_t *body, json_t *msgs, char *system)
{
    struct ch_llm_call_opts opts = {0};
    char err[256] = "";
    const json_t *mt = json_object_get(body, "max_completion_tokens");
    json_t *tools, *sampling;
    int rc;

    if (ch_openai_sampling(o->req, body, &sampling) != 0) {
        oa_free(o);
        return;
    }
    tools = ch_openai_tools_to_neutral(json_object_get(body, "tools"), err, sizeof(err));
    if (!tools && err[0]) {
        ch_openai_error(o->req, 400, "invalid_request_error", "invalid_tools", "%s", err);
        json_decref(sampling);
        oa_free(o);
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
        oa_free(o);
    }
}

/* ---- agent mode ---- */

static void ag_event(const struct ch_agent_event *ev, void *data)
{
    struct oa_req *o = data;
    struct ch_agent_sub *sub;

    if (ev->type == CH_AGENT_EV_TEXT && !o->finished && o->stream) {
        if (o->started || ch_oa_stream_start(o) == 0)
            ch_oa_stream_delta(o, ev->delta.p, ev->delta.len);
        return;
    }
    if (ev->type != CH_AGENT_EV_END)
        return;
    if (o->finished || ch_http_req_is_closed(o->req)) {
        /* the client left; the run was aborted for it */
    } else if (strcmp(ev->result->status, "ok")) {
        error_for(o, ev->result->error_class ? ev->result->error_class : ev->result->status,
                  ev->result->error ? ev->result->error : ev->result->status);
    } else if (o->stream) {
        if (o->started || ch_oa_stream_start(o) == 0)
            ch_oa_stream_finish(o, "stop", &ev->result->usage);
    } else {
        respond_completion(o, NULL, ev->result->text, "stop", &ev->result->usage);
    }
    o->finished = true;
    /* Unsubscribing from inside the bus's callback is allowed. */
    sub = o->sub;
    o->sub = NULL;
    ch_agent_unsubscribe(sub);
    oa_free(o);
}

static void ag_accepted(int rc, const char *run_id, bool duplicate, const char *msg, void *data)
{
    struct oa_req *o = data;

    (void)run_id, (void)duplicate;
    if (rc == 0)
        return; /* events follow on the subscription */
    if (!ch_http_req_is_closed(o->req))
        ch_openai_error(o->req, rc == CH_EBUSY ? 503 : 400, rc == CH_EBUSY ? "api_error" : "invalid_request_error",
                        rc == CH_EBUSY ? "queue_full" : "invalid_request", "%s", msg ? msg : ch_strerror(rc));
    o->finished = true;
    oa_free(o);
}

/* Earlier turns as plain text for a stateless request. */
static char *history_text(const json_t *msgs, size_t upto)
{
    struct ch_buf b;
    const json_t *m, *blk;
    size_t i, j;

    ch_buf_init(&b, 1 << 20);
    json_array_foreach(msgs, i, m)
    {
        if (i >= upto)
            break;
        ch_buf_appendf(&b, "%s: ", json_string_value(json_object_get(m, "role")));
        json_array_foreach(json_object_get(m, "content"), j, blk)
        {
            const char *t = json_string_value(json_object_get(blk, "text"));
            if (t)
                ch_buf_append_str(&b, t);
        }
        ch_buf_append_char(&b, '\n');
    }
    return ch_buf_detach(&b, NULL);
}

/* The user's newest message is the run's message; a stateless request's
 * earlier turns and system messages travel as extra system text. */
static void agent_mode(struct oa_req *o, const json_t *body, json_t *msgs, char *system, const char *session_hdr)
{
    struct ch_agent_run_req req = {0};
    const json_t *last = json_array_get(msgs, json_array_size(msgs) - 1), *blk;
    const char *user = json_string_value(json_object_get(body, "user"));
    const char *tc = json_string_value(json_object_get(body, "tool_choice"));
    json_t *sampling = NULL;
    const struct ch_str *hdr;
    struct ch_buf msg, extra;
    char key[600], uuid[37], model[256];
    size_t i;

    ch_buf_init(&msg, 4 << 20);
    ch_buf_init(&extra, 4 << 20);
    /* Client tools would need the run to stop at their call and resume
     * from the client's result; saying so beats ignoring them. */
    if (json_array_size(json_object_get(body, "tools")) && !(tc && !strcmp(tc, "none"))) {
        ch_openai_param_error(o->req, "unsupported_parameter", "tools",
                              "client tools are not supported with the agent models here (the agent runs its "
                              "own tools); call a provider model (provider/model) to pass tools through");
        goto fail;
    }
    if (ch_openai_sampling(o->req, body, &sampling) != 0)
        goto fail; /* answered */
    if (strcmp(json_string_value(json_object_get(last, "role")), "user")) {
        ch_openai_error(o->req, 400, "invalid_request_error", "invalid_messages",
                        "the last message must come from the user for the agent models");
        goto fail;
    }
    json_array_foreach(json_object_get(last, "content"), i, blk)
    {
        const char *t = json_string_value(json_object_get(blk, "text"));
        if (t) {
            if (msg.len)
                ch_buf_append_char(&msg, '\n');
            ch_buf_append_str(&msg, t);
        }
    }
    ch_uuid4(uuid);
    if (session_hdr)
        snprintf(key, sizeof(key), "%s", session_hdr);
    else if (user && *user)
        snprintf(key, sizeof(key), "openai-user:%.500s", user);
    else
        snprintf(key, sizeof(key), "openai:%s", uuid);
    if (system)
        ch_buf_append_str(&extra, system);
    if (!session_hdr && !(user && *user) && json_array_size(msgs) > 1) {
        char *hist = history_text(msgs, json_array_size(msgs) - 1);
        if (hist) {
            if (extra.len)
                ch_buf_append_str(&extra, "\n\n");
            ch_buf_append_str(&extra, "The conversation so far:\n");
            ch_buf_append_str(&extra, hist);
            ch_free(hist);
        }
    }
    if (ch_agent_session_key_reserved(key) && !session_hdr) {
        ch_openai_error(o->req, 400, "invalid_request_error", "invalid_session", "reserved session key");
        goto fail;
    }
    ch_agent_run_id_new(o->run_id); /* time-ordered: appends to the runs index */
    if (o->responses)
        snprintf(o->id, sizeof(o->id), "resp_%s", o->run_id);
    o->agent_mode = true;
    o->sub = ch_agent_subscribe(o->api->agent, o->run_id, ag_event, o);
    if (!o->sub) {
        ch_openai_error(o->req, 500, "api_error", "internal", "out of memory");
        goto fail;
    }
    if ((hdr = ch_http_req_header(o->req, "x-openclaw-model")) && hdr->len) {
        /* OpenClaw: the agent's backend model for this request */
        struct ch_llm_target t;
        struct ch_error e = {0};
        snprintf(model, sizeof(model), "%.*s", (int)CH_MIN(hdr->len, sizeof(model) - 1), hdr->p);
        if (hdr->len >= sizeof(model) ||
            ch_llm_catalog_resolve(ch_llm_client_catalog(ch_agent_llm(o->api->agent)), model, &t, &e) != 0) {
            ch_openai_error(o->req, 400, "invalid_request_error", "invalid_model", "x-openclaw-model: %s",
                            e.msg[0] ? e.msg : "too long");
            goto fail;
        }
        req.model = model;
    }
    req.session_key = key;
    req.message = msg.data ? msg.data : "";
    req.run_id = o->run_id;
    req.source = o->responses ? CH_OPENAI_RESPONSES_SOURCE : "openai";
    req.extra_system = extra.len ? extra.data : NULL;
    req.max_tokens = json_integer_value(json_object_get(body, "max_tokens"));
    req.has_temperature = json_is_number(json_object_get(body, "temperature"));
    req.temperature = json_number_value(json_object_get(body, "temperature"));
    /* The rest of the parameters go with every call of the run; the tool
     * ones spoke of client tools, which agent runs do not take. */
    json_object_del(sampling, "tool_choice");
    json_object_del(sampling, "parallel_tool_calls");
    req.sampling = sampling;
    ch_agent_submit(o->api->agent, &req, ag_accepted, o);
    json_decref(sampling);
    ch_buf_release(&msg);
    ch_buf_release(&extra);
    return;
fail:
    json_decref(sampling);
    ch_buf_release(&msg);
    ch_buf_release(&extra);
    oa_free(o);
}

void ch_openai_start(struct ch_api *a, struct ch_http_req *r, const json_t *body, json_t *rs, const char *session)
{
    const json_t *so, *model = json_object_get(body, "model");
    const struct ch_str *hdr;
    char err[256] = "", hsession[520] = "", agent_hdr[130], uuid[37], *system = NULL;
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
        snprintf(hsession, sizeof(hsession), "%.*s", (int)CH_MIN(hdr->len, (size_t)512), hdr->p);
        session = hsession;
        /* OpenClaw keeps these namespaces to itself (the main session,
         * agent:..., stays reachable). */
        if (!strncmp(session, "subagent:", 9) || !strncmp(session, "cron:", 5) || !strncmp(session, "acp:", 4)) {
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
            oa_free(o);
            goto out;
        }
        agent_mode(o, body, msgs, system, session);
    } else {
        struct ch_llm_target t;
        struct ch_error e = {0};
        if (ch_llm_catalog_resolve(ch_llm_client_catalog(ch_agent_llm(a->agent)), o->model, &t, &e) != 0) {
            ch_openai_error(r, 404, "invalid_request_error", "model_not_found", "%s", e.msg);
            oa_free(o);
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

    if (body)
        ch_openai_start(a, r, body, NULL, NULL);
    json_decref(body);
}
