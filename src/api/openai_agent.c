/*
 * openai_agent.c: /v1/chat/completions and /v1/responses with an agent
 * model (`openclaw`, `openclaw/<id>`, ...): a run of the agent loop.
 *
 * The session is x-openclaw-session-key's, else `user`'s, else a fresh one
 * whose earlier turns travel as context text (OpenClaw flattens them the
 * same way).  The run's message is the newest user turn: its text, and the
 * results of client tool calls rendered as text.  Client `tools` are
 * offered to the model with the agent's own (OpenClaw's clientTools): a
 * call to one ends the run, and the answer carries it as `tool_calls`
 * (finish_reason "tool_calls") for the client to run and answer in its
 * next request.  tool_choice "required" or a named function narrows the
 * list and asks the model for a call; an answer without one is 502, as in
 * OpenClaw.  A turn or context longer than a run takes is refused (400
 * context_length_exceeded), never cut or left out without a word.
 */
#include <string.h>

#include "api/openai.h"

#define MAX_IMAGES 8
#define MAX_IMAGE_BYTES (3u << 20) /* base64: a stored message holds 4 MB */
/* The run's message as text: what ch_agent_submit takes (sched.c). */
#define MAX_TURN_BYTES (CH_STORE_MAX_CONTENT_BYTES / 2)
/* System messages, instructions and a stateless request's earlier turns:
 * the agent's system prompt holds 1 MiB (agent/context.c). */
#define MAX_CONTEXT_BYTES (1 << 20)
/* OpenClaw's words for a turn that is only images. */
#define IMAGE_ONLY "User sent image(s) with no text."

/* OpenClaw's built-in channel aliases (its channel catalog). */
static const char *const channel_alias[][2] = {
    {"lark", "feishu"},
    {"gchat", "googlechat"},
    {"google-chat", "googlechat"},
    {"imsg", "imessage"},
    {"internet-relay-chat", "irc"},
    {"teams", "msteams"},
    {"nc", "nextcloud-talk"},
    {"nc-talk", "nextcloud-talk"},
    {"twitch-chat", "twitch"},
    {"zl", "zalo"},
    {"zlu", "zalouser"},
};

/* x-openclaw-message-channel, normalized as OpenClaw does: trimmed,
 * lowercased, an alias replaced by its channel; absent or blank leaves
 * out "" (the run has no channel).  A name longer than 64 bytes or with
 * spaces or control bytes inside is a 400 (answered, -1). */
