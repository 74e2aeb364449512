/*
 * registry.c: the tool registry and the life of one call.
 *
 * A call is RUNNING (its timer is the deadline) -> [ABORTING: deadline or
 * abort; the tool was told to stop and will still reply once it has] ->
 * REPLIED (the result is stored; the timer, re-armed at 0 ms, delivers it
 * on the next loop iteration so no callback ever runs inside start or
 * abort) -> DONE (delivered; the timer closes and the call is freed in its
 * close callback, STYLE.md 8.10 item 1).  Only the first reply counts.
 * Unknown tools and inputs failing the schema go straight to REPLIED with
 * an error the model can act on.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/internal.h"

#define MAX_REPLYF_BYTES 4096
#define TRUNC_MARKER_ROOM 96 /* "\n[truncated: ...]" */

/* ------------------------------------------------------------------ */
/* Registry                                                             */
/* ------------------------------------------------------------------ */

static void entry_free(struct tool_entry *e)
{
    if (!e)
        return;
    ch_free(e->name);
    ch_free(e->description);
    json_decref(e->schema);
    ch_free(e);
}

/* internal_ok: whether the gateway's own tools count (ch_tool_call_start_internal
 * and registration); to models and clients they do not exist. */
static const struct tool_entry *find_tool(const struct ch_tools *t, const char *name, bool internal_ok)
{
    for (size_t i = 0; i < t->ntools; i++)
        if (!strcmp(t->tools[i]->name, name))
            return internal_ok || !t->tools[i]->internal ? t->tools[i] : NULL;
    return NULL;
}

static int rebuild_defs(struct ch_tools *t)
{
    json_t *defs = json_array();

    if (!defs)
        return CH_ENOMEM;
    for (size_t i = 0; i < t->ntools; i++) {
        const struct tool_entry *e = t->tools[i];
        json_t *d;

        if (e->hidden)
            continue;
        d = json_pack("{s:s, s:s, s:O}", "name", e->name, "description", e->description, "input_schema", e->schema);
        if (!d || json_array_append_new(defs, d)) {
            json_decref(defs);
            return CH_ENOMEM;
        }
    }
    json_decref(t->defs);
    t->defs = defs;
    return 0;
}

static bool name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > CH_TOOLS_MAX_NAME_BYTES)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-'))
            return false;
    return true;
}

int ch_tools_register(struct ch_tools *t, const struct ch_tool_spec *spec, struct ch_error *err)
{
    struct tool_entry *e = NULL;
    json_error_t jerr;
    const json_t *type;
    int rc = CH_EINVAL;

    if (!spec || !name_valid(spec->name) || !spec->start || !spec->abort || !spec->input_schema) {
        ch_error_set(err, rc,
                     "tool \"%.64s\": needs a name [a-zA-Z0-9_-]{1,64}, start, abort "
                     "and an input schema",
                     spec && spec->name ? spec->name : "");
        goto out;
    }
    if (find_tool(t, spec->name, true)) {
        rc = ch_error_set(err, CH_EEXIST, "tool \"%s\" is already registered", spec->name);
        goto out;
    }
    if (t->ntools >= CH_TOOLS_MAX_TOOLS) {
        rc = ch_error_set(err, CH_E_TOO_LARGE, "more than %d tools", CH_TOOLS_MAX_TOOLS);
        goto out;
    }
    rc = CH_ENOMEM;
    if (!(e = ch_calloc(1, sizeof(*e))) || !(e->name = ch_strdup(spec->name)) ||
        !(e->description = ch_strdup(spec->description ? spec->description : "")))
        goto out;
    rc = CH_EINVAL;
    e->schema = json_loads(spec->input_schema, JSON_REJECT_DUPLICATES, &jerr);
    if (!e->schema) {
        ch_error_set(err, rc, "tool %s: input schema is not JSON: %s", spec->name, jerr.text);
        goto out;
    }
    if ((rc = ch_tools_schema_check(e->schema, err)) != 0)
        goto out;
    type = json_object_get(e->schema, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "object")) {
        rc = ch_error_set(err, CH_EINVAL, "tool %s: input schema must have type \"object\"", spec->name);
        goto out;
    }
    e->start = spec->start;
    e->abort = spec->abort;
    e->data = spec->data;
    e->internal = spec->internal;
    e->hidden = spec->hidden || spec->internal;
    e->max_result_bytes = CH_MIN(spec->max_result_bytes, (size_t)CH_TOOLS_MAX_RESULT_BYTES);
    t->tools[t->ntools++] = e;
    rc = rebuild_defs(t);
    if (rc) {
        t->tools[--t->ntools] = NULL;
        ch_error_set(err, rc, "out of memory");
    }
