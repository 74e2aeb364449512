/*
 * run_llm.c: the CALLING_LLM and COMPACTING states.  Before each call the
 * history is checked against the model's context window minus the reply
 * budget; above agents.defaults.compaction.ratio of it, the older turns
 * are summarised through the model into a compaction entry (OpenClaw's
 * compaction), and the call goes out with the summary plus the newest
 * turns.  Text deltas are forwarded to subscribers as they arrive.
 */
#include <string.h>

#include "agent/internal.h"

static void emit_ev(struct ch_run *r, struct ch_agent_event *ev)
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

void ch_run_abort_inflight(struct ch_run *r)
{
    if (r->call)
        ch_llm_call_abort(r->call);
    if (r->tool)
        ch_tool_call_abort(r->tool);
}

static void on_llm_event(const struct ch_llm_event *e, void *data)
{
    struct ch_run *r = data;
    struct ch_agent_event ev = {.type = CH_AGENT_EV_TEXT};

    if (e->type != CH_LLM_EV_TEXT_DELTA || r->state != RUN_CALLING_LLM || !e->text.len)
        return;
    if (!r->first_token_ms)
        r->first_token_ms = ch_now_ms();
    /* Text past the cap is dropped from the cumulative copy, not the stream. */
    ch_buf_append(&r->text, e->text.p, e->text.len);
    ch_buf_append(&r->round_text, e->text.p, e->text.len);
    ev.delta = e->text;
    ev.text = (struct ch_str){r->text.data ? r->text.data : "", r->text.len};
    emit_ev(r, &ev);
}

static const char *model_ref(struct ch_run *r)
{
    if (r->model_ref)
        return r->model_ref;
    return r->model_override; /* sessions.patch sets it; NULL: default chain */
}

static void set_str(char **dst, const char *src)
{
    ch_free(*dst);
    *dst = src && *src ? ch_strdup(src) : NULL;
}

