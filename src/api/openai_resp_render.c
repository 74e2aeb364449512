/*
 * openai_resp_render.c: /v1/responses answers in the OpenResponses shape.
 *
 * A whole response is {id, object: "response", created_at, status, error,
 * incomplete_details, model, output: [items], usage, ...} with the
 * request's settings echoed back as OpenAI does.  Output items are one
 * assistant `message` ({type: "output_text", text, annotations}) and a
 * `function_call` {call_id, name, arguments} per tool call.
 *
 * A stream is `event: <type>` / `data: <json>` pairs numbered by
 * sequence_number: response.created and response.in_progress, then for
 * the text output_item.added, content_part.added, output_text.delta per
 * chunk, output_text.done, content_part.done, output_item.done; each
 * function call as one item (added, arguments delta and done, done) once
 * the reply is complete; and response.completed (response.incomplete at
 * the token limit, response.failed on an error), then `data: [DONE]` as
 * OpenClaw ends it.  The text of the done events is what the deltas
 * carried, so a client that joins them agrees with the final response.
 */
#include <string.h>

#include "api/openai.h"

static json_t *usage_obj(const struct ch_llm_usage *u)
{
    int64_t in = ch_oa_prompt_tokens(u), out = ch_oa_tokens(u->output_tokens);

    return json_pack("{s:I, s:{s:I}, s:I, s:{s:I}, s:I}", "input_tokens", (json_int_t)in, "input_tokens_details",
                     "cached_tokens", (json_int_t)ch_oa_tokens(u->cache_read_tokens), "output_tokens", (json_int_t)out,
                     "output_tokens_details", "reasoning_tokens", (json_int_t)0, "total_tokens",
                     (json_int_t)ch_oa_tokens_add(in, out));
}

/* The request's value for key, or dflt (taken) when absent or null. */
static json_t *echo(const struct oa_req *o, const char *key, json_t *dflt)
{
    json_t *v = json_object_get(o->rs_body, key);

    if (!v || json_is_null(v))
        return dflt;
    json_decref(dflt);
    return json_incref(v);
}

static json_t *response_obj(const struct oa_req *o, const char *status, json_t *output, const struct ch_llm_usage *u,
                            json_t *error, bool incomplete)
{
    json_t *r = json_pack(
        "{s:s, s:s, s:I, s:s, s:o, s:o, s:o?, s:o?, s:s, s:o, s:o?, s:o?, s:o?, s:o?, s:o?, s:o?, "
        "s:o?, s:o?, s:o?}",
        "id", o->id, "object", "response", "created_at", (json_int_t)o->created, "status", status, "error",
        error ? error : json_null(), "incomplete_details",
        incomplete ? json_pack("{s:s}", "reason", "max_output_tokens") : json_null(), "instructions",
        echo(o, "instructions", json_null()), "max_output_tokens", echo(o, "max_output_tokens", json_null()), "model",
        o->model, "output", output ? output : json_array(), "parallel_tool_calls",
        echo(o, "parallel_tool_calls", json_true()), "previous_response_id",
        echo(o, "previous_response_id", json_null()), "temperature", echo(o, "temperature", json_null()), "top_p",
        echo(o, "top_p", json_null()), "tool_choice", echo(o, "tool_choice", json_string("auto")), "tools",
        echo(o, "tools", json_array()), "text", echo(o, "text", json_pack("{s:{s:s}}", "format", "type", "text")),
        "metadata", echo(o, "metadata", json_object()), "usage", u ? usage_obj(u) : json_null());

    if (r && json_is_string(json_object_get(o->rs_body, "user")))
        json_object_set(r, "user", json_object_get(o->rs_body, "user"));
    return r;
}

static json_t *text_part(const char *text, size_t len)
{
    return json_pack("{s:s, s:s%, s:[]}", "type", "output_text", "text", text ? text : "", text ? len : 0,
                     "annotations");
}

