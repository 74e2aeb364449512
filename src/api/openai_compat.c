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

static bool enabled(struct ch_api *a)
{
    return ch_config_bool(a->cfg, "gateway.http.endpoints.chatCompletions.enabled", false) ||
           ch_config_bool(a->cfg, "gateway.http.endpoints.responses.enabled", false);
}

static bool is_agent_model(const char *m, const char **agent_id)
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

    if (!enabled(a) || !a->agent) {
        ch_openai_error(r, 404, "invalid_request_error", "not_found",
                        "the OpenAI-compatible API is disabled; set gateway.http.endpoints.chatCompletions.enabled");
        json_decref(list);
        return;
    }
    json_array_append_new(list, model_obj("openclaw", "chela"));
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

    if (!enabled(a) || !a->agent) {
        ch_openai_error(r, 404, "invalid_request_error", "not_found",
                        "the OpenAI-compatible API is disabled; set gateway.http.endpoints.chatCompletions.enabled");
        return;
    }
    if (ch_url_decode_path(ch_http_req_param(r, 0), id, sizeof(id), &n) != 0 || n == 0) {
        ch_openai_error(r, 400, "invalid_request_error", "invalid_model", "bad model id in the path");
        return;
    }
    if (is_agent_model(id, &agent)) {
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
    if (ch_oa_render_completion(&o->out, o, reply, text, finish, u) == 0)
        ch_http_respond(o->req, 200, "application/json", o->out.data, o->out.len);
    else
        ch_openai_error(o->req, 500, "api_error", "internal", "the response could not be rendered");
    o->finished = true;
}

/* ---- pass-through ---- */

/*
 * Usage of pass-through calls is summed in memory per (provider, model)
 * and written once a second (ch_openai_flush_usage, from the api tick and
 * at stop): one store job per second instead of one per request, which
 * otherwise costs a writer-thread wake-up and a transaction per call.
 */
struct usage_row {
    char *provider, *model; /* owned */
    int64_t requests;
    struct ch_usage u;
};

struct usage_job {
    struct ch_store_job job;
    size_t n;
    struct usage_row *rows; /* owned */
};

static void usage_rows_free(struct usage_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ch_free(rows[i].provider);
        ch_free(rows[i].model);
    }
    ch_free(rows);
}

static int usage_run(struct ch_db *db, struct ch_store_job *job)
{
    struct usage_job *uj = (struct usage_job *)job;
    int64_t now = ch_now_ms();
    int rc = 0;

    for (size_t i = 0; i < uj->n && rc == 0; i++)
        rc = ch_usage_add(db, now, uj->rows[i].provider, uj->rows[i].model, uj->rows[i].requests, &uj->rows[i].u);
    return rc;
}

static void usage_done(struct ch_store_job *job, int rc)
{
    struct usage_job *uj = (struct usage_job *)job;

    if (rc)
        ch_log_warn("openai: saving usage failed: %s", ch_strerror(rc));
    usage_rows_free(uj->rows, uj->n);
    ch_free(uj);
}

void ch_openai_flush_usage(struct ch_api *a)
{
    struct ch_map_entry *me;
    struct usage_job *uj;
    size_t it = 0, n = a->pt_rows.count, i = 0;

    if (!n || !a->store)
        return;
    uj = ch_calloc(1, sizeof(*uj));
    if (uj)
        uj->rows = ch_calloc(n, sizeof(*uj->rows));
    while ((me = ch_map_next(&a->pt_rows, &it)) != NULL) {
        struct usage_row *row = me->value;
        if (uj && uj->rows && i < n)
            uj->rows[i++] = *row; /* the job takes the strings */
        else {
            ch_free(row->provider);
            ch_free(row->model);
        }
        ch_free(row);
    }
    ch_map_release(&a->pt_rows);
    ch_map_init(&a->pt_rows);
    if (!uj || !uj->rows) {
        ch_free(uj);
        return;
    }
    uj->n = i;
    uj->job.run = usage_run;
    uj->job.done = usage_done;
    if (ch_store_write(a->store, &uj->job) != 0) {
        ch_log_warn("openai: store queue full; %zu usage rows dropped", uj->n);
        usage_rows_free(uj->rows, uj->n);
        ch_free(uj);
    }
}

void ch_openai_release(struct ch_api *a)
{
    struct ch_map_entry *me;
    size_t it = 0;

    while ((me = ch_map_next(&a->pt_rows, &it)) != NULL) {
        struct usage_row *row = me->value;
        ch_free(row->provider);
        ch_free(row->model);
        ch_free(row);
    }
    ch_map_release(&a->pt_rows);
}

