/*
 * openai_stream.c: `stream: true` for /v1/chat/completions, as OpenAI
 * sends it: `data: <chat.completion.chunk>` lines, the first carrying the
 * assistant role, then content and tool_call deltas, a last chunk with
 * finish_reason, a usage chunk (empty choices) when
 * stream_options.include_usage is set, and `data: [DONE]`.  A failure
 * after the stream started is an `error` object followed by [DONE].
 */
#include <string.h>

#include "api/openai.h"

static void send_chunk(struct oa_req *o, json_t *chunk)
{
    char *s = chunk ? json_dumps(chunk, JSON_COMPACT) : NULL;
    json_decref(chunk);
    if (!s)
        return;
    ch_http_stream_write(o->req, "data: ", 6);
    ch_http_stream_write(o->req, s, strlen(s));
    ch_http_stream_write(o->req, "\n\n", 2);
    ch_free(s);
}

static json_t *chunk_of(struct oa_req *o, json_t *delta, const char *finish)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:s?}]}", "id", o->id, "object", "chat.completion.chunk",
                     "created", (json_int_t)o->created, "model", o->model, "choices", "index", 0, "delta", delta,
                     "finish_reason", finish);
}

int ch_oa_stream_start(struct oa_req *o)
{
    int rc;

    ch_http_add_header(o->req, "Cache-Control", "no-cache");
    rc = ch_http_stream_begin(o->req, 200, "text/event-stream");
    if (rc)
        return rc;
    o->started = true;
    send_chunk(o, chunk_of(o, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL));
    return 0;
}

void ch_oa_stream_delta(struct oa_req *o, const char *text, size_t len)
{
    if (!o->started || o->finished || !len)
        return;
    send_chunk(o, chunk_of(o, json_pack("{s:s%}", "content", text, len), NULL));
}

void ch_oa_stream_tool(struct oa_req *o, const struct ch_llm_event *e)
{
    json_t *call;

    if (!o->started || o->finished)
        return;
    if (e->type == CH_LLM_EV_TOOL_START)
        call = json_pack("{s:i, s:s, s:s, s:{s:s, s:s}}", "index", e->index, "id", e->tool_id ? e->tool_id : "", "type",
                         "function", "function", "name", e->tool_name ? e->tool_name : "", "arguments", "");
    else if (e->type == CH_LLM_EV_TOOL_ARGS_DELTA)
        call = json_pack("{s:i, s:{s:s%}}", "index", e->index, "function", "arguments", e->text.p, e->text.len);
    else
        return;
    send_chunk(o, chunk_of(o, json_pack("{s:[o]}", "tool_calls", call), NULL));
}

void ch_oa_stream_finish(struct oa_req *o, const char *finish_reason, const struct ch_llm_usage *u)
{
    if (!o->started || o->finished)
        return;
    send_chunk(o, chunk_of(o, json_object(), finish_reason));
    if (o->include_usage && u) {
        int64_t in = (int64_t)(u->input_tokens + u->cache_read_tokens + u->cache_write_tokens);
        send_chunk(o, json_pack("{s:s, s:s, s:I, s:s, s:[], s:{s:I, s:I, s:I}}", "id", o->id, "object",
                                "chat.completion.chunk", "created", (json_int_t)o->created, "model", o->model,
                                "choices", "usage", "prompt_tokens", (json_int_t)in, "completion_tokens",
                                (json_int_t)u->output_tokens, "total_tokens",
                                (json_int_t)(in + (int64_t)u->output_tokens)));
    }
    ch_http_stream_write(o->req, "data: [DONE]\n\n", 14);
    ch_http_stream_end(o->req);
    o->finished = true;
}

void ch_oa_stream_error(struct oa_req *o, const char *type, const char *code, const char *msg)
{
    if (!o->started || o->finished)
        return;
    send_chunk(o, json_pack("{s:{s:s, s:s, s:s?}}", "error", "message", msg, "type", type, "code", code));
    ch_http_stream_write(o->req, "data: [DONE]\n\n", 14);
    ch_http_stream_end(o->req);
    o->finished = true;
}
