/*
 * run.c: one run's lifecycle (see internal.h for the state machine):
 * start (persist `running`, the user message, read the transcript),
 * hand over to the LLM and tool rounds (run_llm.c, run_tools.c), and
 * finish (persist the outcome, then emit END, then free the slot).
 */
#include <string.h>

#include "agent/internal.h"
#include "http/http.h"

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
    ev->channel = r->channel;
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

/*
 * The job marks the run running, ensures the session, and appends the
 * user message.  The transcript comes from the cache when the run brought
 * the ends of its cached copy (check) and the store still has exactly
 * those ends for the same session id; otherwise it is loaded (the newest
 * CH_TRANSCRIPT_MAX_ROWS rows) and the cache refilled.
 */
struct start_job {
    struct ch_store_job job;
    struct ch_run *run;
    struct ch_session_rec session;
    struct ch_message_list rows; /* loaded on a miss */
    char *user_text;             /* owned: the user message's content JSON */
    bool check, hit, user_stored;
    char *expect_sid;                /* owned: the cached copy's session id */
    struct ch_message_bounds expect; /* the cached copy's ends */
    struct ch_message_bounds bounds; /* the store's ends before the user message */
    int64_t user_seq, user_id;
    /* admission folded in (ch_run_admit) */
    bool admit;
    char *request;  /* owned: the run's request JSON */
    char *existing; /* owned: the run that holds the idempotency key */
    ch_agent_accepted_cb cb;
    void *cb_data;
    struct ch_error err;
};

static int start_run(struct ch_db *db, struct ch_store_job *job)
{
    struct start_job *sj = (struct start_job *)job;
    struct ch_run *r = sj->run;
    struct ch_message_rec m = {0};
    bool created = false;
    int rc;

    /* Admitted here: inserted as running.  Else queued earlier: start it. */
    rc = sj->admit ? ch_run_insert(db, r, sj->request, true, &sj->existing, &sj->err)
                   : ch_runs_start(db, r->run_id, r->started_ms);
    if (rc)
        return rc;
    rc = ch_sessions_ensure(db, r->session_key, NULL, r->started_ms, &sj->session, &created);
    if (!rc)
        rc = ch_persist_session_start(db, r, &sj->session, &created);
    if (rc)
        return rc;
    /* A session made just now has a fresh id, so no transcript: no
     * bounds or rows to read (sj->bounds and sj->rows stay empty). */
    rc = created ? 0 : ch_messages_bounds(db, sj->session.session_id, &sj->bounds);
    if (rc)
        return rc;
    sj->hit = sj->check && !strcmp(sj->expect_sid, sj->session.session_id) &&
              ch_message_bounds_equal(&sj->expect, &sj->bounds);
    if (!sj->hit && !created) {
        rc = ch_messages_load_last(db, sj->session.session_id, CH_TRANSCRIPT_MAX_ROWS, CH_TRANSCRIPT_MAX_BYTES,
                                   &sj->rows);
        if (rc)
            return rc;
        /* A replayed run already stored its user message the first time. */
        for (size_t i = 0; i < sj->rows.count; i++)
            if (sj->rows.items[i].run_id && !strcmp(sj->rows.items[i].run_id, r->run_id) &&
                !strcmp(sj->rows.items[i].role, "user"))
                return 0;
    }
    m.session_key = r->session_key;
    m.session_id = sj->session.session_id;
    snprintf(m.role, sizeof(m.role), "user");
    m.content = sj->user_text;
    m.created_ms = r->started_ms;
    m.run_id = r->run_id;
    rc = created ? ch_messages_append_first(db, &m, &sj->user_seq, &sj->user_id)
                 : ch_messages_append_ids(db, &m, &sj->user_seq, &sj->user_id);
    sj->user_stored = rc == 0;
    return rc;
}

/* The run's transcript entry after the job: the cached one on a hit, a
 * fresh one from the loaded rows on a miss (cached for the next run). */
