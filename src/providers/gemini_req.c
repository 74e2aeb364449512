/*
 * gemini_req.c: the neutral conversation as a Google Generative AI request
 * (POST {baseUrl}/v1beta/models/{model}:streamGenerateContent?alt=sse or
 * :generateContent, x-goog-api-key; the key never goes in the URL).
 *
 * Mapping: role assistant is "model"; text blocks are {text} parts,
 * tool_use is {functionCall:{name,args}}, tool_result is
 * {functionResponse:{name, response:{content}}} ({error} when is_error).
 * Gemini matches a response to its call by name, so the name is found
 * from the nearest earlier tool_use with the result's tool_use_id.  Tool
 * schemas are cut down to the OpenAPI subset Gemini accepts (it rejects
 * $schema, additionalProperties and type arrays with a 400).
 */
#include <string.h>

#include "providers/internal.h"

/* The Schema fields of the Gemini API reference (v1beta). */
static const char *const schema_keys[] = {
    "type",      "format",    "title",      "description", "nullable",      "enum",
    "maxItems",  "minItems",  "properties", "required",    "minProperties", "maxProperties",
    "minLength", "maxLength", "pattern",    "example",     "anyOf",         "propertyOrdering",
    "default",   "items",     "minimum",    "maximum",
};

static bool schema_key_ok(const char *k)
{
    size_t i;

    for (i = 0; i < CH_ARRAY_SIZE(schema_keys); i++)
        if (strcmp(k, schema_keys[i]) == 0)
            return true;
    return false;
}

/* A trimmed copy of a JSON Schema (new reference, NULL on ENOMEM).  depth
 * bounds recursion: schemas come from config and tools, but stay safe. */
