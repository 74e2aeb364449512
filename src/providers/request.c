/*
 * request.c: the shared half of request building.
 *
 * ch_llm_build_request() validates the neutral conversation once, then
 * hands it to the per-API builder (<api>_req.c), which only translates.
 * The helpers here assemble the URL (base URL + path, never the key) and
 * the header list (refusing CR/LF, which would split headers); the body
 * writers are in req_body.c.  Pure functions: no I/O, no clock, no
 * randomness.
 */
#include <string.h>

#include "providers/internal.h"

static const struct {
    const char *name;
    const char *base_url;
} apis[CH_LLM_API__COUNT] = {
    [CH_LLM_ANTHROPIC] = {"anthropic-messages", "https://api.anthropic.com"},
    [CH_LLM_OPENAI] = {"openai-completions", "https://api.openai.com/v1"},
    [CH_LLM_GEMINI] = {"google-generative-ai", "https://generativelanguage.googleapis.com"},
};

const char *ch_llm_api_name(enum ch_llm_api api)
{
    return (unsigned)api < CH_LLM_API__COUNT ? apis[api].name : "unknown";
}

const char *ch_llm_api_default_base_url(enum ch_llm_api api)
{
    return (unsigned)api < CH_LLM_API__COUNT ? apis[api].base_url : NULL;
}

int ch_llm_api_parse(const char *name, enum ch_llm_api *out)
{
    int i;

    for (i = 0; name && i < CH_LLM_API__COUNT; i++) {
        if (strcmp(name, apis[i].name) == 0) {
            *out = (enum ch_llm_api)i;
            return 0;
        }
    }
    return CH_EINVAL;
}

/* ------------------------------------------------------------------ */
/* Neutral conversation checks                                          */
/* ------------------------------------------------------------------ */

const char *const ch_llm_image_types[CH_LLM_IMAGE_TYPE_COUNT] = {"image/jpeg", "image/png", "image/gif", "image/webp"};

bool ch_llm_image_type_ok(const char *mime)
{
    for (size_t i = 0; mime && i < CH_LLM_IMAGE_TYPE_COUNT; i++)
        if (!strcmp(mime, ch_llm_image_types[i]))
            return true;
    return false;
}

static int check_block(const json_t *b, bool assistant, size_t mi, size_t bi, struct ch_error *err)
{
    struct llm_block k;

    llm_block_read(b, &k);
    switch (k.type) {
    case LLM_B_TEXT:
        if (!json_is_string(k.text))
            return ch_error_set(err, CH_EINVAL, "messages[%zu].content[%zu]: text is not a string", mi, bi);
        return 0;
    case LLM_B_TOOL_USE:
        if (!assistant || !k.id || !k.name || (k.input && !json_is_object(k.input)))
            return ch_error_set(err, CH_EINVAL,
                                "messages[%zu].content[%zu]: tool_use needs an assistant "
                                "message, string id and name, and an object input",
                                mi, bi);
        return 0;
    case LLM_B_TOOL_RESULT:
        if (assistant || !k.tool_use_id || (k.content && !json_is_string(k.content)) ||
            (k.is_error && !json_is_boolean(k.is_error)))
            return ch_error_set(err, CH_EINVAL,
                                "messages[%zu].content[%zu]: tool_result needs a user message, "
                                "a string tool_use_id and content, a boolean is_error",
                                mi, bi);
        return 0;
    case LLM_B_IMAGE: {
        /* Anthropic's own shape: base64 data of a type every API takes,
         * or an http(s) URL (Gemini cannot take one: its builder says so). */
        const char *st = json_string_value(json_object_get(k.source, "type")), *mt, *data, *url;
        llm_image_source(&k, &mt, &data, &url);
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
        if (!assistant && st && !strcmp(st, "base64") && data && *data && !data[strspn(data, b64)] && mt &&
            ch_llm_image_type_ok(mt))
            return 0;
        if (!assistant && st && !strcmp(st, "url") && url &&
            (!strncmp(url, "https://", 8) || !strncmp(url, "http://", 7)))
            return 0;
        return ch_error_set(err, CH_EINVAL,
                            "messages[%zu].content[%zu]: an image needs a user message and a source {type: base64, "
                            "media_type: image/jpeg|png|gif|webp, data: base64 text} or {type: url, url: "
                            "http(s)://...}",
                            mi, bi);
    }
    default: break;
    }
    if (!k.type_name)
        return ch_error_set(err, CH_EINVAL, "messages[%zu].content[%zu]: no type", mi, bi);
    return ch_error_set(err, CH_EINVAL, "messages[%zu].content[%zu]: unknown block type '%.40s'", mi, bi, k.type_name);
}