static int start_transcript(struct ch_run *r, struct start_job *sj)
{
    struct ch_agent *a = r->agent;
    struct ch_tc_entry *e = r->tentry;
    json_t *content;
    int rc;

    if (sj->hit) {
        a->tcache.hits++;
    } else {
        a->tcache.misses++;
        if (e)
            ch_tcache_drop(&a->tcache, e);
        ch_tc_entry_unref(e);
        r->tentry = e = ch_tc_entry_new(r->session_key, r->session_id);
        if (!e)
            return CH_ENOMEM;
        rc = ch_tc_entry_fill(e, &sj->rows, &sj->bounds);
        if (rc)
            return rc;
        ch_tcache_put(&a->tcache, e);
    }
    if (sj->user_stored) {
        /* Built from the message rather than parsed back from the stored
         * text, which is its compact encoding: no parse, no re-encoding to
         * measure it (~440,000 instructions for a 2 KB message). */
        size_t len = strlen(sj->user_text);
        content = r->user_content ? json_incref(r->user_content) : ch_context_user_content_json(r->message);
        rc = content ? ch_tc_entry_append(e, sj->user_seq, sj->user_id, "user", content, len, len) : CH_ENOMEM;
        json_decref(content);
        if (rc) {
            ch_tcache_drop(&a->tcache, e);
            return rc;
        }
    }
    r->history = ch_context_from_rows(e->rows, e->count, &r->hist_seqs, &r->hist_seq_count, &r->hist_bytes);
    for (size_t i = 0; i < e->count; i++) /* what the estimate counts differently */
        r->hist_image_bytes += e->rows[i].image_bytes, r->hist_images += e->rows[i].images;
    return r->history ? 0 : CH_ENOMEM;
}

static void start_job_free(struct start_job *sj)
{
    ch_session_rec_release(&sj->session);
    ch_message_list_release(&sj->rows);
    ch_free(sj->user_text);
    ch_free(sj->expect_sid);
    ch_free(sj->request);
    ch_free(sj->existing);
    ch_free(sj);
}

static void start_done(struct ch_store_job *job, int rc)
{
    struct start_job *sj = (struct start_job *)job;
    struct ch_run *r = sj->run;
    struct ch_agent *a = r->agent;

    a->jobs--;
    if (r->state == RUN_STARTING) {
        if (rc) {
            ch_tcache_drop(&a->tcache, r->tentry);
            ch_run_finish(r, "error", "unknown", rc == CH_ESTATE ? "the run was already finished" : ch_strerror(rc));
        } else {
            ch_run_set_state(r, RUN_LOADING);
            r->session_id = ch_strdup(sj->session.session_id);
            r->model_override = sj->session.model_override ? ch_strdup(sj->session.model_override) : NULL;
            if (!r->session_id || start_transcript(r, sj) != 0)
                ch_run_finish(r, "error", "unknown", "out of memory");
            else
                ch_run_call_llm(r);
        }
    } else if (sj->user_stored) {
        /* Aborted meanwhile: the transcript moved on without the cache. */
        ch_tcache_drop(&a->tcache, r->tentry);
    }
    start_job_free(sj);
    ch_run_unref(r);
    ch_agent_maybe_stopped(a);
}

/* The run's deadline and its START event. */
static void run_arm(struct ch_run *r)
{
    struct ch_agent *a = r->agent;
    struct ch_agent_event ev = {.type = CH_AGENT_EV_START};

    uv_timer_init(a->loop, &r->timer);
    r->timer.data = r;
    ch_run_ref(r); /* held by the timer until its close callback */
    r->timer_on = true;
    uv_timer_start(&r->timer, on_timeout, (uint64_t)r->timeout_s * 1000, 0);
    emit(r, &ev);
}

/* A start job for r, expecting its session's cached transcript if any. */
static struct start_job *start_job_new(struct ch_run *r)
{
    struct ch_agent *a = r->agent;
    struct start_job *sj = ch_calloc(1, sizeof(*sj));
    struct ch_tc_entry *e;