static int message_channel(struct ch_http_req *r, char *out, size_t cap)
{
    const struct ch_str *h = ch_http_req_header(r, "x-openclaw-message-channel");
    const char *p = h ? h->p : "", *e = p + (h ? h->len : 0);
    size_t n = 0;

    out[0] = '\0';
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (p == e)
        return 0;
    for (; p < e; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || n + 1 >= cap || n >= 64) {
            ch_openai_error(r, 400, "invalid_request_error", "invalid_channel",
                            "x-openclaw-message-channel: a channel name is 1-64 printable characters "
                            "without spaces");
            return -1;
        }
        out[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    out[n] = '\0';
    for (size_t i = 0; i < sizeof(channel_alias) / sizeof(channel_alias[0]); i++)
        if (!strcmp(out, channel_alias[i][0])) {
            ch_str_copy(out, cap, channel_alias[i][1]);
            break;
        }
    return 0;
}

/* tool_choice "required" or a named function: the run must end at a
 * client call (of that name). */
static bool choice_met(const struct oa_req *o, const json_t *calls)
{
    const json_t *c;
    size_t i;

    if (!o->tool_required[0])
        return true;
    json_array_foreach(calls, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        if (!strcmp(o->tool_required, "*") || (name && !strcmp(name, o->tool_required)))
            return true;
    }
    return false;
}

/* The run stopped at client tool calls: the answer is the run's text and
 * the calls, as one assistant message with tool_calls. */
static void answer_calls(struct oa_req *o, const struct ch_agent_result *res)
{
    json_t *reply = json_pack("{s:s, s:[]}", "role", "assistant", "content"), *content, *c;
    size_t i;
    size_t tl = res->text ? strlen(res->text) : 0;

    while (tl && res->text[tl - 1] == '\n') /* the loop's separator before the calls */
        tl--;
    content = json_object_get(reply, "content");
    if (content && tl)
        json_array_append_new(content, ch_llm_text_block(res->text, tl));
    json_array_foreach(res->client_calls, i, c) json_array_append(content, c);
    if (!content) {
        ch_oa_error_for(o, "unknown", "out of memory");
    } else if (!o->stream) {
        ch_oa_respond(o, reply, NULL, "tool_calls", &res->usage);
    } else if (o->started || ch_oa_stream_start(o) == 0) {
        /* Chat chunks: each call's start, then its arguments whole (a
         * response's function calls go out from o->reply at the finish). */
        json_array_foreach(res->client_calls, i, c)
        {
            struct ch_llm_event e = {.type = CH_LLM_EV_TOOL_START, .index = (int)i};
            char *args = json_dumps(json_object_get(c, "input"), JSON_COMPACT | JSON_ENCODE_ANY);
            e.tool_id = json_string_value(json_object_get(c, "id"));
            e.tool_name = json_string_value(json_object_get(c, "name"));
            ch_oa_stream_tool(o, &e);
            e.type = CH_LLM_EV_TOOL_ARGS_DELTA;
            e.text = (struct ch_str){args ? args : "{}", args ? strlen(args) : 2};
            ch_oa_stream_tool(o, &e);
            ch_free(args);
        }
        o->reply = reply;
        ch_oa_stream_finish(o, "tool_calls", &res->usage);
        o->reply = NULL;
    }
    json_decref(reply);
}

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
        ch_oa_error_for(o, ev->result->error_class ? ev->result->error_class : ev->result->status,
                        ev->result->error ? ev->result->error : ev->result->status);
    } else if (!choice_met(o, ev->result->client_calls)) {
        char msg[300];
        if (strcmp(o->tool_required, "*"))
            snprintf(msg, sizeof(msg), "tool_choice required a %s tool call, but the agent did not produce one",
                     o->tool_required);
        else
            snprintf(msg, sizeof(msg), "tool_choice=required was not satisfied by the agent response");
        ch_oa_error_for(o, "tool_choice_unsatisfied", msg); /* 502 api_error, as OpenClaw */
    } else if (ev->result->client_calls) {
        answer_calls(o, ev->result);
    } else if (o->stream) {
        if (o->started || ch_oa_stream_start(o) == 0)
            ch_oa_stream_finish(o, "stop", &ev->result->usage);
    } else {
        ch_oa_respond(o, NULL, ev->result->text, "stop", &ev->result->usage);
    }
    o->finished = true;
    /* Unsubscribing from inside the bus's callback is allowed. */
    sub = o->sub;
    o->sub = NULL;
    ch_agent_unsubscribe(sub);
    ch_oa_free(o);
}

static void ag_accepted(int rc, const char *run_id, bool duplicate, const char *msg, void *data)
{
    struct oa_req *o = data;

    (void)run_id, (void)duplicate;
    if (rc == 0)
        return; /* events follow on the subscription */
    if (ch_http_req_is_closed(o->req)) {
        /* the client left: nobody to tell */
    } else if (rc == CH_EINVAL) { /* only the request's own fault is the client's */
        ch_openai_error(o->req, 400, "invalid_request_error", "invalid_request", "%s", msg ? msg : ch_strerror(rc));
    } else {
        /* A full queue, a gateway shutting down, or the store or memory
         * failing: the request may succeed later (or on the restarted
         * gateway), so 503 and Retry-After, as REST chat answers. */
        ch_http_add_header(o->req, "Retry-After", "1");
        ch_openai_error(o->req, 503, "api_error",
                        rc == CH_EBUSY    ? "queue_full"
                        : rc == CH_ESTATE ? "shutting_down"
                        : rc == CH_ENOSPC ? "storage_full"
                                          : "unavailable",
                        "%s",
                        rc == CH_ENOSPC ? CH_STORAGE_FULL_MSG
                        : msg           ? msg
                                        : ch_strerror(rc));
    }
    o->finished = true;
    ch_oa_free(o);
}

