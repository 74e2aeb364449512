/*
 * rest_sessions.c: the session routes of REST v1 (issue #3 item 8, issue
 * #4 item 4), under two names: /api/v1/sessions/:key (OpenClaw's session
 * keys; what `chela sessions` calls) and /api/v1/conversations/:id (seed
 * 002's word for the same rows, keyed "id": the key without agent:main:).
 * Keys given are canonicalized (session_keys.c).  Reads run as store read jobs
 * on the thread pool, which also build the JSON answer, so the loop thread
 * only sends it; reset and delete are writer jobs.  Every job holds a
 * reference on its request and checks that the client is still there.
 * Also GET /api/v1/models, answered from the LLM client's catalog.
 */
#include <string.h>

#include "api/internal.h"
#include "providers/client.h"

#define SHOW_MAX_MESSAGES 200
/* The newest messages are read up to this many stored content bytes in
 * all; the answer is then sized to the write queue's cap (show_run). */
#define SHOW_MAX_BYTES (2u << 20)
/* Room for the answer's `"messages":[]` and `"truncated"` members. */
#define SHOW_ENVELOPE_BYTES 64u

/* ---- shared helpers (declared in internal.h) ---- */

int ch_api_path_param(struct ch_http_req *r, size_t i, char *out, size_t outcap)
{
    size_t n = 0;

    /* In a path '+' is a plus (session keys may hold one). */
    if (ch_url_decode_path(ch_http_req_param(r, i), out, outcap, &n) == 0 && n > 0)
        return 0;
    ch_http_respond_error(r, 400, "invalid_request", "bad path parameter: percent-encode it, 1-%zu bytes", outcap - 1);
    return CH_EINVAL;
}

int ch_api_page_query_keyset(struct ch_http_req *r, size_t def, size_t *limit, size_t *offset,
                             struct ch_list_pos *after)
{
    char v[40];
    uint64_t n = 0;
    int rc;

    *limit = def;
    *offset = 0;
    rc = ch_http_req_query(r, "limit", v, sizeof(v));
    if (rc == 0) {
        if (ch_str_to_u64(ch_str_from(v), 1000, &n) != 0 || n < 1) {
            ch_http_respond_error(r, 400, "invalid_request", "limit must be an integer from 1 to 1000");
            return CH_EINVAL;
        }
        *limit = (size_t)n;
    } else if (rc != CH_ENOTFOUND) {
        ch_http_respond_error(r, 400, "invalid_request", "limit must be an integer from 1 to 1000");
        return CH_EINVAL;
    }
    rc = ch_http_req_query(r, "cursor", v, sizeof(v));
    if (rc == 0 && v[0] && (!after || ch_list_pos_decode(v, after) != 0)) {
        /* An offset: what every list gave before keyset cursors. */
        if (ch_str_to_u64(ch_str_from(v), 1000000000, &n) != 0) {
            ch_http_respond_error(r, 400, "invalid_request", "cursor is not one this gateway returned");
            return CH_EINVAL;
        }
        *offset = (size_t)n;
    } else if (rc != 0 && rc != CH_ENOTFOUND) {
        ch_http_respond_error(r, 400, "invalid_request", "cursor is not one this gateway returned");
        return CH_EINVAL;
    }
    return 0;
}

int ch_api_page_query(struct ch_http_req *r, size_t def, size_t *limit, size_t *offset)
{
    return ch_api_page_query_keyset(r, def, limit, offset, NULL);
}

json_t *ch_api_time_json(int64_t ms)
{
    char t[32];

    if (ms <= 0)
        return json_null();
    ch_time_iso8601(ms, t);
    return json_string(t);
}

/* ---- jobs ---- */

struct sess_job {
    struct ch_store_job job;
    struct ch_api *api;       /* borrowed */
    struct ch_http_req *req;  /* ref held */
    bool conv;                /* conversations naming: "id" instead of "key" */
    char *key;                /* owned; show, reset, delete: canonical */
    char *shown;              /* owned or NULL: the id as sent, echoed by seed routes */
    size_t limit, offset;     /* list */
    struct ch_list_pos after; /* list: the cursor's position */
    json_t *answer;           /* built by the job body; owned */
    bool existed;             /* delete */
    size_t budget;            /* show: the answer's bytes at most */
};

static void job_free(struct sess_job *j)
{
    ch_http_req_unref(j->req);
    ch_free(j->key);
    ch_free(j->shown);
    json_decref(j->answer);
    ch_free(j);
}

