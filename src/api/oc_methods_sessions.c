/*
 * oc_methods_sessions.c: sessions.list, .preview, .patch, .reset, .delete
 * and .compact (spec 2.2), each one store job (reads on the pool, writes on
 * the writer thread) that builds its answer off the loop.  The transcript
 * reads, sessions.get and chat.history, are in oc_history.c.
 *
 * Token fields follow docs/internals/store.md: OpenClaw's `totalTokens` is
 * the context in use (the store's context_tokens), `contextTokens` the
 * model's window (from the catalog), and the cumulative counters are
 * inputTokens/outputTokens/cacheRead/cacheWrite/estimatedCostUsd.
 */
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"
#include "providers/client.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000
#define COMPACT_DEFAULT_LINES 400

/* ---- the job frame ---- */

static void sjob_free(struct oc_sjob *j)
{
    ch_oc_conn_unref(j->conn);
    ch_free(j->req_id);
    json_decref(j->params);
    ch_llm_catalog_unref(j->cat);
    ch_free(j->store_path);
    ch_free(j->model_ref);
    json_decref(j->answer);
    json_decref(j->health);
    ch_free(j);
}

void ch_oc_sjob_finish(struct ch_store_job *job, int rc)
{
    struct oc_sjob *j = (struct oc_sjob *)job;

    if (j->health) {
        json_decref(j->oc->health_sessions);
        j->oc->health_sessions = j->health;
        j->oc->health_ms = j->now_ms;
        j->health = NULL;
    }
    if (!ch_oc_conn_is_open(j->conn))
        goto out;
    if (rc == 0 && j->answer) {
        ch_oc_res_ok(j->conn, j->req_id, j->answer);
        j->answer = NULL;
    } else if (j->err_code) {
        ch_oc_res_err(j->conn, j->req_id, j->err_code, j->err_msg, NULL);
    } else {
        snprintf(j->err_msg, sizeof(j->err_msg), "%s failed: %s", j->method, ch_strerror(rc ? rc : CH_ENOMEM));
        ch_oc_res_err(j->conn, j->req_id, "UNAVAILABLE", j->err_msg, NULL);
    }
out:
    sjob_free(j);
}

struct oc_sjob *ch_oc_sjob_new(struct oc_req *q, ch_store_job_run_cb run)
{
    struct ch_oc *oc = q->conn->oc;
    struct ch_llm_catalog *cat = oc->api->agent ? ch_llm_client_catalog(ch_agent_llm(oc->api->agent)) : NULL;
    struct oc_sjob *j;

    if (!oc->api->store) {
        ch_oc_unavailable(q, "this gateway has no store");
        return NULL;
    }
    j = ch_calloc(1, sizeof(*j));
    if (!j || !(j->req_id = ch_strdup(q->id))) {
        ch_free(j);
        ch_oc_unavailable(q, "out of memory");
        return NULL;
    }
    j->job.run = run;
    j->job.done = ch_oc_sjob_finish;
    j->oc = oc;
    j->conn = q->conn;
    ch_oc_conn_ref(q->conn);
    j->method = q->method;
    j->params = json_incref(q->params);
    j->cat = cat ? ch_llm_catalog_ref(cat) : NULL;
    j->store_path = ch_strdup(ch_store_path(oc->api->store) ? ch_store_path(oc->api->store) : "");
    j->protocol = q->conn->protocol;
    j->now_ms = ch_now_ms();
    return j;
}

void ch_oc_sjob_submit(struct oc_sjob *j, bool write)
{
    int rc = write ? ch_store_write(j->oc->api->store, &j->job) : ch_store_read(j->oc->api->store, &j->job);

    if (rc) {
        ch_oc_res_err(j->conn, j->req_id, "UNAVAILABLE", "the store cannot take the request now; retry shortly",
                      json_pack("{s:b}", "retryable", 1));
        sjob_free(j);
    }
}

static const char *pstr(const struct oc_sjob *j, const char *k)
{
    return json_string_value(json_object_get(j->params, k));
}

static int fail_job(struct oc_sjob *j, const char *code, const char *fmt, const char *arg)
{
    j->err_code = code;
    snprintf(j->err_msg, sizeof(j->err_msg), fmt, arg);
    return CH_EINVAL;
}