    /* With images the turn is their blocks after the text (json_dumps:
     * the same compact bytes the cached copy is measured as). */
    if (!sj || !(sj->user_text = r->user_content ? json_dumps(r->user_content, JSON_COMPACT)
                                                 : ch_context_user_content(r->message))) {
        ch_free(sj);
        return NULL;
    }
    /* A replayed run may have stored its user message already: load. */
    e = r->resumed ? NULL : ch_tcache_get(&a->tcache, r->session_key);
    if (e && (sj->expect_sid = ch_strdup(e->session_id)) != NULL) {
        ch_tc_entry_ref(e);
        r->tentry = e;
        sj->check = true;
        sj->expect = e->bounds;
    }
    sj->run = r;
    sj->job.run = start_run;
    sj->job.done = start_done;
    /* Bare (store.h): only the run's insert or start may refuse the job,
     * and it is the first write; later steps fail only as I/O does. */
    sj->job.no_savepoint = true;
    return sj;
}

void ch_run_start(struct ch_run *r)
{
    struct ch_agent *a = r->agent;
    struct start_job *sj;

    ch_run_set_state(r, RUN_STARTING);
    r->started_ms = ch_now_ms();
    run_arm(r);
    sj = start_job_new(r);
    if (!sj) {
        ch_run_finish(r, "error", "unknown", "out of memory");
        return;
    }
    ch_run_ref(r);
    if (ch_store_write(a->store, &sj->job) != 0) {
        start_job_free(sj);
        ch_run_unref(r);
        ch_run_finish(r, "error", "unknown", "the store's write queue is full");
        return;
    }
    a->jobs++;
}

/* ---- admission and start in one job (sched.c's fast path) ---- */

static void admit_done(struct ch_store_job *job, int rc)
{
    struct start_job *sj = (struct start_job *)job;
    struct ch_run *r = sj->run;
    struct ch_agent *a = r->agent;

    a->jobs--;
    if (rc) {
        /* Nothing was stored: refuse (or point at the first run of the
         * idempotency key), give back the slot and the lane. */
        if (rc == CH_EEXIST && sj->existing)
            sj->cb(0, sj->existing, true, NULL, sj->cb_data);
        else
            sj->cb(rc, r->run_id, false, sj->err.msg[0] ? sj->err.msg : ch_strerror(rc), sj->cb_data);
        ch_tcache_drop(&a->tcache, r->tentry);
        r->state = RUN_DONE;
        ch_sched_run_done(a, r); /* frees the slot, the lane if idle, pumps */
        start_job_free(sj);
        ch_run_unref(r);
        return;
    }
    a->stats.runs_total++;
    sj->cb(0, r->run_id, false, NULL, sj->cb_data);
    if (ch_map_set(&a->live, r->run_id, strlen(r->run_id), r, NULL) != 0)
        ch_log_error("agent: run %s: out of memory tracking it; it cannot be aborted by id", r->run_id);
    if (a->stopping) {
        /* Stays `running` in the store and is replayed at the next start;
         * like a run accepted while stopping, it emits nothing. */
        r->stopping = true;
        ch_tcache_drop(&a->tcache, r->tentry);
        ch_run_finish(r, "aborted", NULL, "gateway stopping");
        start_job_free(sj);
        ch_agent_maybe_stopped(a);
        return;
    }
    run_arm(r);
    if (r->abort_requested) {
        ch_tcache_drop(&a->tcache, r->tentry);
        ch_run_finish(r, "aborted", NULL, "aborted");
        start_job_free(sj);
        ch_agent_maybe_stopped(a);
        return;
    }
    /* From here on exactly like a run whose start job just finished. */
    a->jobs++;
    ch_run_ref(r);
    start_done(job, 0);
}

int ch_run_admit(struct ch_run *r, char *request, ch_agent_accepted_cb cb, void *data)
{
    struct ch_agent *a = r->agent;
    struct start_job *sj;

    ch_run_set_state(r, RUN_STARTING);
    r->started_ms = ch_now_ms();
    sj = start_job_new(r);
    if (!sj) {
        ch_free(request);
        return CH_ENOMEM;
    }
    sj->admit = true;
    sj->request = request;
    sj->cb = cb;
    sj->cb_data = data;
    sj->job.done = admit_done;
    if (ch_store_write(a->store, &sj->job) != 0) {
        ch_tc_entry_unref(r->tentry);
        r->tentry = NULL;
        start_job_free(sj);
        return CH_EBUSY;
    }
    a->jobs++;
    return 0;
}

