/*
 * decoder.c: the provider-neutral half of response decoding.
 *
 * A decoder takes the raw body of one 2xx response, through the SSE parser
 * (streamed) or as one buffered JSON document, and hands each provider
 * event to the per-API table (<api>_stream.c).  Those call back into the
 * helpers here, which emit the neutral events and accumulate the final
 * assistant message and usage.  States: open -> complete (STOP emitted) or
 * failed (ERROR emitted) -> finished; once complete or failed, input is
 * ignored.  See docs/internals/providers.md.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "providers/internal.h"

static void emit(struct ch_llm_decoder *d, struct ch_llm_event *ev)
{
    if (d->cb)
        d->cb(ev, d->cb_data);
}

int llm_fail(struct ch_llm_decoder *d, int rc, enum ch_llm_err err, bool retryable, const char *fmt, ...)
{
    struct ch_llm_event ev = {.type = CH_LLM_EV_ERROR};
    char msg[256];
    va_list ap;

    if (d->failed)
        return d->rc;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    d->failed = true;
    d->rc = rc;
    d->stop = CH_LLM_STOP_ERROR;
    ev.err = err;
    ev.retryable = retryable;
    ev.message = msg;
    emit(d, &ev);
    return rc;
}

int llm_fail_provider(struct ch_llm_decoder *d, json_t *error_obj)
{
    struct ch_llm_failure f;

    llm_classify_json(0, error_obj, &f);
    return llm_fail(d, CH_EIO, f.err, f.retryable, "%s", f.message);
}

int llm_parse_json(struct ch_llm_decoder *d, const char *p, size_t n, json_t **out)
{
    json_error_t je;
    json_t *j = json_loadb(p, n, 0, &je);

    if (!j) {
        /* jansson reports a failed allocation as a parse error too, some
         * (a failed lexer buffer) with no text at all. */
        if (json_error_code(&je) == json_error_out_of_memory || !je.text[0])
            return llm_fail(d, CH_ENOMEM, CH_LLM_ERR_UNKNOWN, false, "out of memory");
        return llm_fail(d, CH_EINVAL, CH_LLM_ERR_UNKNOWN, true, "malformed JSON from the provider: %s at offset %d",
                        je.text, je.position);
    }
    *out = j;
    return 0;
}

const char *llm_jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key)); /* NULL-safe both ways */
}

uint64_t llm_jtokens(const json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));

    return v > 0 ? (uint64_t)v : 0;
}

void llm_set_model(struct ch_llm_decoder *d, const char *model)
{
    if (model && model[0])
        ch_str_copy(d->model, sizeof(d->model), model);
}

static int oom(struct ch_llm_decoder *d)
{
    return llm_fail(d, CH_ENOMEM, CH_LLM_ERR_UNKNOWN, false, "out of memory");
}

/* Map a cap or allocation error from a buffer append to a report. */
static int buf_fail(struct ch_llm_decoder *d, int rc, const char *what)
{
    if (rc == CH_E_TOO_LARGE)
        return llm_fail(d, rc, CH_LLM_ERR_UNKNOWN, false, "%s exceeds its size cap", what);
    return oom(d);
}

int llm_text(struct ch_llm_decoder *d, const char *p, size_t n)
{
    struct ch_llm_event ev = {.type = CH_LLM_EV_TEXT_DELTA};
    int rc;

    if (n == 0)
        return 0; /* providers open blocks with "" deltas; they carry nothing */
    rc = ch_buf_append(&d->text, p, n);
    if (rc)
        return buf_fail(d, rc, "response text");
    d->text_open = true;
    ev.text = (struct ch_str){p, n};
    emit(d, &ev);
    return 0;
}

/* Built directly: json_pack spends ~40% of its time parsing the format
 * (3,300 -> 2,000 instructions). */
json_t *ch_llm_text_block(const char *p, size_t n)
{
    json_t *b = json_object();

    if (!b || json_object_set_new_nocheck(b, "type", json_string_nocheck("text")) ||
        json_object_set_new_nocheck(b, "text", json_stringn(p, n))) {
        json_decref(b);
        return NULL;
    }
    return b;
}

json_t *ch_llm_text_content(const char *p, size_t n)
{
    json_t *a = json_array(), *b = ch_llm_text_block(p, n);

    if (!a || !b) {
        json_decref(a);
        json_decref(b);
        return NULL;
    }
    if (json_array_append_new(a, b)) { /* takes b even when it fails */
        json_decref(a);
        return NULL;
    }
    return a;
}