/* ---- rows ---- */

/* The model a session talks to: its override, else what answered its
 * last run ("provider/model" when known), else NULL (the default). */
static char *session_model(struct ch_db *db, const struct ch_session_rec *s)
{
    struct ch_run_rec run = {0};
    char *out = NULL;

    if (s->model_override)
        return ch_strdup(s->model_override);
    if (!s->last_run_id || ch_runs_get(db, s->last_run_id, &run) != 0)
        return NULL;
    if (run.model) {
        json_t *res = run.result ? json_loads(run.result, 0, NULL) : NULL;
        const char *prov = json_string_value(json_object_get(res, "provider"));
        out = prov && !strchr(run.model, '/') ? ch_sprintf("%s/%s", prov, run.model) : ch_strdup(run.model);
        json_decref(res);
    }
    ch_run_rec_release(&run);
    return out;
}

static void split_ref(const char *ref, char *prov, size_t pcap, const char **model)
{
    const char *slash = ref ? strchr(ref, '/') : NULL;

    prov[0] = '\0';
    *model = ref;
    if (slash) {
        snprintf(prov, pcap, "%.*s", (int)CH_MIN((size_t)(slash - ref), pcap - 1), ref);
        *model = slash + 1;
    }
}

static int64_t window_of(const struct ch_llm_catalog *cat, const char *ref)
{
    struct ch_llm_target t;

    if (cat && ch_llm_catalog_resolve(cat, ref, &t, NULL) == 0)
        return t.context_window;
    return CH_LLM_DEF_CONTEXT_WINDOW;
}

json_t *ch_oc_session_defaults(const struct ch_llm_catalog *cat)
{
    const char *ref = cat && cat->chain_count ? cat->chain[0] : NULL, *model;
    char prov[128];

    split_ref(ref, prov, sizeof(prov), &model);
    return json_pack("{s:s, s:s, s:I}", "modelProvider", prov, "model", model ? model : "", "contextTokens",
                     (json_int_t)window_of(cat, ref));
}

json_t *ch_oc_session_row(struct ch_db *db, const struct ch_session_rec *s, const struct ch_llm_catalog *cat,
                          int64_t now_ms)
{
    char *ref = session_model(db, s);
    const char *model, *key = s->key;
    char prov[128];
    json_t *o;

    split_ref(ref ? ref : (cat && cat->chain_count ? cat->chain[0] : NULL), prov, sizeof(prov), &model);
    o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:f, s:s, s:s}", "key", key, "kind",
                  !strcmp(key, "global") ? "global" : "direct", "sessionId", s->session_id, "updatedAt",
                  (json_int_t)s->updated_ms, "age", (json_int_t)(now_ms > s->updated_ms ? now_ms - s->updated_ms : 0),
                  "inputTokens", (json_int_t)s->usage.input_tokens, "outputTokens", (json_int_t)s->usage.output_tokens,
                  "cacheRead", (json_int_t)s->usage.cache_read_tokens, "cacheWrite",
                  (json_int_t)s->usage.cache_write_tokens, "totalTokens", (json_int_t)s->context_tokens,
                  "totalTokensFresh", 1, "contextTokens", (json_int_t)window_of(cat, ref), "estimatedCostUsd",
                  s->usage.cost_usd, "modelProvider", prov, "model", model ? model : "");
    if (o && s->label)
        json_object_set_new(o, "label", json_string(s->label));
    if (o && s->display_name)
        json_object_set_new(o, "displayName", json_string(s->display_name));
    if (o && s->channel)
        json_object_set_new(o, "channel", json_string(s->channel));
    if (o && s->thinking_level)
        json_object_set_new(o, "thinkingLevel", json_string(s->thinking_level));
    if (o && s->model_override) {
        json_object_set_new(o, "providerOverride", json_string(prov));
        json_object_set_new(o, "modelOverride", json_string(model ? model : ""));
    }
    if (o)
        json_object_set_new(o, "compactionCount", json_integer(s->compaction_count));
    ch_free(ref);
    return o;
}

