/*
 * openai_stream.c: OpenAI Chat Completions responses onto the neutral
 * events, for api.openai.com and the compatible servers (Ollama, vLLM,
 * LM Studio, OpenRouter, LiteLLM).
 *
 * Streamed: `data:` chunks with choices[0].delta.content, delta.refusal and
 * delta.tool_calls[] (index, id and function.name on the first fragment,
 * function.arguments in pieces), finish_reason, a last chunk with `usage`
 * and empty choices (stream_options.include_usage), then `data: [DONE]`.
 * Compatible servers differ: some omit [DONE], ids or indices, or send a
 * whole call in one fragment; each case is handled below.  Only choice 0
 * is read (the builders never ask for n > 1).
 */
#include <string.h>

#include "providers/internal.h"

static enum ch_llm_stop map_finish(const char *r)
{
    if (strcmp(r, "length") == 0)
        return CH_LLM_STOP_MAX_TOKENS;
    if (strcmp(r, "tool_calls") == 0 || strcmp(r, "function_call") == 0)
        return CH_LLM_STOP_TOOL_USE;
    if (strcmp(r, "content_filter") == 0)
        return CH_LLM_STOP_REFUSAL;
    return CH_LLM_STOP_END_TURN; /* "stop", "eos", and anything new */
}

/* prompt_tokens counts the cached ones too; the neutral input does not. */
static void take_usage(struct ch_llm_decoder *d, const json_t *u)
{
    struct ch_llm_usage n = {0};
    uint64_t prompt;

    if (!json_is_object(u))
        return;
    prompt = llm_jtokens(u, "prompt_tokens");
    n.cache_read_tokens = llm_jtokens(json_object_get(u, "prompt_tokens_details"), "cached_tokens");
    if (n.cache_read_tokens > prompt)
        n.cache_read_tokens = prompt;
    n.input_tokens = prompt - n.cache_read_tokens;
    n.output_tokens = llm_jtokens(u, "completion_tokens");
    llm_usage(d, &n);
}

static int tool_delta(struct ch_llm_decoder *d, json_t *tc, size_t pos)
{
    json_t *fn = json_object_get(tc, "function"), *jidx = json_object_get(tc, "index");
    const char *id = llm_jstr(tc, "id"), *name = llm_jstr(fn, "name");
    const char *args = llm_jstr(fn, "arguments");
    struct llm_tool *t;
    long key;
    int rc = 0;

    /* Without an index, a fragment carrying an id starts a new call and
     * one without continues the last call (seen from older proxies). */
    if (json_is_integer(jidx))
        key = (long)json_integer_value(jidx);
    else if (id || d->ntools == 0)
        key = (long)(d->ntools + pos);
    else
        key = d->tools[d->ntools - 1].key;
    t = llm_tool_find(d, key);
    /* A new id under a known index is a new call (servers that number
     * every call 0). */
    if (t && id && id[0] && strcmp(t->id, id) != 0 && t->started) {
        rc = llm_tool_end(d, t);
        t = NULL;
    }
    if (!rc && !t)
        rc = llm_tool_begin(d, key, id, name, &t);
    else if (!rc && name)
        rc = llm_tool_name(d, t, name);
    if (!rc && args)
        rc = llm_tool_args(d, t, args, strlen(args));
    return rc;
}

static int on_choice(struct ch_llm_decoder *d, json_t *choice, const char *msgkey)
{
    json_t *delta = json_object_get(choice, msgkey), *tcs, *tc;
    const char *s, *finish;
    size_t i;
    int rc = 0;

    s = llm_jstr(delta, "content");
    if (s)
        rc = llm_text(d, s, strlen(s));
    /* A structured refusal is text for the user, and the stop reason says so. */
    s = llm_jstr(delta, "refusal");
    if (!rc && s) {
        rc = llm_text(d, s, strlen(s));
        llm_set_stop(d, CH_LLM_STOP_REFUSAL, "refusal");
    }
    tcs = json_object_get(delta, "tool_calls");
    json_array_foreach(tcs, i, tc)
    {
        if (rc)
            break;
        rc = tool_delta(d, tc, i);
    }
    finish = llm_jstr(choice, "finish_reason");
    if (!rc && finish) {
        if (!(d->has_stop && d->stop == CH_LLM_STOP_REFUSAL))
            llm_set_stop(d, map_finish(finish), finish);
        /* Calls end with the choice: close them now so TOOL_END is not held
         * back until [DONE], which comes after the usage chunk. */
        for (i = 0; !rc && i < d->ntools; i++)
            rc = llm_tool_end(d, &d->tools[i]);
        if (!rc)
            rc = llm_text_close(d);
    }
    return rc;
}

/* The fields shared by stream chunks and whole bodies. */
static int on_object(struct ch_llm_decoder *d, json_t *j, const char *msgkey)
{
    json_t *choices = json_object_get(j, "choices"), *c, *err = json_object_get(j, "error");
    size_t i;
    int rc = 0;

    if (err && !json_is_null(err))
        return llm_fail_provider(d, j);
    llm_set_model(d, llm_jstr(j, "model"));
    json_array_foreach(choices, i, c)
    {
        json_t *ix = json_object_get(c, "index");
        if (ix && json_integer_value(ix) != 0)
            continue;
        rc = on_choice(d, c, msgkey);
        break;
    }
    if (!rc)
        take_usage(d, json_object_get(j, "usage"));
    return rc;
}

static int on_sse(struct ch_llm_decoder *d, const struct ch_sse_event *ev)
{
    json_t *j = NULL;
    int rc;

    if (ch_str_eq_cstr(ch_str_trim(ev->data), "[DONE]"))
        return llm_complete(d);
    rc = llm_parse_json(d, ev->data.p, ev->data.len, &j);
    if (rc)
        return rc;
    rc = on_object(d, j, "delta");
    json_decref(j);
    return rc;
}

static int on_body(struct ch_llm_decoder *d, json_t *j)
{
    int rc;

    if (!json_is_object(j) || (!json_object_get(j, "choices") && !json_object_get(j, "error")))
        return llm_fail(d, CH_EINVAL, CH_LLM_ERR_UNKNOWN, true, "response has no choices array");
    rc = on_object(d, j, "message");
    return rc ? rc : llm_complete(d);
}

static int on_eof(struct ch_llm_decoder *d)
{
    /* No [DONE] (some compatible servers): a finish_reason is enough. */
    return d->has_stop ? llm_complete(d) : 0;
}

const struct llm_dec_ops llm_openai_ops = {on_sse, on_body, on_eof};