int llm_check_messages(const json_t *messages, struct ch_error *err)
{
    const json_t *m, *content, *b;
    const char *role;
    size_t i, j;
    int rc;

    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return ch_error_set(err, CH_EINVAL, "messages must be a non-empty array");
    json_array_foreach(messages, i, m)
    {
        llm_message_read(m, &role, &content);
        if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
            return ch_error_set(err, CH_EINVAL, "messages[%zu]: role must be user or assistant", i);
        if (json_is_string(content))
            continue;
        if (!json_is_array(content))
            return ch_error_set(err, CH_EINVAL, "messages[%zu]: content must be a string or an array", i);
        json_array_foreach(content, j, b)
        {
            rc = check_block(b, role[0] == 'a', i, j, err);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int check_tools(const json_t *tools, struct ch_error *err)
{
    const json_t *t, *schema;
    size_t i;

    if (!tools)
        return 0;
    if (!json_is_array(tools))
        return ch_error_set(err, CH_EINVAL, "tools must be an array");
    json_array_foreach(tools, i, t)
    {
        schema = json_object_get(t, "input_schema");
        if (!llm_jstr(t, "name") || (schema && !json_is_object(schema)) ||
            (json_object_get(t, "description") && !llm_jstr(t, "description")))
            return ch_error_set(err, CH_EINVAL,
                                "tools[%zu]: needs a string name and description and an "
                                "object input_schema",
                                i);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* URL, headers, body                                                   */
/* ------------------------------------------------------------------ */

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\t')
            return true;
    return false;
}

int llm_set_url(struct ch_llm_http *out, enum ch_llm_api api, const char *base, const char *dup_prefix,
                const char *path, struct ch_error *err)
{
    size_t blen, plen = strlen(dup_prefix);

    if (!base || !base[0])
        base = apis[api].base_url;
    if ((strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) || has_ctl(base) || strchr(base, ' ') ||
        strchr(base, '?') || strchr(base, '#')) {
        char shown[128]; /* never the query or userinfo: they may hold a key */
        ch_url_for_log(base, shown, sizeof(shown));
        return ch_error_set(err, CH_EINVAL, "baseUrl must be an http:// or https:// URL without query: '%s'", shown);
    }
    blen = strlen(base);
    while (blen && base[blen - 1] == '/')
        blen--;
    /* "https://api.anthropic.com/v1" + "/v1/messages" must not double /v1. */
    if (plen && blen >= plen && memcmp(base + blen - plen, dup_prefix, plen) == 0)
        path += plen;
    out->url = ch_str_join((struct ch_str){base, blen}, path);
    return out->url ? 0 : CH_ENOMEM;
}

int llm_add_header(struct ch_llm_http *out, const char *name, const char *value, bool secret, struct ch_error *err)
{
    struct ch_llm_header *h;

    if (!name[0] || has_ctl(name) || strchr(name, ':') || strchr(name, ' ') || has_ctl(value))
        return ch_error_set(err, CH_EINVAL, "header '%.40s' has a bad name or value", name);
    h = ch_realloc(out->headers, (out->header_count + 1) * sizeof(*h));
    if (!h)
        return CH_ENOMEM;
    out->headers = h;
    h = &out->headers[out->header_count];
    h->name = ch_strdup(name);
    h->value = ch_strdup(value);
    h->is_secret = secret;
    if (!h->name || !h->value) {
        ch_free(h->name);
        ch_free_secret(h->value);
        return CH_ENOMEM;
    }
    out->header_count++;
    return 0;
}

int llm_add_extra_headers(struct ch_llm_http *out, const json_t *headers, struct ch_error *err)
{
    const char *k;
    json_t *v;
    int rc;

    if (!headers)
        return 0;
    if (!json_is_object(headers))
        return ch_error_set(err, CH_EINVAL, "headers must be an object of strings");
    json_object_foreach((json_t *)headers, k, v)
    {
        if (!json_is_string(v))
            return ch_error_set(err, CH_EINVAL, "header '%.40s' is not a string", k);
        rc = llm_add_header(out, k, json_string_value(v), false, err);
        if (rc)
            return rc;
    }
    return 0;
}

void ch_llm_http_release(struct ch_llm_http *h)
{
    size_t i;

    if (!h)
        return;
    for (i = 0; i < h->header_count; i++) {
        ch_free(h->headers[i].name);
        if (h->headers[i].is_secret)
            ch_free_secret(h->headers[i].value);
        else
            ch_free(h->headers[i].value);
    }
    ch_free(h->headers);
    ch_free(h->url);
    ch_free(h->body);
    memset(h, 0, sizeof(*h));
}

int ch_llm_build_request(enum ch_llm_api api, const struct ch_llm_request *req, struct ch_llm_http *out,
                         struct ch_error *err)
{
    static int (*const build[CH_LLM_API__COUNT])(const struct ch_llm_request *, struct ch_llm_http *,
                                                 struct ch_error *) = {
        [CH_LLM_ANTHROPIC] = llm_build_anthropic,
        [CH_LLM_OPENAI] = llm_build_openai,
        [CH_LLM_GEMINI] = llm_build_gemini,
    };
    struct ch_llm_http h = {.method = "POST"};
    int rc;

    memset(out, 0, sizeof(*out));
    if ((unsigned)api >= CH_LLM_API__COUNT)
        return ch_error_set(err, CH_EINVAL, "unknown API kind %d", (int)api);
    if (!req->model || !req->model[0] || has_ctl(req->model))
        return ch_error_set(err, CH_EINVAL, "model id is missing or malformed");
    if (req->max_tokens <= 0)
        return ch_error_set(err, CH_EINVAL, "max_tokens must be positive");
    /* No key is fine (a local Ollama); a key that would split a header is not. */
    if (req->api_key && has_ctl(req->api_key))
        return ch_error_set(err, CH_EINVAL, "API key is malformed");
    rc = llm_check_messages(req->messages, err);
    if (!rc)
        rc = check_tools(req->tools, err);
    if (!rc)
        rc = build[api](req, &h, err);
    if (!rc)
        rc = llm_add_extra_headers(&h, req->headers, err);
    if (rc) {
        if (rc == CH_ENOMEM)
            ch_error_set(err, rc, "out of memory building the request");
        ch_llm_http_release(&h);
        return rc;
    }
    *out = h;
    return 0;
}
