/*
 * anthropic_stream.c: Anthropic Messages responses onto the neutral events.
 *
 * Streamed: message_start (usage with cache tokens), content_block_start
 * (text | tool_use; thinking and server-tool blocks are skipped),
 * content_block_delta (text_delta | input_json_delta), content_block_stop,
 * message_delta (stop_reason, usage), message_stop (the end marker), ping,
 * error.  The JSON body of a non-streamed call carries the same content
 * blocks whole.  Unknown event and delta types are ignored, as Anthropic's
 * versioning policy asks of clients.
 */
#include <string.h>

#include "providers/internal.h"

static enum ch_llm_stop map_stop(const char *r)
{
    static const struct {
        const char *raw;
        enum ch_llm_stop s;
    } map[] = {
        {"end_turn", CH_LLM_STOP_END_TURN},
        {"tool_use", CH_LLM_STOP_TOOL_USE},
        {"max_tokens", CH_LLM_STOP_MAX_TOKENS},
        {"model_context_window_exceeded", CH_LLM_STOP_MAX_TOKENS},
        {"stop_sequence", CH_LLM_STOP_STOP_SEQUENCE},
        {"refusal", CH_LLM_STOP_REFUSAL},
        /* pause_turn: a server tool paused a long turn; for this client the
         * turn is over. */
        {"pause_turn", CH_LLM_STOP_END_TURN},
    };
    size_t i;

    for (i = 0; r && i < CH_ARRAY_SIZE(map); i++)
        if (strcmp(r, map[i].raw) == 0)
            return map[i].s;
    return CH_LLM_STOP_END_TURN;
}

/* Merge the counts present in a usage object: message_delta repeats only
 * some of them (output_tokens always; input and cache ones since 2025). */
static void take_usage(struct ch_llm_decoder *d, const json_t *u)
{
    struct ch_llm_usage n = d->usage;

    if (!json_is_object(u))
        return;
    if (json_object_get(u, "input_tokens"))
        n.input_tokens = llm_jtokens(u, "input_tokens");
    if (json_object_get(u, "output_tokens"))
        n.output_tokens = llm_jtokens(u, "output_tokens");
    if (json_object_get(u, "cache_read_input_tokens"))
        n.cache_read_tokens = llm_jtokens(u, "cache_read_input_tokens");
    if (json_object_get(u, "cache_creation_input_tokens"))
        n.cache_write_tokens = llm_jtokens(u, "cache_creation_input_tokens");
    llm_usage(d, &n);
}

static int block_start(struct ch_llm_decoder *d, json_t *j)
{
    json_t *cb = json_object_get(j, "content_block");
    const char *type = llm_jstr(cb, "type");
    json_t *input;
    struct llm_tool *t;
    const char *txt;
    int rc = 0;

    d->block = (long)json_integer_value(json_object_get(j, "index"));
    d->block_kind = LLM_BLOCK_OTHER;
    if (type && strcmp(type, "text") == 0) {
        d->block_kind = LLM_BLOCK_TEXT;
        txt = llm_jstr(cb, "text");
        if (txt)
            rc = llm_text(d, txt, strlen(txt));
    } else if (type && strcmp(type, "tool_use") == 0) {
        d->block_kind = LLM_BLOCK_TOOL;
        rc = llm_tool_begin(d, d->block, llm_jstr(cb, "id"), llm_jstr(cb, "name"), &t);
        input = json_object_get(cb, "input");
        /* The start block carries input {} and the deltas the real input;
         * a non-empty start input (seen from proxies) stands on its own. */
        if (!rc && json_is_object(input) && json_object_size(input) > 0) {
            char *s = json_dumps(input, JSON_COMPACT);
            rc = s ? llm_tool_args(d, t, s, strlen(s))
                   : llm_fail(d, CH_ENOMEM, CH_LLM_ERR_UNKNOWN, false, "out of memory");
            ch_free(s);
        }
    }
    return rc;
}

