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
struct wr {
    struct ch_buf b; /* capped at CH_LLM_MAX_BODY_BYTES */
    int rc;          /* sticky: the first failure */
};

static void put(struct wr *w, const char *s)
{
    if (!w->rc)
        w->rc = ch_buf_append_str(&w->b, s);
}

static void put_str(struct wr *w, const char *s)
{
    if (!s)
        s = "";
    if (!w->rc)
        w->rc = ch_buf_append_json_str(&w->b, s, strlen(s));
}

static int dump_cb(const char *p, size_t n, void *data)
{
    struct wr *w = data;

    w->rc = ch_buf_append(&w->b, p, n);
    return w->rc ? -1 : 0;
}

static void put_json(struct wr *w, const json_t *v, size_t flags)
{
    if (!w->rc && json_dump_callback(v, dump_cb, w, JSON_COMPACT | flags) && !w->rc)
        w->rc = CH_ENOMEM;
}

/* The non-empty text blocks joined with "\n", as one string (nothing
 * written, false returned, when there are none). */
static bool put_joined_text(struct wr *w, const json_t *blocks)
{
    const json_t *blk, *one = NULL;
    struct ch_buf j;
    size_t i, n = 0;
    int rc = 0;

    json_array_foreach(blocks, i, blk)
    {
        if (strcmp(llm_jstr(blk, "type"), "text") == 0 && llm_jstr(blk, "text")[0])
            n++, one = blk;
    }
    if (n == 0)
        return false;
    if (n == 1) {
        put_str(w, llm_jstr(one, "text"));
        return true;
    }
    ch_buf_init(&j, CH_LLM_MAX_BODY_BYTES);
    json_array_foreach(blocks, i, blk)
    {
        if (rc || strcmp(llm_jstr(blk, "type"), "text") != 0 || !llm_jstr(blk, "text")[0])
            continue;
        if (j.len)
            rc = ch_buf_append_char(&j, '\n');
        if (!rc)
            rc = ch_buf_append_str(&j, llm_jstr(blk, "text"));
    }
    if (rc && !w->rc)
        w->rc = rc;
    if (!w->rc)
        w->rc = ch_buf_append_json_str(&w->b, j.data, j.len);
    ch_buf_release(&j);
    return true;
}

static bool has_text(const json_t *blocks)
{
    const json_t *blk;
    size_t i;

    json_array_foreach(blocks, i, blk)
    {
        if (strcmp(llm_jstr(blk, "type"), "text") == 0 && llm_jstr(blk, "text")[0])
            return true;
    }
    return false;
}

/* Text joins into `content`; tool_use blocks become `tool_calls` with the
 * input serialised as the `arguments` string. */
static void put_assistant(struct wr *w, const json_t *blocks, bool *first)
{
    const json_t *b;
    size_t i, ncalls = 0;

    json_array_foreach(blocks, i, b) ncalls += strcmp(llm_jstr(b, "type"), "tool_use") == 0;
    /* An assistant message with neither is a 400: leave it out. */
    if (!ncalls && !has_text(blocks))
        return;
    put(w, *first ? "{\"role\":\"assistant\",\"content\":" : ",{\"role\":\"assistant\",\"content\":");
    *first = false;
    /* content is null, not "", next to tool_calls, as OpenAI itself sends. */
    if (!put_joined_text(w, blocks))
        put(w, "null");
    ncalls = 0;
    json_array_foreach(blocks, i, b)
    {
        const json_t *input = json_object_get(b, "input");
        char *args;
        if (strcmp(llm_jstr(b, "type"), "tool_use") != 0)
            continue;
        args = input ? json_dumps(input, JSON_COMPACT) : NULL;
        if (input && !args && !w->rc)
            w->rc = CH_ENOMEM;
        put(w, ncalls++ ? ",{\"id\":" : ",\"tool_calls\":[{\"id\":");
        put_str(w, llm_jstr(b, "id"));
        put(w, ",\"type\":\"function\",\"function\":{\"name\":");
        put_str(w, llm_jstr(b, "name"));
        put(w, ",\"arguments\":");
        put_str(w, args ? args : "{}");
        put(w, "}}");
        ch_free(args);
    }
    if (ncalls)
        put(w, "]");
    put(w, "}");
}

/* tool_result blocks become role "tool" messages, before the user's own
 * text (they must follow the assistant's tool_calls directly); the API
 * has no error flag, so an error result's content is prefixed "Error: ". */
static void put_user(struct wr *w, const json_t *blocks, bool *first)
{
    const json_t *b;
    size_t i;

    json_array_foreach(blocks, i, b)
    {
        const char *content = llm_jstr(b, "content");
        if (strcmp(llm_jstr(b, "type"), "tool_result") != 0)
            continue;
        put(w, *first ? "{\"role\":\"tool\",\"tool_call_id\":" : ",{\"role\":\"tool\",\"tool_call_id\":");
        *first = false;
        put_str(w, llm_jstr(b, "tool_use_id"));
        put(w, ",\"content\":");
        if (json_is_true(json_object_get(b, "is_error"))) {
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
    if (!has_text(blocks))
        return;
    put(w, *first ? "{\"role\":\"user\",\"content\":" : ",{\"role\":\"user\",\"content\":");
    *first = false;
    put_joined_text(w, blocks);
    put(w, "}");
}

static void put_messages(struct wr *w, const struct ch_llm_request *req)
{
    const json_t *m;
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
        json_t *blocks = llm_blocks(m);
        if (!blocks) {
            if (!w->rc)
                w->rc = CH_ENOMEM;
            break;
        }
        if (strcmp(llm_jstr(m, "role"), "assistant") == 0)
            put_assistant(w, blocks, &first);
        else
            put_user(w, blocks, &first);
        json_decref(blocks);
    }
    put(w, "]");
}

static void put_tools(struct wr *w, const json_t *tools)
{
    const json_t *t;
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
    struct wr w = {0};
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

    ch_buf_init(&w.b, CH_LLM_MAX_BODY_BYTES);
    w.rc = ch_buf_reserve(&w.b, 1024);
    put(&w, "{\"model\":");
    put_str(&w, req->model);
    put(&w, req->want_max_completion_tokens ? ",\"max_completion_tokens\":" : ",\"max_tokens\":");
    if (!w.rc)
        w.rc = ch_buf_appendf(&w.b, "%lld,", (long long)req->max_tokens);
    put_messages(&w, req);
    if (req->tools && json_array_size(req->tools))
        put_tools(&w, req->tools);
    if (req->has_temperature) {
        json_t *t = json_real(req->temperature);
        put(&w, ",\"temperature\":");
        if (t)
            put_json(&w, t, JSON_ENCODE_ANY);
        else if (!w.rc)
            w.rc = CH_ENOMEM;
        json_decref(t);
    }
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