int llm_text_close(struct ch_llm_decoder *d)
{
    json_t *b;

    if (!d->text_open)
        return 0;
    b = ch_llm_text_block(d->text.data, d->text.len);
    if (!b || json_array_append_new(d->content, b))
        return oom(d);
    d->text_open = false;
    ch_buf_reset(&d->text);
    return 0;
}

static void emit_tool(struct ch_llm_decoder *d, enum ch_llm_event_type type, const struct llm_tool *t)
{
    struct ch_llm_event ev = {.type = type};

    ev.index = (int)(t - d->tools);
    ev.tool_id = t->id;
    ev.tool_name = t->name;
    emit(d, &ev);
}

int llm_tool_begin(struct ch_llm_decoder *d, long key, const char *id, const char *name, struct llm_tool **out)
{
    struct llm_tool *t;
    char synth[32];
    int rc;

    rc = llm_text_close(d);
    if (rc)
        return rc;
    if (d->ntools == CH_LLM_MAX_TOOL_CALLS)
        return llm_fail(d, CH_E_TOO_LARGE, CH_LLM_ERR_UNKNOWN, false, "more than %d tool calls in one response",
                        CH_LLM_MAX_TOOL_CALLS);
    if (d->ntools == d->tools_cap) {
        size_t ncap = d->tools_cap ? d->tools_cap * 2 : 4;
        t = ch_realloc(d->tools, ncap * sizeof(*t));
        if (!t)
            return oom(d);
        d->tools = t;
        d->tools_cap = ncap;
    }
    t = &d->tools[d->ntools];
    memset(t, 0, sizeof(*t));
    ch_buf_init(&t->args, CH_LLM_MAX_TOOL_ARGS_BYTES);
    t->key = key;
    /* Gemini and some OpenAI-compatible servers send no call id; the
     * ordinal keeps ids unique within the response, which is the scope
     * in which tool results are matched back. */
    if (!id || !id[0]) {
        snprintf(synth, sizeof(synth), "call_%zu", d->ntools);
        id = synth;
    }
    t->id = ch_strdup(id);
    if (!t->id)
        return oom(d);
    d->ntools++;
    if (name) {
        rc = llm_tool_name(d, t, name);
        if (rc)
            return rc;
    }
    *out = t;
    return 0;
}

int llm_tool_name(struct ch_llm_decoder *d, struct llm_tool *t, const char *name)
{
    if (t->started || !name || !name[0])
        return 0;
    t->name = ch_strdup(name);
    if (!t->name)
        return oom(d);
    t->started = true;
    emit_tool(d, CH_LLM_EV_TOOL_START, t);
    /* Arguments that arrived before the name are released now, in one. */
    if (t->args.len) {
        struct ch_llm_event ev = {.type = CH_LLM_EV_TOOL_ARGS_DELTA};
        ev.index = (int)(t - d->tools);
        ev.text = (struct ch_str){t->args.data, t->args.len};
        emit(d, &ev);
    }
    return 0;
}

struct llm_tool *llm_tool_find(struct ch_llm_decoder *d, long key)
{
    size_t i;

    for (i = d->ntools; i-- > 0;)
        if (d->tools[i].key == key && !d->tools[i].ended)
            return &d->tools[i];
    return NULL;
}

int llm_tool_args(struct ch_llm_decoder *d, struct llm_tool *t, const char *p, size_t n)
{
    struct ch_llm_event ev = {.type = CH_LLM_EV_TOOL_ARGS_DELTA};
    int rc;

    if (n == 0)
        return 0;
    rc = ch_buf_append(&t->args, p, n);
    if (rc)
        return buf_fail(d, rc, "tool call arguments");
    if (t->started) {
        ev.index = (int)(t - d->tools);
        ev.text = (struct ch_str){p, n};
        emit(d, &ev);
    }
    return 0;
}

/* Parse the accumulated arguments: empty means {}, anything but an object
 * is refused (the tool gets an error result, not a crash). */