/* Collect tool_use blocks of the reply; NULL when there are none. */
static json_t *tool_uses(const json_t *reply)
{
    json_t *out = json_array(), *blk;
    size_t i;

    json_array_foreach(json_object_get(reply, "content"), i, blk)
    {
        const char *t = json_string_value(json_object_get(blk, "type"));
        if (t && !strcmp(t, "tool_use"))
            json_array_append(out, blk);
    }
    if (json_array_size(out) == 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static void on_llm_done(struct ch_llm_call *call, const struct ch_llm_result *res, void *data)
{
    struct ch_run *r = data;
    struct ch_agent_event ev = {.type = CH_AGENT_EV_USAGE};
    json_t *reply, *uses;

    r->call = NULL;
    if (r->state != RUN_CALLING_LLM) {
        ch_llm_call_free(call);
        ch_run_unref(r);
        return;
    }
    ch_llm_usage_add(&r->usage, &res->usage);
    r->cost_usd += res->cost_usd;
    if (res->provider && *res->provider)
        set_str(&r->provider, res->provider);
    if (res->model && *res->model)
        set_str(&r->model, res->model);
    if (res->usage.input_tokens || res->usage.output_tokens) {
        ev.usage = res->usage;
        emit_ev(r, &ev);
    }
    if (res->rc) {
        const char *cls = r->timed_out ? "timeout" : ch_llm_err_name(res->err);
        const char *status = r->abort_requested ? "aborted" : r->timed_out ? "timeout" : "error";
        /* Keep what streamed before the failure in the transcript. */
        if (res->message_json && r->round_text.len)
            ch_persist_append(r, "assistant", json_deep_copy(json_object_get(res->message_json, "content")), r->model,
                              &res->usage, (int64_t)res->latency_ms, NULL);
        ch_run_finish(r, status, res->rc == CH_ECANCELED && !r->timed_out ? NULL : cls,
                      res->message[0] ? res->message : ch_strerror(res->rc));
        ch_llm_call_free(call);
        ch_run_unref(r);
        return;
    }
    reply = res->message_json;
    uses = reply ? tool_uses(reply) : NULL;
    if (reply) {
        bool more = uses && r->rounds < r->agent->max_tool_rounds;
        size_t bytes;
        struct ch_store_job *job = ch_persist_prepare(r, "assistant", json_deep_copy(json_object_get(reply, "content")),
                                                      r->model, &res->usage, (int64_t)res->latency_ms, &bytes);
        if (more) {
            if (ch_persist_queue(r, job) != 0)
                bytes = 0;
            ch_run_history_append(
                r, json_pack("{s:s, s:O}", "role", "assistant", "content", json_object_get(reply, "content")),
                "assistant", bytes);
        } else if (job) {
            /* The run finishes now: the reply is stored by the finish job. */
            r->reply_job = job;
        } else {
            ch_log_error("run %s: cannot save the reply: out of memory", r->run_id);
            ch_tcache_drop(&r->agent->tcache, r->tentry);
        }
    }
    ch_llm_call_free(call);
    if (uses && r->rounds >= r->agent->max_tool_rounds) {
        char msg[200];
        json_decref(uses);
        snprintf(msg, sizeof(msg),
                 "stopped after %d tool rounds (MAX_TOOL_ROUNDS): the model asked for more tools; the task needs "
                 "more steps or a higher agents.defaults.maxToolRounds",
                 r->agent->max_tool_rounds);
        /* No error class: the provider answered every call; the agent stopped. */
        ch_run_finish(r, "error", NULL, msg);
    } else if (uses) {
        json_decref(r->pending_tools);
        r->pending_tools = uses;
        /* Text around tool calls belongs to the run's cumulative text. */
        if (r->round_text.len)
            ch_buf_append_char(&r->text, '\n');
        ch_buf_reset(&r->round_text);
        ch_run_start_tools(r);
    } else {
        enum ch_llm_err err;
        if (ch_llm_stop_is_failure(res->stop, &err))
            ch_run_finish(r, "error", ch_llm_err_name(err), "the model refused to answer");
        else
            ch_run_finish(r, "ok", NULL, NULL);
    }
    ch_run_unref(r);
}

static int64_t context_window(struct ch_run *r)
{
    struct ch_llm_target t;
    const char *ref = model_ref(r);
    struct ch_llm_catalog *cat = ch_llm_client_catalog(r->agent->llm);

    if (cat && ch_llm_catalog_resolve(cat, ref, &t, NULL) == 0)
        return t.context_window;
    return CH_LLM_DEF_CONTEXT_WINDOW;
}

static void start_call(struct ch_run *r, const char *system, json_t *tools)
{
    struct ch_agent *a = r->agent;
    struct ch_llm_call_opts o = {0};
    int rc;

    ch_run_set_state(r, RUN_CALLING_LLM);
    ch_buf_reset(&r->round_text);
    o.model = model_ref(r);
    o.system = system;
    o.messages = r->history;
    o.tools = tools;
    o.max_tokens = r->max_tokens;
    o.temperature = r->temperature;
    o.has_temperature = r->has_temperature;
    o.sampling = r->sampling;
    o.on_event = on_llm_event;
    o.on_done = on_llm_done;
    o.data = r;
    ch_run_ref(r);
    rc = ch_llm_call_start(a->llm, &o, &r->call);
    if (rc) {
        r->call = NULL;
        ch_run_unref(r);
        ch_run_finish(r, "error", "unknown", ch_strerror(rc));
    }
}

/* ---- compaction ---- */

struct compact_ctx {
    struct ch_run *run;
    ssize_t cut;
    int64_t tokens_before;
};

static void on_summary_done(struct ch_llm_call *call, const struct ch_llm_result *res, void *data);

static void compact(struct ch_run *r, ssize_t cut, int64_t tokens_before)
{
    struct ch_llm_call_opts o = {0};
    char *text = ch_context_transcript_text(r->history, (size_t)cut, 512 * 1024);
    char *prompt = text ? ch_sprintf("Summarise the conversation below for your own later use. Keep every fact, "
                                     "decision, name, number and open question; drop pleasantries.\n\n%s",
                                     text)
                        : NULL;
    struct compact_ctx *cc = ch_calloc(1, sizeof(*cc));
    json_t *msgs =
        prompt ? json_pack("[{s:s, s:[{s:s, s:s}]}]", "role", "user", "content", "type", "text", "text", prompt) : NULL;
    int rc = CH_ENOMEM;

    ch_free(text);
    ch_free(prompt);
    if (cc && msgs) {
        ch_run_set_state(r, RUN_COMPACTING);
        cc->run = r;
        cc->cut = cut;
        cc->tokens_before = tokens_before;
        o.model = model_ref(r);
        o.messages = msgs;
        o.max_tokens = 2048;
        o.on_done = on_summary_done;
        o.data = cc;
        ch_run_ref(r);
        rc = ch_llm_call_start(r->agent->llm, &o, &r->call);
        if (rc)
            ch_run_unref(r);
    }
    json_decref(msgs);
    if (rc) {
        ch_free(cc);
        r->call = NULL;
        ch_log_warn("run %s: compaction could not start (%s); sending the full history", r->run_id, ch_strerror(rc));
        ch_run_call_llm(r);
    }
}

static void on_summary_done(struct ch_llm_call *call, const struct ch_llm_result *res, void *data)
{
    struct compact_ctx *cc = data;
    struct ch_run *r = cc->run;
    const json_t *blk;
    struct ch_buf sum;
    size_t i;

    r->call = NULL;
    if (r->state != RUN_COMPACTING)
        goto out;
    ch_buf_init(&sum, 512 * 1024);
    json_array_foreach(json_object_get(res->message_json, "content"), i, blk)
    {
        const char *t = json_string_value(json_object_get(blk, "text"));
        if (t)
            ch_buf_append_str(&sum, t);
    }
    ch_llm_usage_add(&r->usage, &res->usage);
    r->cost_usd += res->cost_usd;
    if (res->rc || !sum.len) {
        ch_log_warn("run %s: compaction failed (%s); sending the full history", r->run_id,
                    res->message[0] ? res->message : "empty summary");
    } else {
        /* The older turns become one summary turn, in memory and in the
         * transcript (the compaction entry replaces them for later runs). */
        json_t *kept = json_array();
        char *summary = ch_sprintf("Summary of the earlier part of this conversation:\n%s", sum.data);
        json_array_append_new(kept, json_pack("{s:s, s:[{s:s, s:s}]}", "role", "user", "content", "type", "text",
                                              "text", summary ? summary : ""));
        for (i = (size_t)cc->cut; i < json_array_size(r->history); i++)
            json_array_append(kept, json_array_get(r->history, i));
        json_decref(r->history);
        r->history = kept;
        r->hist_bytes = ch_context_json_size(kept);
        r->hist_images = r->hist_image_bytes = 0;
        for (i = 0; i < json_array_size(kept); i++)
            r->hist_image_bytes +=
                ch_context_image_bytes(json_object_get(json_array_get(kept, i), "content"), &r->hist_images);
        /* Persist only when the cut falls inside what was loaded (it
         * always does unless this run already grew the history past it). */
        if ((size_t)cc->cut < r->hist_seq_count)
            ch_persist_compaction(r, r->hist_seqs[cc->cut], sum.data, cc->tokens_before, &res->usage);
        ch_free(summary);
        r->agent->stats.compactions++;
    }
    ch_buf_release(&sum);
    ch_run_set_state(r, RUN_LOADING);
    r->rounds_compacted = true;
    ch_run_call_llm(r);
out:
    ch_llm_call_free(call);
    ch_free(cc);
    ch_run_unref(r);
}

/* Append msg (stolen) to the history; content_bytes: its content's
 * compact size when known, else 0 and the history is measured again. */
void ch_run_history_append(struct ch_run *r, json_t *msg, const char *role, size_t content_bytes)
{
    size_t n = json_array_size(r->history);

    if (!msg || json_array_append_new(r->history, msg) || !content_bytes) {
        r->hist_bytes = ch_context_json_size(r->history);
        return;
    }
    r->hist_bytes += ch_context_message_bytes(role, content_bytes) + (n ? 1 : 0);
}

/* Compact size of the tool list; measured once per list (the registry
 * builds a new array whenever it changes, and the memo holds a ref). */
static size_t tools_bytes(struct ch_agent *a, json_t *tools)
{
    if (!tools)
        return 0;
    if (tools != a->tools_memo) {
        json_decref(a->tools_memo);
        a->tools_memo = json_incref(tools);
        a->tools_memo_bytes = ch_context_json_size(tools);
    }
    return a->tools_memo_bytes;
}

void ch_run_call_llm(struct ch_run *r)
{
    struct ch_agent *a = r->agent;
    const json_t *defs = (!r->no_tools && a->tools) ? ch_tools_definitions(a->tools) : NULL;
    json_t *tools = ch_run_offered_tools(r, defs);
    char *system;
    int64_t budget, est, reply;
    ssize_t cut;

    if (r->abort_requested || r->timed_out) {
        json_decref(tools);
        ch_run_finish(r, r->timed_out ? "timeout" : "aborted", NULL, "aborted");
        return;
    }
    system = ch_context_system_prompt(a, r);
    if (!system) {
        json_decref(tools);
        ch_run_finish(r, "error", "unknown",
                      "the system prompt does not fit (1 MiB with the run's instructions) or "
                      "memory ran out");
        return;
    }
    r->context_window = context_window(r);
    reply = r->max_tokens > 0 ? r->max_tokens : CH_MAX(a->reserve_tokens, (int64_t)CH_LLM_DEF_MAX_TOKENS);
    budget = r->context_window - reply;
    /* An image counts as CH_IMAGE_EST_BYTES, not its base64 size. */
    est = ch_context_estimate_bytes(strlen(system),
                                    r->hist_bytes - CH_MIN(r->hist_bytes, r->hist_image_bytes) +
                                        r->hist_images * CH_IMAGE_EST_BYTES,
                                    tools_bytes(a, tools));
    r->context_tokens = est;
    if (!r->rounds_compacted && budget > 0 && (double)est > a->compaction_ratio * (double)budget &&
        (cut = ch_context_compaction_split(a, r->history, budget)) > 0) {
        ch_free(system);
        json_decref(tools);
        compact(r, cut, est);
        return;
    }
    start_call(r, system, tools);
    ch_free(system);
    json_decref(tools);
}