out:
    if (rc)
        entry_free(e);
    return rc;
}

int ch_tools_new(uv_loop_t *loop, struct ch_curlm *curlm, const struct ch_tools_opts *opts, struct ch_tools **out,
                 struct ch_error *err)
{
    static const struct ch_tools_opts none;
    struct ch_tools *t;
    const char *tzdir;
    int rc = CH_ENOMEM;

    if (!opts)
        opts = &none;
    if (!loop || !curlm)
        return ch_error_set(err, CH_EINVAL, "tools need a loop and an outbound HTTP manager");
    t = ch_calloc(1, sizeof(*t));
    if (!t)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    t->loop = loop;
    t->curlm = curlm;
    t->timeout_ms =
        opts->timeout_ms ? CH_MIN(opts->timeout_ms, (uint64_t)CH_TOOLS_MAX_TIMEOUT_MS) : CH_TOOLS_DEF_TIMEOUT_MS;
    t->max_result_bytes = opts->max_result_bytes ? opts->max_result_bytes : CH_TOOLS_DEF_MAX_RESULT_BYTES;
    t->max_result_bytes = CH_MAX(t->max_result_bytes, (size_t)CH_TOOLS_MIN_RESULT_BYTES);
    t->max_result_bytes = CH_MIN(t->max_result_bytes, (size_t)CH_TOOLS_MAX_RESULT_BYTES);
    /* Read once here: getenv is not safe against a concurrent setenv, and
     * the zone files are read on the thread pool later. */
    tzdir = opts->tz_dir ? opts->tz_dir : getenv("TZDIR");
    t->tz_dir = ch_strdup(tzdir && *tzdir ? tzdir : "/usr/share/zoneinfo");
    if (!t->tz_dir || !(t->defs = json_array())) {
        ch_error_set(err, rc, "out of memory");
        goto out;
    }
    rc = host_list_init(&t->http_allow, opts->http_allow_hosts, opts->http_allow_count, "tools.http.allowHosts", err);
    if (rc == 0)
        rc = host_list_init(&t->fetch_allow, opts->fetch_allow_hosts, opts->fetch_allow_count,
                            "tools.web.fetch.allowHosts", err);
    if (rc == 0)
        rc = tools_register_builtin(t, t->http_allow.n > 0, !opts->no_web_fetch, err);
out:
    if (rc) {
        for (size_t i = 0; i < t->ntools; i++)
            entry_free(t->tools[i]);
        host_list_release(&t->http_allow);
        host_list_release(&t->fetch_allow);
        json_decref(t->defs);
        ch_free(t->tz_dir);
        ch_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static void tools_free(struct ch_tools *t)
{
    for (size_t i = 0; i < t->ntools; i++)
        entry_free(t->tools[i]);
    host_list_release(&t->http_allow);
    host_list_release(&t->fetch_allow);
    json_decref(t->defs);
    ch_free(t->tz_dir);
    ch_free(t);
}

static void on_tools_closed(uv_handle_t *h)
{
    struct ch_tools *t = h->data;
    void (*cb)(void *) = t->close_cb;
    void *data = t->close_data;

    tools_free(t);
    if (cb)
        cb(data);
}

void ch_tools_close(struct ch_tools *t, void (*cb)(void *data), void *data)
{
    if (!t || t->closing)
        return;
    t->closing = true;
    t->close_cb = cb;
    t->close_data = data;
    /* The handle exists only so the close callback runs on a later loop
     * iteration even when no call is in flight. */
    uv_timer_init(t->loop, &t->close_timer);
    t->close_timer.data = t;
    for (struct ch_tool_call *c = t->calls; c; c = c->next)
        ch_tool_call_abort(c);
    if (t->ncalls == 0)
        uv_close((uv_handle_t *)&t->close_timer, on_tools_closed);
}

const json_t *ch_tools_definitions(const struct ch_tools *t)
{
    return t->defs;
}

bool ch_tools_has(const struct ch_tools *t, const char *name)
{
    return name && find_tool(t, name, false) != NULL;
}

uint64_t ch_tools_timeout_ms(const struct ch_tools *t)
{
    return t->timeout_ms;
}

uv_loop_t *ch_tools_loop(const struct ch_tools *t)
{
    return t->loop;
}

struct ch_curlm *ch_tools_curlm(const struct ch_tools *t)
{
    return t->curlm;
}

/* ------------------------------------------------------------------ */
/* Calls                                                                */
/* ------------------------------------------------------------------ */

static void on_call_closed(uv_handle_t *h)
{
    struct ch_tool_call *c = h->data;
    struct ch_tools *t = c->tools;

    if (c->prev)
        c->prev->next = c->next;
    else
        t->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    t->ncalls--;
    ch_free(c->text);
    json_decref(c->json);
    ch_free(c);
    if (t->closing && t->ncalls == 0)
        uv_close((uv_handle_t *)&t->close_timer, on_tools_closed);
}

static void deliver(struct ch_tool_call *c)
{
    struct ch_tool_result res = {
        .is_error = c->is_error,
        .content = c->text ? c->text : "",
        .content_len = c->text_len,
        .json = c->json,
        .timed_out = c->timed_out,
        .aborted = c->aborted,
        .refused = c->refused && c->is_error,
        .duration_ms = uv_now(c->tools->loop) - c->start_ms,
    };

    c->state = CALL_DONE;
    ch_log_debug("tool %s: %s in %llu ms", c->tool ? c->tool->name : "(none)", c->is_error ? "error" : "ok",
                 (unsigned long long)res.duration_ms);
    c->cb(c, &res, c->cb_data);
    uv_close((uv_handle_t *)&c->timer, on_call_closed);
}

static void on_call_timer(uv_timer_t *timer)
{
    struct ch_tool_call *c = timer->data;

    if (c->state == CALL_REPLIED) {
        deliver(c);
    } else if (c->state == CALL_RUNNING) {
        /* The deadline: stop the work; the tool replies once it has. */
        c->timed_out = true;
        c->state = CALL_ABORTING;
        c->tool->abort(c);
    }
}

/* Store text as the result: valid UTF-8, cut at the cap with a marker. */
static int store_text(struct ch_tool_call *c, const char *text, size_t len)
{
    size_t max = c->max_result_bytes, keep;
    struct ch_buf b;
    bool truncated;
    int rc;

    /* Sanitising can triple invalid bytes; cut the input first. */
    ch_buf_init(&b, max * 3 + TRUNC_MARKER_ROOM);
    keep = text_prefix_bytes(text, len, max);
    truncated = keep < len;
    rc = text_append_utf8(&b, text, keep);
    if (rc == 0 && b.len > max) {
        b.len = text_prefix_bytes(b.data, b.len, max);
        b.data[b.len] = '\0';
        truncated = true;
    }
    if (rc == 0 && truncated)
        rc = ch_buf_appendf(&b, "\n[truncated: %zu bytes, the first %zu shown]", len, b.len);
    if (rc == 0 && !b.data)
        rc = ch_buf_append(&b, "", 0);
    if (rc) {
        ch_buf_release(&b);
        return rc;
    }
    c->text = ch_buf_detach(&b, &c->text_len);
    return 0;
}

void ch_tool_call_reply(struct ch_tool_call *c, bool is_error, const char *text, size_t len, json_t *json)
{
    char msg[200];

    if (c->state == CALL_REPLIED || c->state == CALL_DONE) {
        ch_log_warn("tool %s replied twice; the second reply is ignored", c->tool ? c->tool->name : "(none)");
        json_decref(json);
        return;
    }
    if (c->state == CALL_ABORTING) {
        /* The registry's reason wins: the tool only reports it stopped. */
        if (c->timed_out)
            snprintf(msg, sizeof(msg),
                     "tool %s timed out after %llu ms and was stopped "
                     "(limit: TOOL_TIMEOUT / tools.timeoutSeconds)",
                     c->tool->name, (unsigned long long)c->timeout_ms);
        else
            snprintf(msg, sizeof(msg), "tool %s was aborted before it finished", c->tool->name);
        json_decref(json);
        json = NULL;
        text = msg;
        len = strlen(msg);
        is_error = true;
    }
    c->is_error = is_error;
    c->json = json;
    if (store_text(c, text ? text : "", text ? len : 0) != 0) {
        /* Out of memory: a static text still reaches the model. */
        c->text = ch_strdup("tool result lost: out of memory");
        c->text_len = c->text ? strlen(c->text) : 0;
        c->is_error = true;
    }
    c->state = CALL_REPLIED;
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_call_timer, 0, 0);
}

void ch_tool_call_replyf(struct ch_tool_call *c, bool is_error, const char *fmt, ...)
{
    struct ch_buf b;
    va_list ap;

    ch_buf_init(&b, MAX_REPLYF_BYTES);
    va_start(ap, fmt);
    if (ch_buf_vappendf(&b, fmt, ap) == CH_E_TOO_LARGE)
        ch_buf_append_str(&b, "...");
    va_end(ap);
    ch_tool_call_reply(c, is_error, b.data ? b.data : "", b.len, NULL);
    ch_buf_release(&b);
}

void ch_tool_call_mark_refused(struct ch_tool_call *c)
{
    c->refused = true;
}

static void reply_unknown(struct ch_tool_call *c, const char *name)
{
    c->refused = true;
    struct ch_buf b;

    ch_buf_init(&b, 2048);
    ch_buf_appendf(&b, "unknown tool \"%.64s\"; available tools:", name);
    for (size_t i = 0, n = 0; i < c->tools->ntools; i++) {
        if (!c->tools->tools[i]->hidden)
            ch_buf_appendf(&b, "%s %s", n++ ? "," : "", c->tools->tools[i]->name);
    }
    ch_tool_call_reply(c, true, b.data ? b.data : "unknown tool", b.len, NULL);
    ch_buf_release(&b);
}

static int call_start(struct ch_tools *t, const char *name, const json_t *input, uint64_t timeout_ms,
                      ch_tool_done_cb cb, void *data, struct ch_tool_call **out, bool internal_ok)
{
    const struct tool_entry *e;
    struct ch_tool_call *c;
    char msg[400];
    int rc;

    if (!t || !name || !cb)
        return CH_EINVAL;
    if (t->closing)
        return CH_ECLOSED;
    c = ch_calloc(1, sizeof(*c));
    if (!c)
        return CH_ENOMEM;
    c->tools = t;
    c->cb = cb;
    c->cb_data = data;
    c->state = CALL_RUNNING;
    c->timeout_ms = timeout_ms ? CH_MIN(timeout_ms, (uint64_t)CH_TOOLS_MAX_TIMEOUT_MS) : t->timeout_ms;
    c->start_ms = uv_now(t->loop);
    c->deadline_ms = c->start_ms + c->timeout_ms;
    c->max_result_bytes = t->max_result_bytes;
    uv_timer_init(t->loop, &c->timer);
    c->timer.data = c;
    c->next = t->calls;
    if (t->calls)
        t->calls->prev = c;
    t->calls = c;
    t->ncalls++;

    e = find_tool(t, name, internal_ok);
    if (!e) {
        reply_unknown(c, name);
    } else if (ch_tools_schema_validate(e->schema, input, "input", msg, sizeof(msg)) != 0) {
        c->refused = true;
        ch_tool_call_replyf(c, true,
                            "invalid input for tool %s: %s. Fix the arguments to match "
                            "the tool's input_schema and call it again.",
                            e->name, msg);
    } else {
        c->tool = e;
        if (e->max_result_bytes)
            c->max_result_bytes = e->max_result_bytes;
        rc = e->start(c, input);
        if (rc && c->state == CALL_RUNNING)
            ch_tool_call_replyf(c, true, "tool %s failed: %s", e->name, ch_strerror(rc));
        if (c->state == CALL_RUNNING)
            uv_timer_start(&c->timer, on_call_timer, c->timeout_ms, 0);
    }
    if (out)
        *out = c;
    return 0;
}

int ch_tool_call_start(struct ch_tools *t, const char *name, const json_t *input, uint64_t timeout_ms,
                       ch_tool_done_cb cb, void *data, struct ch_tool_call **out)
{
    return call_start(t, name, input, timeout_ms, cb, data, out, false);
}

int ch_tool_call_start_internal(struct ch_tools *t, const char *name, const json_t *input, uint64_t timeout_ms,
                                ch_tool_done_cb cb, void *data, struct ch_tool_call **out)
{
    return call_start(t, name, input, timeout_ms, cb, data, out, true);
}

int ch_tools_check_input(const struct ch_tools *t, const char *name, const json_t *input, char *msg, size_t cap)
{
    const struct tool_entry *e = t && name ? find_tool(t, name, false) : NULL;

    if (!e)
        return CH_ENOTFOUND;
    return ch_tools_schema_validate(e->schema, input, "input", msg, cap) ? CH_EINVAL : 0;
}

void ch_tool_call_abort(struct ch_tool_call *c)
{
    if (!c || c->state != CALL_RUNNING)
        return;
    c->aborted = true;
    c->state = CALL_ABORTING;
    uv_timer_stop(&c->timer);
    c->tool->abort(c);
}

void *ch_tool_call_spec_data(const struct ch_tool_call *c)
{
    return c->tool ? c->tool->data : NULL;
}

struct ch_tools *ch_tool_call_tools(const struct ch_tool_call *c)
{
    return c->tools;
}

void ch_tool_call_set_state(struct ch_tool_call *c, void *state)
{
    c->impl = state;
}

void *ch_tool_call_state(const struct ch_tool_call *c)
{
    return c->impl;
}

uint64_t ch_tool_call_remaining_ms(const struct ch_tool_call *c)
{
    uint64_t now = uv_now(c->tools->loop);

    return now >= c->deadline_ms ? 0 : c->deadline_ms - now;
}

bool ch_tool_call_is_aborting(const struct ch_tool_call *c)
{
    return c->state == CALL_ABORTING;
}