static json_t *parse_args(const struct llm_tool *t, char *why, size_t whylen, bool *oom_out)
{
    json_error_t je;
    json_t *j;
    size_t i;

    for (i = 0; i < t->args.len; i++)
        if (!strchr(" \t\r\n", t->args.data[i]))
            break;
    if (i == t->args.len) {
        j = json_object();
        *oom_out = !j;
        return j;
    }
    j = json_loadb(t->args.data, t->args.len, 0, &je);
    if (!j) {
        *oom_out = json_error_code(&je) == json_error_out_of_memory || !je.text[0];
        snprintf(why, whylen, "tool arguments are not valid JSON: %s", je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(why, whylen, "tool arguments are not a JSON object");
        return NULL;
    }
    return j;
}

int llm_tool_end(struct ch_llm_decoder *d, struct llm_tool *t)
{
    struct ch_llm_event ev = {.type = CH_LLM_EV_TOOL_END};
    char why[200] = "";
    bool nomem = false;
    json_t *input, *block;
    int rc;

    if (t->ended)
        return 0;
    if (!t->started) {
        /* A call whose name never came: surface it so the model is told. */
        rc = llm_tool_name(d, t, "unnamed_tool");
        if (rc)
            return rc;
        snprintf(why, sizeof(why), "tool call without a name");
    }
    input = why[0] ? NULL : parse_args(t, why, sizeof(why), &nomem);
    if (nomem)
        return oom(d);
    block = json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", t->id, "name", t->name, "input",
                      input ? json_incref(input) : json_object());
    if (block && !input && json_object_set_new(block, "input_error", json_string(why))) {
        json_decref(block);
        block = NULL;
    }
    if (!block || json_array_append_new(d->content, block)) {
        json_decref(input);
        return oom(d);
    }
    t->ended = true;
    ev.index = (int)(t - d->tools);
    ev.tool_id = t->id;
    ev.tool_name = t->name;
    ev.tool_input = input;
    ev.tool_error = input ? NULL : why;
    emit(d, &ev);
    json_decref(input);
    return 0;
}

int llm_tool_whole(struct ch_llm_decoder *d, const char *id, const char *name, json_t *args)
{
    struct llm_tool *t;
    char *s = NULL;
    int rc;

    rc = llm_tool_begin(d, -1, id, name && name[0] ? name : NULL, &t);
    if (rc)
        return rc;
    if (args && !json_is_null(args)) {
        s = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!s)
            return oom(d);
        rc = llm_tool_args(d, t, s, strlen(s));
        ch_free(s); /* jansson allocates through ch_malloc (ch_alloc_install) */
        if (rc)
            return rc;
    }
    return llm_tool_end(d, t);
}

void llm_usage(struct ch_llm_decoder *d, const struct ch_llm_usage *u)
{
    struct ch_llm_event ev = {.type = CH_LLM_EV_USAGE};

    d->usage = *u;
    ev.usage = *u;
    emit(d, &ev);
}

void llm_set_stop(struct ch_llm_decoder *d, enum ch_llm_stop s, const char *raw)
{
    d->stop = s;
    d->has_stop = true;
    ch_str_copy(d->raw_stop, sizeof(d->raw_stop), raw ? raw : "");
}

int llm_complete(struct ch_llm_decoder *d)
{
    struct ch_llm_event ev = {.type = CH_LLM_EV_STOP};
    size_t i;
    int rc;

    if (d->complete || d->failed)
        return d->rc;
    rc = llm_text_close(d);
    for (i = 0; !rc && i < d->ntools; i++)
        rc = llm_tool_end(d, &d->tools[i]);
    if (rc)
        return rc;
    if (!d->has_stop)
        d->stop = CH_LLM_STOP_END_TURN;
    /* Ollama and some other servers say "stop" after tool calls: the loop
     * needs to know it must run them, whatever word was used. */
    if (d->ntools && d->stop == CH_LLM_STOP_END_TURN)
        d->stop = CH_LLM_STOP_TOOL_USE;
    d->complete = true;
    ev.stop = d->stop;
    ev.raw_stop = d->raw_stop;
    emit(d, &ev);
    return 0;
}

/* ------------------------------------------------------------------ */

static int on_sse(const struct ch_sse_event *ev, void *data)
{
    struct ch_llm_decoder *d = data;

    if (d->complete || d->failed)
        return 0; /* trailing events after the end are ignored */
    return d->ops->on_sse(d, ev);
}

