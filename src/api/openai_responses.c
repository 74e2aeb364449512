/*
 * openai_responses.c: POST /v1/responses, OpenClaw's OpenResponses
 * endpoint (off unless gateway.http.endpoints.responses.enabled).
 *
 * The request is translated into a Chat Completions body and runs down
 * the same two paths as /v1/chat/completions: an agent model (`openclaw`,
 * `openclaw/<agentId>`, `agent:<id>`) runs the agent; a `provider/model`
 * is a pass-through call with the client's function tools.  Only the
 * answer is rendered differently (openai_resp_render.c).
 *
 * Input items: `message` (system and developer join the system prompt;
 * user and assistant take a string or input_text / output_text parts,
 * input_image (an image_url, or OpenClaw's source) and a text input_file
 * (openai_files.c)), `function_call` and `function_call_output` (the
 * client's tool turns), `reasoning` and `item_reference` (accepted,
 * ignored, as OpenClaw does).  Files by URL or file_id, PDFs, images by
 * file_id and hosted tools are refused with a 400 naming them.
 *
 * Sessions (agent models): x-openclaw-session-key, else the session of
 * previous_response_id (a response id is `resp_<run id>`, looked up in the
 * runs table; only runs this endpoint started qualify, so the id of
 * another surface's run cannot join its session), else `user`, else a
 * fresh one whose earlier input items travel as context.
 */
#include <string.h>

#include "api/openai.h"

static bool enabled(struct ch_api *a)
{
    return ch_config_bool(a->cfg, "gateway.http.endpoints.responses.enabled", false);
}

/* A message's content as Chat Completions content (a string or text
 * parts).  NULL with err on parts this gateway cannot take. */
static json_t *content_of(const struct ch_config *cfg, const json_t *c, size_t i, char *err, size_t cap)
{
    json_t *parts, *p, *part;
    size_t j;
    char where[48];

    if (json_is_string(c))
        return json_incref((json_t *)c);
    if (!json_is_array(c)) {
        snprintf(err, cap, "input[%zu].content must be a string or an array of parts", i);
        return NULL;
    }
    parts = json_array();
    json_array_foreach(c, j, p)
    {
        const char *t = json_string_value(json_object_get(p, "type"));
        const json_t *text = json_object_get(p, "text");
        if (t && (!strcmp(t, "input_text") || !strcmp(t, "output_text") || !strcmp(t, "text")) &&
            json_is_string(text)) {
            json_array_append_new(parts, json_pack("{s:s, s:O}", "type", "text", "text", text));
        } else if (t && (!strcmp(t, "input_image") || !strcmp(t, "input_file"))) {
            /* Chat's image_url part (OpenAI's image_url or OpenClaw's
             * source); a text file as its block (openai_files.c). */
            snprintf(where, sizeof(where), "input[%zu].content[%zu]", i, j);
            part = t[6] == 'i' ? ch_oa_resp_image(p, err, cap, where)
                               : ch_oa_resp_file(cfg, CH_OA_RESP_FILES, p, err, cap, where);
            if (!part) {
                json_decref(parts);
                return NULL;
            }
            json_array_append_new(parts, part);
        } else if (t && !strcmp(t, "refusal")) {
            continue;
        } else {
            snprintf(err, cap, "input[%zu].content[%zu]: %s parts are not supported; send text", i, j,
                     t ? t : "untyped");
            json_decref(parts);
            return NULL;
        }
    }
    return parts;
}

static int item_to_message(const struct ch_config *cfg, const json_t *it, size_t i, json_t *msgs, char *err, size_t cap)
{
    const char *type = json_string_value(json_object_get(it, "type"));
    const char *role = json_string_value(json_object_get(it, "role"));
    json_t *c;

    if (!json_is_object(it)) {
        snprintf(err, cap, "input[%zu] must be an object", i);
        return CH_EINVAL;
    }
    if (!type || !strcmp(type, "message")) {
        if (!role || (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system") &&
                      strcmp(role, "developer"))) {
            snprintf(err, cap, "input[%zu].role must be user, assistant, system or developer", i);
            return CH_EINVAL;
        }
        if (!(c = content_of(cfg, json_object_get(it, "content"), i, err, cap)))
            return CH_EINVAL;
        return json_array_append_new(msgs, json_pack("{s:s, s:o}", "role", role, "content", c)) ? CH_ENOMEM : 0;
    }
    if (!strcmp(type, "function_call")) {
        const json_t *id = json_object_get(it, "call_id"), *name = json_object_get(it, "name");
        const json_t *args = json_object_get(it, "arguments");
        if (!json_is_string(id) || !json_is_string(name) || (args && !json_is_string(args))) {
            snprintf(err, cap, "input[%zu]: a function_call needs call_id, name and arguments strings", i);
            return CH_EINVAL;
        }
        return json_array_append_new(msgs, json_pack("{s:s, s:n, s:[{s:O, s:s, s:{s:O, s:s}}]}", "role", "assistant",
                                                     "content", "tool_calls", "id", id, "type", "function", "function",
                                                     "name", name, "arguments", args ? json_string_value(args) : "{}"))
                   ? CH_ENOMEM
                   : 0;
    }
    if (!strcmp(type, "function_call_output")) {
        const json_t *id = json_object_get(it, "call_id"), *out = json_object_get(it, "output");
        if (!json_is_string(id) || !(c = out ? content_of(cfg, out, i, err, cap) : json_string(""))) {
            if (!err[0])
                snprintf(err, cap, "input[%zu]: a function_call_output needs call_id and output", i);
            return CH_EINVAL;
        }
        return json_array_append_new(msgs,
                                     json_pack("{s:s, s:O, s:o}", "role", "tool", "tool_call_id", id, "content", c))
                   ? CH_ENOMEM
                   : 0;
    }
    if (!strcmp(type, "reasoning") || !strcmp(type, "item_reference"))
        return 0;
    snprintf(err, cap, "input[%zu]: items of type %s are not supported", i, type);
    return CH_EINVAL;
}

