/*
 * openai_params.c: the request parameters of /v1/chat/completions beyond
 * the conversation (top_p, stop, seed, response_format, tool_choice, ...).
 *
 * A pass-through call forwards them: as they are to an openai-completions
 * upstream (with any other key the client sent, such as vLLM's `min_p` or
 * OpenRouter's `provider`, since compatible servers each add their own),
 * mapped by the provider layer where Anthropic or Gemini has an
 * equivalent.  Dropping them silently was wrong: a client that asked for
 * JSON mode or a seed got neither and could not tell.
 *
 * The known ones are checked here with OpenAI's own limits, so a bad value
 * is a 400 naming the parameter instead of an upstream error after
 * retries.  Parameters that would change the shape of the answer in ways
 * this gateway does not render (several choices, log probabilities, audio,
 * the legacy `functions`) are refused rather than half-honoured.
 */
#include <math.h>
#include <string.h>

#include "api/openai.h"

/* Handled by the gateway itself (the conversation, the limit, streaming). */
static const char *const OWNED[] = {
    "model", "messages", "tools", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
};

#define STOP_MAX 16 /* OpenAI takes 4; Anthropic and vLLM take more */

static int bad(char *err, size_t cap, const char *fmt, const char *key)
{
    snprintf(err, cap, fmt, key);
    return CH_EINVAL;
}

static bool in_range(const json_t *v, double lo, double hi)
{
    double d = json_number_value(v);

    return json_is_number(v) && isfinite(d) && d >= lo && d <= hi;
}

static int check_stop(const json_t *v, char *err, size_t cap)
{
    size_t i;
    json_t *s;

    if (json_is_string(v))
        return 0;
    if (!json_is_array(v) || json_array_size(v) > STOP_MAX)
        return bad(err, cap, "%s must be a string or an array of at most 16 strings", "stop");
    json_array_foreach(v, i, s)
    {
        if (!json_is_string(s) || !json_string_length(s))
            return bad(err, cap, "%s must hold non-empty strings", "stop");
    }
    return 0;
}

static int check_response_format(const json_t *v, char *err, size_t cap)
{
    const char *type = json_string_value(json_object_get(v, "type"));
    const json_t *js;

    if (!type || (strcmp(type, "text") && strcmp(type, "json_object") && strcmp(type, "json_schema")))
        return bad(err, cap, "%s.type must be \"text\", \"json_object\" or \"json_schema\"", "response_format");
    if (strcmp(type, "json_schema"))
        return 0;
    js = json_object_get(v, "json_schema");
    if (!json_is_string(json_object_get(js, "name")))
        return bad(err, cap, "%s.json_schema.name is required", "response_format");
    if (json_object_get(js, "schema") && !json_is_object(json_object_get(js, "schema")))
        return bad(err, cap, "%s.json_schema.schema must be an object", "response_format");
    return 0;
}

static int check_tool_choice(const json_t *v, char *err, size_t cap)
{
    const char *s = json_string_value(v), *type;

    if (s)
        return strcmp(s, "none") && strcmp(s, "auto") && strcmp(s, "required")
                   ? bad(err, cap, "%s must be \"none\", \"auto\", \"required\" or an object", "tool_choice")
                   : 0;
    type = json_string_value(json_object_get(v, "type"));
    if (!type)
        return bad(err, cap, "%s must be \"none\", \"auto\", \"required\" or an object with a type", "tool_choice");
    if (!strcmp(type, "function") && !json_is_string(json_object_get(json_object_get(v, "function"), "name")))
        return bad(err, cap, "%s.function.name is required", "tool_choice");
    return 0;
}

static int check_logit_bias(const json_t *v, char *err, size_t cap)
{
    const char *k;
    json_t *b;

    if (!json_is_object(v))
        return bad(err, cap, "%s must be an object of token ids to numbers", "logit_bias");
    json_object_foreach((json_t *)v, k, b)
    {
        if (!in_range(b, -100, 100))
            return bad(err, cap, "%s values must be numbers from -100 to 100", "logit_bias");
    }
    return 0;
}

