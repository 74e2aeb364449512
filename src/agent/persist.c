/*
 * persist.c: transcript appends.  Each message of a run (the user's, each
 * assistant reply, each batch of tool results) is one job on the store's
 * writer thread; the writer is FIFO, so the transcript keeps the run's
 * order without the run waiting for each commit.  The run's terminal
 * write (run.c) is queued after them and waited for, so "ok" in the runs
 * table implies the transcript is on disk.  Once stored, a message joins
 * the session's cached transcript (transcript.c) with its seq and id.
 */
#include <stdint.h>
#include <string.h>

#include "agent/internal.h"

struct append_job {
    struct ch_store_job job;
    struct ch_agent *agent;
    struct ch_message_rec rec;  /* strings owned by the job */
    json_t *content;            /* owned ref: rec.content parsed */
    struct ch_tc_entry *tentry; /* ref or NULL: the run's cached transcript */
    int64_t seq, id;            /* of the stored row */
};

static int append_run(struct ch_db *db, struct ch_store_job *job)
{
    struct append_job *aj = (struct append_job *)job;
    return ch_messages_append_ids(db, &aj->rec, &aj->seq, &aj->id);
}

static void append_done(struct ch_store_job *job, int rc)
{
    struct append_job *aj = (struct append_job *)job;
    struct ch_agent *a = aj->agent;
    size_t len = strlen(aj->rec.content); /* the json_dumps of aj->content */

    if (rc)
        ch_log_error("agent: run %s: saving its %s message failed: %s", aj->rec.run_id ? aj->rec.run_id : "-",
                     aj->rec.role, ch_strerror(rc));
    if (aj->tentry && (rc || ch_tc_entry_append(aj->tentry, aj->seq, aj->id, aj->rec.role, aj->content, len, len) != 0))
        ch_tcache_drop(&a->tcache, aj->tentry); /* the next run reloads */
    ch_tc_entry_unref(aj->tentry);
    json_decref(aj->content);
    ch_message_rec_release(&aj->rec);
    ch_free(aj);
    a->jobs--;
    ch_agent_maybe_stopped(a);
}

static void append_free(struct ch_agent *a, struct append_job *aj, bool drop_cache)
{
    /* Not stored: the cached transcript would no longer match. */
    if (aj->tentry && drop_cache)
        ch_tcache_drop(&a->tcache, aj->tentry);
    ch_tc_entry_unref(aj->tentry);
    json_decref(aj->content);
    ch_message_rec_release(&aj->rec);
    ch_free(aj);
}

/* The value of the member at iterator it if it is named key (keys may
 * hold NUL bytes: compared with their length). */
static const json_t *member(void *it, const char *key)
{
    size_t n = strlen(key);
    return it && json_object_iter_key_len(it) == n && !memcmp(json_object_iter_key(it), key, n)
               ? json_object_iter_value(it)
               : NULL;
}

/* Plain ASCII, eight bytes a word: such a string is valid UTF-8 whatever
 * built it (a tree may hold strings made without jansson's check, which
 * json_dumps would refuse). */
