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
 * $schema, additionalProperties and type arrays with a 400).  Contents are
 * written directly (req_body.c), the bytes the jansson tree gave.
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

/* One part: {text}, {inlineData}, {functionCall} or {functionResponse}. */
static int put_part(struct llm_wr *w, const json_t *messages, size_t mi, const struct llm_block *k,
                    struct ch_error *err)
{
    const char *name, *content;

    switch (k->type) {
    case LLM_B_TEXT:
        llm_wr_raw(w, "{\"text\":");
        llm_wr_jstr(w, json_string_value(k->text), json_string_length(k->text));
        llm_wr_raw(w, "}");
        return 0;
    case LLM_B_TOOL_USE:
        llm_wr_raw(w, "{\"functionCall\":{\"name\":");
        llm_wr_jstr(w, k->name, strlen(k->name));
        llm_wr_raw(w, ",\"args\":");
        if (k->input)
            llm_wr_json(w, k->input);
        else
            llm_wr_raw(w, "{}");
        llm_wr_raw(w, "}}");
        return 0;
    case LLM_B_IMAGE: {
        const char *mt, *data, *url;
        llm_image_source(k, &mt, &data, &url);
        if (!data) /* fileData takes only Files API and Cloud Storage URIs */
            return ch_error_set(err, CH_EINVAL,
                                "messages[%zu]: Gemini takes an image as data (a data: URL), not by http(s) URL", mi);
        llm_wr_raw(w, "{\"inlineData\":{\"mimeType\":");
        llm_wr_jstr(w, mt, strlen(mt));
        llm_wr_raw(w, ",\"data\":");
        llm_wr_jstr(w, data, strlen(data));
        llm_wr_raw(w, "}}");
        return 0;
    }
    default: break;
    }
    name = call_name(messages, mi, k->tool_use_id);
    if (!name)
        return ch_error_set(err, CH_EINVAL, "messages[%zu]: tool_result '%.60s' follows no tool_use with that id", mi,
                            k->tool_use_id);
    content = json_string_value(k->content);
    llm_wr_raw(w, "{\"functionResponse\":{\"name\":");
    llm_wr_jstr(w, name, strlen(name));
    llm_wr_raw(w, json_is_true(k->is_error) ? ",\"response\":{\"error\":" : ",\"response\":{\"content\":");
    /* A C string, as json_pack("s") took it: up to its first NUL. */
    llm_wr_jstr(w, content ? content : "", content ? strlen(content) : 0);
    llm_wr_raw(w, "}}}");
    return 0;
}

/* "contents" written straight into the body (no jansson tree per call). */
static int put_contents(struct llm_wr *w, const json_t *messages, struct ch_error *err)
{
    struct llm_blocks bl;
    const json_t *m, *content;
    const char *role;
    size_t i, j, kept = 0;
    int rc = 0;

    llm_wr_raw(w, "{\"contents\":[");
    json_array_foreach(messages, i, m)
    {
        size_t np = 0;
        llm_message_read(m, &role, &content);
        if (rc || (rc = llm_blocks_read(content, &bl)) != 0)
            break;
        for (j = 0; j < bl.n && !rc; j++) {
            const char *text = json_string_value(bl.v[j].text);
            if (bl.v[j].type == LLM_B_TEXT && text && !text[0])
                continue; /* an empty part is a 400 */
            if (np++ == 0) {
                const char *open =
                    strcmp(role, "assistant") ? ",{\"role\":\"user\",\"parts\":[" : ",{\"role\":\"model\",\"parts\":[";
                llm_wr_raw(w, kept++ ? open : open + 1); /* no comma before the first */
            } else {
                llm_wr_raw(w, ",");
            }
            rc = put_part(w, messages, i, &bl.v[j], err);
        }
        if (np)
            llm_wr_raw(w, "]}");
        llm_blocks_release(&bl);
    }
    llm_wr_raw(w, "]");
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
char *llm_gemini_model_path(const char *model, const char *method)
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
    if (ch_buf_append_str(&b, method))
        goto fail;
    return ch_buf_detach(&b, NULL);
fail:
    ch_buf_release(&b);
    return NULL;
}

static void put_tools(struct llm_wr *w, const struct ch_llm_request *req)
{
    json_t *v = tools_of(req->tools);

    llm_wr_raw(w, ",\"tools\":");
    if (v)
        llm_wr_json(w, v);
    else if (!w->rc)
        w->rc = CH_ENOMEM;
    json_decref(v);
}

int llm_build_gemini(const struct ch_llm_request *req, struct ch_llm_http *out, struct ch_error *err)
{
    struct llm_wr w = {0};
    json_t *v;
    char *path = llm_gemini_model_path(req->model, req->stream ? ":streamGenerateContent?alt=sse" : ":generateContent");
    int rc = CH_ENOMEM;

    ch_buf_init(&w.b, CH_LLM_MAX_BODY_BYTES);
    if (!path)
        goto out;
    rc = llm_set_url(out, CH_LLM_GEMINI, req->base_url, "/v1beta", path, err);
    if (!rc && req->api_key && req->api_key[0])
        rc = llm_add_header(out, "x-goog-api-key", req->api_key, true, err);
    if (!rc)
        rc = llm_add_header(out, "content-type", "application/json", false, err);
    if (!rc && req->stream)
        rc = llm_add_header(out, "accept", "text/event-stream", false, err);
    if (!rc && req->system && !llm_utf8_valid((const unsigned char *)req->system, strlen(req->system)))
        rc = ch_error_set(err, CH_EINVAL, "the system prompt is not valid UTF-8");
    if (rc)
        goto out;
    /* Key order as the tree builder gave it: contents, generationConfig,
     * systemInstruction, tools. */
    w.rc = ch_buf_reserve(&w.b, 1024);
    if ((rc = put_contents(&w, req->messages, err)) != 0)
        goto out;
    if (!w.rc)
        w.rc = ch_buf_appendf(&w.b, ",\"generationConfig\":{\"maxOutputTokens\":%lld", (long long)req->max_tokens);
    if (req->has_temperature) {
        v = json_real(req->temperature);
        llm_wr_raw(&w, ",\"temperature\":");
        if (v)
            llm_wr_json(&w, v);
        else if (!w.rc)
            w.rc = CH_ENOMEM;
        json_decref(v);
    }
    if (req->sampling)
        llm_wr_sampling_gemini_config(&w, req->sampling);
    llm_wr_raw(&w, "}");
    if (req->system && req->system[0]) {
        llm_wr_raw(&w, ",\"systemInstruction\":{\"parts\":[{\"text\":");
        llm_wr_jstr(&w, req->system, strlen(req->system));
        llm_wr_raw(&w, "}]}");
    }
    if (req->tools && json_array_size(req->tools))
        llm_wr_tools(&w, req, CH_LLM_GEMINI, put_tools);
    if (req->sampling)
        llm_wr_sampling_gemini_tools(&w, req->sampling, req->tools && json_array_size(req->tools));
    llm_wr_raw(&w, "}");
    rc = w.rc;
    if (rc == CH_E_TOO_LARGE)
        rc = ch_error_set(err, rc, "request body exceeds the %u cap", CH_LLM_MAX_BODY_BYTES);
    if (!rc) {
        out->body_len = w.b.len;
        out->body = ch_buf_detach(&w.b, NULL);
        rc = out->body ? 0 : CH_ENOMEM;
    }
out:
    ch_buf_release(&w.b);
    ch_free(path);
    return rc;
}
