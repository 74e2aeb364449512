/*
 * anthropic_req.c: the neutral conversation as an Anthropic Messages
 * request (POST {baseUrl}/v1/messages, x-api-key, anthropic-version
 * 2023-06-01).  The neutral model is Anthropic's own block model, so this
 * is mostly a copy that keeps only the fields the API defines.  Empty text
 * blocks are dropped (the API rejects them) and so is a message left
 * without blocks.  The body is written directly (req_body.c), byte for
 * byte what the jansson tree of earlier versions serialised to.
 */
#include <string.h>

#include "providers/internal.h"

/* One block, in the shape and key order the API documents. */
static void put_block(struct llm_wr *w, const struct llm_block *k)
{
    const char *content;

    switch (k->type) {
    case LLM_B_TEXT:
        llm_wr_raw(w, "{\"type\":\"text\",\"text\":");
        llm_wr_jstr(w, json_string_value(k->text), json_string_length(k->text));
        break;
    case LLM_B_TOOL_USE:
        llm_wr_raw(w, "{\"type\":\"tool_use\",\"id\":");
        llm_wr_jstr(w, k->id, strlen(k->id));
        llm_wr_raw(w, ",\"name\":");
        llm_wr_jstr(w, k->name, strlen(k->name));
        llm_wr_raw(w, ",\"input\":");
        if (k->input)
            llm_wr_json(w, k->input);
        else
            llm_wr_raw(w, "{}");
        break;
    case LLM_B_IMAGE: {
        const char *mt, *data, *url;
        llm_image_source(k, &mt, &data, &url);
        if (data) {
            llm_wr_raw(w, "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":");
            llm_wr_jstr(w, mt, strlen(mt));
            llm_wr_raw(w, ",\"data\":");
            llm_wr_jstr(w, data, strlen(data));
        } else {
            llm_wr_raw(w, "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":");
            llm_wr_jstr(w, url, strlen(url));
        }
        llm_wr_raw(w, "}");
        break;
    }
    default:
        content = json_string_value(k->content);
        llm_wr_raw(w, "{\"type\":\"tool_result\",\"tool_use_id\":");
        llm_wr_jstr(w, k->tool_use_id, strlen(k->tool_use_id));
        llm_wr_raw(w, ",\"content\":");
        /* A C string as json_pack("s") took it: up to its first NUL. */
        llm_wr_jstr(w, content ? content : "", content ? strlen(content) : 0);
        if (json_is_true(k->is_error))
            llm_wr_raw(w, ",\"is_error\":true");
        break;
    }
    llm_wr_raw(w, "}");
}

/* Written straight into the body: at a hundred messages of history the
 * jansson tree built and dumped per call was most of a turn's CPU. */
static void put_messages(struct llm_wr *w, const json_t *messages)
{
    struct llm_blocks bl;
    const json_t *m, *content;
    const char *role;
    size_t i, j, kept = 0;

    llm_wr_raw(w, ",\"messages\":[");
    json_array_foreach(messages, i, m)
    {
        size_t nb = 0;
        llm_message_read(m, &role, &content);
        if (w->rc || (w->rc = llm_blocks_read(content, &bl)) != 0)
            break;
        for (j = 0; j < bl.n; j++) {
            const struct llm_block *k = &bl.v[j];
            const char *text = json_string_value(k->text);
            if (k->type == LLM_B_TEXT && text && !text[0])
                continue; /* the API rejects empty text blocks */
            if (nb++ == 0) {
                llm_wr_raw(w, kept++ ? ",{\"role\":" : "{\"role\":");
                llm_wr_jstr(w, role, strlen(role));
                llm_wr_raw(w, ",\"content\":[");
            } else {
                llm_wr_raw(w, ",");
            }
            put_block(w, k);
        }
        if (nb)
            llm_wr_raw(w, "]}");
        llm_blocks_release(&bl);
    }
    llm_wr_raw(w, "]");
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

static void put_tools(struct llm_wr *w, const struct ch_llm_request *req)
{
    json_t *v = tools_of(req->tools, req->want_prompt_cache);

    llm_wr_raw(w, ",\"tools\":");
    if (v)
        llm_wr_json(w, v);
    else if (!w->rc)
        w->rc = CH_ENOMEM;
    json_decref(v);
}

int llm_build_anthropic(const struct ch_llm_request *req, struct ch_llm_http *out, struct ch_error *err)
{
    struct llm_wr w = {0};
    json_t *v = NULL;
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
    /* The model and the system prompt are the only strings that did not
     * come through jansson, which checked the UTF-8 of every other. */
    if (!llm_utf8_valid((const unsigned char *)req->model, strlen(req->model)) ||
        (req->system && !llm_utf8_valid((const unsigned char *)req->system, strlen(req->system))))
        return ch_error_set(err, CH_EINVAL, "the model id or system prompt is not valid UTF-8");

    /* Key order as the tree builder gave it: model, max_tokens, messages,
     * system, tools, temperature, stream. */
    ch_buf_init(&w.b, CH_LLM_MAX_BODY_BYTES);
    w.rc = ch_buf_reserve(&w.b, 1024);
    llm_wr_raw(&w, "{\"model\":");
    llm_wr_jstr(&w, req->model, strlen(req->model));
    if (!w.rc)
        w.rc = ch_buf_appendf(&w.b, ",\"max_tokens\":%lld", (long long)req->max_tokens);
    put_messages(&w, req->messages);
    if (req->system && req->system[0]) {
        llm_wr_raw(&w, req->want_prompt_cache ? ",\"system\":[{\"type\":\"text\",\"text\":" : ",\"system\":");
        llm_wr_jstr(&w, req->system, strlen(req->system));
        if (req->want_prompt_cache)
            llm_wr_raw(&w, ",\"cache_control\":{\"type\":\"ephemeral\"}}]");
    }
    if (req->tools && json_array_size(req->tools))
        llm_wr_tools(&w, req, CH_LLM_ANTHROPIC, put_tools);
    if (req->has_temperature) {
        v = json_real(req->temperature);
        llm_wr_raw(&w, ",\"temperature\":");
        if (v)
            llm_wr_json(&w, v);
        else if (!w.rc)
            w.rc = CH_ENOMEM;
        json_decref(v);
    }
    if (req->sampling)
        llm_wr_sampling_anthropic(&w, req->sampling, req->tools && json_array_size(req->tools));
    if (req->stream)
        llm_wr_raw(&w, ",\"stream\":true");
    llm_wr_raw(&w, "}");
    rc = w.rc;
    if (rc == CH_E_TOO_LARGE)
        rc = ch_error_set(err, rc, "request body exceeds the %u cap", CH_LLM_MAX_BODY_BYTES);
    if (!rc) {
        out->body_len = w.b.len;
        out->body = ch_buf_detach(&w.b, NULL);
    }
    ch_buf_release(&w.b);
    return rc;
}