json_t *ch_oc_health_sessions(const struct ch_session_list *l, const char *path, int64_t now_ms)
{
    json_t *recent = json_array();

    for (size_t i = 0; recent && i < l->count && i < 5; i++) {
        const struct ch_session_rec *s = &l->items[i];
        json_array_append_new(recent,
                              json_pack("{s:s, s:I, s:I}", "key", s->key, "updatedAt", (json_int_t)s->updated_ms, "age",
                                        (json_int_t)(now_ms > s->updated_ms ? now_ms - s->updated_ms : 0)));
    }
    return json_pack("{s:s, s:I, s:o}", "path", path, "count", (json_int_t)l->total, "recent",
                     recent ? recent : json_array());
}

/* ---- sessions.list ---- */

static int list_run(struct ch_db *db, struct ch_store_job *job)
{
    struct oc_sjob *j = (struct oc_sjob *)job;
    const json_t *lim = json_object_get(j->params, "limit"), *off = json_object_get(j->params, "offset");
    const json_t *active = json_object_get(j->params, "activeMinutes");
    struct ch_session_query q = {0};
    struct ch_session_list l = {0};
    json_t *rows;
    int rc;

    q.limit = lim ? (size_t)CH_MIN(json_integer_value(lim), LIST_MAX) : LIST_DEFAULT;
    q.offset = off ? (size_t)CH_MIN(json_integer_value(off), 1000000000) : 0;
    q.agent_id = pstr(j, "agentId");
    if (q.agent_id && !strcmp(q.agent_id, "main"))
        q.agent_id = NULL; /* every chela session belongs to the one agent */
    /* Minutes past ~8,000 years mean "all": clamped before the multiplication overflows. */
    if (active)
        q.updated_since_ms = j->now_ms - CH_MIN(json_integer_value(active), (json_int_t)1 << 32) * 60000;
    if ((rc = ch_sessions_list(db, &q, &l)) != 0)
        return rc;
    rows = json_array();
    for (size_t i = 0; rows && i < l.count; i++)
        json_array_append_new(rows, ch_oc_session_row(db, &l.items[i], j->cat, j->now_ms));
    j->answer = json_pack("{s:I, s:s, s:I, s:o, s:o}", "ts", (json_int_t)j->now_ms, "path", j->store_path, "count",
                          (json_int_t)l.count, "defaults", ch_oc_session_defaults(j->cat), "sessions",
                          rows ? rows : json_array());
    if (j->answer && j->protocol >= 4) {
        bool more = q.offset + l.count < (size_t)l.total;
        json_object_set_new(j->answer, "totalCount", json_integer(l.total));
        json_object_set_new(j->answer, "limitApplied", json_integer((json_int_t)q.limit));
        json_object_set_new(j->answer, "offset", json_integer((json_int_t)q.offset));
        json_object_set_new(j->answer, "nextOffset",
                            more ? json_integer((json_int_t)(q.offset + l.count)) : json_null());
        json_object_set_new(j->answer, "hasMore", json_boolean(more));
    }
    if (q.offset == 0 && !q.agent_id && !q.updated_since_ms)
        j->health = ch_oc_health_sessions(&l, j->store_path, j->now_ms);
    ch_session_list_release(&l);
    return j->answer ? 0 : CH_ENOMEM;
}

void ch_oc_m_sessions_list(struct oc_req *q)
{
    struct oc_sjob *j = ch_oc_sjob_new(q, list_run);

    if (j)
        ch_oc_sjob_submit(j, false);
}

/* ---- sessions.preview ---- */

#define PREVIEW_KEYS_MAX 64 /* keys answered, the reference's slice */

/* A key of `keys` without its outer blanks in *out; its length (0: blank
 * or not a string, skipped). */
static size_t preview_key(const char *s, const char **out)
{
    size_t n = s ? strlen(s) : 0;

    while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    *out = s;
    return n;
}

