/*
 * anthropic_req.c: the neutral conversation as an Anthropic Messages
 * request (POST {baseUrl}/v1/messages, x-api-key, anthropic-version
 * 2023-06-01).  The neutral model is Anthropic's own block model, so this
 * is mostly a copy that keeps only the fields the API defines.  Empty text
 * blocks are dropped (the API rejects them) and so is a message left
 * without blocks.
 */
#include <string.h>

#include "providers/internal.h"

static json_t *block_of(const json_t *b)
{
    const char *type = llm_jstr(b, "type");
    json_t *input = json_object_get(b, "input");
    const char *content = llm_jstr(b, "content");
    json_t *o;

    if (strcmp(type, "text") == 0)
        return json_pack("{s:s, s:O}", "type", "text", "text", json_object_get(b, "text"));
    if (strcmp(type, "tool_use") == 0)
        return json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", llm_jstr(b, "id"), "name",
                         llm_jstr(b, "name"), "input", input ? json_incref(input) : json_object());
    o = json_pack("{s:s, s:s, s:s}", "type", "tool_result", "tool_use_id", llm_jstr(b, "tool_use_id"), "content",
                  content ? content : "");
    if (o && json_is_true(json_object_get(b, "is_error")) && json_object_set_new(o, "is_error", json_true())) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static json_t *messages_of(const json_t *messages)
{
    json_t *out = json_array(), *blocks, *content, *b, *m, *nb;
    size_t i, j;

    if (!out)
        return NULL;
    json_array_foreach(messages, i, m)
    {
        blocks = llm_blocks(m);
        content = json_array();
        if (!blocks || !content)
            goto fail;
        json_array_foreach(blocks, j, b)
        {
            const char *text = llm_jstr(b, "text");
            if (strcmp(llm_jstr(b, "type"), "text") == 0 && text && !text[0])
                continue;
            nb = block_of(b);
            if (!nb || json_array_append_new(content, nb))
                goto fail;
        }
        json_decref(blocks);
        blocks = NULL;
        if (json_array_size(content) == 0) {
            json_decref(content);
            continue;
        }
        if (json_array_append_new(out, json_pack("{s:s, s:o}", "role", llm_jstr(m, "role"), "content", content)))
            goto fail_out;
    }
    return out;
fail:
    json_decref(blocks);
    json_decref(content);
fail_out:
    json_decref(out);
    return NULL;
}

static json_t *tools_of(const json_t *tools, bool cache)
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
        o = json_pack("{s:s, s:o}", "name", llm_jstr(t, "name"), "input_schema",
                      schema ? json_incref(schema) : json_pack("{s:s}", "type", "object"));
        if (o && desc && json_object_set_new(o, "description", json_string(desc)))
            json_decref(o), o = NULL;
        /* One breakpoint after the last tool caches the whole tool list. */
        if (o && cache && i + 1 == json_array_size(tools) &&
            json_object_set_new(o, "cache_control", json_pack("{s:s}", "type", "ephemeral")))
            json_decref(o), o = NULL;
        if (!o || json_array_append_new(out, o)) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

int llm_build_anthropic(const struct ch_llm_request *req, struct ch_llm_http *out, struct ch_error *err)
{
    json_t *body, *v;
    int rc;

    rc = llm_set_url(out, CH_LLM_ANTHROPIC, req->base_url, "/v1", "/v1/messages", err);
    if (!rc && req->api_key && req->api_key[0])
        rc = llm_add_header(out, "x-api-key", req->api_key, true, err);
    if (!rc)
        rc = llm_add_header(out, "anthropic-version", "2023-06-01", false, err);
    if (!rc)
        rc = llm_add_header(out, "content-type", "application/json", false, err);
    if (!rc && req->stream)
        rc = llm_add_header(out, "accept", "text/event-stream", false, err);
    if (rc)
        return rc;

    body = json_pack("{s:s, s:I, s:o}", "model", req->model, "max_tokens", (json_int_t)req->max_tokens, "messages",
                     messages_of(req->messages));
    if (!body)
        return CH_ENOMEM;
    rc = CH_ENOMEM;
    if (req->system && req->system[0]) {
        v = req->want_prompt_cache ? json_pack("[{s:s, s:s, s:{s:s}}]", "type", "text", "text", req->system,
                                               "cache_control", "type", "ephemeral")
                                   : json_string(req->system);
        if (json_object_set_new(body, "system", v))
            goto out;
    }
    if (req->tools && json_array_size(req->tools) &&
        json_object_set_new(body, "tools", tools_of(req->tools, req->want_prompt_cache)))
        goto out;
    if (req->has_temperature && json_object_set_new(body, "temperature", json_real(req->temperature)))
        goto out;
    if (req->stream && json_object_set_new(body, "stream", json_true()))
        goto out;
    return llm_set_body_take(out, body, err);
out:
    json_decref(body);
    return rc;
}