static struct sess_job *job_new(struct ch_http_req *r, void *api, bool conv)
{
    struct sess_job *j = ch_calloc(1, sizeof(*j));

    if (!j) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        return NULL;
    }
    j->api = api;
    j->req = r;
    j->conv = conv;
    ch_http_req_ref(r);
    return j;
}

/* The key path parameter, canonical (OpenClaw's store key: `S1` and
 * agent:main:s1 are one session).  Conversations and seed 004's
 * /api/sessions/:id answer with the id as the client sent it. */
static struct sess_job *job_new_key(struct ch_http_req *r, void *api, bool conv)
{
    char key[CH_STORE_MAX_KEY_BYTES + 1], canon[CH_SESSION_KEY_MAX + 1];
    bool seed = r->route && !strncmp(r->route->pattern, "/api/sessions/", 14);
    struct sess_job *j;
    int krc;

    if (ch_api_path_param(r, 0, key, sizeof(key)) != 0)
        return NULL;
    if ((krc = ch_api_session_key(key, canon)) != 0) {
        char why[CH_SESSION_KEY_MAX + 64];

        ch_session_key_why(krc, key, why, sizeof(why));
        ch_http_respond_error(r, 400, "invalid_request", "%s", why);
        return NULL;
    }
    j = job_new(r, api, conv);
    if (j && (!(j->key = ch_strdup(canon)) || ((conv || seed) && !(j->shown = ch_strdup(key))))) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        job_free(j);
        return NULL;
    }
    return j;
}

static void submit(struct sess_job *j, bool write)
{
    int rc = write ? ch_store_write(j->api->store, &j->job) : ch_store_read(j->api->store, &j->job);

    if (rc) {
        ch_http_add_header(j->req, "Retry-After", "1");
        ch_http_respond_error(j->req, 503, "store_busy", "the store cannot take the request now; retry shortly");
        job_free(j);
    }
}

/*
 * The model a session talks to: its override, else the one that answered
 * its last run ("provider/model" when the run recorded its provider).
 * Runs on the job's thread.  Owned, or NULL.
 */
static char *session_model(struct ch_db *db, const struct ch_session_rec *s)
{
    struct ch_run_rec run = {0};
    const char *prov;
    json_t *res;
    char *out = NULL;

    if (s->model_override)
        return ch_strdup(s->model_override);
    if (!s->last_run_id || ch_runs_get(db, s->last_run_id, &run) != 0)
        return NULL;
    if (run.model) {
        res = run.result ? json_loads(run.result, 0, NULL) : NULL;
        prov = json_string_value(json_object_get(res, "provider"));
        out = prov && !strchr(run.model, '/') ? ch_sprintf("%s/%s", prov, run.model) : ch_strdup(run.model);
        json_decref(res);
    }
    ch_run_rec_release(&run);
    return out;
}

/* shown: the id to answer with, else the stored key (a conversation's
 * without agent:main:). */
static json_t *session_json(const struct ch_session_rec *s, const char *model, bool conv, const char *shown)
{
    json_t *o = json_object();

    if (!o)
        return NULL;
    json_object_set_new(o, conv ? "id" : "key",
                        json_string(shown  ? shown
                                    : conv ? ch_api_conversation_id(s->key)
                                           : s->key));
    json_object_set_new(o, "sessionId", json_string(s->session_id));
    json_object_set_new(o, "model", model ? json_string(model) : json_null());
    json_object_set_new(o, "modelOverride", s->model_override ? json_string(s->model_override) : json_null());
    json_object_set_new(o, "label", s->label ? json_string(s->label) : json_null());
    json_object_set_new(o, "channel", s->channel ? json_string(s->channel) : json_null());
    json_object_set_new(o, "inputTokens", json_integer(s->usage.input_tokens));
    json_object_set_new(o, "outputTokens", json_integer(s->usage.output_tokens));
    json_object_set_new(o, "cacheReadTokens", json_integer(s->usage.cache_read_tokens));
    json_object_set_new(o, "cacheWriteTokens", json_integer(s->usage.cache_write_tokens));
    json_object_set_new(o, "totalTokens", json_integer(s->total_tokens));
    json_object_set_new(o, "contextTokens", json_integer(s->context_tokens));
    json_object_set_new(o, "estimatedCostUsd", json_real(s->usage.cost_usd));
    json_object_set_new(o, "compactionCount", json_integer(s->compaction_count));
    json_object_set_new(o, "lastRunId", s->last_run_id ? json_string(s->last_run_id) : json_null());
    json_object_set_new(o, "createdAt", ch_api_time_json(s->created_ms));
    json_object_set_new(o, "updatedAt", ch_api_time_json(s->updated_ms));
    return o;
}