static int preview_run(struct ch_db *db, struct ch_store_job *job)
{
    struct oc_sjob *j = (struct oc_sjob *)job;
    const json_t *keys = json_object_get(j->params, "keys"), *k;
    const json_t *lim = json_object_get(j->params, "limit"), *mc = json_object_get(j->params, "maxChars");
    size_t limit = lim ? (size_t)CH_MIN(json_integer_value(lim), 1000) : 12;
    size_t max_chars = mc ? (size_t)CH_MIN(json_integer_value(mc), 1 << 20) : 240;
    json_t *out = json_array();
    size_t i;

    json_array_foreach(keys, i, k)
    {
        struct ch_preview_list pl = {0};
        const char *sent = json_string_value(k);
        char key[CH_SESSION_KEY_MAX + 1];
        size_t n = preview_key(sent, &sent);
        int rc = n ? ch_oc_key_canon(sent, key, sizeof(key), NULL, 0) : CH_ENOTFOUND;
        json_t *items = json_array();
        const char *status;

        if (!n)
            continue; /* the reference drops blank keys */
        if (rc == 0)
            rc = ch_messages_preview(db, key, limit, max_chars, &pl);
        status = rc == CH_ENOTFOUND || rc == CH_E_TOO_LARGE ? "missing" : rc ? "error" : pl.count ? "ok" : "empty";
        for (size_t m = 0; items && m < pl.count; m++)
            json_array_append_new(items, json_pack("{s:s, s:s}", "role", pl.items[m].role, "text", pl.items[m].text));
        /* Echoed as sent (trimmed), as the reference does; looked up canonical. */
        json_array_append_new(out, json_pack("{s:s%, s:s, s:o}", "key", sent, n, "status", status, "items",
                                             items ? items : json_array()));
        ch_preview_list_release(&pl);
        if (json_array_size(out) >= PREVIEW_KEYS_MAX)
            break; /* the reference's bound */
    }
    j->answer = json_pack("{s:I, s:o}", "ts", (json_int_t)j->now_ms, "previews", out ? out : json_array());
    return j->answer ? 0 : CH_ENOMEM;
}

void ch_oc_m_sessions_preview(struct oc_req *q)
{
    const json_t *keys = json_object_get(q->params, "keys"), *k;
    char key[CH_SESSION_KEY_MAX + 1];
    struct oc_sjob *j;
    size_t i, seen = 0;

    /* One malformed key refuses the whole request, as in the reference
     * (a key too long for chela is only "missing"). */
    json_array_foreach(keys, i, k)
    {
        const char *sent = json_string_value(k);
        char why[CH_SESSION_KEY_MAX + 64];
        if (!preview_key(sent, &sent))
            continue;
        if (ch_oc_key_canon(sent, key, sizeof(key), why, sizeof(why)) == CH_EINVAL) {
            ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST", why, NULL);
            return;
        }
        if (++seen >= PREVIEW_KEYS_MAX)
            break;
    }
    if ((j = ch_oc_sjob_new(q, preview_run)) != NULL)
        ch_oc_sjob_submit(j, false);
}

/* ---- sessions.patch ---- */

static int patch_run(struct ch_db *db, struct ch_store_job *job)
{
    struct oc_sjob *j = (struct oc_sjob *)job;
    const char *key = j->key;
    struct ch_session_patch p = {0};
    struct ch_session_rec s = {0};
    const json_t *v;
    char prov[128];
    const char *model;
    int rc = ch_sessions_ensure(db, key, NULL, j->now_ms, NULL, NULL);

    if ((v = json_object_get(j->params, "label")) != NULL) {
        p.set_label = true;
        p.label = json_string_value(v);
    }
    if ((v = json_object_get(j->params, "thinkingLevel")) != NULL) {
        p.set_thinking_level = true;
        p.thinking_level = json_string_value(v);
    }
    if (json_object_get(j->params, "model")) {
        p.set_model_override = true;
        p.model_override = j->model_ref; /* NULL clears */
    }
    if (rc == 0)
        rc = ch_sessions_patch(db, key, &p, j->now_ms, &s);
    if (rc == CH_EINVAL || rc == CH_E_TOO_LARGE)
        return fail_job(j, "INVALID_REQUEST", "invalid sessions.patch params: %s", "a value is too long or invalid");
    if (rc == 0) {
        json_t *entry = ch_oc_session_row(db, &s, j->cat, j->now_ms);
        split_ref(s.model_override ? s.model_override : (j->cat && j->cat->chain_count ? j->cat->chain[0] : NULL), prov,
                  sizeof(prov), &model);
        j->answer =
            json_pack("{s:b, s:s, s:s, s:o, s:{s:s, s:s}}", "ok", 1, "path", j->store_path, "key", key, "entry",
                      entry ? entry : json_object(), "resolved", "modelProvider", prov, "model", model ? model : "");
        rc = j->answer ? 0 : CH_ENOMEM;
    }
    ch_session_rec_release(&s);
    return rc;
}

