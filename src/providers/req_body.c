/*
 * req_body.c: what the direct request builders share.  A neutral block is
 * read in one walk over its object instead of a hash lookup per field
 * per pass, and the body is written into a capped buffer with jansson's
 * exact string escaping, so a builder that no longer builds a tree sends
 * the bytes the tree gave.
 */
#include <string.h>

#include "providers/internal.h"

void llm_block_read(const json_t *b, struct llm_block *out)
{
    const char *k;
    json_t *v;

    memset(out, 0, sizeof(*out));
    json_object_foreach((json_t *)b, k, v)
    {
        switch (k[0]) {
        case 't':
            if (!strcmp(k, "type"))
                out->type_name = json_string_value(v);
            else if (!strcmp(k, "text"))
                out->text = v;
            else if (!strcmp(k, "tool_use_id"))
                out->tool_use_id = json_string_value(v);
            break;
        case 'i':
            if (!strcmp(k, "id"))
                out->id = json_string_value(v);
            else if (!strcmp(k, "input"))
                out->input = v;
            else if (!strcmp(k, "is_error"))
                out->is_error = v;
            break;
        case 'n':
            if (!strcmp(k, "name"))
                out->name = json_string_value(v);
            break;
        case 's':
            if (!strcmp(k, "source"))
                out->source = v;
            break;
        case 'c':
            if (!strcmp(k, "content"))
                out->content = v;
            break;
        default: break;
        }
    }
    if (!out->type_name)
        return;
    if (!strcmp(out->type_name, "text"))
        out->type = LLM_B_TEXT;
    else if (!strcmp(out->type_name, "tool_use"))
        out->type = LLM_B_TOOL_USE;
    else if (!strcmp(out->type_name, "tool_result"))
        out->type = LLM_B_TOOL_RESULT;
    else if (!strcmp(out->type_name, "image"))
        out->type = LLM_B_IMAGE;
}

void llm_image_source(const struct llm_block *k, const char **media_type, const char **data, const char **url)
{
    *media_type = json_string_value(json_object_get(k->source, "media_type"));
    *data = json_string_value(json_object_get(k->source, "data"));
    *url = json_string_value(json_object_get(k->source, "url"));
}

void llm_message_read(const json_t *m, const char **role, const json_t **content)
{
    const char *k;
    json_t *v;

    *role = NULL;
    *content = NULL;
    json_object_foreach((json_t *)m, k, v)
    {
        if (!strcmp(k, "role"))
            *role = json_string_value(v);
        else if (!strcmp(k, "content"))
            *content = v;
    }
}

int llm_blocks_read(const json_t *content, struct llm_blocks *out)
{
    const json_t *b;
    size_t i, n;

    out->v = out->one;
    out->n = 0;
    if (json_is_string(content)) {
        memset(&out->one[0], 0, sizeof(out->one[0]));
        out->one[0].type = LLM_B_TEXT;
        out->one[0].type_name = "text";
        out->one[0].text = content;
        out->n = 1;
        return 0;
    }
    n = json_array_size(content);
    if (n > CH_ARRAY_SIZE(out->one) && !(out->v = ch_malloc(n * sizeof(*out->v)))) {
        out->v = out->one;
        return CH_ENOMEM;
    }
    json_array_foreach(content, i, b) llm_block_read(b, &out->v[i]);
    out->n = n;
    return 0;
}

void llm_blocks_release(struct llm_blocks *bl)
{
    if (bl->v != bl->one)
        ch_free(bl->v);
    bl->v = bl->one;
    bl->n = 0;
}

void llm_wr_raw(struct llm_wr *w, const char *s)
{
    if (!w->rc)
        w->rc = ch_buf_append_str(&w->b, s);
}

void llm_wr_jstr(struct llm_wr *w, const char *s, size_t n)
{
    if (!w->rc)
        w->rc = ch_buf_append_json_str(&w->b, s, n);
}

static int dump_cb(const char *p, size_t n, void *data)
{
    struct llm_wr *w = data;

    w->rc = ch_buf_append(&w->b, p, n);
    return w->rc ? -1 : 0;
}

void llm_wr_json(struct llm_wr *w, const json_t *v)
{
    if (!w->rc && json_dump_callback(v, dump_cb, w, JSON_COMPACT | JSON_ENCODE_ANY) && !w->rc)
        w->rc = CH_ENOMEM;
}

void llm_tools_memo_release(struct llm_tools_memo *m)
{
    for (size_t i = 0; i < CH_LLM_API__COUNT; i++)
        for (size_t j = 0; j < 2; j++) {
            json_decref(m->slot[i][j].tools);
            ch_free(m->slot[i][j].text);
            m->slot[i][j].tools = NULL;
            m->slot[i][j].text = NULL;
            m->slot[i][j].len = 0;
        }
}

void llm_wr_tools(struct llm_wr *w, const struct ch_llm_request *req, enum ch_llm_api api, llm_tools_render_cb render)
{
    struct llm_tools_slot *s;
    size_t start = w->b.len;
    char *copy;

    if (!req->tools_memo || (unsigned)api >= CH_LLM_API__COUNT) {
        render(w, req);
        return;
    }
    s = &req->tools_memo->slot[api][req->want_prompt_cache ? 1 : 0];
    if (s->tools == req->tools && s->text) {
        if (!w->rc)
            w->rc = ch_buf_append(&w->b, s->text, s->len);
        return;
    }
    render(w, req);
    if (w->rc || !(copy = ch_malloc(w->b.len - start + 1)))
        return; /* the next call renders again */
    memcpy(copy, w->b.data + start, w->b.len - start);
    copy[w->b.len - start] = '\0';
    json_decref(s->tools);
    ch_free(s->text);
    s->tools = json_incref((json_t *)req->tools);
    s->text = copy;
    s->len = w->b.len - start;
}
