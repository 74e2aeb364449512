/*
 * run.c: one run's lifecycle (see internal.h for the state machine):
 * start (persist `running`, the user message, read the transcript),
 * hand over to the LLM and tool rounds (run_llm.c, run_tools.c), and
 * finish (persist the outcome, then emit END, then free the slot).
 */
#include <string.h>

#include "agent/internal.h"

static const char *state_name[RUN_NSTATES] = {
    "queued", "starting", "loading", "compacting", "calling_llm", "running_tools", "finishing", "done",
};

void ch_run_set_state(struct ch_run *r, enum run_state s)
{
    if (r->state == s)
        return;
    ch_log_debug("run %s: %s -> %s", r->run_id, state_name[r->state], state_name[s]);
    r->state = s;
}

void ch_run_ref(struct ch_run *r)
{
    r->refs++;
}

void ch_run_unref(struct ch_run *r)
{
    if (--r->refs == 0)
        ch_run_free(r);
}

static void emit(struct ch_run *r, struct ch_agent_event *ev)
{
    ev->run_id = r->run_id;
    ev->session_key = r->session_key;
    ev->session_id = r->session_id;
    ev->source = r->source;
    ev->seq = ++r->seq;
    ev->ts_ms = ch_now_ms();
    ev->meta = r->meta;
    ch_bus_emit(r->agent, ev);
}

static void on_timeout(uv_timer_t *t)
{
    struct ch_run *r = t->data;

    r->timed_out = true;
    ch_log_warn("run %s: timed out after %lld s", r->run_id, (long long)r->timeout_s);
    ch_run_abort_inflight(r);
    ch_run_finish(r, "timeout", "timeout", "the run took longer than its timeout");
}

static void timer_closed(uv_handle_t *h)
{
    ch_run_unref(h->data);
}

/* ---- STARTING + LOADING: one writer job ---- */

struct start_job {
    struct ch_store_job job;
    struct ch_run *run;
    struct ch_session_rec session;
    struct ch_message_list rows;
};

static int start_run(struct ch_db *db, struct ch_store_job *job)
{
    struct start_job *sj = (struct start_job *)job;
    struct ch_run *r = sj->run;
    struct ch_message_rec m = {0};
    bool have_user = false;
    json_t *content;
    char *text;
    int rc;

    rc = ch_runs_start(db, r->run_id, r->started_ms);
    if (rc)
        return rc;
    rc = ch_sessions_ensure(db, r->session_key, NULL, r->started_ms, &sj->session, NULL);
    if (rc)
        return rc;
    rc = ch_messages_load_last(db, sj->session.session_id, 400, 16 << 20, &sj->rows);
    if (rc)
        return rc;
    /* A replayed run already stored its user message the first time. */
    for (size_t i = 0; i < sj->rows.count; i++)
        if (sj->rows.items[i].run_id && !strcmp(sj->rows.items[i].run_id, r->run_id) &&
            !strcmp(sj->rows.items[i].role, "user"))
            have_user = true;
    if (have_user)
        return 0;
    content = json_pack("[{s:s, s:s}]", "type", "text", "text", r->message);
    text = content ? json_dumps(content, JSON_COMPACT) : NULL;
    json_decref(content);
    if (!text)
        return CH_ENOMEM;
    m.session_key = r->session_key;
    m.session_id = sj->session.session_id;
    snprintf(m.role, sizeof(m.role), "user");
    m.content = text;
    m.created_ms = r->started_ms;
    m.run_id = r->run_id;
    rc = ch_messages_append(db, &m, &m.seq);
    if (rc == 0) {
        /* Add it to the rows we return, so the context includes it. */
        struct ch_message_rec *items = ch_realloc(sj->rows.items, (sj->rows.count + 1) * sizeof(*items));
        if (!items) {
            rc = CH_ENOMEM;
        } else {
            sj->rows.items = items;
            memset(&items[sj->rows.count], 0, sizeof(*items));
            items[sj->rows.count].session_key = ch_strdup(r->session_key);
            items[sj->rows.count].session_id = ch_strdup(sj->session.session_id);
            items[sj->rows.count].seq = m.seq;
            snprintf(items[sj->rows.count].role, sizeof(items->role), "user");
            items[sj->rows.count].content = text;
            text = NULL;
            items[sj->rows.count].run_id = ch_strdup(r->run_id);
            sj->rows.count++;
        }
    }
    ch_free(text);
    return rc;
}