void ch_oc_m_sessions_patch(struct oc_req *q)
{
    struct ch_oc *oc = q->conn->oc;
    const json_t *model = json_object_get(q->params, "model");
    struct ch_llm_target t;
    struct ch_error err = {0};
    struct oc_sjob *j;
    char msg[400], key[CH_SESSION_KEY_MAX + 1];

    if (!ch_oc_req_key(q, json_string_value(json_object_get(q->params, "key")), key, sizeof(key)))
        return;
    /* Canonical, but holding what chela's store refuses (blanks, controls). */
    if (!ch_agent_session_key_valid(key)) {
        ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST",
                      "invalid sessions.patch params: a session key is printable, without spaces", NULL);
        return;
    }
    /* The override is stored as "provider/model": resolve aliases and
     * bare ids now, so a typo fails here and not at the next run. */
    if (json_is_string(model) && json_string_length(model)) {
        struct ch_llm_catalog *cat = oc->api->agent ? ch_llm_client_catalog(ch_agent_llm(oc->api->agent)) : NULL;
        if (!cat || ch_llm_catalog_resolve(cat, json_string_value(model), &t, &err) != 0) {
            snprintf(msg, sizeof(msg), "invalid sessions.patch params: unknown model \"%.100s\"%s%.200s",
                     json_string_value(model), err.msg[0] ? ": " : "", err.msg);
            ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST", msg, NULL);
            return;
        }
    }
    j = ch_oc_sjob_new(q, patch_run);
    if (!j)
        return;
    memcpy(j->key, key, sizeof(key));
    if (json_is_string(model) && json_string_length(model))
        j->model_ref = ch_strdup(t.ref);
    ch_oc_sjob_submit(j, true);
}

/* ---- sessions.reset ---- */

static int reset_run(struct ch_db *db, struct ch_store_job *job)
{
    struct oc_sjob *j = (struct oc_sjob *)job;
    const char *key = j->key;
    struct ch_session_rec s = {0};
    int rc = ch_sessions_ensure(db, key, NULL, j->now_ms, NULL, NULL);

    if (rc == 0)
        rc = ch_sessions_reset(db, key, NULL, j->now_ms, &s);
    if (rc == 0) {
        json_t *entry = ch_oc_session_row(db, &s, j->cat, j->now_ms);
        j->answer = json_pack("{s:b, s:s, s:o}", "ok", 1, "key", key, "entry", entry ? entry : json_object());
        rc = j->answer ? 0 : CH_ENOMEM;
    }
    ch_session_rec_release(&s);
    return rc;
}

void ch_oc_m_sessions_reset(struct oc_req *q)
{
    char key[CH_SESSION_KEY_MAX + 1];
    struct oc_sjob *j;

    if (!ch_oc_req_key(q, json_string_value(json_object_get(q->params, "key")), key, sizeof(key)))
        return;
    if (!ch_agent_session_key_valid(key)) {
        ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST",
                      "invalid sessions.reset params: a session key is printable, without spaces", NULL);
        return;
    }
    if (q->conn->oc->api->agent) { /* a live run would write into the old id */
        char **ids = NULL;

        ch_agent_abort_session(q->conn->oc->api->agent, key, &ids);
        ch_oc_runs_stopped_by(q->conn->oc, key, ids, "reset");
    }
    if ((j = ch_oc_sjob_new(q, reset_run)) != NULL) {
        memcpy(j->key, key, sizeof(key));
        ch_oc_sjob_submit(j, true);
    }
}

/* ---- sessions.delete ---- */

static int delete_run(struct ch_db *db, struct ch_store_job *job)
{
    struct oc_sjob *j = (struct oc_sjob *)job;
    bool existed = false;
    int rc = ch_sessions_delete(db, j->key, &existed);

    if (rc == 0 &&
        !(j->answer = json_pack("{s:b, s:s, s:b, s:[]}", "ok", 1, "key", j->key, "deleted", existed, "archived")))
        rc = CH_ENOMEM;
    return rc;
}

