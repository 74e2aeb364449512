/*
 * persist.c: transcript appends.  Each message of a run (the user's, each
 * assistant reply, each batch of tool results) is one job on the store's
 * writer thread; the writer is FIFO, so the transcript keeps the run's
 * order without the run waiting for each commit.  The run's terminal
 * write (run.c) is queued after them and waited for, so "ok" in the runs
 * table implies the transcript is on disk.
 */
#include <string.h>

#include "agent/internal.h"

struct append_job {
    struct ch_store_job job;
    struct ch_agent *agent;
    struct ch_message_rec rec; /* strings owned by the job */
};

static int append_run(struct ch_db *db, struct ch_store_job *job)
{
    struct append_job *aj = (struct append_job *)job;
    return ch_messages_append(db, &aj->rec, NULL);
}

static void append_done(struct ch_store_job *job, int rc)
{
    struct append_job *aj = (struct append_job *)job;
    struct ch_agent *a = aj->agent;

    if (rc)
        ch_log_error("agent: run %s: saving a %s message failed: %s", aj->rec.run_id ? aj->rec.run_id : "-",
                     aj->rec.role, ch_strerror(rc));
    ch_message_rec_release(&aj->rec);
    ch_free(aj);
    a->jobs--;
    ch_agent_maybe_stopped(a);
}

int ch_persist_append(struct ch_run *r, const char *role, json_t *content, const char *model,
                      const struct ch_llm_usage *u, int64_t latency_ms)
{
    struct ch_agent *a = r->agent;
    struct append_job *aj = ch_calloc(1, sizeof(*aj));
    char *text = content ? json_dumps(content, JSON_COMPACT) : NULL;
    int rc = CH_ENOMEM;

    json_decref(content);
    if (!aj || !text)
        goto out;
    aj->agent = a;
    snprintf(aj->rec.role, sizeof(aj->rec.role), "%s", role);
    aj->rec.session_key = ch_strdup(r->session_key);
    aj->rec.session_id = ch_strdup(r->session_id);
    aj->rec.run_id = ch_strdup(r->run_id);
    aj->rec.content = ch_strdup(text);
    aj->rec.model = model ? ch_strdup(model) : NULL;
    aj->rec.created_ms = ch_now_ms();
    aj->rec.latency_ms = latency_ms;
    if (u) {
        aj->rec.input_tokens = (int64_t)u->input_tokens;
        aj->rec.output_tokens = (int64_t)u->output_tokens;
        aj->rec.cache_read_tokens = (int64_t)u->cache_read_tokens;
        aj->rec.cache_write_tokens = (int64_t)u->cache_write_tokens;
    }
    if (!aj->rec.session_key || !aj->rec.session_id || !aj->rec.run_id || !aj->rec.content)
        goto out;
    aj->job.run = append_run;
    aj->job.done = append_done;
    rc = ch_store_write(a->store, &aj->job);
    if (rc == 0) {
        a->jobs++;
        aj = NULL;
    }
out:
    if (rc)
        ch_log_error("agent: run %s: cannot queue a %s message: %s", r->run_id, role, ch_strerror(rc));
    if (aj) {
        ch_message_rec_release(&aj->rec);
        ch_free(aj);
    }
    ch_free(text); /* jansson allocates with ch_malloc */
    return rc;
}

struct compact_job {
    struct ch_store_job job;
    struct ch_agent *agent;
    struct ch_compaction c;
    char *key, *sid, *summary, *model, *run_id;
};

static int compact_run(struct ch_db *db, struct ch_store_job *job)
{
    struct compact_job *cj = (struct compact_job *)job;
    return ch_messages_compact(db, &cj->c, NULL, NULL);
}

static void compact_done(struct ch_store_job *job, int rc)
{
    struct compact_job *cj = (struct compact_job *)job;
    struct ch_agent *a = cj->agent;

    if (rc)
        ch_log_warn("agent: saving the compaction of %s failed: %s", cj->key, ch_strerror(rc));
    ch_free(cj->key);
    ch_free(cj->sid);
    ch_free(cj->summary);
    ch_free(cj->model);
    ch_free(cj->run_id);
    ch_free(cj);
    a->jobs--;
    ch_agent_maybe_stopped(a);
}

int ch_persist_compaction(struct ch_run *r, int64_t first_kept_seq, const char *summary, int64_t tokens_before,
                          const struct ch_llm_usage *u)
{
    struct compact_job *cj = ch_calloc(1, sizeof(*cj));
    int rc = CH_ENOMEM;

    if (!cj)
        return rc;
    cj->agent = r->agent;
    cj->key = ch_strdup(r->session_key);
    cj->sid = ch_strdup(r->session_id);
    cj->summary = ch_strdup(summary);
    cj->model = r->model ? ch_strdup(r->model) : NULL;
    cj->run_id = ch_strdup(r->run_id);
    if (cj->key && cj->sid && cj->summary && cj->run_id) {
        cj->c.session_key = cj->key;
        cj->c.session_id = cj->sid;
        cj->c.first_kept_seq = first_kept_seq;
        cj->c.summary = cj->summary;
        cj->c.tokens_before = tokens_before;
        cj->c.model = cj->model;
        cj->c.input_tokens = (int64_t)u->input_tokens;
        cj->c.output_tokens = (int64_t)u->output_tokens;
        cj->c.created_ms = ch_now_ms();
        cj->c.run_id = cj->run_id;
        cj->job.run = compact_run;
        cj->job.done = compact_done;
        rc = ch_store_write(r->agent->store, &cj->job);
    }
    if (rc) {
        ch_free(cj->key);
        ch_free(cj->sid);
        ch_free(cj->summary);
        ch_free(cj->model);
        ch_free(cj->run_id);
        ch_free(cj);
        return rc;
    }
    r->agent->jobs++;
    return 0;
}
