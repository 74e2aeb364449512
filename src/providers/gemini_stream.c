/*
 * gemini_stream.c: Google Generative AI (Gemini) responses onto the
 * neutral events.
 *
 * streamGenerateContent?alt=sse sends `data:` chunks, each a whole
 * GenerateContentResponse: candidates[0].content.parts[] (text, or a
 * functionCall whose args arrive complete, so it becomes START + one ARGS
 * delta + END), finishReason on the last, usageMetadata (running totals),
 * promptFeedback.blockReason when the prompt itself was blocked.  There is
 * no end marker: the stream is complete when it ends after a finishReason.
 * generateContent returns one such object (an array of them is accepted).
 */
#include <string.h>

#include "providers/internal.h"

static enum ch_llm_stop map_finish(const char *r)
{
    static const char *const refusals[] = {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE",
    };
    size_t i;

    if (strcmp(r, "STOP") == 0)
        return CH_LLM_STOP_END_TURN;
    if (strcmp(r, "MAX_TOKENS") == 0)
        return CH_LLM_STOP_MAX_TOKENS;
    for (i = 0; i < CH_ARRAY_SIZE(refusals); i++)
        if (strcmp(r, refusals[i]) == 0)
            return CH_LLM_STOP_REFUSAL;
    /* MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, OTHER, ...: the model
     * did not produce a usable answer. */
    return CH_LLM_STOP_ERROR;
}

/* promptTokenCount includes the cached tokens; thoughts are billed as
 * output. */
static void take_usage(struct ch_llm_decoder *d, const json_t *u)
{
    struct ch_llm_usage n = {0};
    uint64_t prompt;

    if (!json_is_object(u))
        return;
    prompt = llm_jtokens(u, "promptTokenCount");
    n.cache_read_tokens = llm_jtokens(u, "cachedContentTokenCount");
    if (n.cache_read_tokens > prompt)
        n.cache_read_tokens = prompt;
    n.input_tokens = prompt - n.cache_read_tokens;
    n.output_tokens = llm_jtokens(u, "candidatesTokenCount") + llm_jtokens(u, "thoughtsTokenCount");
    llm_usage(d, &n);
}

static int on_part(struct ch_llm_decoder *d, json_t *part)
{
    json_t *fc = json_object_get(part, "functionCall");
    const char *s;

    if (json_is_object(fc))
        return llm_tool_whole(d, llm_jstr(fc, "id"), llm_jstr(fc, "name"), json_object_get(fc, "args"));
    /* thought: true marks a thinking summary, not part of the answer. */
    if (json_is_true(json_object_get(part, "thought")))
        return 0;
    s = llm_jstr(part, "text");
    return s ? llm_text(d, s, strlen(s)) : 0;
}

static int on_object(struct ch_llm_decoder *d, json_t *j)
{
    json_t *err = json_object_get(j, "error"), *cand, *parts, *p, *fb;
    const char *finish, *block;
    size_t i;
    int rc = 0;

    if (!json_is_object(j))
        return llm_fail(d, CH_EINVAL, CH_LLM_ERR_UNKNOWN, true, "response chunk is not a JSON object");
    if (err && !json_is_null(err))
        return llm_fail_provider(d, j);
    llm_set_model(d, llm_jstr(j, "modelVersion"));
    cand = json_array_get(json_object_get(j, "candidates"), 0);
    parts = json_object_get(json_object_get(cand, "content"), "parts");
    json_array_foreach(parts, i, p)
    {
        rc = on_part(d, p);
        if (rc)
            return rc;
    }
    take_usage(d, json_object_get(j, "usageMetadata"));
    finish = llm_jstr(cand, "finishReason");
    if (finish && strcmp(finish, "FINISH_REASON_UNSPECIFIED") != 0)
        llm_set_stop(d, map_finish(finish), finish);
    fb = json_object_get(j, "promptFeedback");
    block = llm_jstr(fb, "blockReason");
    if (!cand && block)
        llm_set_stop(d, CH_LLM_STOP_REFUSAL, block);
    return 0;
}

static int on_sse(struct ch_llm_decoder *d, const struct ch_sse_event *ev)
{
    json_t *j = NULL;
    int rc;

    rc = llm_parse_json(d, ev->data.p, ev->data.len, &j);
    if (rc)
        return rc;
    rc = on_object(d, j);
    json_decref(j);
    return rc;
}

static int on_body(struct ch_llm_decoder *d, json_t *j)
{
    json_t *e;
    size_t i;
    int rc = 0;

    if (json_is_array(j)) {
        json_array_foreach(j, i, e)
        {
            rc = on_object(d, e);
            if (rc)
                return rc;
        }
    } else {
        rc = on_object(d, j);
        if (rc)
            return rc;
    }
    return d->has_stop ? llm_complete(d)
                       : llm_fail(d, CH_EINVAL, CH_LLM_ERR_UNKNOWN, true, "response has no finishReason");
}

static int on_eof(struct ch_llm_decoder *d)
{
    return d->has_stop ? llm_complete(d) : 0;
}

const struct llm_dec_ops llm_gemini_ops = {on_sse, on_body, on_eof, NULL};