static void record_usage(struct ch_api *a, const struct ch_llm_result *res)
{
    struct usage_row *row;
    char key[400];
    int kn;

    ch_llm_usage_add(&a->pt_usage, &res->usage);
    a->pt_cost_usd += res->cost_usd;
    if (!res->provider || !*res->provider || !res->model || !*res->model || !a->store)
        return;
    kn = snprintf(key, sizeof(key), "%.64s/%.256s", res->provider, res->model);
    row = ch_map_get(&a->pt_rows, key, (size_t)kn);
    if (!row) {
        /* Bounded: the catalog's models; past 1000 keys the tick flushes first. */
        if (a->pt_rows.count >= 1000)
            ch_openai_flush_usage(a);
        row = ch_calloc(1, sizeof(*row));
        if (!row)
            return;
        row->provider = ch_strdup(res->provider);
        row->model = ch_strdup(res->model);
        if (!row->provider || !row->model || ch_map_set(&a->pt_rows, key, (size_t)kn, row, NULL) != 0) {
            ch_free(row->provider);
            ch_free(row->model);
            ch_free(row);
            return;
        }
    }
    row->requests++;
    row->u.input_tokens += (int64_t)res->usage.input_tokens;
    row->u.output_tokens += (int64_t)res->usage.output_tokens;
    row->u.cache_read_tokens += (int64_t)res->usage.cache_read_tokens;
    row->u.cache_write_tokens += (int64_t)res->usage.cache_write_tokens;
    row->u.cost_usd += res->cost_usd;
}

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
        record_usage(o->api, res);
    if (o->finished || ch_http_req_is_closed(o->req))
        goto out;
    if (res->rc) {
        error_for(o, ch_llm_err_name(res->err), res->message[0] ? res->message : ch_strerror(res->rc));
        goto out;
    }
    if (o->stream) {
        if (!o->started && ch_oa_stream_start(o) != 0)
            goto out;
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
    struct ch_buf msg, extra;
    char key[600], uuid[37];
    size_t i;

    ch_buf_init(&msg, 4 << 20);
    ch_buf_init(&extra, 4 << 20);
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
    o->agent_mode = true;
    o->sub = ch_agent_subscribe(o->api->agent, o->run_id, ag_event, o);
    if (!o->sub) {
        ch_openai_error(o->req, 500, "api_error", "internal", "out of memory");
        goto fail;
    }
    req.session_key = key;
    req.message = msg.data ? msg.data : "";
    req.run_id = o->run_id;
    req.source = "openai";
    req.extra_system = extra.len ? extra.data : NULL;
    req.max_tokens = json_integer_value(json_object_get(body, "max_tokens"));
    req.has_temperature = json_is_number(json_object_get(body, "temperature"));
    req.temperature = json_number_value(json_object_get(body, "temperature"));
    ch_agent_submit(o->api->agent, &req, ag_accepted, o);
    ch_buf_release(&msg);
    ch_buf_release(&extra);
    return;
fail:
    ch_buf_release(&msg);
    ch_buf_release(&extra);
    oa_free(o);
}

void ch_openai_completions(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    const json_t *so, *model;
    const struct ch_str *hdr;
    char err[256] = "", session[520] = "", *system = NULL;
    json_t *body = NULL, *msgs = NULL;
    json_error_t jerr;
    const char *agent_id;
    struct oa_req *o;

    if (!enabled(a) || !a->agent) {
        ch_openai_error(r, 404, "invalid_request_error", "not_found",
                        "the OpenAI-compatible API is disabled; set gateway.http.endpoints.chatCompletions.enabled");
        return;
    }
    body = ch_llm_json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &jerr);
    if (!json_is_object(body)) {
        ch_openai_error(r, 400, "invalid_request_error", "invalid_json", "the body must be a JSON object (%s)",
                        body ? "not an object" : jerr.text);
        goto out;
    }
    model = json_object_get(body, "model");
    if (!json_is_string(model) || !*json_string_value(model) || json_string_length(model) >= 256) {
        ch_openai_error(r, 400, "invalid_request_error", "invalid_model", "model is required");
        goto out;
    }
    if (ch_openai_to_neutral(json_object_get(body, "messages"), &msgs, &system, err, sizeof(err)) != 0) {
        ch_openai_error(r, 400, "invalid_request_error", "invalid_messages", "%s", err);
        goto out;
    }
    hdr = ch_http_req_header(r, "x-openclaw-session-key");
    if (hdr && hdr->len)
        snprintf(session, sizeof(session), "%.*s", (int)CH_MIN(hdr->len, (size_t)512), hdr->p);
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
    ch_uuid4(o->id + 9);
    memcpy(o->id, "chatcmpl-", 9);
    ch_str_copy(o->model, sizeof(o->model), json_string_value(model));
    o->created = ch_now_ms() / 1000;
    o->stream = json_is_true(json_object_get(body, "stream"));
    so = json_object_get(body, "stream_options");
    o->include_usage = json_is_true(json_object_get(so, "include_usage"));
    ch_http_req_on_close(r, on_client_gone, o);
    if (is_agent_model(o->model, &agent_id)) {
        if (strcmp(agent_id, "main") && strcmp(agent_id, "default")) {
            ch_openai_error(r, 404, "invalid_request_error", "model_not_found",
                            "unknown agent '%s'; this gateway runs the agent 'main'", agent_id);
            oa_free(o);
            goto out;
        }
        agent_mode(o, body, msgs, system, session[0] ? session : NULL);
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
    json_decref(body);
}