/* ---- FINISHING ---- */

struct finish_job {
    struct ch_store_job job;
    struct ch_run *run;
    char *result; /* owned JSON text */
    bool started;
    struct ch_store_job *reply; /* owned or NULL: the last reply's append (persist.c) */
    int reply_rc;
};

static int finish_run(struct ch_db *db, struct ch_store_job *job)
{
    struct finish_job *fj = (struct finish_job *)job;
    struct ch_run *r = fj->run;
    struct ch_run_outcome o = {0};
    struct ch_usage u = {(int64_t)r->usage.input_tokens, (int64_t)r->usage.output_tokens,
                         (int64_t)r->usage.cache_read_tokens, (int64_t)r->usage.cache_write_tokens, r->cost_usd};
    int64_t now = ch_now_ms();
    bool add = fj->started && (u.input_tokens || u.output_tokens);
    int rc;

    /* A bare job (store.h): what may refuse it comes before its first
     * write.  The day's usage is only noted here (the writer writes it at
     * commit); the run's update may be refused (CH_ESTATE). */
    if (add && r->provider && r->model && (rc = ch_usage_add(db, now, r->provider, r->model, r->rounds + 1, &u)))
        return rc;
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
    /* The reply, as its own append would have been: a failure to store it
     * is reported, not a reason to lose the outcome. */
    if (fj->reply)
        fj->reply_rc = ch_persist_run_in(db, fj->reply);
    if (!add)
        return 0;
    rc = ch_sessions_add_usage(db, r->session_key, &u, r->context_tokens, r->run_id, now);
    return rc == CH_ENOTFOUND ? 0 : rc; /* the session was deleted mid-run: nothing to add it to */
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
    res.client_calls = json_array_size(r->client_calls) ? r->client_calls : NULL;
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
    /* Before the next run of the session can start: it updates the cache. */
    if (fj->reply)
        ch_persist_done_in(r, fj->reply, rc ? rc : fj->reply_rc);
    if (rc)
        ch_log_error("run %s: saving its outcome failed: %s", r->run_id, ch_strerror(rc));
    ch_run_set_state(r, RUN_DONE);
    finish_emit(r);
    ch_sched_run_done(a, r);
    ch_free(fj->result);
    ch_free(fj);
    ch_run_unref(r);
}

/* The outcome's result column, as jansson's json_pack + json_dumps wrote
 * it (result_json_jansson), written directly: that pair cost ~27,000
 * instructions a turn.  A string that is not valid UTF-8 (jansson refuses
 * it) takes the jansson path, which then fails as before. */