static json_t *tools_of(const json_t *tools, char *err, size_t cap)
{
    json_t *out = json_array(), *t;
    size_t i;

    json_array_foreach(tools, i, t)
    {
        const char *type = json_string_value(json_object_get(t, "type"));
        json_t *fn;
        if (!type || strcmp(type, "function") || !json_is_string(json_object_get(t, "name"))) {
            snprintf(err, cap, "tools[%zu]: only function tools {type, name, parameters} are supported (got %s)", i,
                     type ? type : "no type");
            json_decref(out);
            return NULL;
        }
        fn = json_pack("{s:O}", "name", json_object_get(t, "name"));
        if (json_object_get(t, "description"))
            json_object_set(fn, "description", json_object_get(t, "description"));
        if (json_object_get(t, "parameters"))
            json_object_set(fn, "parameters", json_object_get(t, "parameters"));
        json_array_append_new(out, json_pack("{s:s, s:o}", "type", "function", "function", fn));
    }
    return out;
}

/* text.format -> response_format. */
static json_t *format_of(const json_t *f)
{
    const char *type = json_string_value(json_object_get(f, "type"));
    json_t *js;

    if (!type || !strcmp(type, "text"))
        return NULL;
    if (strcmp(type, "json_schema"))
        return json_pack("{s:s}", "type", type);
    js = json_deep_copy(f);
    json_object_del(js, "type");
    return json_pack("{s:s, s:o}", "type", "json_schema", "json_schema", js);
}

/* The Chat Completions body for a Responses request, or NULL with err
 * (and *param) on bad input. */
static json_t *translate(const struct ch_config *cfg, const json_t *b, char *err, size_t cap, const char **param)
{
    static const char *const same[] = {"model", "stream", "temperature", "top_p", "user", "parallel_tool_calls"};
    const json_t *input = json_object_get(b, "input"), *ins = json_object_get(b, "instructions"), *it, *tc;
    json_t *chat = json_object(), *msgs = json_array(), *v;
    size_t i;

    for (i = 0; i < CH_ARRAY_SIZE(same); i++)
        if ((v = json_object_get(b, same[i])) != NULL)
            json_object_set(chat, same[i], v);
    json_object_set_new(chat, "messages", msgs);
    *param = "instructions";
    if (json_is_string(ins) && json_string_length(ins))
        json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", "system", "content", ins));
    else if (ins && !json_is_null(ins) && !json_is_string(ins))
        goto bad_type;
    *param = "input";
    if (json_is_string(input)) {
        json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", "user", "content", input));
    } else if (json_is_array(input)) {
        json_array_foreach(input, i, it)
        {
            if (item_to_message(cfg, it, i, msgs, err, cap))
                goto fail;
        }
    } else {
        snprintf(err, cap, "input must be a string or an array of items");
        goto fail;
    }
    if ((v = json_object_get(b, "max_output_tokens")) != NULL && !json_is_null(v)) {
        *param = "max_output_tokens";
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            goto bad_type;
        json_object_set(chat, "max_tokens", v);
    }
    if ((v = json_object_get(b, "tools")) != NULL && json_array_size(v)) {
        *param = "tools";
        json_t *t = tools_of(v, err, cap);
        if (!t)
            goto fail;
        json_object_set_new(chat, "tools", t);
    }
    tc = json_object_get(b, "tool_choice");
    if (json_is_object(tc) && json_is_string(json_object_get(tc, "name")))
        json_object_set_new(
            chat, "tool_choice",
            json_pack("{s:s, s:{s:O}}", "type", "function", "function", "name", json_object_get(tc, "name")));
    else if (tc && !json_is_null(tc))
        json_object_set(chat, "tool_choice", (json_t *)tc);
    if ((v = format_of(json_object_get(json_object_get(b, "text"), "format"))) != NULL)
        json_object_set_new(chat, "response_format", v);
    if (json_is_string(json_object_get(json_object_get(b, "reasoning"), "effort")))
        json_object_set(chat, "reasoning_effort", json_object_get(json_object_get(b, "reasoning"), "effort"));
    return chat;
bad_type:
    snprintf(err, cap, "%s has the wrong type", *param);
fail:
    json_decref(chat);
    return NULL;
}

