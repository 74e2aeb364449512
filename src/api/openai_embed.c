/*
 * openai_embed.c: POST /v1/embeddings, served with either OpenAI endpoint
 * switch as in OpenClaw v4.
 *
 * `model` names the embedding model as `provider/model` (or an alias).
 * OpenClaw's agent targets (`openclaw`, `openclaw/default`, ...) need the
 * `x-openclaw-model` header naming it, which also overrides `model` as in
 * OpenClaw; chela's agent has no embedding setup of its own to fall back
 * on.  `input` is a string or an array of strings (at most 2048, as
 * OpenAI takes), `encoding_format` float or base64 (little-endian float32,
 * as OpenAI encodes it, whatever the provider answered), `dimensions`,
 * `user`.  The answer is OpenAI's list of embeddings with usage; tokens and
 * cost count with the pass-through's (provider, model) usage.
 */
#include <string.h>

#include "api/openai.h"

#define EMBED_MAX_INPUTS 2048

struct emb {
    struct ch_api *api;
    struct ch_http_req *req; /* ref */
    struct ch_llm_embed *call;
    char model[256]; /* as the client named it */
    bool base64, done;
};

static void on_gone(struct ch_http_req *r, void *data)
{
    struct emb *e = data;

    (void)r;
    if (!e->done)
        ch_llm_embed_abort(e->call);
}

/* A vector as OpenAI's base64: float32 little-endian, standard alphabet. */
static json_t *base64_of(const json_t *vec)
{
    size_t n = json_array_size(vec), i, len;
    uint8_t *raw = ch_malloc(n * 4 + 1);
    char *out = raw ? ch_malloc(((n * 4 + 2) / 3) * 4 + 4) : NULL;
    json_t *s = NULL;

    if (out) {
        for (i = 0; i < n; i++) {
            float f = (float)json_number_value(json_array_get(vec, i));
            uint32_t u;
            memcpy(&u, &f, 4);
            for (int b = 0; b < 4; b++)
                raw[i * 4 + (size_t)b] = (uint8_t)(u >> (8 * b));
        }
        len = ch_base64url_encode(raw, n * 4, out);
        for (i = 0; i < len; i++)
            out[i] = out[i] == '-' ? '+' : out[i] == '_' ? '/' : out[i];
        while (len % 4)
            out[len++] = '=';
        s = json_stringn(out, len);
    }
    ch_free(raw);
    ch_free(out);
    return s;
}

static void on_result(const struct ch_llm_embed_result *res, void *data)
{
    struct emb *e = data;
    json_t *list, *vec;
    size_t i;

    e->done = true;
    if (ch_http_req_is_closed(e->req))
        goto out;
    ch_http_req_on_close(e->req, NULL, NULL); /* still our request: unhook before answering */
    if (res->rc) {
        const char *cls = ch_llm_err_name(res->err);
        bool limited = res->err == CH_LLM_ERR_RATE_LIMIT, late = res->err == CH_LLM_ERR_TIMEOUT;
        ch_openai_error(e->req,
                        limited ? 429
                        : late  ? 504
                                : 502,
                        limited ? "rate_limit_error" : "api_error", cls, "%s",
                        res->message ? res->message : "the provider failed");
        goto out;
    }
    list = json_array();
    json_array_foreach(res->vectors, i, vec)
    {
        json_t *v = e->base64 && json_is_array(vec) ? base64_of(vec) : json_incref((json_t *)vec);
        json_array_append_new(list, json_pack("{s:s, s:I, s:o}", "object", "embedding", "index", (json_int_t)i,
                                              "embedding", v ? v : json_null()));
    }
    ch_http_respond_json(e->req, 200,
                         json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", list, "model", e->model,
                                   "usage", "prompt_tokens", (json_int_t)ch_oa_tokens(res->input_tokens),
                                   "total_tokens", (json_int_t)ch_oa_tokens(res->input_tokens)));
    {
        struct ch_llm_result acc = {.rc = 0, .provider = res->provider, .model = res->model};
        acc.usage.input_tokens = res->input_tokens;
        acc.cost_usd = res->cost_usd;
        ch_openai_record_usage(e->api, &acc);
    }
out:
    ch_http_req_unref(e->req);
    ch_free(e);
}

