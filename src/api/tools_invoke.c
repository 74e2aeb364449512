/*
 * tools_invoke.c: POST /tools/invoke, OpenClaw's direct tool call: one
 * tool of the agent's registry run outside any agent turn.
 *
 * Body {tool | name (name wins), action?, args?, sessionKey?, agentId?,
 * idempotencyKey?, dryRun?}; `action` joins args.action when the tool's
 * schema has that property and args does not set it.  Answers as OpenClaw:
 * 200 {ok: true, result: {content: [{type: "text", text}], details}}; 400
 * {ok: false, error: {type: "invalid_request" | "tool_error", message}}
 * for a bad request, arguments that fail the tool's schema, or input the
 * tool turned down (an unknown time zone, a host not allowed, a blocked
 * address); 404 {type: "not_found"} for a tool that does not exist or is
 * denied here; 500 {type: "tool_error"} when the tool itself fails (a
 * timeout, a connection error).
 *
 * The chat scope, OpenClaw's operator.write: a token that may run the
 * agent may already have the model call these tools.  OpenClaw's deny list
 * (exec, spawn, shell, fs_*, apply_patch, sessions_spawn, sessions_send,
 * cron, gateway, nodes) applies even to tools chela may add later, with
 * gateway.tools.deny adding names and gateway.tools.allow taking names off
 * the default list.  A client that disconnects aborts the call.
 */
#include <string.h>

#include "api/internal.h"
#include "tools/tools.h"

static const char *const DENY[] = {"exec",        "spawn",          "shell",         "fs_write", "fs_delete", "fs_move",
                                   "apply_patch", "sessions_spawn", "sessions_send", "cron",     "gateway",   "nodes"};

struct inv {
    struct ch_http_req *req; /* ref */
    struct ch_tool_call *call;
    bool done;
};

static void fail(struct ch_http_req *r, int status, const char *type, const char *msg)
{
    ch_http_respond_json(r, status, json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "type", type, "message", msg));
}

static bool listed(const json_t *list, const char *name)
{
    size_t i;
    json_t *v;

    json_array_foreach(list, i, v)
    {
        if (json_is_string(v) && !strcmp(json_string_value(v), name))
            return true;
    }
    return false;
}

static bool denied(const struct ch_api *a, const char *name)
{
    if (listed(ch_config_get(a->cfg, "gateway.tools.deny"), name))
        return true;
    for (size_t i = 0; i < CH_ARRAY_SIZE(DENY); i++)
        if (!strcmp(DENY[i], name))
            return !listed(ch_config_get(a->cfg, "gateway.tools.allow"), name);
    return false;
}

/* Does the tool's schema declare an `action` property? */
static bool takes_action(struct ch_tools *t, const char *name)
{
    size_t i;
    json_t *d;

    json_array_foreach(ch_tools_definitions(t), i, d)
    {
        const char *dn = json_string_value(json_object_get(d, "name"));
        if (dn && !strcmp(dn, name))
            return json_object_get(json_object_get(json_object_get(d, "input_schema"), "properties"), "action");
    }
    return false;
}

static void on_gone(struct ch_http_req *r, void *data)
{
    struct inv *v = data;

    (void)r;
    if (!v->done && v->call)
        ch_tool_call_abort(v->call);
}

static void respond(struct ch_http_req *r, const struct ch_tool_result *res)
{
    json_t *result;

    if (res->is_error) { /* refused input is the caller's error, anything else the tool's */
        fail(r, res->refused ? 400 : 500, "tool_error", res->content);
        return;
    }
    result = ch_tools_invoke_output(res);
    if (result)
        ch_http_respond_json(r, 200, json_pack("{s:b, s:o}", "ok", 1, "result", result));
    else
        fail(r, 500, "tool_error", "the result could not be encoded");
}

static void on_done(struct ch_tool_call *call, const struct ch_tool_result *res, void *data)
{
    struct inv *v = data;

    (void)call;
    v->done = true;
    v->call = NULL;
    if (!ch_http_req_is_closed(v->req)) {
        ch_http_req_on_close(v->req, NULL, NULL); /* still our request: unhook before answering */
        respond(v->req, res);
    }
    ch_http_req_unref(v->req);
    ch_free(v);
}