static bool ascii(const char *s, size_t n)
{
    uint64_t acc = 0, w;
    size_t i = 0;

    for (; n - i >= 8; i += 8) {
        memcpy(&w, s + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= (unsigned char)s[i];
    return !(acc & 0x8080808080808080ull);
}

char *ch_persist_content_text(const json_t *content)
{
    const json_t *b = json_array_size(content) == 1 ? json_array_get(content, 0) : NULL, *type = NULL, *text = NULL;
    void *it = json_is_object(b) && json_object_size(b) == 2 ? json_object_iter((json_t *)b) : NULL;
    struct ch_buf out;

    if (it && (type = member(it, "type")) != NULL)
        text = member(json_object_iter_next((json_t *)b, it), "text");
    /* The usual reply, one text block, is written here: jansson iterates
     * members in insertion order as json_dumps does, and
     * ch_buf_append_json_str escapes as its compact encoder does, without
     * its per-character encoder and cycle-check table.  Anything else
     * (non-ASCII text included, or an oversized one) goes to json_dumps. */
    if (!json_is_string(type) || json_string_length(type) != 4 || memcmp(json_string_value(type), "text", 4) != 0 ||
        !json_is_string(text) || !ascii(json_string_value(text), json_string_length(text)))
        return json_dumps(content, JSON_COMPACT);
    ch_buf_init(&out, CH_STORE_MAX_CONTENT_BYTES);
    if (ch_buf_append_str(&out, "[{\"type\":\"text\",\"text\":") != 0 ||
        ch_buf_append_json_str(&out, json_string_value(text), json_string_length(text)) != 0 ||
        ch_buf_append_str(&out, "}]") != 0) {
        ch_buf_release(&out);
        return json_dumps(content, JSON_COMPACT);
    }
    return ch_buf_detach(&out, NULL);
}

struct ch_store_job *ch_persist_prepare(struct ch_run *r, const char *role, json_t *content, const char *model,
                                        const struct ch_llm_usage *u, int64_t latency_ms, size_t *json_bytes)
{
    struct ch_agent *a = r->agent;
    struct append_job *aj = ch_calloc(1, sizeof(*aj));
    char *text = content ? ch_persist_content_text(content) : NULL;
    size_t text_len = text ? strlen(text) : 0;

    if (json_bytes)
        *json_bytes = 0;
    if (!aj || !text) {
        json_decref(content);
        ch_free(aj);
        ch_free(text);
        return NULL;
    }
    aj->agent = a;
    aj->content = content;
    if (r->tentry) {
        aj->tentry = r->tentry;
        ch_tc_entry_ref(aj->tentry);
    }
    snprintf(aj->rec.role, sizeof(aj->rec.role), "%s", role);
    aj->rec.session_key = ch_strdup(r->session_key);
    aj->rec.session_id = ch_strdup(r->session_id);
    aj->rec.run_id = ch_strdup(r->run_id);
    aj->rec.content = text; /* jansson allocates with ch_malloc */
    text = NULL;
    aj->rec.model = model ? ch_strdup(model) : NULL;
    aj->rec.created_ms = ch_now_ms();
    aj->rec.latency_ms = latency_ms;
    if (u) {
        aj->rec.input_tokens = (int64_t)u->input_tokens;
        aj->rec.output_tokens = (int64_t)u->output_tokens;
        aj->rec.cache_read_tokens = (int64_t)u->cache_read_tokens;
        aj->rec.cache_write_tokens = (int64_t)u->cache_write_tokens;
    }
    if (!aj->rec.session_key || !aj->rec.session_id || !aj->rec.run_id || !aj->rec.content) {
        append_free(a, aj, false);
        return NULL;
    }
    aj->job.run = append_run;
    aj->job.done = append_done;
    if (json_bytes)
        *json_bytes = text_len;
    return &aj->job;
}

int ch_persist_queue(struct ch_run *r, struct ch_store_job *job)
{
    struct ch_agent *a = r->agent;
    struct append_job *aj = (struct append_job *)job;
    int rc = CH_ENOMEM;

    if (job && (rc = ch_store_write(a->store, job)) == 0) {
        a->jobs++;
        return 0;
    }
    ch_log_error("agent: run %s: cannot queue a message: %s", r->run_id, ch_strerror(rc));
    if (aj)
        append_free(a, aj, true);
    else
        ch_tcache_drop(&a->tcache, r->tentry);
    return rc;
}

int ch_persist_append(struct ch_run *r, const char *role, json_t *content, const char *model,
                      const struct ch_llm_usage *u, int64_t latency_ms, size_t *json_bytes)
{
    struct ch_store_job *job = ch_persist_prepare(r, role, content, model, u, latency_ms, json_bytes);
    int rc = ch_persist_queue(r, job);

    if (rc && json_bytes)
        *json_bytes = 0;
    return rc;
}

void ch_persist_discard(struct ch_run *r, struct ch_store_job *job)
{
    if (job)
        append_free(r->agent, (struct append_job *)job, true);
}

int ch_persist_run_in(struct ch_db *db, struct ch_store_job *job)
{
    return append_run(db, job);
}

void ch_persist_done_in(struct ch_run *r, struct ch_store_job *job, int rc)
{
    r->agent->jobs++; /* append_done counts it out */
    append_done(job, rc);
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

/* OpenClaw's isolated hook runs start a new session each time (a new
 * sessionId under the same key), so no earlier turn reaches the model.
 * A replayed run whose first attempt already started it finds its own
 * user message there and keeps it. */
static int persist_isolate(struct ch_db *db, struct ch_run *r, struct ch_session_rec *s, bool *fresh)
{
    struct ch_message_bounds b;
    int rc = ch_messages_bounds(db, s->session_id, &b);

    if (rc || !b.first_id)
        return rc; /* empty: nothing to leave behind */
    if (r->resumed) {
        struct ch_message_list l = {0};
        bool mine = false;
        rc = ch_messages_load_last(db, s->session_id, CH_TRANSCRIPT_MAX_ROWS, CH_TRANSCRIPT_MAX_BYTES, &l);
        for (size_t i = 0; !rc && i < l.count; i++)
            mine = mine || (l.items[i].run_id && !strcmp(l.items[i].run_id, r->run_id));
        ch_message_list_release(&l);
        if (rc || mine)
            return rc;
    }
    ch_session_rec_release(s);
    rc = ch_sessions_reset(db, r->session_key, NULL, r->started_ms, s);
    if (rc == 0)
        *fresh = true;
    return rc;
}

/* The run's request as stored: enough to replay it after a restart.
 * Written with ch_buf rather than json_pack+json_dumps: the message can be
 * large and this runs for every admitted run (bench/hooks.sh).  The first
 * failed append sticks: a value left out would store a request that reads
 * differently (or is not JSON). */
static void put_raw(struct ch_buf *b, int *rc, const char *key, const char *json)
{
    if (*rc == 0 && json)
        *rc = ch_buf_appendf(b, ",\"%s\":", key);
    if (*rc == 0 && json)
        *rc = ch_buf_append_str(b, json);
}

static void put_str(struct ch_buf *b, int *rc, const char *key, const char *v)
{
    if (*rc == 0 && v)
        *rc = ch_buf_appendf(b, ",\"%s\":", key);
    if (*rc == 0 && v)
        *rc = ch_buf_append_json_str(b, v, strlen(v));
}

char *ch_run_request_json(const struct ch_run *r, const char *meta_json, const char *message_json, int *rc)
{
    struct ch_buf b;
    char *meta = r->meta && !meta_json ? json_dumps(r->meta, JSON_COMPACT) : NULL;
    char *sampling = r->sampling ? json_dumps(r->sampling, JSON_COMPACT) : NULL;
    char *ctools = r->client_tools ? json_dumps(r->client_tools, JSON_COMPACT) : NULL;
    char *images = r->images ? json_dumps(r->images, JSON_COMPACT) : NULL;

    /* out of memory encoding one: refused */
    *rc = (r->meta && !meta_json && !meta) || (r->sampling && !sampling) || (r->client_tools && !ctools) ||
                  (r->images && !images)
              ? CH_ENOMEM
              : 0;
    ch_buf_init(&b, CH_STORE_MAX_REQUEST_BYTES);
    if (*rc == 0)
        *rc = ch_buf_append_str(&b, "{\"message\":");
    if (*rc == 0)
        *rc = message_json ? ch_buf_append_str(&b, message_json)
                           : ch_buf_append_json_str(&b, r->message, strlen(r->message));
    put_str(&b, rc, "model", r->model_ref);
    put_str(&b, rc, "systemPrompt", r->system_prompt);
    put_str(&b, rc, "extraSystem", r->extra_system);
    put_str(&b, rc, "channel", r->channel);
    if (*rc == 0)
        *rc = ch_buf_appendf(&b, ",\"maxTokens\":%lld,\"timeoutSeconds\":%lld,\"noTools\":%s", (long long)r->max_tokens,
                             (long long)r->timeout_s, r->no_tools ? "true" : "false");
    if (*rc == 0 && r->has_temperature)
        *rc = ch_buf_appendf(&b, ",\"temperature\":%.17g", r->temperature);
    if (*rc == 0 && r->isolated)
        *rc = ch_buf_append_str(&b, ",\"isolated\":true");
    put_raw(&b, rc, "meta", r->meta ? (meta ? meta : meta_json) : NULL);
    put_raw(&b, rc, "sampling", sampling);
    put_raw(&b, rc, "clientTools", ctools);
    put_raw(&b, rc, "images", images);
    ch_free(meta);
    ch_free(sampling);
    ch_free(ctools);
    ch_free(images);
    if (*rc == 0)
        *rc = ch_buf_append_char(&b, '}');
    if (*rc) {
        ch_buf_release(&b); /* over the cap or out of memory: refused */
        return NULL;
    }
    return ch_buf_detach(&b, NULL);
}

/* The session row as a run starts (writer thread; s is the row
 * ch_sessions_ensure returned, fresh whether it made it): an isolated run
 * starts it afresh; a run that names its message channel gives it to a
 * session that has none (OpenClaw's session `channel`; sessions.patch can
 * change it later, and a later run's channel does not). */
int ch_persist_session_start(struct ch_db *db, struct ch_run *r, struct ch_session_rec *s, bool *fresh)
{
    struct ch_session_patch p = {0};
    struct ch_session_rec after;
    int rc = r->isolated && !*fresh ? persist_isolate(db, r, s, fresh) : 0;

    if (rc || !r->channel || s->channel)
        return rc;
    p.set_channel = true;
    p.channel = r->channel;
    rc = ch_sessions_patch(db, r->session_key, &p, r->started_ms, &after);
    if (rc == 0) {
        ch_session_rec_release(s);
        *s = after;
    }
    return rc;
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
    /* The stored transcript changes shape: the next run reloads it. */
    ch_tcache_drop(&r->agent->tcache, r->tentry);
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