static void append_opt(struct ch_buf *out, const char *s)
{
    if (s)
        ch_buf_append_str(out, s);
}

/* The readable text of one stored content block: its text, a tool call as
 * "[tool: name]", a tool result's text, a compaction's summary. */
static void block_text(const json_t *b, struct ch_buf *out)
{
    const char *type = json_string_value(json_object_get(b, "type"));
    const json_t *c, *item;
    size_t i;

    if (json_is_string(b)) {
        append_opt(out, json_string_value(b));
        return;
    }
    if (!type)
        return;
    if (!strcmp(type, "text")) {
        append_opt(out, json_string_value(json_object_get(b, "text")));
    } else if (!strcmp(type, "compaction")) {
        append_opt(out, json_string_value(json_object_get(b, "summary")));
    } else if (!strcmp(type, "tool_result")) {
        c = json_object_get(b, "content");
        if (json_is_string(c))
            append_opt(out, json_string_value(c));
        json_array_foreach(c, i, item) append_opt(out, json_string_value(json_object_get(item, "text")));
    } else if (json_string_value(json_object_get(b, "name"))) {
        ch_buf_appendf(out, "[tool: %.64s]", json_string_value(json_object_get(b, "name")));
    }
}

/* Blocks joined by newlines (empty ones skipped), as a JSON string. */
static json_t *content_text(const char *content)
{
    json_t *doc = json_loads(content, JSON_DECODE_ANY, NULL), *b, *s;
    struct ch_buf out, one;
    size_t i;

    ch_buf_init(&out, SHOW_MAX_BYTES);
    ch_buf_init(&one, SHOW_MAX_BYTES);
    if (json_is_array(doc)) {
        json_array_foreach(doc, i, b)
        {
            ch_buf_reset(&one);
            block_text(b, &one);
            if (!one.len)
                continue;
            if (out.len)
                ch_buf_append_char(&out, '\n');
            ch_buf_append(&out, one.data, one.len);
        }
    } else if (doc) {
        block_text(doc, &out);
    }
    json_decref(doc);
    s = json_stringn(out.data ? out.data : "", out.len);
    ch_buf_release(&out);
    ch_buf_release(&one);
    return s ? s : json_string("");
}

/* A ch_api_fit_render_cb: with omit (or no content loaded) the content is
 * OpenClaw's placeholder, as chat.history sends for a message too large. */
static json_t *message_json(const struct ch_message_rec *m, bool omit)
{
    json_t *content = omit || !m->content ? json_string(CH_HISTORY_OMITTED) : content_text(m->content);

    return json_pack("{s:I, s:s, s:o, s:o, s:s?, s:s?, s:{s:I, s:I, s:I, s:I}, s:I}", "seq", (json_int_t)m->seq, "role",
                     m->role, "content", content, "createdAt", ch_api_time_json(m->created_ms), "model", m->model,
                     "runId", m->run_id, "usage", "inputTokens", (json_int_t)m->input_tokens, "outputTokens",
                     (json_int_t)m->output_tokens, "cacheReadTokens", (json_int_t)m->cache_read_tokens,
                     "cacheWriteTokens", (json_int_t)m->cache_write_tokens, "latencyMs", (json_int_t)m->latency_ms);
}

/* ---- list ---- */

static int list_run(struct ch_db *db, struct ch_store_job *job)
{
    struct sess_job *j = (struct sess_job *)job;
    struct ch_session_query q = {.limit = j->limit, .offset = j->offset, .after = j->after};
    struct ch_session_list l = {0};
    char next[CH_LIST_CURSOR_LEN + 1];
    json_t *arr;
    int rc = ch_sessions_list(db, &q, &l);

    if (rc)
        return rc;
    arr = json_array();
    for (size_t i = 0; arr && i < l.count; i++) {
        char *model = session_model(db, &l.items[i]);
        json_array_append_new(arr, session_json(&l.items[i], model, j->conv, NULL));
        ch_free(model);
    }
    /* The next page starts after this page's last row, not at an offset:
     * sessions created or updated in between (they come first) would
     * shift an offset and repeat rows. */
    ch_list_pos_encode(&l.next, next);
    j->answer = json_pack("{s:o, s:o, s:I}", j->conv ? "conversations" : "sessions", arr, "nextCursor",
                          l.more ? json_string(next) : json_null(), "total", (json_int_t)l.total);
    ch_session_list_release(&l);
    return j->answer ? 0 : CH_ENOMEM;
}