/* msg_<the response id's tail>: one message per response. */
static void msg_id(const struct oa_req *o, char out[64])
{
    snprintf(out, 64, "msg_%s", o->id + 5);
}

static json_t *message_item(const struct oa_req *o, const char *status, json_t *content)
{
    char id[64];

    msg_id(o, id);
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", "message", "id", id, "status", status, "role", "assistant",
                     "content", content ? content : json_array());
}

static json_t *call_item(const json_t *blk, const char *status, bool with_args)
{
    const char *id = json_string_value(json_object_get(blk, "id"));
    char *args = with_args ? json_dumps(json_object_get(blk, "input"), JSON_COMPACT) : NULL;
    const char *name = json_string_value(json_object_get(blk, "name"));
    char fid[300];
    json_t *it;

    snprintf(fid, sizeof(fid), "fc_%s", id ? id : "");
    it = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "function_call", "id", fid, "call_id", id ? id : "",
                   "name", name ? name : "", "arguments", args ? args : (with_args ? "{}" : ""), "status", status);
    ch_free(args);
    return it;
}

static bool is_tool_use(const json_t *blk)
{
    const char *t = json_string_value(json_object_get(blk, "type"));

    return t && !strcmp(t, "tool_use");
}

void ch_rs_respond(struct oa_req *o, const json_t *reply, const char *text, const char *finish,
                   const struct ch_llm_usage *u)
{
    bool incomplete = finish && !strcmp(finish, "length");
    json_t *output = json_array(), *blk, *r;
    struct ch_buf t;
    size_t i;

    ch_buf_init(&t, 16 << 20);
    if (reply) {
        json_array_foreach(json_object_get(reply, "content"), i, blk)
        {
            const char *s = json_string_value(json_object_get(blk, "text"));
            if (!is_tool_use(blk) && s)
                ch_buf_append_str(&t, s);
        }
    } else if (text) {
        ch_buf_append_str(&t, text);
    }
    if (t.len || !reply)
        json_array_append_new(output, message_item(o, incomplete ? "incomplete" : "completed",
                                                   json_pack("[o]", text_part(t.data, t.len))));
    json_array_foreach(json_object_get(reply, "content"), i, blk)
    {
        if (is_tool_use(blk))
            json_array_append_new(output, call_item(blk, "completed", true));
    }
    ch_buf_release(&t);
    r = response_obj(o, incomplete ? "incomplete" : "completed", output, u, NULL, incomplete);
    if (r)
        ch_http_respond_json(o->req, 200, r);
    else
        ch_openai_error(o->req, 500, "api_error", "internal", "the response could not be rendered");
}

/* ---- streaming ---- */

/* event: type / data: {"type":type,"sequence_number":n,...fields}.
 * Takes fields. */
static void event(struct oa_req *o, const char *type, json_t *fields)
{
    json_t *e = json_pack("{s:s, s:I}", "type", type, "sequence_number", (json_int_t)o->seq++);
    char *s;

    if (!e || !fields || json_object_update(e, fields)) {
        json_decref(e);
        json_decref(fields);
        return;
    }
    json_decref(fields);
    s = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    if (!s)
        return;
    ch_buf_reset(&o->out);
    if (!ch_buf_appendf(&o->out, "event: %s\ndata: ", type) && !ch_buf_append_str(&o->out, s) &&
        !ch_buf_append_str(&o->out, "\n\n"))
        ch_http_stream_write(o->req, o->out.data, o->out.len);
    ch_free(s);
}

int ch_rs_stream_start(struct oa_req *o)
{
    int rc;

    ch_http_add_header(o->req, "Cache-Control", "no-cache");
    rc = ch_http_stream_begin(o->req, 200, "text/event-stream");
    if (rc) {
        o->finished = true;
        return rc;
    }
    o->started = true;
    event(o, "response.created", json_pack("{s:o}", "response", response_obj(o, "in_progress", NULL, NULL, NULL, 0)));
    event(o, "response.in_progress",
          json_pack("{s:o}", "response", response_obj(o, "in_progress", NULL, NULL, NULL, 0)));
    return 0;
}