int ch_llm_decoder_new(struct ch_llm_decoder **out, enum ch_llm_api api, bool stream, ch_llm_event_cb cb, void *data)
{
    static const struct llm_dec_ops *ops[CH_LLM_API__COUNT] = {
        [CH_LLM_ANTHROPIC] = &llm_anthropic_ops,
        [CH_LLM_OPENAI] = &llm_openai_ops,
        [CH_LLM_GEMINI] = &llm_gemini_ops,
    };
    struct ch_llm_decoder *d = NULL;
    int rc = CH_EINVAL;

    if ((unsigned)api >= CH_LLM_API__COUNT)
        goto out;
    rc = CH_ENOMEM;
    d = ch_calloc(1, sizeof(*d));
    if (!d)
        goto out;
    d->content = json_array();
    if (!d->content)
        goto out;
    d->api = api;
    d->stream = stream;
    d->ops = ops[api];
    d->cb = cb;
    d->cb_data = data;
    d->block = -1;
    ch_sse_parser_init(&d->sse, 0, 0, on_sse, d);
    ch_buf_init(&d->body, CH_LLM_MAX_BODY_BYTES);
    ch_buf_init(&d->text, CH_LLM_MAX_TEXT_BYTES);
    rc = 0;
out:
    if (rc && d) {
        json_decref(d->content);
        ch_free(d);
        d = NULL;
    }
    *out = d;
    return rc;
}

void ch_llm_decoder_free(struct ch_llm_decoder *d)
{
    size_t i;

    if (!d)
        return;
    for (i = 0; i < d->ntools; i++) {
        ch_free(d->tools[i].id);
        ch_free(d->tools[i].name);
        ch_buf_release(&d->tools[i].args);
    }
    ch_free(d->tools);
    ch_sse_parser_release(&d->sse);
    ch_buf_release(&d->body);
    ch_buf_release(&d->text);
    json_decref(d->content);
    json_decref(d->message);
    ch_free(d);
}

int ch_llm_decoder_feed(struct ch_llm_decoder *d, const void *p, size_t n)
{
    int rc;

    if (d->failed)
        return d->rc;
    if (d->complete || d->finished)
        return 0;
    if (!d->stream) {
        rc = ch_buf_append(&d->body, p, n);
        return rc ? buf_fail(d, rc, "response body") : 0;
    }
    rc = ch_sse_parser_feed(&d->sse, p, n);
    if (rc && !d->failed)
        return buf_fail(d, rc, "a stream event");
    return d->failed ? d->rc : 0;
}

static int finish_body(struct ch_llm_decoder *d)
{
    json_t *j = NULL;
    int rc;

    if (d->body.len == 0)
        return llm_fail(d, CH_EIO, CH_LLM_ERR_UNKNOWN, true, "empty response body");
    if (d->ops->on_body_text && (rc = d->ops->on_body_text(d, d->body.data, d->body.len)) != 1)
        return rc;
    rc = llm_parse_json(d, d->body.data, d->body.len, &j);
    if (rc)
        return rc;
    rc = d->ops->on_body(d, j);
    json_decref(j);
    return rc;
}

int ch_llm_decoder_finish(struct ch_llm_decoder *d)
{
    int rc = 0;

    if (d->finished)
        return d->rc;
    d->finished = true;
    if (!d->complete && !d->failed) {
        if (d->stream) {
            ch_sse_parser_finish(&d->sse);
            rc = d->ops->on_eof(d);
        } else {
            rc = finish_body(d);
        }
    }
    if (!rc && !d->complete && !d->failed)
        llm_fail(d, CH_EIO, CH_LLM_ERR_UNKNOWN, true, "stream ended before the response was complete");
    /* Keep what arrived, even on failure: partial text is still useful. */
    if (d->text_open && d->failed && !d->message) {
        json_t *b = ch_llm_text_block(d->text.data, d->text.len);
        if (b)
            json_array_append_new(d->content, b);
        d->text_open = false;
    }
    /* {"role":"assistant","content":<content, one more reference>}. */
    d->message = json_object();
    if (d->message &&
        (!d->content || json_object_set_new_nocheck(d->message, "role", json_string_nocheck("assistant")) ||
         json_object_set_nocheck(d->message, "content", d->content))) {
        json_decref(d->message);
        d->message = NULL;
    }
    return d->rc;
}

json_t *ch_llm_decoder_message(const struct ch_llm_decoder *d)
{
    return d->message;
}

const struct ch_llm_usage *ch_llm_decoder_usage(const struct ch_llm_decoder *d)
{
    return &d->usage;
}

enum ch_llm_stop ch_llm_decoder_stop(const struct ch_llm_decoder *d)
{
    return d->failed ? CH_LLM_STOP_ERROR : d->stop;
}

const char *ch_llm_decoder_model(const struct ch_llm_decoder *d)
{
    return d->model;
}
