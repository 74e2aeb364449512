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

void ch_run_emit(struct ch_run *r, struct ch_agent_event *ev)
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

void ch_run_timer_closed(uv_handle_t *h)
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
    ch_run_emit(r, &ev);
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