static void start_done(struct ch_store_job *job, int rc)
{
    struct start_job *sj = (struct start_job *)job;
    struct ch_run *r = sj->run;
    struct ch_agent *a = r->agent;

    a->jobs--;
    if (r->state == RUN_STARTING) {
        if (rc) {
            ch_run_finish(r, "error", "unknown", rc == CH_ESTATE ? "the run was already finished" : ch_strerror(rc));
        } else {
            ch_run_set_state(r, RUN_LOADING);
            r->session_id = ch_strdup(sj->session.session_id);
            r->model_override = sj->session.model_override ? ch_strdup(sj->session.model_override) : NULL;
            r->history = ch_context_from_transcript(&sj->rows, &r->hist_seqs, &r->hist_seq_count);
            if (!r->session_id || !r->history)
                ch_run_finish(r, "error", "unknown", "out of memory");
            else
                ch_run_call_llm(r);
        }
    }
    ch_session_rec_release(&sj->session);
    ch_message_list_release(&sj->rows);
    ch_free(sj);
    ch_run_unref(r);
    ch_agent_maybe_stopped(a);
}

void ch_run_start(struct ch_run *r)
{
    struct ch_agent *a = r->agent;
    struct ch_agent_event ev = {.type = CH_AGENT_EV_START};
    struct start_job *sj;

    ch_run_set_state(r, RUN_STARTING);
    r->started_ms = ch_now_ms();
    uv_timer_init(a->loop, &r->timer);
    r->timer.data = r;
    ch_run_ref(r); /* held by the timer until its close callback */
    r->timer_on = true;
    uv_timer_start(&r->timer, on_timeout, (uint64_t)r->timeout_s * 1000, 0);
    emit(r, &ev);
    sj = ch_calloc(1, sizeof(*sj));
    if (!sj) {
        ch_run_finish(r, "error", "unknown", "out of memory");
        return;
    }
    sj->run = r;
    sj->job.run = start_run;
    sj->job.done = start_done;
    ch_run_ref(r);
    if (ch_store_write(a->store, &sj->job) != 0) {
        ch_free(sj);
        ch_run_unref(r);
        ch_run_finish(r, "error", "unknown", "the store's write queue is full");
        return;
    }
    a->jobs++;
}

/* ---- FINISHING ---- */

struct finish_job {
    struct ch_store_job job;
    struct ch_run *run;
    char *result; /* owned JSON text */
    bool started;
};

static int finish_run(struct ch_db *db, struct ch_store_job *job)
{
    struct finish_job *fj = (struct finish_job *)job;
    struct ch_run *r = fj->run;
    struct ch_run_outcome o = {0};
    struct ch_usage u = {(int64_t)r->usage.input_tokens, (int64_t)r->usage.output_tokens,
                         (int64_t)r->usage.cache_read_tokens, (int64_t)r->usage.cache_write_tokens, r->cost_usd};
    int64_t now = ch_now_ms();
    int rc;

    ch_run_status_parse(r->status, &o.status);
    o.result = fj->result;
    o.error = r->error;
    o.error_class = r->error_class;
    o.model = r->model;
    o.usage = u;
    o.finished_ms = now;
    rc = ch_runs_finish(db, r->run_id, &o);
    if (rc)
        return rc;
    if (!fj->started || (!u.input_tokens && !u.output_tokens))
        return 0;
    rc = ch_sessions_add_usage(db, r->session_key, &u, r->context_tokens, r->run_id, now);
    if (rc == CH_ENOTFOUND)
        rc = 0; /* the session was deleted mid-run: nothing to add it to */
    if (rc == 0 && r->provider && r->model)
        rc = ch_usage_add(db, now, r->provider, r->model, r->rounds + 1, &u);
    return rc;
}

