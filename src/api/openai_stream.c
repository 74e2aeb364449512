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

/* Send o->out (prefix + delta + tail) as one write, then cut it back to
 * the prefix.  A render that failed (rc) sends nothing, as a chunk jansson
 * could not pack was skipped before. */
static void send_out(struct oa_req *o, int rc, const char *finish)
{
    if (!rc && finish) {
        rc = ch_buf_append_str(&o->out, ",\"finish_reason\":\"");
        rc = rc ? rc : ch_buf_append_str(&o->out, finish);
        rc = rc ? rc : ch_buf_append_str(&o->out, "\"}]}\n\n");
    } else if (!rc) {
        rc = ch_buf_append_str(&o->out, ",\"finish_reason\":null}]}\n\n");
    }
    if (!rc)
        ch_http_stream_write(o->req, o->out.data, o->out.len);
    if (o->out.data) {
        o->out.len = o->prefix_len;
        o->out.data[o->out.len] = '\0';
    }
}

int ch_oa_stream_start(struct oa_req *o)
{
    int rc;

    if (o->responses)
        return ch_rs_stream_start(o);
    ch_http_add_header(o->req, "Cache-Control", "no-cache");
    rc = ch_http_stream_begin(o->req, 200, "text/event-stream");
    if (rc)
        return rc;
    o->started = true;
    /* Every chunk opens the same way: render that once. */
    ch_buf_reset(&o->out);
    rc = ch_buf_append_str(&o->out, "data: ");
    rc = rc ? rc : ch_oa_put_head(&o->out, o, "chat.completion.chunk");
    rc = rc ? rc : ch_buf_append_str(&o->out, "\"choices\":[{\"index\":0,\"delta\":");
    if (rc) {
        ch_http_stream_end(o->req);
        o->finished = true;
        return rc;
    }
    o->prefix_len = o->out.len;
    send_out(o, ch_buf_append_str(&o->out, "{\"role\":\"assistant\",\"content\":\"\"}"), NULL);
    return 0;
}

void ch_oa_stream_delta(struct oa_req *o, const char *text, size_t len)
{
    int rc;

    if (!o->started || o->finished || !len)
        return;
    if (o->responses) {
        ch_rs_stream_delta(o, text, len);
        return;
    }
    rc = ch_buf_append_str(&o->out, "{\"content\":");
    rc = rc ? rc : ch_buf_append_json_str(&o->out, text, len);
    send_out(o, rc ? rc : ch_buf_append_char(&o->out, '}'), NULL);
}

void ch_oa_stream_tool(struct oa_req *o, const struct ch_llm_event *e)
{
    struct ch_buf *b = &o->out;
    int rc;

    /* A response's function calls go out whole at the end. */
    if (!o->started || o->finished || o->responses)
        return;
    if (e->type != CH_LLM_EV_TOOL_START && e->type != CH_LLM_EV_TOOL_ARGS_DELTA)
        return;
    rc = ch_buf_append_str(b, "{\"tool_calls\":[{\"index\":");
    rc = rc ? rc : ch_oa_put_int(b, e->index);
    if (e->type == CH_LLM_EV_TOOL_START) {
        const char *id = e->tool_id ? e->tool_id : "", *name = e->tool_name ? e->tool_name : "";
        rc = rc ? rc : ch_buf_append_str(b, ",\"id\":");
        rc = rc ? rc : ch_buf_append_json_str(b, id, strlen(id));
        rc = rc ? rc : ch_buf_append_str(b, ",\"type\":\"function\",\"function\":{\"name\":");
        rc = rc ? rc : ch_buf_append_json_str(b, name, strlen(name));
        rc = rc ? rc : ch_buf_append_str(b, ",\"arguments\":\"\"}}]}");
    } else {
        rc = rc ? rc : ch_buf_append_str(b, ",\"function\":{\"arguments\":");
        rc = rc ? rc : ch_buf_append_json_str(b, e->text.p ? e->text.p : "", e->text.len);
        rc = rc ? rc : ch_buf_append_str(b, "}}]}");
    }
    send_out(o, rc, NULL);
}

void ch_oa_stream_finish(struct oa_req *o, const char *finish_reason, const struct ch_llm_usage *u)
{
    struct ch_buf *b = &o->out;
    int rc;

    if (!o->started || o->finished)
        return;
    if (o->responses) {
        ch_rs_stream_finish(o, finish_reason, u);
        return;
    }
    send_out(o, ch_buf_append_str(b, "{}"), finish_reason);
    if (o->include_usage && u) {
        /* {"id",..,"model":..,"choices":[],"usage":{..}}: its own head. */
        ch_buf_reset(b);
        rc = ch_buf_append_str(b, "data: ");
        rc = rc ? rc : ch_oa_put_head(b, o, "chat.completion.chunk");
        rc = rc ? rc : ch_buf_append_str(b, "\"choices\":[],");
        rc = rc ? rc : ch_oa_put_usage(b, u);
        rc = rc ? rc : ch_buf_append_str(b, "}\n\n");
        if (!rc)
            ch_http_stream_write(o->req, b->data, b->len);
    }
    ch_http_stream_write(o->req, "data: [DONE]\n\n", 14);
    ch_http_stream_end(o->req);
    o->finished = true;
}

void ch_oa_stream_error(struct oa_req *o, const char *type, const char *code, const char *msg)
{
    json_t *m;

    if (!o->started || o->finished)
        return;
    if (o->responses) {
        ch_rs_stream_error(o, code, msg);
        return;
    }
    m = ch_oa_err_msg(msg); /* cleaned: an upstream's cut message still goes out */
    send_chunk(o, m ? json_pack("{s:{s:o, s:s, s:s?}}", "error", "message", m, "type", type, "code", code) : NULL);
    ch_http_stream_write(o->req, "data: [DONE]\n\n", 14);
    ch_http_stream_end(o->req);
    o->finished = true;
}
