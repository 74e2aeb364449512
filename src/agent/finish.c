/*
 * finish.c: a run's end: its outcome, reply and usage written in one
 * writer job, then the END event and the scheduler's slot given back.
 *
 * An outcome the store cannot take for a full disk or an I/O error is
 * retried (FINISH_RETRY_MIN_MS doubling to FINISH_RETRY_MAX_MS) with the
 * run still holding its session's lane, and END waits for it: a run
 * reported ended is one a restart finds ended, its session's next run
 * sees its reply, and a hook's callback is queued once the store takes
 * writes again, all without a restart.  Only a stopping gateway gives up
 * on it; the run then stays `running` in the store and is replayed.
 */
#include <string.h>

#include "agent/internal.h"
#include "http/http.h"

/* ---- FINISHING ---- */

#define FINISH_RETRY_MIN_MS 250
#define FINISH_RETRY_MAX_MS 2000

struct finish_job {
    struct ch_store_job job;
    struct ch_run *run;
    char *result; /* owned JSON text */
    bool started;
    struct ch_store_job *reply; /* owned or NULL: the last reply's append (persist.c) */
    int reply_rc;
    uv_timer_t retry;    /* armed between attempts; closed before the job is freed */
    bool retry_init;     /* retry was initialised (and must be closed) */
    uint64_t retry_ms;   /* the next wait */
    unsigned attempts;   /* failed so far */
    int64_t finished_ms; /* the outcome's time, kept across attempts */
};

static int finish_run(struct ch_db *db, struct ch_store_job *job)
{
    struct finish_job *fj = (struct finish_job *)job;
    struct ch_run *r = fj->run;
    struct ch_run_outcome o = {0};
    struct ch_usage u = {(int64_t)r->usage.input_tokens, (int64_t)r->usage.output_tokens,
                         (int64_t)r->usage.cache_read_tokens, (int64_t)r->usage.cache_write_tokens, r->cost_usd};
    int64_t now = fj->finished_ms;
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
    ch_run_emit(r, &ev);
}

static void finish_job_free(struct finish_job *fj)
{
    ch_free(fj->result);
    ch_free(fj);
}

static void retry_closed(uv_handle_t *h)
{
    finish_job_free(h->data);
}

static void finish_done(struct ch_store_job *job, int rc);

static void finish_submit(struct finish_job *fj)
{
    struct ch_agent *a = fj->run->agent;

    fj->job.rc = 0;
    fj->job.next = NULL;
    a->jobs++;
    if (ch_store_write(a->store, &fj->job) != 0) {
        a->jobs--;
        finish_done(&fj->job, CH_EBUSY); /* the store's queue is full: as a busy store */
    }
}

static void retry_fire(uv_timer_t *t)
{
    finish_submit(t->data);
}

/* A full disk or a busy database passes; anything else would fail the
 * same way again (and a corrupt database is no place to keep trying). */
static bool retry_later(struct finish_job *fj, int rc)
{
    struct ch_run *r = fj->run;
    struct ch_agent *a = r->agent;

    if ((rc != CH_ENOSPC && rc != CH_EBUSY) || a->stopping || r->stopping)
        return false;
    if (!fj->retry_init) {
        if (uv_timer_init(a->loop, &fj->retry) != 0)
            return false;
        fj->retry_init = true;
        fj->retry.data = fj;
        fj->retry_ms = FINISH_RETRY_MIN_MS;
    }
    if (uv_timer_start(&fj->retry, retry_fire, fj->retry_ms, 0) != 0)
        return false;
    if (fj->attempts++ == 0)
        ch_log_error("run %s: saving its outcome failed: %s; retrying until the store takes it", r->run_id,
                     ch_strerror(rc));
    fj->retry_ms = fj->retry_ms * 2 > FINISH_RETRY_MAX_MS ? FINISH_RETRY_MAX_MS : fj->retry_ms * 2;
    r->finish_retry = &fj->retry;
    return true;
}

void ch_run_finish_retry_now(struct ch_run *r)
{
    uv_timer_t *t = r->finish_retry;

    if (t && uv_is_active((uv_handle_t *)t)) {
        uv_timer_stop(t);
        finish_submit(t->data);
    }
}

static void finish_done(struct ch_store_job *job, int rc)
{
    struct finish_job *fj = (struct finish_job *)job;
    struct ch_run *r = fj->run;
    struct ch_agent *a = r->agent;

    a->jobs--;
    if (rc && retry_later(fj, rc))
        return;
    r->finish_retry = NULL;
    /* Before the next run of the session can start: it updates the cache. */
    if (fj->reply)
        ch_persist_done_in(r, fj->reply, rc ? rc : fj->reply_rc);
    if (rc)
        ch_log_error("run %s: saving its outcome failed: %s%s", r->run_id, ch_strerror(rc),
                     a->stopping ? "; it will be replayed at the next start" : "");
    else if (fj->attempts)
        ch_log_info("run %s: its outcome is saved, after %u failed attempts", r->run_id, fj->attempts);
    ch_run_set_state(r, RUN_DONE);
    finish_emit(r);
    ch_sched_run_done(a, r);
    if (fj->retry_init)
        uv_close((uv_handle_t *)&fj->retry, retry_closed);
    else
        finish_job_free(fj);
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
        uv_close((uv_handle_t *)&r->timer, ch_run_timer_closed);
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
        fj->finished_ms = ch_now_ms();
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