static int block_delta(struct ch_llm_decoder *d, json_t *j)
{
    json_t *delta = json_object_get(j, "delta");
    const char *type = llm_jstr(delta, "type");
    long index = (long)json_integer_value(json_object_get(j, "index"));
    struct llm_tool *t;
    const char *s;

    if (!type)
        return 0;
    if (strcmp(type, "text_delta") == 0) {
        s = llm_jstr(delta, "text");
        return s ? llm_text(d, s, strlen(s)) : 0;
    }
    if (strcmp(type, "input_json_delta") == 0) {
        s = llm_jstr(delta, "partial_json");
        t = llm_tool_find(d, index);
        return s && t ? llm_tool_args(d, t, s, strlen(s)) : 0;
    }
    return 0; /* thinking_delta, signature_delta, citations_delta */
}

static int block_stop(struct ch_llm_decoder *d, json_t *j)
{
    long index = (long)json_integer_value(json_object_get(j, "index"));
    struct llm_tool *t;
    int rc = 0;

    if (d->block_kind == LLM_BLOCK_TEXT) {
        rc = llm_text_close(d);
    } else if (d->block_kind == LLM_BLOCK_TOOL) {
        t = llm_tool_find(d, index);
        if (t)
            rc = llm_tool_end(d, t);
    }
    d->block = -1;
    d->block_kind = LLM_BLOCK_NONE;
    return rc;
}

static int on_sse(struct ch_llm_decoder *d, const struct ch_sse_event *ev)
{
    json_t *j = NULL, *m;
    const char *type;
    int rc;

    rc = llm_parse_json(d, ev->data.p, ev->data.len, &j);
    if (rc)
        return rc;
    /* data.type names the event; the SSE `event:` line is its copy. */
    type = llm_jstr(j, "type");
    if (!type)
        type = ch_str_eq_cstr(ev->type, "error") ? "error" : "";
    if (strcmp(type, "message_start") == 0) {
        m = json_object_get(j, "message");
        d->saw_start = true;
        llm_set_model(d, llm_jstr(m, "model"));
        take_usage(d, json_object_get(m, "usage"));
    } else if (strcmp(type, "content_block_start") == 0) {
        rc = block_start(d, j);
    } else if (strcmp(type, "content_block_delta") == 0) {
        rc = block_delta(d, j);
    } else if (strcmp(type, "content_block_stop") == 0) {
        rc = block_stop(d, j);
    } else if (strcmp(type, "message_delta") == 0) {
        const char *r = llm_jstr(json_object_get(j, "delta"), "stop_reason");
        if (r)
            llm_set_stop(d, map_stop(r), r);
        take_usage(d, json_object_get(j, "usage"));
    } else if (strcmp(type, "message_stop") == 0) {
        rc = llm_complete(d);
    } else if (strcmp(type, "error") == 0) {
        rc = llm_fail_provider(d, j);
    }
    json_decref(j);
    return rc;
}

static int on_body(struct ch_llm_decoder *d, json_t *j)
{
    const char *type = llm_jstr(j, "type"), *btype, *r;
    json_t *content = json_object_get(j, "content"), *b;
    size_t i;
    int rc = 0;

    if ((type && strcmp(type, "error") == 0) || json_object_get(j, "error"))
        return llm_fail_provider(d, j);
    if (!json_is_array(content))
        return llm_fail(d, CH_EINVAL, CH_LLM_ERR_UNKNOWN, true, "response has no content array");
    llm_set_model(d, llm_jstr(j, "model"));
    take_usage(d, json_object_get(j, "usage"));
    json_array_foreach(content, i, b)
    {
        btype = llm_jstr(b, "type");
        if (!btype)
            continue;
        if (strcmp(btype, "text") == 0 && llm_jstr(b, "text")) {
            rc = llm_text(d, llm_jstr(b, "text"), strlen(llm_jstr(b, "text")));
            if (!rc)
                rc = llm_text_close(d);
        } else if (strcmp(btype, "tool_use") == 0) {
            rc = llm_tool_whole(d, llm_jstr(b, "id"), llm_jstr(b, "name"), json_object_get(b, "input"));
        }
        if (rc)
            return rc;
    }
    r = llm_jstr(j, "stop_reason");
    if (r)
        llm_set_stop(d, map_stop(r), r);
    return llm_complete(d);
}

static int on_eof(struct ch_llm_decoder *d)
{
    (void)d;
    return 0; /* without message_stop the response is incomplete */
}

const struct llm_dec_ops llm_anthropic_ops = {on_sse, on_body, on_eof, NULL};