void ch_oc_m_sessions_delete(struct oc_req *q)
{
    char key[CH_SESSION_KEY_MAX + 1], msg[CH_SESSION_KEY_MAX + 40];
    struct oc_sjob *j;

    if (!ch_oc_req_key(q, json_string_value(json_object_get(q->params, "key")), key, sizeof(key)))
        return;
    /* `main`, `Main`, `agent:main:main` and `global` are all the main
     * session; the reference names it by its canonical key. */
    if (!strcmp(key, "agent:main:main") || !strcmp(key, "global")) {
        snprintf(msg, sizeof(msg), "Cannot delete the main session (%s).", key);
        ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST", msg, NULL);
        return;
    }
    if (q->conn->oc->api->agent) {
        char **ids = NULL;

        ch_agent_abort_session(q->conn->oc->api->agent, key, &ids);
        ch_oc_runs_stopped_by(q->conn->oc, key, ids, "delete");
    }
    if ((j = ch_oc_sjob_new(q, delete_run)) != NULL) {
        memcpy(j->key, key, sizeof(key));
        ch_oc_sjob_submit(j, true);
    }
}

/* ---- sessions.compact ---- */

/* Keep the newest maxLines messages; the older ones are replaced by one
 * compaction entry that says what was removed (no model call: the agent
 * summarises on its own when the context fills). */
static int compact_run(struct ch_db *db, struct ch_store_job *job)
{
    struct oc_sjob *j = (struct oc_sjob *)job;
    const char *key = j->key;
    const json_t *ml = json_object_get(j->params, "maxLines");
    int64_t keep = ml ? json_integer_value(ml) : COMPACT_DEFAULT_LINES, count = 0, replaced = 0;
    struct ch_session_rec s = {0};
    struct ch_message_list last = {0};
    struct ch_compaction c = {0};
    char summary[160];
    int rc = ch_sessions_get(db, key, &s);

    if (rc == CH_ENOTFOUND) {
        j->answer = json_pack("{s:b, s:s, s:b, s:s}", "ok", 1, "key", key, "compacted", 0, "reason", "no session");
        return j->answer ? 0 : CH_ENOMEM;
    }
    if (rc == 0)
        rc = ch_messages_count(db, s.session_id, &count);
    if (rc == 0 && count <= keep) {
        j->answer = json_pack("{s:b, s:s, s:b, s:s}", "ok", 1, "key", key, "compacted", 0, "reason",
                              "transcript is within maxLines");
        rc = j->answer ? 0 : CH_ENOMEM;
        goto out;
    }
    if (rc == 0)
        rc = ch_messages_load_last(db, s.session_id, (size_t)keep, CH_STORE_MAX_LOAD_BYTES, &last);
    if (rc == 0 && last.count) {
        snprintf(summary, sizeof(summary), "[sessions.compact: %lld earlier messages were removed]",
                 (long long)(count - (int64_t)last.count));
        c.session_key = key;
        c.session_id = s.session_id;
        c.first_kept_seq = last.items[0].seq;
        c.summary = summary;
        c.tokens_before = s.context_tokens;
        c.created_ms = j->now_ms;
        rc = c.first_kept_seq >= 2 ? ch_messages_compact(db, &c, NULL, &replaced) : CH_ESTATE;
    }
    if (rc == CH_ESTATE) {
        j->answer =
            json_pack("{s:b, s:s, s:b, s:s}", "ok", 1, "key", key, "compacted", 0, "reason", "already compacted");
        rc = j->answer ? 0 : CH_ENOMEM;
    } else if (rc == 0) {
        j->answer =
            json_pack("{s:b, s:s, s:b, s:I}", "ok", 1, "key", key, "compacted", 1, "removed", (json_int_t)replaced);
        rc = j->answer ? 0 : CH_ENOMEM;
    }
out:
    ch_message_list_release(&last);
    ch_session_rec_release(&s);
    return rc;
}

void ch_oc_m_sessions_compact(struct oc_req *q)
{
    struct oc_sjob *j = ch_oc_sjob_new_key(q, compact_run, "key");

    if (j)
        ch_oc_sjob_submit(j, true);
}