/* Shared completion: 200 with the answer, 404, or 500. */
static void answer_done(struct ch_store_job *job, int rc)
{
    struct sess_job *j = (struct sess_job *)job;

    if (ch_http_req_is_closed(j->req))
        goto out;
    if (rc == CH_ENOTFOUND) {
        ch_http_respond_error(j->req, 404, "not_found", "no %s '%s'", j->conv ? "conversation" : "session",
                              j->shown ? j->shown
                              : j->key ? j->key
                                       : "");
    } else if (rc || !j->answer) {
        ch_http_respond_error(j->req, 500, "store_error", "reading sessions failed: %s", ch_strerror(rc));
    } else {
        ch_http_respond_json(j->req, 200, j->answer);
        j->answer = NULL;
    }
out:
    job_free(j);
}

static void list_routes(struct ch_http_req *r, void *api, bool conv)
{
    struct sess_job *j;
    struct ch_list_pos after = {0};
    size_t limit, offset;

    if (ch_api_page_query_keyset(r, 50, &limit, &offset, &after) != 0)
        return;
    if (!(j = job_new(r, api, conv)))
        return;
    j->limit = limit;
    j->offset = offset;
    j->after = after;
    j->job.run = list_run;
    j->job.done = answer_done;
    submit(j, false);
}

void ch_rest_sessions_list(struct ch_http_req *r, void *data)
{
    list_routes(r, data, false);
}

void ch_rest_conversations_list(struct ch_http_req *r, void *data)
{
    list_routes(r, data, true);
}

/* ---- show ---- */

static int show_run(struct ch_db *db, struct ch_store_job *job)
{
    struct sess_job *j = (struct sess_job *)job;
    struct ch_session_rec s = {0};
    struct ch_message_list ml = {0};
    json_t *o = NULL, *arr;
    char *model = NULL;
    struct ch_api_fit fit;
    size_t room, content;
    int rc = ch_sessions_get(db, j->key, &s);

    if (rc)
        goto out;
    model = session_model(db, &s);
    rc = CH_ENOMEM;
    if (!(o = session_json(&s, model, j->conv, j->shown)))
        goto out;
    /* Over the write queue's cap the connection would be closed with no
     * answer: the messages get what the row leaves of the budget, measured
     * as written (escaping counts), newest first. */
    room = ch_api_room_left(j->budget, o, SHOW_ENVELOPE_BYTES);
    content = CH_MIN(room, (size_t)SHOW_MAX_BYTES);
    /* A row over that comes without its content (the placeholder). */
    rc = ch_messages_load_before(db, s.session_id, INT64_MAX, SHOW_MAX_MESSAGES, content, content, &ml);
    if (rc)
        goto out;
    rc = CH_ENOMEM;
    if (!(arr = ch_api_fit_messages(&ml, room, false, message_json, &fit)))
        goto out;
    json_object_set_new(o, "messages", arr);
    json_object_set_new(o, "truncated", json_boolean(ml.truncated || fit.cut || fit.omitted));
    j->answer = o;
    o = NULL;
    rc = 0;
out:
    json_decref(o);
    ch_free(model);
    ch_message_list_release(&ml);
    ch_session_rec_release(&s);
    return rc;
}

static void show_route(struct ch_http_req *r, void *api, bool conv)
{
    struct sess_job *j = job_new_key(r, api, conv);

    if (!j)
        return;
    /* Half of the cap, as GET /sessions/:key/history: what is still queued
     * before the answer on a kept-alive connection needs room too.  Read
     * here, on the loop, where the limits are reloaded. */
    j->budget = (size_t)CH_MAX(j->api->limits ? j->api->limits->v[CH_LIMIT_WRITE_QUEUE_HARD_BYTES] : 4 << 20, 0) / 2;
    j->job.run = show_run;
    j->job.done = answer_done;
    submit(j, false);
}

void ch_rest_sessions_show(struct ch_http_req *r, void *data)
{
    show_route(r, data, false);
}

void ch_rest_conversations_show(struct ch_http_req *r, void *data)
{
    show_route(r, data, true);
}

/* ---- reset ---- */

