/*
 * run_tools.c: the RUNNING_TOOLS state.  The tool_use blocks of the last
 * reply run one after another (the model asked in that order; tools with
 * side effects, like posting a callback, must not race), each bounded by
 * TOOL_TIMEOUT.  Results go back to the model as one user turn of
 * tool_result blocks.  The same tool with the same arguments three times
 * in a row stops the run: the model is looping.  A call to one of the
 * caller's own tools is not run: it is answered as pending and ends the
 * run after the round (run_client.c).
 */
#include <string.h>

#include "agent/internal.h"

#define LOOP_REPEATS 3

static void emit_tool(struct ch_run *r, struct ch_agent_event *ev)
{
    ev->run_id = r->run_id;
    ev->session_key = r->session_key;
    ev->session_id = r->session_id;
    ev->source = r->source;
    ev->channel = r->channel;
    ev->seq = ++r->seq;
    ev->ts_ms = ch_now_ms();
    ev->meta = r->meta;
    ch_bus_emit(r->agent, ev);
}

static void next_tool(struct ch_run *r);

static void add_result(struct ch_run *r, const char *id, const char *name, const char *content, bool is_error)
{
    struct ch_agent_event ev = {.type = CH_AGENT_EV_TOOL_RESULT};

    json_array_append_new(r->tool_results, json_pack("{s:s, s:s, s:s, s:b}", "type", "tool_result", "tool_use_id", id,
                                                     "content", content, "is_error", is_error));
    ev.tool_name = name;
    ev.tool_id = id;
    ev.tool_result = content;
    ev.tool_is_error = is_error;
    emit_tool(r, &ev);
}

static void on_tool_done(struct ch_tool_call *call, const struct ch_tool_result *res, void *data)
{
    struct ch_run *r = data;
    const json_t *blk = json_array_get(r->pending_tools, r->tool_index);

    (void)call;
    r->tool = NULL;
    if (r->state != RUN_RUNNING_TOOLS) {
        ch_run_unref(r);
        return;
    }
    add_result(r, json_string_value(json_object_get(blk, "id")), json_string_value(json_object_get(blk, "name")),
               res->content ? res->content : "", res->is_error);
    r->tool_index++;
    next_tool(r);
    ch_run_unref(r);
}

static bool looping(struct ch_run *r, const char *name, const json_t *input)
{
    char *args = json_dumps(input, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *sig_src = ch_sprintf("%s\n%s", name, args ? args : "");
    char sig[65];

    ch_free(args);
    if (!sig_src)
        return false;
    ch_sha256_hex(sig_src, strlen(sig_src), sig);
    ch_free(sig_src);
    if (!strcmp(sig, r->last_sig)) {
        r->same_sig_count++;
    } else {
        memcpy(r->last_sig, sig, sizeof(sig));
        r->same_sig_count = 1;
    }
    return r->same_sig_count >= LOOP_REPEATS;
}

static void tools_finished(struct ch_run *r)
{
    json_t *turn = json_pack("{s:s, s:O}", "role", "user", "content", r->tool_results);
    size_t bytes;

    ch_persist_append(r, "tool", json_incref(r->tool_results), NULL, NULL, 0, &bytes);
    ch_run_history_append(r, turn, "user", bytes);
    json_decref(r->tool_results);
    r->tool_results = NULL;
    json_decref(r->pending_tools);
    r->pending_tools = NULL;
    r->rounds++;
    if (json_array_size(r->client_calls))
        ch_run_finish(r, "ok", NULL, NULL); /* the client runs its calls (run_client.c) */
    else
        ch_run_call_llm(r);
}

static void next_tool(struct ch_run *r)
{
    struct ch_agent *a = r->agent;
    struct ch_agent_event ev = {.type = CH_AGENT_EV_TOOL_START};
    const json_t *blk, *input;
    const char *name, *id, *input_error;
    int rc;

    if (r->tool_index >= json_array_size(r->pending_tools)) {
        tools_finished(r);
        return;
    }
    blk = json_array_get(r->pending_tools, r->tool_index);
    name = json_string_value(json_object_get(blk, "name"));
    id = json_string_value(json_object_get(blk, "id"));
    input = json_object_get(blk, "input");
    input_error = json_string_value(json_object_get(blk, "input_error"));
    if (!name || !id) {
        ch_run_finish(r, "error", "unknown", "the model sent a tool call without a name or id");
        return;
    }
    if (looping(r, name, input)) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "stopped: the model called %s %d times in a row with the same arguments, which looks like a loop",
                 name, LOOP_REPEATS);
        ch_run_finish(r, "error", NULL, msg); /* the agent's stop, not a provider failure */
        return;
    }
    ev.tool_name = name;
    ev.tool_id = id;
    ev.tool_args = input;
    emit_tool(r, &ev);
    r->tool_calls++;
    a->stats.tool_calls++;
    if (!input_error && ch_run_is_client_tool(r, name)) {
        char *pending = ch_run_client_call(r, blk);
        add_result(r, id, name, pending ? pending : "pending: delegated to the client", false);
        ch_free(pending);
        r->tool_index++;
        next_tool(r);
        return;
    }
    if (input_error || !a->tools) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%s", input_error ? input_error : "no tools are available in this gateway");
        add_result(r, id, name, msg, true);
        r->tool_index++;
        next_tool(r);
        return;
    }
    ch_run_ref(r);
    rc = ch_tool_call_start(a->tools, name, input, (uint64_t)a->tool_timeout_ms, on_tool_done, r, &r->tool);
    if (rc) {
        ch_run_unref(r);
        r->tool = NULL;
        add_result(r, id, name, ch_strerror(rc), true);
        r->tool_index++;
        next_tool(r);
    }
}

void ch_run_start_tools(struct ch_run *r)
{
    ch_run_set_state(r, RUN_RUNNING_TOOLS);
    r->tool_index = 0;
    json_decref(r->tool_results);
    r->tool_results = json_array();
    if (!r->tool_results) {
        ch_run_finish(r, "error", "unknown", "out of memory");
        return;
    }
    next_tool(r);
}
