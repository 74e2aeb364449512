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

static void push(json_t *msgs, const char *role, json_t *blocks)
{
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);

    if (last && !strcmp(json_string_value(json_object_get(last, "role")), role)) {
        json_array_extend(json_object_get(last, "content"), blocks);
        json_decref(blocks);
        return;
    }
    json_array_append_new(msgs, json_pack("{s:s, s:o}", "role", role, "content", blocks));
}

static int assistant_blocks(const json_t *m, json_t *blocks, struct ch_buf *tmp, char *err, size_t errcap)
{
    const json_t *tc;
    size_t i;
    int rc = content_text(json_object_get(m, "content"), tmp, err, errcap);

    if (rc)
        return rc;
    if (tmp->len)
        json_array_append_new(blocks, json_pack("{s:s, s:s}", "type", "text", "text", tmp->data));
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
            rc = content_text(json_object_get(m, "content"), &tmp, err, errcap);
            if (!rc)
                push(msgs, "user", json_pack("[{s:s, s:s}]", "type", "text", "text", tmp.data ? tmp.data : ""));
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
        json_array_append_new(out, json_pack("{s:s, s:s, s:O}", "name", name, "description",
                                             json_string_value(json_object_get(fn, "description"))
                                                 ? json_string_value(json_object_get(fn, "description"))
                                                 : "",
                                             "input_schema", params ? params : json_pack("{s:s}", "type", "object")));
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

json_t *ch_openai_message(const json_t *reply)
{
    struct ch_buf text;
    json_t *calls = json_array(), *msg;
    const json_t *blk;
    size_t i;

    ch_buf_init(&text, 64 << 20);
    json_array_foreach(json_object_get(reply, "content"), i, blk)
    {
        const char *t = json_string_value(json_object_get(blk, "type"));
        if (t && !strcmp(t, "text") && json_string_value(json_object_get(blk, "text")))
            ch_buf_append_str(&text, json_string_value(json_object_get(blk, "text")));
        else if (t && !strcmp(t, "tool_use")) {
            char *args = json_dumps(json_object_get(blk, "input"), JSON_COMPACT);
            json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:s, s:s}}", "id",
                                                   json_string_value(json_object_get(blk, "id")), "type", "function",
                                                   "function", "name", json_string_value(json_object_get(blk, "name")),
                                                   "arguments", args ? args : "{}"));
            ch_free(args);
        }
    }
    msg = json_pack("{s:s, s:s%}", "role", "assistant", "content", text.data ? text.data : "", text.len);
    if (json_array_size(calls))
        json_object_set_new(msg, "tool_calls", calls);
    else
        json_decref(calls);
    ch_buf_release(&text);
    return msg;
}

void ch_openai_error(struct ch_http_req *r, int status, const char *type, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ch_http_respond_json(
        r, status,
        json_pack("{s:{s:s, s:s, s:s?, s:n}}", "error", "message", msg, "type", type, "code", code, "param"));
}
