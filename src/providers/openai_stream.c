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
 *
 * Each chunk (and a whole JSON body) is first read with the non-allocating
 * scanner (json_scan.c, the "tw_" walk); what it does not take, and every
 * error object, goes through jansson (on_object), with the same rules.
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
static void usage_of(struct ch_llm_decoder *d, uint64_t prompt, uint64_t cached, uint64_t completion)
{
    struct ch_llm_usage n = {0};

    n.cache_read_tokens = cached > prompt ? prompt : cached;
    n.input_tokens = prompt - n.cache_read_tokens;
    n.output_tokens = completion;
    llm_usage(d, &n);
}

static void take_usage(struct ch_llm_decoder *d, const json_t *u)
{
    if (!json_is_object(u))
        return;
    usage_of(d, llm_jtokens(u, "prompt_tokens"),
             llm_jtokens(json_object_get(u, "prompt_tokens_details"), "cached_tokens"),
             llm_jtokens(u, "completion_tokens"));
}

/* One tool_calls[] fragment, from either parser. */
struct oa_frag {
    bool has_index;
    long index;
    const char *id, *name, *args; /* NULL when absent or not strings */
};

static int tool_delta(struct ch_llm_decoder *d, const struct oa_frag *f, size_t pos)
{
    struct llm_tool *t;
    long key;
    int rc = 0;

    /* Without an index, a fragment carrying an id starts a new call and
     * one without continues the last call (seen from older proxies). */
    if (f->has_index)
        key = f->index;
    else if (f->id || d->ntools == 0)
        key = (long)(d->ntools + pos);
    else
        key = d->tools[d->ntools - 1].key;
    t = llm_tool_find(d, key);
    /* A new id under a known index is a new call (servers that number
     * every call 0). */
    if (t && f->id && f->id[0] && strcmp(t->id, f->id) != 0 && t->started) {
        rc = llm_tool_end(d, t);
        t = NULL;
    }
    if (!rc && !t)
        rc = llm_tool_begin(d, key, f->id, f->name, &t);
    else if (!rc && f->name)
        rc = llm_tool_name(d, t, f->name);
    if (!rc && f->args)
        rc = llm_tool_args(d, t, f->args, strlen(f->args));
    return rc;
}

static int choice_text(struct ch_llm_decoder *d, const char *content, const char *refusal)
{
    int rc = 0;

    if (content)
        rc = llm_text(d, content, strlen(content));
    /* A structured refusal is text for the user, and the stop reason says so. */
    if (!rc && refusal) {
        rc = llm_text(d, refusal, strlen(refusal));
        llm_set_stop(d, CH_LLM_STOP_REFUSAL, "refusal");
    }
    return rc;
}

static int choice_finish(struct ch_llm_decoder *d, const char *finish)
{
    int rc = 0;

    if (!(d->has_stop && d->stop == CH_LLM_STOP_REFUSAL))
        llm_set_stop(d, map_finish(finish), finish);
    /* Calls end with the choice: close them now so TOOL_END is not held
     * back until [DONE], which comes after the usage chunk. */
    for (size_t i = 0; !rc && i < d->ntools; i++)
        rc = llm_tool_end(d, &d->tools[i]);
    return rc ? rc : llm_text_close(d);
}