/* The images of the run's turn (*out: a new array, NULL for none), sent
 * with its message and stored with the run: data only (a fallback may
 * reach Gemini, which cannot fetch a URL), OpenClaw's limits (8 images,
 * 20 MB) cut to what a stored message holds.  -1 once answered (400). */
static int turn_images(struct oa_req *o, const json_t *turn, json_t **out)
{
    const char *param = o->responses ? "input" : "messages", *why = NULL;
    const json_t *blk;
    size_t i, bytes = 0;

    *out = NULL;
    json_array_foreach(json_object_get(turn, "content"), i, blk)
    {
        const char *t = json_string_value(json_object_get(blk, "type"));
        const json_t *src = json_object_get(blk, "source");
        if (!t || strcmp(t, "image"))
            continue;
        if (!json_is_string(json_object_get(src, "data")))
            why = "the agent models take images as data or http(s) URLs";
        else if ((bytes += json_string_length(json_object_get(src, "data"))) > MAX_IMAGE_BYTES)
            why = "the images of one turn are limited to 3 MB of base64 data for the agent models";
        else if (json_array_size(*out) >= MAX_IMAGES)
            why = "at most 8 images per turn for the agent models";
        if (why || (!*out && !(*out = json_array())) || json_array_append(*out, (json_t *)blk)) {
            ch_openai_param_error(o->req, why ? "invalid_image" : "internal", param, why ? why : "out of memory");
            json_decref(*out);
            *out = NULL;
            return -1;
        }
    }
    return 0;
}

/* The name of the call `id` among the tool_use blocks of msg, or NULL. */
static const char *call_name(const json_t *msg, const char *id)
{
    const json_t *blk;
    size_t i;

    json_array_foreach(json_object_get(msg, "content"), i, blk)
    {
        const char *bid = json_string_value(json_object_get(blk, "id"));
        if (bid && id && !strcmp(bid, id))
            return json_string_value(json_object_get(blk, "name"));
    }
    return NULL;
}

/* One turn's blocks as text: text as it is, tool calls and results named
 * (`before`: the turn before, where a result's call is).  0, or
 * CH_E_TOO_LARGE past b's cap and CH_ENOMEM: the caller refuses the
 * request, since a block left out would change what the model reads
 * without anyone knowing. */
static int turn_text(struct ch_buf *b, const json_t *m, const json_t *before)
{
    const json_t *blk;
    size_t j;
    int rc = 0;

    json_array_foreach(json_object_get(m, "content"), j, blk)
    {
        const char *type = json_string_value(json_object_get(blk, "type"));
        const char *id = json_string_value(json_object_get(blk, "id"));
        if (b->len && b->data[b->len - 1] != ' ' && b->data[b->len - 1] != '\n')
            rc = ch_buf_append_char(b, '\n');
        if (rc)
            break;
        if (type && !strcmp(type, "tool_use")) {
            char *args = json_dumps(json_object_get(blk, "input"), JSON_COMPACT | JSON_ENCODE_ANY);
            rc = ch_buf_appendf(b, "[tool call %s id=%s arguments=%s]", json_string_value(json_object_get(blk, "name")),
                                id ? id : "", args ? args : "{}");
            ch_free(args);
        } else if (type && !strcmp(type, "tool_result")) {
            const char *cid = json_string_value(json_object_get(blk, "tool_use_id"));
            const char *name = call_name(before, cid);
            const char *c = json_string_value(json_object_get(blk, "content"));
            rc = ch_buf_appendf(b, "Result of the tool call%s%s (id %s):\n", name ? " to " : "", name ? name : "",
                                cid ? cid : "");
            rc = rc ? rc : ch_buf_append_str(b, c ? c : "");
        } else if (type && !strcmp(type, "image")) {
            rc = ch_buf_append_str(b, "[image]");
        } else if (json_is_string(json_object_get(blk, "text"))) {
            rc = ch_buf_append_str(b, json_string_value(json_object_get(blk, "text")));
        }
    }
    return rc;
}

