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

/*
 * The body is written straight into a capped buffer, not built as a
 * jansson tree and then serialised: on a pass-through call that was a
 * third of the gateway's CPU per request.  Only a tool call's input and
 * a tool's schema (objects of the caller's) go through json_dump.
 */
static void put(struct llm_wr *w, const char *s)
{
    if (!w->rc)
        w->rc = ch_buf_append_str(&w->b, s);
}

static void put_str(struct llm_wr *w, const char *s)
{
    if (!s)
        s = "";
    if (!w->rc)
        w->rc = ch_buf_append_json_str(&w->b, s, strlen(s));
}

static int dump_cb(const char *p, size_t n, void *data)
{
    struct llm_wr *w = data;

    w->rc = ch_buf_append(&w->b, p, n);
    return w->rc ? -1 : 0;
}

static void put_json(struct llm_wr *w, const json_t *v, size_t flags)
{
    if (!w->rc && json_dump_callback(v, dump_cb, w, JSON_COMPACT | flags) && !w->rc)
        w->rc = CH_ENOMEM;
}

/* A text block that says something (C-string sense, as before: a text
 * opening with U+0000 counts as empty). */
static const char *block_text(const struct llm_block *k)
{
    const char *t = k->type == LLM_B_TEXT ? json_string_value(k->text) : NULL;

    return t && t[0] ? t : NULL;
}

/* The non-empty text blocks joined with "\n", as one string (nothing
 * written, false returned, when there are none). */
static bool put_joined_text(struct llm_wr *w, const struct llm_blocks *bl)
{
    const char *one = NULL;
    struct ch_buf j;
    size_t i, n = 0;
    int rc = 0;

    for (i = 0; i < bl->n; i++)
        if (block_text(&bl->v[i]))
            n++, one = block_text(&bl->v[i]);
    if (n == 0)
        return false;
    if (n == 1) {
        put_str(w, one);
        return true;
    }
    ch_buf_init(&j, CH_LLM_MAX_BODY_BYTES);
    for (i = 0; i < bl->n && !rc; i++) {
        const char *t = block_text(&bl->v[i]);
        if (!t)
            continue;
        if (j.len)
            rc = ch_buf_append_char(&j, '\n');
        if (!rc)
            rc = ch_buf_append_str(&j, t);
    }
    if (rc && !w->rc)
        w->rc = rc;
    if (!w->rc)
        w->rc = ch_buf_append_json_str(&w->b, j.data, j.len);
    ch_buf_release(&j);
    return true;
}

static bool has_text(const struct llm_blocks *bl)
{
    for (size_t i = 0; i < bl->n; i++)
        if (block_text(&bl->v[i]))
            return true;
    return false;
}

/* Text joins into `content`; tool_use blocks become `tool_calls` with the
 * input serialised as the `arguments` string. */
static void put_assistant(struct llm_wr *w, const struct llm_blocks *bl, bool *first)
{
    size_t i, ncalls = 0;

    for (i = 0; i < bl->n; i++)
        ncalls += bl->v[i].type == LLM_B_TOOL_USE;
    /* An assistant message with neither is a 400: leave it out. */
    if (!ncalls && !has_text(bl))
        return;
    put(w, *first ? "{\"role\":\"assistant\",\"content\":" : ",{\"role\":\"assistant\",\"content\":");
    *first = false;
    /* content is null, not "", next to tool_calls, as OpenAI itself sends. */
    if (!put_joined_text(w, bl))
        put(w, "null");
    ncalls = 0;
    for (i = 0; i < bl->n; i++) {
        const struct llm_block *k = &bl->v[i];
        char *args;
        if (k->type != LLM_B_TOOL_USE)
            continue;
        args = k->input ? json_dumps(k->input, JSON_COMPACT) : NULL;
        if (k->input && !args && !w->rc)
            w->rc = CH_ENOMEM;
        put(w, ncalls++ ? ",{\"id\":" : ",\"tool_calls\":[{\"id\":");
        put_str(w, k->id);
        put(w, ",\"type\":\"function\",\"function\":{\"name\":");
        put_str(w, k->name);
        put(w, ",\"arguments\":");
        put_str(w, args ? args : "{}");
        put(w, "}}");
        ch_free(args);
    }
    if (ncalls)
        put(w, "]");
    put(w, "}");
}

/* A user turn with images: content parts in order, text and image_url
 * (a data: URL for base64 data). */
static void put_parts(struct llm_wr *w, const struct llm_blocks *bl)
{
    size_t n = 0;

    put(w, "[");
    for (size_t i = 0; i < bl->n; i++) {
        const struct llm_block *k = &bl->v[i];
        const char *t = block_text(k), *mt, *data, *url;
        if (t) {
            put(w, n++ ? ",{\"type\":\"text\",\"text\":" : "{\"type\":\"text\",\"text\":");
            put_str(w, t);
            put(w, "}");
        } else if (k->type == LLM_B_IMAGE) {
            llm_image_source(k, &mt, &data, &url);
            put(w, n++ ? ",{\"type\":\"image_url\",\"image_url\":{\"url\":"
                       : "{\"type\":\"image_url\",\"image_url\":{\"url\":");
            if (data) {
                put(w, "\"data:");
                put(w, mt); /* one of four fixed types (request.c) */
                put(w, ";base64,");
                put(w, data); /* checked base64 text: nothing to escape */
                put(w, "\"");
            } else {
                put_str(w, url);
            }
            put(w, "}}");
        }
    }
    put(w, "]");
}

/* tool_result blocks become role "tool" messages, before the user's own
 * text (they must follow the assistant's tool_calls directly); the API
 * has no error flag, so an error result's content is prefixed "Error: ". */