/* Refuse what the answer could not carry; 1 when key is one of those. */
static int refused(const char *k, const json_t *v, char *err, size_t cap, int *rc)
{
    if (!strcmp(k, "n")) {
        if (!json_is_integer(v) || json_integer_value(v) != 1)
            *rc = bad(err, cap, "%s: this gateway returns one choice; n must be 1", k);
    } else if (!strcmp(k, "logprobs") || !strcmp(k, "top_logprobs")) {
        if (!json_is_false(v) && !(json_is_integer(v) && !json_integer_value(v)))
            *rc = bad(err, cap, "%s: log probabilities are not returned by this gateway", k);
    } else if (!strcmp(k, "functions") || !strcmp(k, "function_call")) {
        *rc = bad(err, cap, "%s is deprecated and not supported; use tools and tool_choice", k);
    } else if (!strcmp(k, "audio") || !strcmp(k, "modalities")) {
        *rc = bad(err, cap, "%s: this gateway returns text only", k);
    } else {
        return 0;
    }
    return 1;
}

static int check_known(const char *k, const json_t *v, char *err, size_t cap)
{
    if (!strcmp(k, "top_p"))
        return in_range(v, 0, 1) ? 0 : bad(err, cap, "%s must be a number from 0 to 1", k);
    if (!strcmp(k, "presence_penalty") || !strcmp(k, "frequency_penalty"))
        return in_range(v, -2, 2) ? 0 : bad(err, cap, "%s must be a number from -2 to 2", k);
    if (!strcmp(k, "seed") || !strcmp(k, "top_k"))
        return json_is_integer(v) ? 0 : bad(err, cap, "%s must be an integer", k);
    if (!strcmp(k, "stop"))
        return check_stop(v, err, cap);
    if (!strcmp(k, "response_format"))
        return json_is_object(v) ? check_response_format(v, err, cap) : bad(err, cap, "%s must be an object", k);
    if (!strcmp(k, "tool_choice"))
        return check_tool_choice(v, err, cap);
    if (!strcmp(k, "parallel_tool_calls"))
        return json_is_boolean(v) ? 0 : bad(err, cap, "%s must be true or false", k);
    if (!strcmp(k, "user") || !strcmp(k, "reasoning_effort"))
        return json_is_string(v) ? 0 : bad(err, cap, "%s must be a string", k);
    if (!strcmp(k, "logit_bias"))
        return check_logit_bias(v, err, cap);
    return 0; /* another server's extension: its business */
}

static int collect(const json_t *body, json_t **out, const char **param, char *err, size_t errcap)
{
    const json_t *temp = json_object_get(body, "temperature");
    json_t *acc = NULL, *v;
    const char *k;
    int rc = 0;

    if (temp && !json_is_null(temp) && !in_range(temp, 0, 2)) {
        *param = "temperature";
        return bad(err, errcap, "%s must be a number from 0 to 2", "temperature");
    }
    json_object_foreach((json_t *)body, k, v)
    {
        size_t i;

        for (i = 0; i < CH_ARRAY_SIZE(OWNED) && strcmp(k, OWNED[i]); i++)
            ;
        if (i < CH_ARRAY_SIZE(OWNED) || json_is_null(v)) /* null: not given */
            continue;
        if (refused(k, v, err, errcap, &rc)) {
            if (rc)
                break;
            continue; /* n: 1, logprobs: false: the default, nothing to send */
        }
        if ((rc = check_known(k, v, err, errcap)) != 0)
            break;
        if (!acc && !(acc = json_object()))
            return CH_ENOMEM;
        if (json_object_set((json_t *)acc, k, v)) {
            rc = CH_ENOMEM;
            break;
        }
    }
    if (rc) {
        *param = k;
        json_decref(acc);
        return rc;
    }
    *out = acc;
    return 0;
}

int ch_openai_sampling(struct ch_http_req *r, const json_t *body, json_t **out)
{
    const char *param = NULL;
    char err[256];
    int rc;

    *out = NULL;
    rc = collect(body, out, &param, err, sizeof(err));
    if (rc == CH_EINVAL)
        ch_openai_param_error(r, "invalid_parameter", param, err);
    else if (rc)
        ch_openai_error(r, 500, "api_error", "internal", "out of memory");
    return rc ? -1 : 0;
}