/* Earlier turns as plain text for a stateless request, appended to b;
 * errors as turn_text's. */
static int history_text(struct ch_buf *b, const json_t *msgs, size_t upto)
{
    const json_t *m;
    size_t i;
    int rc = ch_buf_append_str(b, "The conversation so far:\n");

    json_array_foreach(msgs, i, m)
    {
        if (rc || i >= upto)
            break;
        rc = ch_buf_appendf(b, "%s: ", json_string_value(json_object_get(m, "role")));
        rc = rc ? rc : turn_text(b, m, i ? json_array_get(msgs, i - 1) : NULL);
        rc = rc ? rc : ch_buf_append_char(b, '\n');
    }
    return rc;
}

/* A turn or context that did not fit (rc from turn_text): refused in
 * OpenAI's shape, as OpenAI refuses input past a model's context window
 * (400 context_length_exceeded: clients know to send less); -1. */
static int too_large(struct oa_req *o, int rc, const char *what, size_t limit)
{
    char msg[300];

    if (rc != CH_E_TOO_LARGE) {
        ch_openai_error(o->req, 500, "api_error", "internal", "out of memory");
        return -1;
    }
    snprintf(msg, sizeof(msg),
             "%s exceed the maximum context length of the agent models: at most %zu bytes of text; send less "
             "(a long tool result in parts)",
             what, limit);
    ch_openai_param_error(o->req, "context_length_exceeded", o->responses ? "input" : "messages", msg);
    return -1;
}

/* The run's message (msg) and its context (extra) as text: -1 once
 * answered. */
static int run_texts(struct oa_req *o, const json_t *msgs, const char *system, bool stateless, const json_t *images,
                     struct ch_buf *msg, struct ch_buf *extra)
{
    size_t n = json_array_size(msgs);
    const json_t *last = json_array_get(msgs, n - 1), *before = n > 1 ? json_array_get(msgs, n - 2) : NULL;
    int rc = 0;

    if (images) { /* the images go as blocks, the text as the message */
        json_t *texts = json_pack("{s:[]}", "content");
        const json_t *blk;
        size_t i;
        json_array_foreach(json_object_get(last, "content"), i, blk)
        {
            const char *t = json_string_value(json_object_get(blk, "type"));
            if (!texts ||
                ((!t || strcmp(t, "image")) && json_array_append(json_object_get(texts, "content"), (json_t *)blk)))
                rc = CH_ENOMEM;
        }
        rc = rc ? rc : turn_text(msg, texts, before);
        json_decref(texts);
        if (!rc && !msg->len)
            rc = ch_buf_append_str(msg, IMAGE_ONLY);
    } else {
        rc = turn_text(msg, last, before);
    }
    if (rc)
        return too_large(o, rc, "the newest turn's text and tool results", MAX_TURN_BYTES);
    if (system)
        rc = ch_buf_append_str(extra, system);
    if (!rc && o->tool_required[0]) { /* OpenClaw's words */
        rc = extra->len ? ch_buf_append_str(extra, "\n\n") : 0;
        if (!rc && strcmp(o->tool_required, "*"))
            rc = ch_buf_appendf(extra, "You must call the %s tool before responding.", o->tool_required);
        else if (!rc)
            rc = ch_buf_append_str(extra, "You must call one of the available tools before responding.");
    }
    if (!rc && stateless && n > 1) {
        rc = extra->len ? ch_buf_append_str(extra, "\n\n") : 0;
        rc = rc ? rc : history_text(extra, msgs, n - 1);
    }
    return rc ? too_large(o, rc, "the system messages and earlier turns", MAX_CONTEXT_BYTES) : 0;
}