/* ---- previous_response_id ---- */

struct prev_job {
    struct ch_store_job job;
    struct ch_api *api;
    struct ch_http_req *req;
    json_t *chat, *rs;
    char run_id[CH_STORE_MAX_ID_BYTES + 1];
    char session[CH_STORE_MAX_ID_BYTES + 600];
};

static int prev_run(struct ch_db *db, struct ch_store_job *job)
{
    struct prev_job *j = (struct prev_job *)job;
    struct ch_run_rec run = {0};
    int rc = ch_runs_get(db, j->run_id, &run);

    if (!rc && (!run.source || strcmp(run.source, CH_OPENAI_RESPONSES_SOURCE)))
        rc = CH_ENOTFOUND; /* another surface's run: not a response */
    if (!rc)
        ch_str_copy(j->session, sizeof(j->session), run.session_key);
    ch_run_rec_release(&run);
    return rc;
}

static void prev_done(struct ch_store_job *job, int rc)
{
    struct prev_job *j = (struct prev_job *)job;
    char msg[400];

    if (ch_http_req_is_closed(j->req)) {
    } else if (rc == CH_ENOTFOUND) {
        snprintf(msg, sizeof(msg), "Previous response with id 'resp_%s' not found.", j->run_id);
        ch_openai_param_error(j->req, "previous_response_not_found", "previous_response_id", msg);
    } else if (rc) {
        ch_openai_error(j->req, 503, "api_error", "store_error", "reading the previous response failed: %s",
                        ch_strerror(rc));
    } else {
        ch_openai_start(j->api, j->req, j->chat, j->rs, j->session);
    }
    ch_http_req_unref(j->req);
    json_decref(j->chat);
    json_decref(j->rs);
    ch_free(j);
}

static void continue_previous(struct ch_api *a, struct ch_http_req *r, json_t *chat, json_t *rs, const char *prev)
{
    struct prev_job *j;

    if (strncmp(prev, "resp_", 5) || strlen(prev + 5) == 0 || strlen(prev + 5) > CH_STORE_MAX_ID_BYTES) {
        ch_openai_param_error(r, "previous_response_not_found", "previous_response_id",
                              "previous_response_id must be the id of an earlier response (resp_...)");
        return;
    }
    if (!(j = ch_calloc(1, sizeof(*j)))) {
        ch_openai_error(r, 500, "api_error", "internal", "out of memory");
        return;
    }
    j->api = a;
    j->req = r;
    ch_http_req_ref(r);
    j->chat = json_incref(chat);
    j->rs = json_incref(rs);
    ch_str_copy(j->run_id, sizeof(j->run_id), prev + 5);
    j->job.run = prev_run;
    j->job.done = prev_done;
    if (ch_store_read(a->store, &j->job) != 0) {
        ch_openai_error(r, 503, "api_error", "store_busy", "the store cannot take the request now; retry shortly");
        ch_http_req_unref(r);
        json_decref(j->chat);
        json_decref(j->rs);
        ch_free(j);
    }
}

void ch_openai_responses(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    const char *param;
    char err[300] = "";
    json_t *body;

    body = ch_openai_body(a, r, enabled(a), "OpenResponses API", "gateway.http.endpoints.responses.enabled");
    if (!body)
        return;
    if (json_object_get(body, "conversation") || json_is_true(json_object_get(body, "background"))) {
        param = json_object_get(body, "conversation") ? "conversation" : "background";
        snprintf(err, sizeof(err), "%s is not supported by this gateway; use previous_response_id", param);
        ch_openai_param_error(r, "invalid_parameter", param, err);
    } else if (ch_oa_resp_prefetch(a, r, body) == 0) { /* else: fetching files, or answered */
        ch_oa_resp_go(a, r, body);
    }
    json_decref(body);
}

void ch_oa_resp_go(struct ch_api *a, struct ch_http_req *r, json_t *body)
{
    const char *param = NULL, *prev, *model, *agent;
    char err[300] = "";
    json_t *chat = NULL;

    if (ch_oa_pdfs(a, r, body, false) != 0) /* reading PDFs: back here after, or answered */
        return;
    if (!(chat = translate(a->cfg, body, err, sizeof(err), &param))) {
        ch_openai_param_error(r, "invalid_input", param, err);
        goto out;
    }
    prev = json_string_value(json_object_get(body, "previous_response_id"));
    model = json_string_value(json_object_get(body, "model"));
    if (!prev || !model) /* no model: ch_openai_start says so */
        ch_openai_start(a, r, chat, body, NULL);
    else if (!ch_openai_is_agent_model(model, &agent))
        ch_openai_param_error(r, "invalid_parameter", "previous_response_id",
                              "previous_response_id needs an agent model (openclaw): its session keeps the "
                              "conversation; send the earlier items in input for a provider model");
    else if (ch_http_req_header(r, "x-openclaw-session-key"))
        ch_openai_start(a, r, chat, body, NULL); /* the header names the session */
    else
        continue_previous(a, r, chat, body, prev);
out:
    json_decref(chat);
}