static json_t *schema_of(const json_t *s, int depth)
{
    json_t *out, *v, *nv, *e;
    const char *k;
    size_t i;

    if (!json_is_object(s) || depth > 32)
        return json_object();
    out = json_object();
    json_object_foreach((json_t *)s, k, v)
    {
        if (!out)
            return NULL;
        if (!schema_key_ok(k))
            continue;
        nv = NULL;
        if (strcmp(k, "properties") == 0 && json_is_object(v)) {
            const char *pk;
            json_t *pv;
            nv = json_object();
            json_object_foreach(v, pk, pv) if (nv && json_object_set_new(nv, pk, schema_of(pv, depth + 1)))
                json_decref(nv),
                nv = NULL;
        } else if ((strcmp(k, "items") == 0) && json_is_object(v)) {
            nv = schema_of(v, depth + 1);
        } else if (strcmp(k, "anyOf") == 0 && json_is_array(v)) {
            nv = json_array();
            json_array_foreach(v, i, e) if (nv && json_array_append_new(nv, schema_of(e, depth + 1))) json_decref(nv),
                nv = NULL;
        } else if (strcmp(k, "type") == 0 && json_is_array(v)) {
            /* ["string","null"] becomes type string, nullable true. */
            json_array_foreach(v, i, e)
            {
                if (json_is_string(e) && strcmp(json_string_value(e), "null") == 0) {
                    if (json_object_set_new(out, "nullable", json_true()))
                        goto fail;
                } else if (!nv && json_is_string(e)) {
                    nv = json_incref(e);
                }
            }
            if (!nv)
                continue;
        } else {
            nv = json_incref(v);
        }
        if (json_object_set_new(out, k, nv))
            goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

/* The name of the nearest tool_use with this id before message `upto`. */
static const char *call_name(const json_t *messages, size_t upto, const char *id)
{
    json_t *content, *b;
    size_t i, j;

    for (i = upto; i-- > 0;) {
        content = json_object_get(json_array_get(messages, i), "content");
        for (j = json_array_size(content); j-- > 0;) {
            b = json_array_get(content, j);
            if (strcmp(llm_jstr(b, "type") ? llm_jstr(b, "type") : "", "tool_use") == 0 &&
                strcmp(llm_jstr(b, "id"), id) == 0)
                return llm_jstr(b, "name");
        }
    }
    return NULL;
}

static json_t *part_of(const json_t *messages, size_t mi, const json_t *b, struct ch_error *err, int *rc)
{
    const char *type = llm_jstr(b, "type"), *name, *content;
    json_t *input = json_object_get(b, "input");

    *rc = CH_ENOMEM;
    if (strcmp(type, "text") == 0)
        return json_pack("{s:O}", "text", json_object_get(b, "text"));
    if (strcmp(type, "tool_use") == 0)
        return json_pack("{s:{s:s, s:o}}", "functionCall", "name", llm_jstr(b, "name"), "args",
                         input ? json_incref(input) : json_object());
    name = call_name(messages, mi, llm_jstr(b, "tool_use_id"));
    if (!name) {
        *rc = ch_error_set(err, CH_EINVAL, "messages[%zu]: tool_result '%.60s' follows no tool_use with that id", mi,
                           llm_jstr(b, "tool_use_id"));
        return NULL;
    }
    content = llm_jstr(b, "content");
    return json_pack("{s:{s:s, s:{s:s}}}", "functionResponse", "name", name, "response",
                     json_is_true(json_object_get(b, "is_error")) ? "error" : "content", content ? content : "");
}

static int contents_of(const json_t *messages, json_t **out, struct ch_error *err)
{
    json_t *contents = json_array(), *m, *blocks = NULL, *parts = NULL, *b, *p;
    size_t i, j;
    int rc = CH_ENOMEM;

    if (!contents)
        goto out;
    json_array_foreach(messages, i, m)
    {
        blocks = llm_blocks(m);
        parts = json_array();
        if (!blocks || !parts)
            goto out;
        json_array_foreach(blocks, j, b)
        {
            const char *text = llm_jstr(b, "text");
            if (strcmp(llm_jstr(b, "type"), "text") == 0 && text && !text[0])
                continue; /* an empty part is a 400 */
            p = part_of(messages, i, b, err, &rc);
            if (!p || json_array_append_new(parts, p))
                goto out;
        }
        rc = CH_ENOMEM;
        if (json_array_size(parts) &&
            json_array_append_new(contents, json_pack("{s:s, s:O}", "role",
                                                      strcmp(llm_jstr(m, "role"), "assistant") ? "user" : "model",
                                                      "parts", parts)))
            goto out;
        json_decref(blocks);
        json_decref(parts);
        blocks = parts = NULL;
    }
    rc = 0;
out:
    json_decref(blocks);
    json_decref(parts);
    if (rc) {
        json_decref(contents);
        contents = NULL;
    }
    *out = contents;
    return rc;
}

static json_t *tools_of(const json_t *tools)
{
    json_t *decls = json_array(), *t, *d, *schema;
    const char *desc;
    size_t i;

    json_array_foreach(tools, i, t)
    {
        if (!decls)
            return NULL;
        desc = llm_jstr(t, "description");
        schema = json_object_get(t, "input_schema");
        d = json_pack("{s:s, s:s}", "name", llm_jstr(t, "name"), "description", desc ? desc : "");
        /* An OBJECT with no properties is a 400: a tool without arguments
         * is declared without parameters. */
        if (d && json_object_size(json_object_get(schema, "properties")) &&
            json_object_set_new(d, "parameters", schema_of(schema, 0)))
            json_decref(d), d = NULL;
        if (!d || json_array_append_new(decls, d)) {
            json_decref(decls);
            return NULL;
        }
    }
    return json_pack("[{s:o}]", "functionDeclarations", decls);
}

/* Path-escape the model id (it sits in the URL path); "models/x" is x. */
static char *model_path(const char *model, bool stream)
{
    struct ch_buf b;
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s;

    if (strncmp(model, "models/", 7) == 0)
        model += 7;
    ch_buf_init(&b, 4096);
    if (ch_buf_append_str(&b, "/v1beta/models/"))
        goto fail;
    for (s = (const unsigned char *)model; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("-._~", *s)) {
            if (ch_buf_append_char(&b, (char)*s))
                goto fail;
        } else if (ch_buf_appendf(&b, "%%%c%c", hex[*s >> 4], hex[*s & 15])) {
            goto fail;
        }
    }
    if (ch_buf_append_str(&b, stream ? ":streamGenerateContent?alt=sse" : ":generateContent"))
        goto fail;
    return ch_buf_detach(&b, NULL);
fail:
    ch_buf_release(&b);
    return NULL;
}

int llm_build_gemini(const struct ch_llm_request *req, struct ch_llm_http *out, struct ch_error *err)
{
    json_t *body = NULL, *contents = NULL, *gen;
    char *path = model_path(req->model, req->stream);
    int rc = CH_ENOMEM;

    if (!path)
        goto out;
    rc = llm_set_url(out, CH_LLM_GEMINI, req->base_url, "/v1beta", path, err);
    if (!rc && req->api_key && req->api_key[0])
        rc = llm_add_header(out, "x-goog-api-key", req->api_key, true, err);
    if (!rc)
        rc = llm_add_header(out, "content-type", "application/json", false, err);
    if (!rc && req->stream)
        rc = llm_add_header(out, "accept", "text/event-stream", false, err);
    if (!rc)
        rc = contents_of(req->messages, &contents, err);
    if (rc)
        goto out;
    rc = CH_ENOMEM;
    gen = json_pack("{s:I}", "maxOutputTokens", (json_int_t)req->max_tokens);
    if (gen && req->has_temperature && json_object_set_new(gen, "temperature", json_real(req->temperature)))
        json_decref(gen), gen = NULL;
    body = json_pack("{s:o, s:o}", "contents", contents, "generationConfig", gen);
    contents = NULL; /* stolen, even on failure */
    if (!body)
        goto out;
    if (req->system && req->system[0] &&
        json_object_set_new(body, "systemInstruction", json_pack("{s:[{s:s}]}", "parts", "text", req->system)))
        goto out;
    if (req->tools && json_array_size(req->tools) && json_object_set_new(body, "tools", tools_of(req->tools)))
        goto out;
    rc = llm_set_body_take(out, body, err);
    body = NULL;
out:
    json_decref(contents);
    json_decref(body);
    ch_free(path);
    return rc;
}