static char *result_json_jansson(struct ch_run *r, int64_t duration_ms)
{
    json_t *o =
        json_pack("{s:s, s:s, s:{s:I, s:I, s:I, s:I}, s:f, s:s?, s:s?, s:I, s:i}", "status", r->status, "text",
                  r->text.data ? r->text.data : "", "usage", "input", (json_int_t)r->usage.input_tokens, "output",
                  (json_int_t)r->usage.output_tokens, "cacheRead", (json_int_t)r->usage.cache_read_tokens, "cacheWrite",
                  (json_int_t)r->usage.cache_write_tokens, "costUsd", r->cost_usd, "provider", r->provider, "model",
                  r->model, "durationMs", (json_int_t)duration_ms, "toolCalls", r->tool_calls);
    if (o && json_array_size(r->client_calls))
        json_object_set(o, "clientToolCalls", r->client_calls);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static int put_str_or_null(struct ch_buf *b, const char *s)
{
    return s ? ch_http_json_str(b, s, strlen(s)) : ch_buf_append(b, "null", 4);
}

char *ch_run_result_json(struct ch_run *r, int64_t duration_ms)
{
    struct ch_buf b;
    const char *text = r->text.data ? r->text.data : "";
    int rc;

    ch_buf_init(&b, SIZE_MAX / 2); /* the text's own cap applied already */
    rc = ch_buf_reserve(&b, 256 + r->text.len);
    rc = rc ? rc : ch_buf_append_str(&b, "{\"status\":");
    rc = rc ? rc : ch_http_json_str(&b, r->status, strlen(r->status));
    rc = rc ? rc : ch_buf_append_str(&b, ",\"text\":");
    rc = rc ? rc : ch_http_json_str(&b, text, strlen(text));
    rc = rc ? rc : ch_buf_append_str(&b, ",\"usage\":{\"input\":");
    rc = rc ? rc : ch_http_json_int(&b, (json_int_t)r->usage.input_tokens);
    rc = rc ? rc : ch_buf_append_str(&b, ",\"output\":");
    rc = rc ? rc : ch_http_json_int(&b, (json_int_t)r->usage.output_tokens);
    rc = rc ? rc : ch_buf_append_str(&b, ",\"cacheRead\":");
    rc = rc ? rc : ch_http_json_int(&b, (json_int_t)r->usage.cache_read_tokens);
    rc = rc ? rc : ch_buf_append_str(&b, ",\"cacheWrite\":");
    rc = rc ? rc : ch_http_json_int(&b, (json_int_t)r->usage.cache_write_tokens);
    rc = rc ? rc : ch_buf_append_str(&b, "},\"costUsd\":");
    rc = rc ? rc : ch_http_json_real(&b, r->cost_usd);
    rc = rc ? rc : ch_buf_append_str(&b, ",\"provider\":");
    rc = rc ? rc : put_str_or_null(&b, r->provider);
    rc = rc ? rc : ch_buf_append_str(&b, ",\"model\":");
    rc = rc ? rc : put_str_or_null(&b, r->model);
    rc = rc ? rc : ch_buf_append_str(&b, ",\"durationMs\":");
    rc = rc ? rc : ch_http_json_int(&b, (json_int_t)duration_ms);
    rc = rc ? rc : ch_buf_append_str(&b, ",\"toolCalls\":");
    rc = rc ? rc : ch_http_json_int(&b, (json_int_t)r->tool_calls);
    rc = rc ? rc : ch_run_put_client_calls(r, &b);
    rc = rc ? rc : ch_buf_append_char(&b, '}');
    if (rc) {
        ch_buf_release(&b);
        return rc == CH_AGAIN ? result_json_jansson(r, duration_ms) : NULL;
    }
    return ch_buf_detach(&b, NULL);
}

char *ch_run_result_json_jansson(struct ch_run *r, int64_t duration_ms)
{
    return result_json_jansson(r, duration_ms);
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
         * to be replayed at the next start, and emit nothing (a reply
         * already received is stored, as it always was). */
        if (r->reply_job)
            ch_persist_queue(r, r->reply_job);
        r->reply_job = NULL;
        ch_run_set_state(r, RUN_DONE);
        ch_sched_run_done(a, r);
        ch_run_unref(r);
        return;
    }
    fj = ch_calloc(1, sizeof(*fj));
    if (fj) {
        fj->run = r;
        fj->started = r->started_ms != 0;
        fj->result = ch_run_result_json(r, ch_now_ms() - r->started_ms);
        fj->job.run = finish_run;
        fj->job.done = finish_done;
        fj->job.no_savepoint = true; /* refusals come before writes */
        fj->reply = r->reply_job;
        r->reply_job = NULL;
    }
    if (!fj || ch_store_write(a->store, &fj->job) != 0) {
        ch_log_error("run %s: cannot queue its outcome; it will be replayed at the next start", r->run_id);
        if (fj) {
            r->reply_job = fj->reply; /* freed with the run */
            ch_free(fj->result);
        }
        ch_free(fj);
        ch_run_set_state(r, RUN_DONE);
        finish_emit(r);
        ch_sched_run_done(a, r);
        ch_run_unref(r);
        return;
    }
    a->jobs++;
}
