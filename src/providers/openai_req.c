/*
 * openai_req.c: the neutral conversation as an OpenAI Chat Completions
 * request (POST {baseUrl}/chat/completions, Authorization: Bearer).
 *
 * Mapping: the system prompt is the first message; an assistant message's
 * text joins into `content` and its tool_use blocks become `tool_calls`
 * with the input serialised as the `arguments` string; a user message's
 * tool_result blocks become role "tool" messages (before the user's own
 * text, since they must follow the assistant's tool_calls directly).  The
 * API has no error flag on tool results, so an error result's content is
 * prefixed "Error: ".  The limit goes as max_tokens, which the compatible
 * servers understand, unless the caller asks for max_completion_tokens
 * (OpenAI's reasoning models refuse max_tokens).
 */
#include <string.h>

#include "providers/internal.h"

/* Join the non-empty text blocks with "\n" into *out (NULL when there
 * are none).  CH_E_TOO_LARGE past the body cap, CH_ENOMEM. */
static int joined_text(const json_t *blocks, json_t **out)
{
    struct ch_buf b;
    json_t *blk;
    bool any = false;
    size_t i;
    int rc = 0;

    *out = NULL;
    ch_buf_init(&b, CH_LLM_MAX_BODY_BYTES);
    json_array_foreach(blocks, i, blk)
    {
        if (strcmp(llm_jstr(blk, "type"), "text") != 0 || !llm_jstr(blk, "text")[0])
            continue;
        if (any)
            rc = ch_buf_append_char(&b, '\n');
        if (!rc)
            rc = ch_buf_append_str(&b, llm_jstr(blk, "text"));
        if (rc)
            goto out;
        any = true;
    }
    if (any) {
        *out = json_stringn(b.data, b.len);
        rc = *out ? 0 : CH_ENOMEM;
    }
out:
    ch_buf_release(&b);
    return rc;
}

static json_t *tool_call_of(const json_t *b)
{
    json_t *input = json_object_get(b, "input"), *o;
    char *args = input ? json_dumps(input, JSON_COMPACT) : NULL;

    if (input && !args)
        return NULL;
    o = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", llm_jstr(b, "id"), "type", "function", "function", "name",
                  llm_jstr(b, "name"), "arguments", args ? args : "{}");
    ch_free(args);
    return o;
}

static int add_assistant(json_t *out, const json_t *blocks)
{
    json_t *m, *calls = json_array(), *b, *c, *text;
    size_t i;
    int rc;

    if (!calls)
        return CH_ENOMEM;
    json_array_foreach(blocks, i, b)
    {
        if (strcmp(llm_jstr(b, "type"), "tool_use") != 0)
            continue;
        c = tool_call_of(b);
        if (!c || json_array_append_new(calls, c)) {
            json_decref(calls);
            return CH_ENOMEM;
        }
    }
    rc = joined_text(blocks, &text);
    if (rc) {
        json_decref(calls);
        return rc;
    }
    /* An assistant message with neither is a 400: leave it out. */
    if (!text && json_array_size(calls) == 0) {
        json_decref(calls);
        return 0;
    }
    /* content is null, not "", next to tool_calls, as OpenAI itself sends. */
    m = json_pack("{s:s, s:o}", "role", "assistant", "content", text ? text : json_null());
    if (m && json_array_size(calls) && json_object_set(m, "tool_calls", calls)) {
        json_decref(m);
        m = NULL;
    }
    json_decref(calls);
    return m && !json_array_append_new(out, m) ? 0 : CH_ENOMEM;
}

static int add_user(json_t *out, const json_t *blocks)
{
    json_t *b, *m, *text;
    const char *content;
    size_t i;
    int rc;

    json_array_foreach(blocks, i, b)
    {
        if (strcmp(llm_jstr(b, "type"), "tool_result") != 0)
            continue;
        content = llm_jstr(b, "content");
        if (!content)
            content = "";
        if (json_is_true(json_object_get(b, "is_error"))) {
            char *s = ch_sprintf("Error: %s", content);
            m = s ? json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id", llm_jstr(b, "tool_use_id"), "content",
                              s)
                  : NULL;
            ch_free(s);
        } else {
            m = json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id", llm_jstr(b, "tool_use_id"), "content",
                          content);
        }
        if (!m || json_array_append_new(out, m))
            return CH_ENOMEM;
    }
    rc = joined_text(blocks, &text);
    if (rc || !text)
        return rc;
    return json_array_append_new(out, json_pack("{s:s, s:o}", "role", "user", "content", text)) ? CH_ENOMEM : 0;
}