/* Client tools for the run (neutral definitions, a new reference; NULL:
 * none), narrowed by tool_choice; o->tool_required set for "required" or
 * a named function.  -1 once o->req was answered (a 400). */
static int client_tools(struct oa_req *o, const json_t *body, json_t **out)
{
    const json_t *tc = json_object_get(body, "tool_choice");
    const char *s = json_string_value(tc), *type = json_string_value(json_object_get(tc, "type"));
    const char *want = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
    char err[300] = "";
    json_t *tools;
    size_t i;

    *out = NULL;
    if ((s && !strcmp(s, "none")) || !json_array_size(json_object_get(body, "tools")))
        return 0;
    if (type && strcmp(type, "function")) {
        ch_openai_param_error(o->req, "unsupported_parameter", "tool_choice",
                              "tool_choice of this type is not supported with the agent models");
        return -1;
    }
    tools = ch_openai_tools_to_neutral(json_object_get(body, "tools"), err, sizeof(err));
    if (tools && !err[0])
        ch_agent_client_tools_check(o->api->agent, tools, err, sizeof(err));
    if (!tools || err[0]) {
        ch_openai_param_error(o->req, "invalid_tools", "tools", err[0] ? err : "out of memory");
        json_decref(tools);
        return -1;
    }
    if (want) {
        for (i = json_array_size(tools); i-- > 0;)
            if (strcmp(json_string_value(json_object_get(json_array_get(tools, i), "name")), want))
                json_array_remove(tools, i);
        if (!json_array_size(tools)) {
            snprintf(err, sizeof(err), "tool_choice requested unknown tool: %.200s", want);
            ch_openai_param_error(o->req, "invalid_tools", "tool_choice", err);
            json_decref(tools);
            return -1;
        }
        snprintf(o->tool_required, sizeof(o->tool_required), "%s", want);
    } else if (s && !strcmp(s, "required")) {
        snprintf(o->tool_required, sizeof(o->tool_required), "*");
    }
    *out = tools;
    return 0;
}

/*
 * The run's session, canonical (OpenClaw's resolveSessionKey): the
 * header's (canonical already, ch_openai_start), else the `user`'s,
 * agent:main:openai-user:<user> (openresponses-user on /v1/responses),
 * else a fresh agent:main:openai:<uuid> (openresponses:).  user is
 * trimmed and lowercased, so `Alice` and `alice` continue one session,
 * and cut between characters where the key would pass 512 bytes (500 of
 * it at most, as before).
 */
static int session_key(struct oa_req *o, const char *hdr, const char *user, char out[CH_SESSION_KEY_MAX + 1])
{
    const char *ns = o->responses ? "openresponses" : "openai";
    struct ch_str u = ch_str_trim(ch_str_from(user ? user : ""));
    char raw[CH_SESSION_KEY_MAX + 1], uuid[37];
    size_t room = CH_SESSION_KEY_MAX - (sizeof("agent:main:") - 1) - strlen(ns) - sizeof("-user:") + 1;

    if (hdr) {
        snprintf(out, CH_SESSION_KEY_MAX + 1, "%s", hdr);
        return 0;
    }
    ch_uuid4(uuid);
    if (u.len)
        snprintf(raw, sizeof(raw), "%s-user:%.*s", ns, (int)ch_utf8_cut(u.p, CH_MIN(u.len, CH_MIN(room, (size_t)500))),
                 u.p);
    else
        snprintf(raw, sizeof(raw), "%s:%s", ns, uuid);
    if (ch_api_session_key(raw, out) != 0) { /* not agent:, and cut to fit: cannot fail */
        ch_openai_error(o->req, 400, "invalid_request_error", "invalid_session", "user does not make a session key");
        return CH_EINVAL;
    }
    return 0;
}

/* The user's newest turn is the run's message (its text, and the results
 * of client tool calls); a stateless request's earlier turns and system
 * messages travel as extra system text. */
