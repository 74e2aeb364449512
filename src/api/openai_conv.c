/*
 * openai_conv.c: OpenAI Chat Completions <-> chela's neutral conversation.
 * Requests: system/developer messages become the system prompt; user
 * content (a string or text parts); assistant text and tool_calls become
 * text and tool_use blocks; role "tool" becomes a tool_result block in a
 * user turn; consecutive turns of one role are merged.  Responses: text
 * blocks joined into `content`, tool_use blocks into `tool_calls`, and the
 * stop reason into `finish_reason`.
 */
#include <string.h>

#include "api/internal.h"
#include "api/openai.h"

static int content_text(const json_t *c, struct ch_buf *out, char *err, size_t errcap)
{
    const json_t *part;
    size_t i;

    if (json_is_null(c) || !c)
        return 0;
    if (json_is_string(c))
        return ch_buf_append(out, json_string_value(c), json_string_length(c));
    if (!json_is_array(c)) {
        snprintf(err, errcap, "message content must be a string or an array of content parts");
        return CH_EINVAL;
    }
    json_array_foreach(c, i, part)
    {
        const char *t = json_string_value(json_object_get(part, "type"));
        if (!t || strcmp(t, "text") || !json_is_string(json_object_get(part, "text"))) {
            snprintf(err, errcap, "content part %zu: only {\"type\":\"text\",\"text\":...} parts are supported", i);
            return CH_EINVAL;
        }
        if (out->len)
            ch_buf_append_char(out, '\n');
        if (ch_buf_append_str(out, json_string_value(json_object_get(part, "text"))))
            return CH_E_TOO_LARGE;
    }
    return 0;
}

/* An image_url part as a neutral image block (Anthropic's shape): a data:
 * URL becomes base64 data, an http(s) URL stays a URL (the provider
 * fetches it; Gemini's builder refuses it). */