static int messages_of(const struct ch_llm_request *req, json_t **out_msgs)
{
    json_t *out = json_array(), *m, *blocks;
    size_t i;
    int rc = CH_ENOMEM;

    if (!out)
        goto out;
    if (req->system && req->system[0] &&
        json_array_append_new(out, json_pack("{s:s, s:s}", "role", "system", "content", req->system)))
        goto out;
    json_array_foreach(req->messages, i, m)
    {
        blocks = llm_blocks(m);
        if (!blocks) {
            rc = CH_ENOMEM;
            goto out;
        }
        rc = strcmp(llm_jstr(m, "role"), "assistant") == 0 ? add_assistant(out, blocks) : add_user(out, blocks);
        json_decref(blocks);
        if (rc)
            goto out;
    }
    rc = 0;
out:
    if (rc) {
        json_decref(out);
        out = NULL;
    }
    *out_msgs = out;
    return rc;
}

static json_t *tools_of(const json_t *tools)
{
    json_t *out = json_array(), *t, *o, *schema;
    const char *desc;
    size_t i;

    json_array_foreach(tools, i, t)
    {
        if (!out)
            return NULL;
        schema = json_object_get(t, "input_schema");
        desc = llm_jstr(t, "description");
        o = json_pack("{s:s, s:s}", "name", llm_jstr(t, "name"), "description", desc ? desc : "");
        if (o && json_object_set_new(o, "parameters",
                                     schema ? json_incref(schema)
                                            : json_pack("{s:s, s:{}}", "type", "object", "properties")))
            json_decref(o), o = NULL;
        if (!o || json_array_append_new(out, json_pack("{s:s, s:o}", "type", "function", "function", o))) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

int llm_build_openai(const struct ch_llm_request *req, struct ch_llm_http *out, struct ch_error *err)
{
    json_t *body, *msgs;
    char *auth;
    int rc;

    rc = llm_set_url(out, CH_LLM_OPENAI, req->base_url, "/chat/completions", "/chat/completions", err);
    if (!rc && req->api_key && req->api_key[0]) {
        auth = ch_sprintf("Bearer %s", req->api_key);
        rc = auth ? llm_add_header(out, "authorization", auth, true, err) : CH_ENOMEM;
        ch_free_secret(auth);
    }
    if (!rc)
        rc = llm_add_header(out, "content-type", "application/json", false, err);
    if (!rc && req->stream)
        rc = llm_add_header(out, "accept", "text/event-stream", false, err);
    if (rc)
        return rc;

    rc = messages_of(req, &msgs);
    if (rc == CH_E_TOO_LARGE)
        return ch_error_set(err, rc, "request body exceeds the %u cap", CH_LLM_MAX_BODY_BYTES);
    if (rc)
        return rc;
    body = json_pack("{s:s, s:I, s:o}", "model", req->model,
                     req->want_max_completion_tokens ? "max_completion_tokens" : "max_tokens",
                     (json_int_t)req->max_tokens, "messages", msgs);
    if (!body)
        return CH_ENOMEM;
    if (req->tools && json_array_size(req->tools) && json_object_set_new(body, "tools", tools_of(req->tools)))
        goto fail;
    if (req->has_temperature && json_object_set_new(body, "temperature", json_real(req->temperature)))
        goto fail;
    /* include_usage adds the final usage chunk; without it a streamed
     * call reports no tokens at all. */
    if (req->stream && (json_object_set_new(body, "stream", json_true()) ||
                        json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1))))
        goto fail;
    return llm_set_body_take(out, body, err);
fail:
    json_decref(body);
    return CH_ENOMEM;
}