/* input as an array of 1..2048 non-empty strings (new ref), or NULL. */
static json_t *inputs_of(const json_t *in)
{
    size_t i;
    json_t *s;

    if (json_is_string(in) && json_string_length(in))
        return json_pack("[O]", in);
    if (!json_is_array(in) || !json_array_size(in) || json_array_size(in) > EMBED_MAX_INPUTS)
        return NULL;
    json_array_foreach(in, i, s)
    {
        if (!json_is_string(s) || !json_string_length(s))
            return NULL;
    }
    return json_incref((json_t *)in);
}

void ch_openai_embeddings(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    const json_t *model, *fmt, *dims, *user;
    const struct ch_str *hdr;
    const char *agent, *ref;
    char over[256];
    json_t *body, *inputs = NULL;
    struct ch_error err = {0};
    struct emb *e;
    int rc;

    body = ch_openai_body(a, r, ch_openai_enabled(a), "OpenAI-compatible API",
                          "gateway.http.endpoints.chatCompletions.enabled");
    if (!body)
        return;
    model = json_object_get(body, "model");
    fmt = json_object_get(body, "encoding_format");
    dims = json_object_get(body, "dimensions");
    user = json_object_get(body, "user");
    if (!json_is_string(model) || !json_string_length(model) || json_string_length(model) >= sizeof(e->model)) {
        ch_openai_param_error(r, "invalid_model", "model", "model is required");
        goto out;
    }
    if (!(inputs = inputs_of(json_object_get(body, "input")))) {
        ch_openai_param_error(r, "invalid_input", "input",
                              "input must be a non-empty string or an array of 1 to 2048 non-empty strings");
        goto out;
    }
    if (fmt && !json_is_null(fmt) &&
        (!json_is_string(fmt) ||
         (strcmp(json_string_value(fmt), "float") && strcmp(json_string_value(fmt), "base64")))) {
        ch_openai_param_error(r, "invalid_parameter", "encoding_format", "encoding_format must be float or base64");
        goto out;
    }
    if (dims && !json_is_null(dims) && (!json_is_integer(dims) || json_integer_value(dims) < 1)) {
        ch_openai_param_error(r, "invalid_parameter", "dimensions", "dimensions must be a positive integer");
        goto out;
    }
    if (user && !json_is_null(user) && !json_is_string(user)) {
        ch_openai_param_error(r, "invalid_parameter", "user", "user must be a string");
        goto out;
    }
    ref = json_string_value(model);
    if ((hdr = ch_http_req_header(r, "x-openclaw-model")) && hdr->len) {
        /* Whole and UTF-8, or no model: a cut or raw name would reach the
         * upstream's request as it is. */
        if (hdr->len >= sizeof(over) || !ch_oa_utf8_ok(hdr->p, hdr->len)) {
            ch_openai_error(r, 400, "invalid_request_error", "invalid_model", "x-openclaw-model: %s",
                            hdr->len >= sizeof(over) ? "too long" : "not UTF-8 text");
            goto out;
        }
        snprintf(over, sizeof(over), "%.*s", (int)hdr->len, hdr->p);
        ref = over;
    } else if (ch_openai_is_agent_model(ref, &agent)) {
        ch_openai_param_error(r, "invalid_model", "model",
                              "the agent has no embedding model here: send x-openclaw-model: provider/model, "
                              "or name the model itself");
        goto out;
    }
    if (!(e = ch_calloc(1, sizeof(*e)))) {
        ch_openai_error(r, 500, "api_error", "internal", "out of memory");
        goto out;
    }
    e->api = a;
    e->req = r;
    ch_str_copy(e->model, sizeof(e->model), json_string_value(model));
    e->base64 = json_is_string(fmt) && !strcmp(json_string_value(fmt), "base64");
    rc = ch_llm_embed_start(ch_agent_llm(a->agent), ref, inputs, json_integer_value(dims), json_string_value(user),
                            on_result, e, &e->call, &err);
    if (rc) {
        ch_free(e);
        if (rc == CH_ENOTFOUND)
            ch_openai_error(r, 404, "invalid_request_error", "model_not_found", "%s", err.msg);
        else if (rc == CH_AGAIN || rc == CH_EPERM)
            ch_openai_error(r, 429, "rate_limit_error", "rate_limit", "%s", err.msg);
        else if (rc == CH_EINVAL)
            ch_openai_param_error(r, "invalid_model", "model", err.msg);
        else
            ch_openai_error(r, 500, "api_error", "internal", "%s", err.msg);
        goto out;
    }
    ch_http_req_ref(r);
    ch_http_req_on_close(r, on_gone, e);
out:
    json_decref(inputs);
    json_decref(body);
}