static json_t *image_block(const json_t *part, size_t i, char *err, size_t errcap)
{
    const json_t *iu = json_object_get(part, "image_url");
    const char *url = json_string_value(json_is_object(iu) ? json_object_get(iu, "url") : iu), *comma;

    if (url && (!strncmp(url, "https://", 8) || !strncmp(url, "http://", 7)))
        return json_pack("{s:s, s:{s:s, s:s}}", "type", "image", "source", "type", "url", "url", url);
    for (size_t t = 0; url && t < CH_LLM_IMAGE_TYPE_COUNT; t++) {
        const char *type = ch_llm_image_types[t];
        size_t n = strlen(type);
        if (!strncmp(url, "data:", 5) && !strncmp(url + 5, type, n) && !strncmp(url + 5 + n, ";base64,", 8) &&
            (comma = url + 5 + n + 7) && comma[1] &&
            !comma[1 + strspn(comma + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")])
            return json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "image", "source", "type", "base64", "media_type",
                             type, "data", comma + 1);
    }
    snprintf(err, errcap,
             "content part %zu: image_url.url must be an http(s) URL or a data:image/(jpeg|png|gif|webp);base64, URL",
             i);
    return NULL;
}

/* A user message's content as neutral blocks (*out), in order: adjacent
 * text parts joined with "\n" into one text block, image_url parts as
 * image blocks.  0, or CH_EINVAL with err, CH_E_TOO_LARGE, CH_ENOMEM. */
static int user_blocks(const json_t *c, struct ch_buf *tmp, json_t **out, char *err, size_t errcap)
{
    const json_t *part;
    json_t *img, *one;
    size_t i;
    bool images = false;
    int rc = 0;

    *out = NULL;
    json_array_foreach(c, i, part)
    {
        const char *t = json_string_value(json_object_get(part, "type"));
        images = images || (t && !strcmp(t, "image_url"));
    }
    if (!images) {
        rc = content_text(c, tmp, err, errcap);
        if (!rc && !(*out = ch_llm_text_content(tmp->data ? tmp->data : "", tmp->len)))
            rc = CH_ENOMEM;
        return rc;
    }
    if (!(*out = json_array()))
        return CH_ENOMEM;
    json_array_foreach(c, i, part)
    {
        const char *t = json_string_value(json_object_get(part, "type"));
        if (t && !strcmp(t, "image_url")) {
            if (tmp->len)
                json_array_append_new(*out, ch_llm_text_block(tmp->data, tmp->len));
            ch_buf_reset(tmp);
            if (!(img = image_block(part, i, err, errcap)))
                rc = err[0] ? CH_EINVAL : CH_ENOMEM;
            else if (json_array_append_new(*out, img))
                rc = CH_ENOMEM;
        } else {
            one = json_array();
            rc = !one || json_array_append(one, (json_t *)part) ? CH_ENOMEM : content_text(one, tmp, err, errcap);
            json_decref(one);
        }
        if (rc)
            break;
    }
    if (!rc && tmp->len)
        json_array_append_new(*out, ch_llm_text_block(tmp->data, tmp->len));
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

/* {"role":role,"content":blocks}; takes blocks, also when it fails. */
static json_t *role_message(const char *role, json_t *blocks)
{
    json_t *m = json_object();

    if (!m || !blocks || json_object_set_new_nocheck(m, "role", json_string(role))) {
        json_decref(blocks);
        json_decref(m);
        return NULL;
    }
    if (json_object_set_new_nocheck(m, "content", blocks)) { /* takes blocks */
        json_decref(m);
        return NULL;
    }
    return m;
}

static void push(json_t *msgs, const char *role, json_t *blocks)
{
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);

    if (last && !strcmp(json_string_value(json_object_get(last, "role")), role)) {
        json_array_extend(json_object_get(last, "content"), blocks);
        json_decref(blocks);
        return;
    }
    json_array_append_new(msgs, role_message(role, blocks));
}

static int assistant_blocks(const json_t *m, json_t *blocks, struct ch_buf *tmp, char *err, size_t errcap)
{
    const json_t *tc;
    size_t i;
    int rc = content_text(json_object_get(m, "content"), tmp, err, errcap);

    if (rc)
        return rc;
    if (tmp->len)
        json_array_append_new(blocks, ch_llm_text_block(tmp->data, tmp->len));
    json_array_foreach(json_object_get(m, "tool_calls"), i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        const char *id = json_string_value(json_object_get(tc, "id"));
        const char *name = json_string_value(json_object_get(fn, "name"));
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        json_t *input = args && *args ? json_loads(args, 0, NULL) : json_object();
        if (!id || !name) {
            json_decref(input);
            snprintf(err, errcap, "assistant tool_calls[%zu] needs an id and function.name", i);
            return CH_EINVAL;
        }
        if (!json_is_object(input)) {
            json_decref(input);
            input = json_object();
        }
        json_array_append_new(
            blocks, json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", id, "name", name, "input", input));
    }
    return 0;
}

int ch_openai_to_neutral(const json_t *messages, json_t **out_msgs, char **out_system, char *err, size_t errcap)
{
    json_t *msgs = json_array();
    struct ch_buf sys, tmp;
    const json_t *m;
    size_t i;
    int rc = 0;

    ch_buf_init(&sys, 1 << 20);
    ch_buf_init(&tmp, 4 << 20);
    *out_msgs = NULL;
    *out_system = NULL;
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        snprintf(err, errcap, "messages must be a non-empty array");
        rc = CH_EINVAL;
    }
    json_array_foreach(messages, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *blocks;
        if (rc)
            break;
        ch_buf_reset(&tmp);
        if (!role) {
            snprintf(err, errcap, "messages[%zu].role is required", i);
            rc = CH_EINVAL;
        } else if (!strcmp(role, "system") || !strcmp(role, "developer")) {
            if (sys.len)
                ch_buf_append_str(&sys, "\n\n");
            rc = content_text(json_object_get(m, "content"), &sys, err, errcap);
        } else if (!strcmp(role, "user")) {
            json_t *ub;
            rc = user_blocks(json_object_get(m, "content"), &tmp, &ub, err, errcap);
            if (!rc)
                push(msgs, "user", ub);
        } else if (!strcmp(role, "assistant")) {
            blocks = json_array();
            rc = assistant_blocks(m, blocks, &tmp, err, errcap);
            if (!rc && json_array_size(blocks))
                push(msgs, "assistant", blocks);
            else
                json_decref(blocks);
        } else if (!strcmp(role, "tool")) {
            const char *id = json_string_value(json_object_get(m, "tool_call_id"));
            rc = content_text(json_object_get(m, "content"), &tmp, err, errcap);
            if (!rc && !id) {
                snprintf(err, errcap, "messages[%zu]: a tool message needs tool_call_id", i);
                rc = CH_EINVAL;
            }
            if (!rc)
                push(msgs, "user",
                     json_pack("[{s:s, s:s, s:s}]", "type", "tool_result", "tool_use_id", id, "content",
                               tmp.data ? tmp.data : ""));
        } else {
            snprintf(err, errcap, "messages[%zu].role '%.40s' is not one of system, developer, user, assistant, tool",
                     i, role);
            rc = CH_EINVAL;
        }
        if (rc == CH_E_TOO_LARGE)
            snprintf(err, errcap, "messages[%zu] is too large", i);
    }
    if (!rc && json_array_size(msgs) == 0) {
        snprintf(err, errcap, "messages must contain at least one user message");
        rc = CH_EINVAL;
    }
    if (rc) {
        json_decref(msgs);
    } else {
        *out_msgs = msgs;
        *out_system = sys.len ? ch_buf_detach(&sys, NULL) : NULL;
    }
    ch_buf_release(&sys);
    ch_buf_release(&tmp);
    return rc;
}

json_t *ch_openai_tools_to_neutral(const json_t *tools, char *err, size_t errcap)
{
    json_t *out;
    const json_t *t;
    size_t i;

    if (!tools || json_is_null(tools))
        return NULL;
    out = json_array();
    json_array_foreach(tools, i, t)
    {
        const json_t *fn = json_object_get(t, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        const json_t *params = json_object_get(fn, "parameters");
        if (!name) {
            snprintf(err, errcap, "tools[%zu].function.name is required", i);
            json_decref(out);
            return NULL;
        }
        /* "o" takes the reference: a borrowed schema is increfed first (a
         * new default one with "O" leaked). */
        json_array_append_new(out,
                              json_pack("{s:s, s:s, s:o}", "name", name, "description",
                                        json_string_value(json_object_get(fn, "description"))
                                            ? json_string_value(json_object_get(fn, "description"))
                                            : "",
                                        "input_schema",
                                        params ? json_incref((json_t *)params) : json_pack("{s:s}", "type", "object")));
    }
    return out;
}

const char *ch_openai_finish_reason(enum ch_llm_stop s)
{
    switch (s) {
    case CH_LLM_STOP_TOOL_USE: return "tool_calls";
    case CH_LLM_STOP_MAX_TOKENS: return "length";
    case CH_LLM_STOP_REFUSAL: return "content_filter";
    default: return "stop";
    }
}

/* ---- rendering without jansson: the reply path of every request ---- */

int ch_oa_put_int(struct ch_buf *b, int64_t v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return ch_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

int ch_oa_put_usage(struct ch_buf *b, const struct ch_llm_usage *u)
{
    int64_t in = ch_oa_prompt_tokens(u), out = ch_oa_tokens(u->output_tokens);
    int rc = ch_buf_append_str(b, "\"usage\":{\"prompt_tokens\":");

    rc = rc ? rc : ch_oa_put_int(b, in);
    rc = rc ? rc : ch_buf_append_str(b, ",\"completion_tokens\":");
    rc = rc ? rc : ch_oa_put_int(b, out);
    rc = rc ? rc : ch_buf_append_str(b, ",\"total_tokens\":");
    rc = rc ? rc : ch_oa_put_int(b, ch_oa_tokens_add(in, out));
    return rc ? rc : ch_buf_append_char(b, '}');
}

/* {"id":..,"object":KIND,"created":..,"model":.., -- shared by replies and chunks. */
int ch_oa_put_head(struct ch_buf *b, const struct oa_req *o, const char *kind)
{
    int rc = ch_buf_append_str(b, "{\"id\":");

    rc = rc ? rc : ch_buf_append_json_str(b, o->id, strlen(o->id));
    rc = rc ? rc : ch_buf_append_str(b, ",\"object\":\"");
    rc = rc ? rc : ch_buf_append_str(b, kind);
    rc = rc ? rc : ch_buf_append_str(b, "\",\"created\":");
    rc = rc ? rc : ch_oa_put_int(b, o->created);
    rc = rc ? rc : ch_buf_append_str(b, ",\"model\":");
    rc = rc ? rc : ch_buf_append_json_str(b, o->model, strlen(o->model));
    return rc ? rc : ch_buf_append_char(b, ',');
}

/* The text blocks of a neutral reply, joined (as one JSON string). */
static int put_reply_text(struct ch_buf *b, const json_t *content)
{
    const json_t *blk, *one = NULL;
    struct ch_buf joined;
    size_t i, n = 0;
    int rc = 0;

    json_array_foreach(content, i, blk)
    {
        const char *t = json_string_value(json_object_get(blk, "type"));
        if (t && !strcmp(t, "text") && json_is_string(json_object_get(blk, "text")))
            n++, one = json_object_get(blk, "text");
    }
    if (n <= 1) /* the usual case: no copy */
        return one ? ch_buf_append_json_str(b, json_string_value(one), json_string_length(one))
                   : ch_buf_append_str(b, "\"\"");
    ch_buf_init(&joined, 64 << 20);
    json_array_foreach(content, i, blk)
    {
        const char *t = json_string_value(json_object_get(blk, "type"));
        const json_t *txt = json_object_get(blk, "text");
        if (!rc && t && !strcmp(t, "text") && json_is_string(txt))
            rc = ch_buf_append(&joined, json_string_value(txt), json_string_length(txt));
    }
    rc = rc ? rc : ch_buf_append_json_str(b, joined.data ? joined.data : "", joined.len);
    ch_buf_release(&joined);
    return rc;
}

/* The assistant message of a neutral reply (text blocks joined, tool_use
 * blocks as tool_calls), or of plain text when reply is NULL. */
static int put_message(struct ch_buf *b, const json_t *reply, const char *text)
{
    const json_t *blk;
    size_t i, ncalls = 0;
    int rc = ch_buf_append_str(b, "{\"role\":\"assistant\",\"content\":");

    if (!reply) {
        rc = rc ? rc : ch_buf_append_json_str(b, text ? text : "", text ? strlen(text) : 0);
        return rc ? rc : ch_buf_append_char(b, '}');
    }
    rc = rc ? rc : put_reply_text(b, json_object_get(reply, "content"));
    json_array_foreach(json_object_get(reply, "content"), i, blk)
    {
        const char *t = json_string_value(json_object_get(blk, "type"));
        const char *id = json_string_value(json_object_get(blk, "id"));
        const char *name = json_string_value(json_object_get(blk, "name"));
        char *args;
        if (rc || !t || strcmp(t, "tool_use"))
            continue;
        args = json_dumps(json_object_get(blk, "input"), JSON_COMPACT);
        rc = ch_buf_append_str(b, ncalls++ ? ",{\"id\":" : ",\"tool_calls\":[{\"id\":");
        rc = rc ? rc : ch_buf_append_json_str(b, id ? id : "", id ? strlen(id) : 0);
        rc = rc ? rc : ch_buf_append_str(b, ",\"type\":\"function\",\"function\":{\"name\":");
        rc = rc ? rc : ch_buf_append_json_str(b, name ? name : "", name ? strlen(name) : 0);
        rc = rc ? rc : ch_buf_append_str(b, ",\"arguments\":");
        rc = rc ? rc : ch_buf_append_json_str(b, args ? args : "{}", args ? strlen(args) : 2);
        rc = rc ? rc : ch_buf_append_str(b, "}}");
        ch_free(args);
    }
    if (!rc && ncalls)
        rc = ch_buf_append_char(b, ']');
    return rc ? rc : ch_buf_append_char(b, '}');
}

int ch_oa_render_completion(struct ch_buf *b, const struct oa_req *o, const json_t *reply, const char *text,
                            const char *finish, const struct ch_llm_usage *u)
{
    int rc = ch_oa_put_head(b, o, "chat.completion");

    rc = rc ? rc : ch_buf_append_str(b, "\"choices\":[{\"index\":0,\"message\":");
    rc = rc ? rc : put_message(b, reply, text);
    rc = rc ? rc : ch_buf_append_str(b, ",\"finish_reason\":\"");
    rc = rc ? rc : ch_buf_append_str(b, finish);
    rc = rc ? rc : ch_buf_append_str(b, "\",\"logprobs\":null}],");
    rc = rc ? rc : ch_oa_put_usage(b, u);
    return rc ? rc : ch_buf_append_char(b, '}');
}