static int reset_run(struct ch_db *db, struct ch_store_job *job)
{
    struct sess_job *j = (struct sess_job *)job;
    struct ch_session_rec before = {0}, after = {0};
    int rc = ch_sessions_get(db, j->key, &before);

    if (rc == 0)
        rc = ch_sessions_reset(db, j->key, NULL, ch_now_ms(), &after);
    if (rc == 0) {
        j->answer = json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "key", j->key, "sessionId", after.session_id,
                              "previousSessionId", before.session_id);
        if (!j->answer)
            rc = CH_ENOMEM;
    }
    ch_session_rec_release(&before);
    ch_session_rec_release(&after);
    return rc;
}

void ch_rest_sessions_reset(struct ch_http_req *r, void *data)
{
    struct sess_job *j = job_new_key(r, data, false);

    if (!j)
        return;
    j->job.run = reset_run;
    j->job.done = answer_done;
    submit(j, true);
}

/* ---- delete ---- */

static int delete_run(struct ch_db *db, struct ch_store_job *job)
{
    struct sess_job *j = (struct sess_job *)job;
    int rc = ch_sessions_delete(db, j->key, &j->existed);

    if (rc == 0 && !(j->answer = json_pack("{s:b, s:b}", "ok", 1, "deleted", j->existed)))
        rc = CH_ENOMEM;
    return rc;
}

/*
 * Deleting a session with live runs: abort them and wait for their END
 * (bounded by DELETE_WAIT_MS) before deleting, so a run's last writes
 * (its transcript, its outcome and usage) land before the row goes and
 * never fail on, or recreate, a deleted session.  The wait owns a timer
 * and frees itself in the timer's close callback.
 */
#define DELETE_WAIT_MS 5000

struct delete_wait {
    uv_timer_t timer;
    struct ch_agent_sub *sub;
    struct sess_job *job; /* handed to the store when the wait ends */
    size_t need, seen;    /* runs aborted, ENDs seen */
    bool counting;        /* need is not known yet */
    bool done;
};

static void wait_closed(uv_handle_t *h)
{
    ch_free(h->data);
}

static void wait_end(struct delete_wait *w)
{
    if (w->done)
        return;
    w->done = true;
    ch_agent_unsubscribe(w->sub);
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, wait_closed);
    submit(w->job, true);
}

static void wait_timeout(uv_timer_t *t)
{
    struct delete_wait *w = t->data;

    ch_log_warn("sessions: %zu of %zu aborted run(s) of %s still running after %d ms; deleting anyway",
                w->need - w->seen, w->need, w->job->key, DELETE_WAIT_MS);
    wait_end(w);
}

static void wait_on_event(const struct ch_agent_event *ev, void *data)
{
    struct delete_wait *w = data;

    if (ev->type != CH_AGENT_EV_END || w->done || !ev->session_key || strcmp(ev->session_key, w->job->key) != 0)
        return;
    w->seen++;
    if (!w->counting && w->seen >= w->need)
        wait_end(w);
}

static void delete_route(struct ch_http_req *r, void *api, bool conv)
{
    struct ch_api *a = api;
    struct sess_job *j = job_new_key(r, api, conv);
    struct delete_wait *w;

    if (!j)
        return;
    j->job.run = delete_run;
    j->job.done = answer_done;
    if (!a->agent || !(w = ch_calloc(1, sizeof(*w)))) {
        submit(j, true);
        return;
    }
    w->job = j;
    w->counting = true;
    /* Subscribed first: an END emitted during the abort is counted too. */
    w->sub = ch_agent_subscribe(a->agent, NULL, wait_on_event, w);
    w->need = w->sub ? ch_agent_abort_session(a->agent, j->key, NULL) : 0;
    w->counting = false;
    if (w->need)
        ch_log_info("sessions: deleting %s: waiting for %zu aborted run(s) to end", j->key, w->need);
    uv_timer_init(a->net->loop, &w->timer);
    w->timer.data = w;
    if (w->seen >= w->need)
        wait_end(w);
    else
        uv_timer_start(&w->timer, wait_timeout, DELETE_WAIT_MS, 0);
}

void ch_rest_sessions_delete(struct ch_http_req *r, void *data)
{
    delete_route(r, data, false);
}

void ch_rest_conversations_delete(struct ch_http_req *r, void *data)
{
    delete_route(r, data, true);
}

/* ---- models ---- */

void ch_rest_models(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    struct ch_llm_catalog *cat = a->agent ? ch_llm_client_catalog(ch_agent_llm(a->agent)) : NULL;
    json_t *models = cat ? ch_llm_catalog_models_json(cat) : json_array();

    if (!models) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        return;
    }
    ch_http_respond_json(
        r, 200, json_pack("{s:o, s:s?}", "models", models, "default", cat && cat->chain_count ? cat->chain[0] : NULL));
}