void ch_oa_agent_mode(struct oa_req *o, const json_t *body, json_t *msgs, char *system, const char *session_hdr)
{
    struct ch_agent_run_req req = {0};
    size_t n = json_array_size(msgs);
    const json_t *last = json_array_get(msgs, n - 1);
    const json_t *mt = json_object_get(body, "max_completion_tokens");
    const char *user = json_string_value(json_object_get(body, "user"));
    json_t *sampling = NULL, *tools = NULL, *images = NULL;
    const struct ch_str *hdr;
    struct ch_buf msg, extra;
    char key[CH_SESSION_KEY_MAX + 1], model[256], channel[65];
    int frc;

    ch_buf_init(&msg, MAX_TURN_BYTES);
    ch_buf_init(&extra, MAX_CONTEXT_BYTES);
    if (ch_openai_sampling(o->req, body, &sampling) != 0 || client_tools(o, body, &tools) != 0)
        goto fail; /* answered */
    if ((frc = ch_oa_fetch_images(o, body, msgs, system, session_hdr)) > 0) {
        json_decref(sampling); /* fetching: this runs again once the images are data */
        json_decref(tools);
        ch_buf_release(&msg);
        ch_buf_release(&extra);
        return;
    }
    if (frc < 0 || turn_images(o, last, &images) != 0)
        goto fail; /* answered */
    if (strcmp(json_string_value(json_object_get(last, "role")), "user")) {
        ch_openai_error(o->req, 400, "invalid_request_error", "invalid_messages",
                        "the last message must come from the user for the agent models");
        goto fail;
    }
    if (run_texts(o, msgs, system, !session_hdr && !ch_str_trim(ch_str_from(user ? user : "")).len, images, &msg,
                  &extra) != 0)
        goto fail; /* answered */
    if (session_key(o, session_hdr, user, key) != 0)
        goto fail;                  /* answered */
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
        /* Not UTF-8: no model has such a name, and the upstream would get
         * the bytes in its request's "model". */
        if (hdr->len >= sizeof(model) || !ch_oa_utf8_ok(hdr->p, hdr->len) ||
            ch_llm_catalog_resolve(ch_llm_client_catalog(ch_agent_llm(o->api->agent)), model, &t, &e) != 0) {
            ch_openai_error(o->req, 400, "invalid_request_error", "invalid_model", "x-openclaw-model: %s",
                            e.msg[0]                    ? e.msg
                            : hdr->len >= sizeof(model) ? "too long"
                                                        : "not UTF-8 text");
            goto fail;
        }
        req.model = model;
    }
    if (message_channel(o->req, channel, sizeof(channel)) != 0)
        goto fail; /* answered */
    req.channel = channel[0] ? channel : NULL;
    req.session_key = key;
    req.message = msg.data ? msg.data : "";
    req.run_id = o->run_id;
    req.source = o->responses ? CH_OPENAI_RESPONSES_SOURCE : "openai";
    req.extra_system = extra.len ? extra.data : NULL;
    req.max_tokens = json_integer_value(mt ? mt : json_object_get(body, "max_tokens"));
    req.has_temperature = json_is_number(json_object_get(body, "temperature"));
    req.temperature = json_number_value(json_object_get(body, "temperature"));
    req.client_tools = tools;
    req.images = images;
    /* The rest of the parameters go with every call of the run; the tool
     * ones are applied above (a provider's tool_choice would bind the
     * agent's own tools too). */
    json_object_del(sampling, "tool_choice");
    json_object_del(sampling, "parallel_tool_calls");
    req.sampling = sampling;
    ch_agent_submit(o->api->agent, &req, ag_accepted, o);
    json_decref(sampling);
    json_decref(tools);
    json_decref(images);
    ch_buf_release(&msg);
    ch_buf_release(&extra);
    return;
fail:
    json_decref(sampling);
    json_decref(tools);
    json_decref(images);
    ch_buf_release(&msg);
    ch_buf_release(&extra);
    ch_oa_free(o);
}