static json_t *text_ref(const struct oa_req *o)
{
    char id[64];

    msg_id(o, id);
    return json_pack("{s:s, s:i, s:i}", "item_id", id, "output_index", 0, "content_index", 0);
}

void ch_rs_stream_delta(struct oa_req *o, const char *text, size_t len)
{
    json_t *f;

    if (!o->item_open) {
        o->item_open = true;
        event(o, "response.output_item.added",
              json_pack("{s:i, s:o}", "output_index", 0, "item", message_item(o, "in_progress", NULL)));
        f = text_ref(o);
        json_object_set_new(f, "part", text_part("", 0));
        event(o, "response.content_part.added", f);
    }
    if (ch_buf_append(&o->text, text, len))
        return; /* over the cap: the run's own limit ends it soon */
    f = text_ref(o);
    json_object_set_new(f, "delta", json_stringn(text, len));
    json_object_set_new(f, "logprobs", json_array());
    event(o, "response.output_text.delta", f);
}

void ch_rs_stream_finish(struct oa_req *o, const char *finish, const struct ch_llm_usage *u)
{
    bool incomplete = finish && !strcmp(finish, "length");
    const char *status = incomplete ? "incomplete" : "completed";
    json_t *output = json_array(), *blk, *f, *part;
    size_t i, idx = 0;

    if (o->item_open) {
        f = text_ref(o);
        json_object_set_new(f, "text", json_stringn(o->text.data ? o->text.data : "", o->text.len));
        json_object_set_new(f, "logprobs", json_array());
        event(o, "response.output_text.done", f);
        part = text_part(o->text.data, o->text.len);
        f = text_ref(o);
        json_object_set(f, "part", part);
        event(o, "response.content_part.done", f);
        json_array_append_new(output, message_item(o, status, json_pack("[o]", part)));
        event(o, "response.output_item.done",
              json_pack("{s:i, s:O}", "output_index", 0, "item", json_array_get(output, 0)));
        idx = 1;
    }
    json_array_foreach(json_object_get(o->reply, "content"), i, blk)
    {
        json_t *done;
        if (!is_tool_use(blk))
            continue;
        done = call_item(blk, "completed", true);
        f = json_pack("{s:s, s:I}", "item_id", json_string_value(json_object_get(done, "id")), "output_index",
                      (json_int_t)idx);
        event(o, "response.output_item.added",
              json_pack("{s:I, s:o}", "output_index", (json_int_t)idx, "item", call_item(blk, "in_progress", false)));
        json_object_set(f, "delta", json_object_get(done, "arguments"));
        event(o, "response.function_call_arguments.delta", json_deep_copy(f));
        json_object_del(f, "delta");
        json_object_set(f, "arguments", json_object_get(done, "arguments"));
        event(o, "response.function_call_arguments.done", f);
        event(o, "response.output_item.done", json_pack("{s:I, s:O}", "output_index", (json_int_t)idx, "item", done));
        json_array_append_new(output, done);
        idx++;
    }
    event(o, incomplete ? "response.incomplete" : "response.completed",
          json_pack("{s:o}", "response", response_obj(o, status, output, u, NULL, incomplete)));
    ch_http_stream_write(o->req, "data: [DONE]\n\n", 14);
    ch_http_stream_end(o->req);
    o->finished = true;
}

void ch_rs_stream_error(struct oa_req *o, const char *code, const char *msg)
{
    json_t *m = ch_oa_err_msg(msg),
           *err = m ? json_pack("{s:s, s:o}", "code", code ? code : "server_error", "message", m) : NULL;

    event(o, "response.failed", json_pack("{s:o}", "response", response_obj(o, "failed", NULL, NULL, err, false)));
    ch_http_stream_write(o->req, "data: [DONE]\n\n", 14);
    ch_http_stream_end(o->req);
    o->finished = true;
}
