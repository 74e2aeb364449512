/*
 * oc_methods_tools.c: the WebSocket `tools.invoke` (operator.write), the
 * RPC face of POST /tools/invoke: the same checks (tools_invoke.c), and
 * OpenClaw's protocol-shaped answers, always a successful res frame:
 * {ok: true, toolName, output: {content, details}, source: "core"} or
 * {ok: false, toolName, error: {code, message}} with code
 * validation_error (a bad request), not_found (no such tool here) or
 * internal_error (the tool refused its input or failed), the mapping of
 * OpenClaw's tools-invoke adapter.
 */
#include <string.h>

#include "api/oc_internal.h"
#include "tools/tools.h"

struct oc_inv {
    struct oc_conn *conn; /* ref */
    char *id;             /* owned: the request id */
    char name[CH_TOOLS_MAX_NAME_BYTES + 1];
};

static void answer_fail(struct oc_conn *c, const char *id, const char *name, const char *code, const char *msg)
{
    ch_oc_res_ok(c, id,
                 json_pack("{s:b, s:s, s:{s:s, s:s}}", "ok", 0, "toolName", name, "error", "code", code, "message",
                           msg && *msg ? msg : code));
}

static void on_done(struct ch_tool_call *call, const struct ch_tool_result *res, void *data)
{
    struct oc_inv *v = data;
    json_t *out;

    (void)call;
    if (res->is_error) {
        answer_fail(v->conn, v->id, v->name, "internal_error", res->content);
    } else if ((out = ch_tools_invoke_output(res)) != NULL) {
        ch_oc_res_ok(v->conn, v->id,
                     json_pack("{s:b, s:s, s:o, s:s}", "ok", 1, "toolName", v->name, "output", out, "source", "core"));
    } else {
        answer_fail(v->conn, v->id, v->name, "internal_error", "the result could not be encoded");
    }
    ch_oc_conn_unref(v->conn);
    ch_free(v->id);
    ch_free(v);
}

void ch_oc_m_tools_invoke(struct oc_req *q)
{
    struct ch_api *a = q->conn->oc->api;
    const char *name = json_string_value(json_object_get(q->params, "name"));
    struct oc_inv *v;
    json_t *args;
    char msg[512];
    int kind;

    kind = ch_tools_invoke_prepare(a, q->params, name, &args, msg, sizeof(msg));
    if (kind) {
        answer_fail(q->conn, q->id, name ? name : "",
                    kind == CH_INVOKE_INVALID     ? "validation_error"
                    : kind == CH_INVOKE_NOT_FOUND ? "not_found"
                                                  : "internal_error",
                    msg);
        return;
    }
    v = ch_calloc(1, sizeof(*v));
    if (v && !(v->id = ch_strdup(q->id))) {
        ch_free(v);
        v = NULL;
    }
    if (!v) {
        json_decref(args);
        ch_oc_unavailable(q, "out of memory");
        return;
    }
    v->conn = q->conn;
    ch_str_copy(v->name, sizeof(v->name), name);
    ch_oc_conn_ref(v->conn);
    /* A connection that closes meanwhile just loses the answer: the call
     * is bounded by the tool timeout. */
    if (ch_tool_call_start(ch_agent_tools(a->agent), name, args, 0, on_done, v, NULL) != 0) {
        ch_oc_unavailable(q, "the tools are shutting down");
        ch_oc_conn_unref(v->conn);
        ch_free(v->id);
        ch_free(v);
    }
    json_decref(args);
}