static const char *check_target(const json_t *body)
{
    const json_t *sk = json_object_get(body, "sessionKey"), *ag = json_object_get(body, "agentId");

    if (sk && !json_is_null(sk) && !json_is_string(sk))
        return "sessionKey must be a string";
    if (ag && !json_is_null(ag) && !json_is_string(ag))
        return "agentId must be a string";
    if (json_is_string(ag) && strcmp(json_string_value(ag), "main") && strcmp(json_string_value(ag), "default"))
        return "unknown agentId; this gateway runs the agent \"main\"";
    return NULL;
}

int ch_tools_invoke_prepare(struct ch_api *a, const json_t *params, const char *name, json_t **args, char *msg,
                            size_t cap)
{
    struct ch_tools *t = a->agent ? ch_agent_tools(a->agent) : NULL;
    const json_t *action = json_object_get(params, "action");
    const char *why, *sk;
    char canon[CH_SESSION_KEY_MAX + 1];
    int rc;

    *args = NULL;
    if (!name || !*name) {
        snprintf(msg, cap, "tools.invoke requires name");
        return CH_INVOKE_INVALID;
    }
    if ((why = check_target(params)) != NULL) {
        snprintf(msg, cap, "%s", why);
        return CH_INVOKE_INVALID;
    }
    /* OpenClaw resolves the session (its canonical key) before the tool:
     * a malformed agent key is refused even though no tool here uses it. */
    sk = json_string_value(json_object_get(params, "sessionKey"));
    if (sk && ch_api_session_key(sk, canon) == CH_EINVAL) {
        ch_session_key_why(CH_EINVAL, sk, msg, cap);
        return CH_INVOKE_INVALID;
    }
    if (!t || denied(a, name) || !ch_tools_has(t, name)) {
        snprintf(msg, cap, "Tool not available: %.200s", name);
        return CH_INVOKE_NOT_FOUND;
    }
    *args = json_is_object(json_object_get(params, "args")) ? json_deep_copy(json_object_get(params, "args"))
                                                            : json_object();
    if (json_is_string(action) && !json_object_get(*args, "action") && takes_action(t, name))
        json_object_set(*args, "action", (json_t *)action);
    if ((rc = ch_tools_check_input(t, name, *args, msg, cap)) != 0) {
        if (rc != CH_EINVAL)
            snprintf(msg, cap, "%s", ch_strerror(rc));
        json_decref(*args);
        *args = NULL;
        return CH_INVOKE_BAD_INPUT;
    }
    return 0;
}

json_t *ch_tools_invoke_output(const struct ch_tool_result *res)
{
    return json_pack("{s:[{s:s, s:s%}], s:O?}", "content", "type", "text", "text", res->content, res->content_len,
                     "details", res->json);
}

void ch_tools_invoke(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    json_t *body, *args = NULL;
    const json_t *nm;
    json_error_t jerr;
    char msg[512];
    struct inv *v;
    int kind;

    body = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &jerr);
    if (!json_is_object(body)) {
        fail(r, 400, "invalid_request", body ? "the body must be a JSON object" : jerr.text);
        goto out;
    }
    nm = json_object_get(body, "name");
    if (!json_is_string(nm))
        nm = json_object_get(body, "tool");
    kind = ch_tools_invoke_prepare(a, body, json_string_value(nm), &args, msg, sizeof(msg));
    if (kind) {
        fail(r, kind == CH_INVOKE_NOT_FOUND ? 404 : 400,
             kind == CH_INVOKE_INVALID     ? "invalid_request"
             : kind == CH_INVOKE_NOT_FOUND ? "not_found"
                                           : "tool_error",
             msg);
        goto out;
    }
    if (!(v = ch_calloc(1, sizeof(*v)))) {
        fail(r, 500, "tool_error", "out of memory");
        goto out;
    }
    v->req = r;
    ch_http_req_ref(r);
    ch_http_req_on_close(r, on_gone, v);
    if (ch_tool_call_start(ch_agent_tools(a->agent), json_string_value(nm), args, 0, on_done, v, &v->call) != 0) {
        ch_http_req_on_close(r, NULL, NULL);
        fail(r, 503, "unavailable", "the tools are shutting down");
        ch_http_req_unref(r);
        ch_free(v);
    }
out:
    json_decref(args);
    json_decref(body);
}
