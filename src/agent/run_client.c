/*
 * run_client.c: tools the caller runs itself (OpenClaw's clientTools, what
 * /v1/chat/completions and /v1/responses send as `tools` to an agent model).
 *
 * The model is offered the agent's tools and the client's.  A call to a
 * client tool is not run here: the model hears that it is pending, the
 * round's other calls run as usual, and the run then ends "ok" with the
 * client's calls in its result.  The caller answers them in its next
 * request (the tool results are that run's message), as OpenClaw does; the
 * pending result keeps the stored transcript valid for every provider,
 * since each tool_use block has its tool_result.
 */
#include <string.h>

#include "agent/internal.h"

int ch_agent_client_tools_check(struct ch_agent *a, const json_t *tools, char *msg, size_t cap)
{
    const json_t *t;
    size_t i, j;

    if (!json_is_array(tools)) {
        snprintf(msg, cap, "tools must be an array");
        return CH_EINVAL;
    }
    json_array_foreach(tools, i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        if (!name || !*name) {
            snprintf(msg, cap, "tools[%zu] has no name", i);
            return CH_EINVAL;
        }
        if (a->tools && ch_tools_has(a->tools, name)) {
            snprintf(msg, cap, "client tool name conflict: '%.80s' is one of the agent's own tools", name);
            return CH_EINVAL;
        }
        for (j = 0; j < i; j++) {
            if (!strcmp(name, json_string_value(json_object_get(json_array_get(tools, j), "name")))) {
                snprintf(msg, cap, "client tool name conflict: '%.80s' is given twice", name);
                return CH_EINVAL;
            }
        }
    }
    return 0;
}

bool ch_run_is_client_tool(const struct ch_run *r, const char *name)
{
    const json_t *t;
    size_t i;

    json_array_foreach(r->client_tools, i, t)
    {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n && !strcmp(n, name))
            return true;
    }
    return false;
}

json_t *ch_run_offered_tools(struct ch_run *r, const json_t *defs)
{
    json_t *all;

    if (!json_array_size(r->client_tools))
        return json_array_size(defs) ? json_incref((json_t *)defs) : NULL;
    /* Rebuilt each round: the registry may have changed (a reload); the
     * array only holds references. */
    all = json_array();
    if (!all || (defs && json_array_extend(all, (json_t *)defs)) || json_array_extend(all, r->client_tools)) {
        json_decref(all);
        return NULL;
    }
    return all;
}

char *ch_run_client_call(struct ch_run *r, const json_t *tool_use)
{
    json_t *res =
        json_pack("{s:s, s:s?, s:s}", "status", "pending", "tool", json_string_value(json_object_get(tool_use, "name")),
                  "message", "Tool execution delegated to client");
    char *s = res ? json_dumps(res, JSON_COMPACT) : NULL;

    json_decref(res);
    if (!r->client_calls)
        r->client_calls = json_array();
    json_array_append(r->client_calls, (json_t *)tool_use);
    return s;
}

int ch_run_put_client_calls(const struct ch_run *r, struct ch_buf *b)
{
    char *s;
    int rc;

    if (!json_array_size(r->client_calls))
        return 0;
    s = json_dumps(r->client_calls, JSON_COMPACT);
    if (!s)
        return CH_ENOMEM;
    rc = ch_buf_append_str(b, ",\"clientToolCalls\":");
    rc = rc ? rc : ch_buf_append_str(b, s);
    ch_free(s);
    return rc;
}