static int on_choice(struct ch_llm_decoder *d, json_t *choice, const char *msgkey)
{
    json_t *delta = json_object_get(choice, msgkey), *tc;
    const char *finish;
    size_t i;
    int rc;

    rc = choice_text(d, llm_jstr(delta, "content"), llm_jstr(delta, "refusal"));
    json_array_foreach(json_object_get(delta, "tool_calls"), i, tc)
    {
        json_t *fn = json_object_get(tc, "function"), *jidx = json_object_get(tc, "index");
        struct oa_frag f = {json_is_integer(jidx), (long)json_integer_value(jidx), llm_jstr(tc, "id"),
                            llm_jstr(fn, "name"), llm_jstr(fn, "arguments")};
        if (rc)
            break;
        rc = tool_delta(d, &f, i);
    }
    finish = llm_jstr(choice, "finish_reason");
    if (!rc && finish)
        rc = choice_finish(d, finish);
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

/*
 * The same walk over a scanned chunk (json_scan.c): no allocation but for
 * decoded strings longer than the stack scratch.  Mirrors on_object with
 * jansson's accessor rules (a string of another type is absent, an integer
 * that is not one reads 0).  Returns 1 to ask for the jansson path.
 */
struct tokwalk {
    struct llm_jdoc doc;
    char *scratch; /* decoded strings, bump-allocated: room for the whole event */
    size_t used;
};

static const char *tw_str(struct tokwalk *w, int obj, const char *key)
{
    int v = llm_jget(&w->doc, obj, key);
    char *out;

    if (v < 0 || w->doc.toks[v].type != LLM_J_STR)
        return NULL;
    out = w->scratch + w->used;
    w->used += llm_jstr_decode(&w->doc, v, out) + 1;
    return out;
}

static uint64_t tw_tokens(struct tokwalk *w, int obj, const char *key)
{
    int64_t v = 0;

    return llm_jint(&w->doc, llm_jget(&w->doc, obj, key), &v) && v > 0 ? (uint64_t)v : 0;
}

static int tw_choice(struct ch_llm_decoder *d, struct tokwalk *w, int choice, const char *msgkey)
{
    int delta = llm_jget(&w->doc, choice, msgkey), tcs = llm_jget(&w->doc, delta, "tool_calls"), tc = -1;
    const char *content = tw_str(w, delta, "content"), *refusal = tw_str(w, delta, "refusal"), *finish;
    size_t i = 0;
    int rc = choice_text(d, content, refusal);

    while (!rc && tcs >= 0 && w->doc.toks[tcs].type == LLM_J_ARR && (tc = llm_jnext(&w->doc, tcs, tc)) >= 0) {
        int fn = llm_jget(&w->doc, tc, "function");
        int64_t ix = 0;
        struct oa_frag f = {llm_jint(&w->doc, llm_jget(&w->doc, tc, "index"), &ix), 0, tw_str(w, tc, "id"),
                            tw_str(w, fn, "name"), tw_str(w, fn, "arguments")};
        f.index = (long)ix;
        rc = tool_delta(d, &f, i++);
    }
    finish = tw_str(w, choice, "finish_reason");
    if (!rc && finish)
        rc = choice_finish(d, finish);
    return rc;
}

static int tw_chunk(struct ch_llm_decoder *d, struct tokwalk *w, const char *msgkey)
{
    int err = llm_jget(&w->doc, 0, "error"), choices = llm_jget(&w->doc, 0, "choices"), c = -1, u;
    int rc = 0;

    if (w->doc.toks[0].type != LLM_J_OBJ || (err >= 0 && w->doc.toks[err].type != LLM_J_NULL))
        return 1; /* errors are classified from the jansson tree */
    llm_set_model(d, tw_str(w, 0, "model"));
    while (choices >= 0 && w->doc.toks[choices].type == LLM_J_ARR && (c = llm_jnext(&w->doc, choices, c)) >= 0) {
        int64_t ix = 0;
        if (llm_jint(&w->doc, llm_jget(&w->doc, c, "index"), &ix) && ix != 0)
            continue;
        rc = tw_choice(d, w, c, msgkey);
        break;
    }
    u = llm_jget(&w->doc, 0, "usage");
    if (!rc && u >= 0 && w->doc.toks[u].type == LLM_J_OBJ)
        usage_of(d, tw_tokens(w, u, "prompt_tokens"),
                 tw_tokens(w, llm_jget(&w->doc, u, "prompt_tokens_details"), "cached_tokens"),
                 tw_tokens(w, u, "completion_tokens"));
    return rc;
}

/* 1: not handled here (outside the scanner's subset, or too large).
 * msgkey "delta" for a stream chunk, "message" for a whole body. */
static int walk_fast(struct ch_llm_decoder *d, const char *p, size_t n, const char *msgkey)
{
    struct llm_jtok toks[LLM_JSCAN_MAX_TOKENS];
    char stack[2048];
    struct tokwalk w = {.doc = {.toks = toks, .cap = CH_ARRAY_SIZE(toks)}, .scratch = stack};
    size_t need = n + LLM_JSCAN_MAX_TOKENS; /* every string decoded once, NUL each */
    int rc;

    if (llm_jscan(&w.doc, p, n))
        return 1;
    /* A body without choices is refused by on_body, in jansson's words. */
    if (msgkey[0] == 'm' && llm_jget(&w.doc, 0, "choices") < 0)
        return 1;
    if (need > sizeof(stack) && !(w.scratch = ch_malloc(need)))
        return 1;
    rc = tw_chunk(d, &w, msgkey);
    if (w.scratch != stack)
        ch_free(w.scratch);
    return rc;
}

static int on_body_text(struct ch_llm_decoder *d, const char *p, size_t n)
{
    int rc = walk_fast(d, p, n, "message");

    return rc ? rc : llm_complete(d);
}

static int on_sse(struct ch_llm_decoder *d, const struct ch_sse_event *ev)
{
    json_t *j = NULL;
    int rc;

    if (ch_str_eq_cstr(ch_str_trim(ev->data), "[DONE]"))
        return llm_complete(d);
    rc = walk_fast(d, ev->data.p, ev->data.len, "delta");
    if (rc != 1)
        return rc;
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

const struct llm_dec_ops llm_openai_ops = {on_sse, on_body, on_eof, on_body_text};