static void finish_emit(struct ch_run *r)
{
    struct ch_agent *a = r->agent;
    struct ch_agent_result res = {0};
    struct ch_agent_event ev = {.type = CH_AGENT_EV_END};

    res.status = r->status;
    res.text = r->text.data ? r->text.data : "";
    res.error_class = r->error_class;
    res.error = r->error;
    res.provider = r->provider;
    res.model = r->model;
    res.usage = r->usage;
    res.cost_usd = r->cost_usd;
    res.started_ms = r->started_ms;
    res.finished_ms = ch_now_ms();
    res.first_token_ms = r->first_token_ms;
    res.tool_calls = r->tool_calls;
    res.context_tokens = r->context_tokens;
    ev.result = &res;
    ev.usage = r->usage;
    if (!strcmp(r->status, "ok"))
        a->stats.runs_ok++;
    else if (!strcmp(r->status, "aborted"))
        a->stats.runs_aborted++;
    else if (!strcmp(r->status, "timeout"))
        a->stats.runs_timeout++;
    else
        a->stats.runs_failed++;
    ch_llm_usage_add(&a->stats.usage, &r->usage);
    a->stats.cost_usd += r->cost_usd;
    emit(r, &ev);
}

static void finish_done(struct ch_store_job *job, int rc)
{
    struct finish_job *fj = (struct finish_job *)job;
    struct ch_run *r = fj->run;
    struct ch_agent *a = r->agent;

    a->jobs--;
    if (rc)
        ch_log_error("run %s: saving its outcome failed: %s", r->run_id, ch_strerror(rc));
    ch_run_set_state(r, RUN_DONE);
    finish_emit(r);
    ch_sched_run_done(a, r);
    ch_free(fj->result);
    ch_free(fj);
    ch_run_unref(r);
}

static char *result_json(struct ch_run *r)
{
    json_t *o =
        json_pack("{s:s, s:s, s:{s:I, s:I, s:I, s:I}, s:f, s:s?, s:s?, s:I, s:i}", "status", r->status, "text",
                  r->text.data ? r->text.data : "", "usage", "input", (json_int_t)r->usage.input_tokens, "output",
                  (json_int_t)r->usage.output_tokens, "cacheRead", (json_int_t)r->usage.cache_read_tokens, "cacheWrite",
                  (json_int_t)r->usage.cache_write_tokens, "costUsd", r->cost_usd, "provider", r->provider, "model",
                  r->model, "durationMs", (json_int_t)(ch_now_ms() - r->started_ms), "toolCalls", r->tool_calls);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

void ch_run_finish(struct ch_run *r, const char *status, const char *error_class, const char *error)
{
    struct ch_agent *a = r->agent;
    struct finish_job *fj;

    if (r->state == RUN_FINISHING || r->state == RUN_DONE)
        return;
    ch_run_set_state(r, RUN_FINISHING);
    if (r->timer_on) {
        r->timer_on = false;
        uv_timer_stop(&r->timer);
        uv_close((uv_handle_t *)&r->timer, timer_closed);
    }
    ch_run_abort_inflight(r);
    r->status = status;
    r->error_class = error_class ? ch_strdup(error_class) : NULL;
    r->error = error ? ch_strdup(error) : NULL;
    if (strcmp(status, "ok"))
        ch_log_info("run %s: %s%s%s", r->run_id, status, error ? ": " : "", error ? error : "");
    if (r->stopping) {
        /* The gateway is stopping: leave the run `running` in the store,
         * to be replayed at the next start, and emit nothing. */
        ch_run_set_state(r, RUN_DONE);
        ch_sched_run_done(a, r);
        ch_run_unref(r);
        return;
    }
    fj = ch_calloc(1, sizeof(*fj));
    if (fj) {
        fj->run = r;
        fj->started = r->started_ms != 0;
        fj->result = result_json(r);
        fj->job.run = finish_run;
        fj->job.done = finish_done;
    }
    if (!fj || ch_store_write(a->store, &fj->job) != 0) {
        ch_log_error("run %s: cannot queue its outcome; it will be replayed at the next start", r->run_id);
        if (fj)
            ch_free(fj->result);
        ch_free(fj);
        ch_run_set_state(r, RUN_DONE);
        finish_emit(r);
        ch_sched_run_done(a, r);
        ch_run_unref(r);
        return;
    }
    a->jobs++;
}
