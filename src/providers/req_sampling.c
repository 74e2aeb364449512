/*
 * req_sampling.c: a call's extra request parameters (ch_llm_call_opts.
 * sampling, OpenAI Chat Completions names, checked by the caller) in each
 * API's terms.
 *
 * OpenAI-compatible servers get every key as it came, since each adds its
 * own (vLLM's min_p, OpenRouter's provider).  Anthropic and Gemini get
 * what they have an equivalent for, so a fallback across APIs keeps the
 * caller's stop sequences, nucleus sampling and forced tool:
 *
 *   OpenAI                 Anthropic                     Gemini
 *   top_p                  top_p                         generationConfig.topP
 *   top_k (extension) > 0  top_k                         generationConfig.topK
 *   stop                   stop_sequences                generationConfig.stopSequences
 *   seed                   -                             generationConfig.seed
 *   presence_penalty       -                             generationConfig.presencePenalty
 *   frequency_penalty      -                             generationConfig.frequencyPenalty
 *   response_format        -                             responseMimeType application/json
 *                                                        (+ responseJsonSchema)
 *   tool_choice            tool_choice auto|any|tool|none toolConfig.functionCallingConfig
 *   parallel_tool_calls    tool_choice.disable_parallel_tool_use
 *   user                   metadata.user_id              -
 *
 * tool_choice goes only with tools: both APIs refuse it alone.
 */
#include <string.h>

#include "providers/internal.h"

static void key(struct llm_wr *w, const char *k)
{
    llm_wr_raw(w, ",");
    llm_wr_jstr(w, k, strlen(k));
    llm_wr_raw(w, ":");
}

static void put(struct llm_wr *w, const char *k, const json_t *v)
{
    if (v) {
        key(w, k);
        llm_wr_json(w, v);
    }
}

/* stop: a string or an array of strings, always sent as an array. */
static void put_stop(struct llm_wr *w, const char *k, const json_t *v)
{
    if (!v)
        return;
    key(w, k);
    if (json_is_string(v)) {
        llm_wr_raw(w, "[");
        llm_wr_jstr(w, json_string_value(v), json_string_length(v));
        llm_wr_raw(w, "]");
    } else {
        llm_wr_json(w, v);
    }
}

static void put_top_k(struct llm_wr *w, const char *k, const json_t *s)
{
    const json_t *v = json_object_get(s, "top_k");

    if (json_integer_value(v) > 0) /* vLLM's -1 means "off" */
        put(w, k, v);
}

void llm_wr_sampling_openai(struct llm_wr *w, const json_t *s)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)s, k, v)
    {
        put(w, k, v);
    }
}

/* tool_choice's mode: "auto", "required", "none", or a function name in
 * *name; NULL when there is none to map (absent, or another shape). */
static const char *tool_mode(const json_t *s, const char **name)
{
    const json_t *tc = json_object_get(s, "tool_choice");
    const char *type = json_string_value(json_object_get(tc, "type"));

    *name = NULL;
    if (json_is_string(tc))
        return json_string_value(tc);
    if (type && !strcmp(type, "function")) {
        *name = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
        return *name ? "function" : NULL;
    }
    return NULL;
}

void llm_wr_sampling_anthropic(struct llm_wr *w, const json_t *s, bool has_tools)
{
    const char *name, *mode = tool_mode(s, &name);
    bool serial = json_is_false(json_object_get(s, "parallel_tool_calls"));
    const json_t *user = json_object_get(s, "user");

    put(w, "top_p", json_object_get(s, "top_p"));
    put_top_k(w, "top_k", s);
    put_stop(w, "stop_sequences", json_object_get(s, "stop"));
    if (has_tools && (mode || serial)) {
        if (mode && !strcmp(mode, "none")) {
            llm_wr_raw(w, ",\"tool_choice\":{\"type\":\"none\"}");
        } else {
            llm_wr_raw(w, ",\"tool_choice\":{\"type\":");
            if (name) {
                llm_wr_raw(w, "\"tool\",\"name\":");
                llm_wr_jstr(w, name, strlen(name));
            } else {
                llm_wr_raw(w, mode && !strcmp(mode, "required") ? "\"any\"" : "\"auto\"");
            }
            llm_wr_raw(w, serial ? ",\"disable_parallel_tool_use\":true}" : "}");
        }
    }
    if (json_is_string(user)) {
        llm_wr_raw(w, ",\"metadata\":{\"user_id\":");
        llm_wr_jstr(w, json_string_value(user), json_string_length(user));
        llm_wr_raw(w, "}");
    }
}

void llm_wr_sampling_gemini_config(struct llm_wr *w, const json_t *s)
{
    const json_t *rf = json_object_get(s, "response_format");
    const char *type = json_string_value(json_object_get(rf, "type"));

    put(w, "topP", json_object_get(s, "top_p"));
    put_top_k(w, "topK", s);
    put_stop(w, "stopSequences", json_object_get(s, "stop"));
    put(w, "seed", json_object_get(s, "seed"));
    put(w, "presencePenalty", json_object_get(s, "presence_penalty"));
    put(w, "frequencyPenalty", json_object_get(s, "frequency_penalty"));
    if (type && (!strcmp(type, "json_object") || !strcmp(type, "json_schema"))) {
        llm_wr_raw(w, ",\"responseMimeType\":\"application/json\"");
        put(w, "responseJsonSchema", json_object_get(json_object_get(rf, "json_schema"), "schema"));
    }
}

void llm_wr_sampling_gemini_tools(struct llm_wr *w, const json_t *s, bool has_tools)
{
    const char *name, *mode = tool_mode(s, &name);

    if (!has_tools || !mode)
        return;
    llm_wr_raw(w, ",\"toolConfig\":{\"functionCallingConfig\":{\"mode\":");
    if (name) {
        llm_wr_raw(w, "\"ANY\",\"allowedFunctionNames\":[");
        llm_wr_jstr(w, name, strlen(name));
        llm_wr_raw(w, "]");
    } else {
        llm_wr_raw(w, !strcmp(mode, "required") ? "\"ANY\"" : !strcmp(mode, "none") ? "\"NONE\"" : "\"AUTO\"");
    }
    llm_wr_raw(w, "}}");
}