static void put_user(struct llm_wr *w, const struct llm_blocks *bl, bool *first)
{
    bool images = false;
    size_t i;

    for (i = 0; i < bl->n; i++) {
        const struct llm_block *k = &bl->v[i];
        const char *content = json_string_value(k->content);
        if (k->type != LLM_B_TOOL_RESULT)
            continue;
        put(w, *first ? "{\"role\":\"tool\",\"tool_call_id\":" : ",{\"role\":\"tool\",\"tool_call_id\":");
        *first = false;
        put_str(w, k->tool_use_id);
        put(w, ",\"content\":");
        if (json_is_true(k->is_error)) {
            char *s = ch_sprintf("Error: %s", content ? content : "");
            if (!s && !w->rc)
                w->rc = CH_ENOMEM;
            put_str(w, s);
            ch_free(s);
        } else {
            put_str(w, content);
        }
        put(w, "}");
    }
    for (i = 0; i < bl->n && !images; i++)
        images = bl->v[i].type == LLM_B_IMAGE;
    if (!has_text(bl) && !images)
        return;
    put(w, *first ? "{\"role\":\"user\",\"content\":" : ",{\"role\":\"user\",\"content\":");
    *first = false;
    if (images)
        put_parts(w, bl);
    else
        put_joined_text(w, bl);
    put(w, "}");
}

static void put_messages(struct llm_wr *w, const struct ch_llm_request *req)
{
    struct llm_blocks bl;
    const json_t *m, *content;
    const char *role;
    bool first = true;
    size_t i;

    put(w, "\"messages\":[");
    /* Every other string comes from jansson, which checked its UTF-8. */
    if (req->system && !llm_utf8_valid((const unsigned char *)req->system, strlen(req->system)) && !w->rc)
        w->rc = CH_EINVAL;
    if (req->system && req->system[0]) {
        put(w, "{\"role\":\"system\",\"content\":");
        put_str(w, req->system);
        put(w, "}");
        first = false;
    }
    json_array_foreach(req->messages, i, m)
    {
        llm_message_read(m, &role, &content);
        if (llm_blocks_read(content, &bl) != 0) {
            if (!w->rc)
                w->rc = CH_ENOMEM;
            break;
        }
        if (strcmp(role, "assistant") == 0)
            put_assistant(w, &bl, &first);
        else
            put_user(w, &bl, &first);
        llm_blocks_release(&bl);
    }
    put(w, "]");
}

static void put_tools(struct llm_wr *w, const struct ch_llm_request *req)
{
    const json_t *t, *tools = req->tools;
    size_t i;

    put(w, ",\"tools\":[");
    json_array_foreach(tools, i, t)
    {
        const json_t *schema = json_object_get(t, "input_schema");
        put(w,
            i ? ",{\"type\":\"function\",\"function\":{\"name\":" : "{\"type\":\"function\",\"function\":{\"name\":");
        put_str(w, llm_jstr(t, "name"));
        put(w, ",\"description\":");
        put_str(w, llm_jstr(t, "description"));
        put(w, ",\"parameters\":");
        if (schema)
            put_json(w, schema, JSON_ENCODE_ANY);
        else
            put(w, "{\"type\":\"object\",\"properties\":{}}");
        put(w, "}}");
    }
    put(w, "]");
}

int llm_build_openai(const struct ch_llm_request *req, struct ch_llm_http *out, struct ch_error *err)
{
    struct llm_wr w = {0};
    char *auth;
    int rc;

    rc = llm_set_url(out, CH_LLM_OPENAI, req->base_url, "/chat/completions", "/chat/completions", err);
    if (!rc && req->api_key && req->api_key[0]) {
        auth = ch_str_join(CH_STR("Bearer "), req->api_key);
        rc = auth ? llm_add_header(out, "authorization", auth, true, err) : CH_ENOMEM;
        ch_free_secret(auth);
    }
    if (!rc)
        rc = llm_add_header(out, "content-type", "application/json", false, err);
    if (!rc && req->stream)
        rc = llm_add_header(out, "accept", "text/event-stream", false, err);
    if (rc)
        return rc;

    ch_buf_init(&w.b, CH_LLM_MAX_BODY_BYTES);
    w.rc = ch_buf_reserve(&w.b, 1024);
    put(&w, "{\"model\":");
    put_str(&w, req->model);
    put(&w, req->want_max_completion_tokens ? ",\"max_completion_tokens\":" : ",\"max_tokens\":");
    if (!w.rc)
        w.rc = ch_buf_append_i64(&w.b, req->max_tokens);
    put(&w, ",");
    put_messages(&w, req);
    if (req->tools && json_array_size(req->tools))
        llm_wr_tools(&w, req, CH_LLM_OPENAI, put_tools);
    if (req->has_temperature) {
        json_t *t = json_real(req->temperature);
        put(&w, ",\"temperature\":");
        if (t)
            put_json(&w, t, JSON_ENCODE_ANY);
        else if (!w.rc)
            w.rc = CH_ENOMEM;
        json_decref(t);
    }
    if (req->sampling)
        llm_wr_sampling_openai(&w, req->sampling);
    /* include_usage adds the final usage chunk; without it a streamed
     * call reports no tokens at all. */
    if (req->stream)
        put(&w, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    put(&w, "}");
    rc = w.rc;
    if (rc == CH_E_TOO_LARGE)
        rc = ch_error_set(err, rc, "request body exceeds the %u cap", CH_LLM_MAX_BODY_BYTES);
    else if (rc == CH_EINVAL)
        rc = ch_error_set(err, rc, "the system prompt is not valid UTF-8");
    if (!rc) {
        out->body_len = w.b.len;
        out->body = ch_buf_detach(&w.b, NULL);
    }
    ch_buf_release(&w.b);
    return rc;
}
