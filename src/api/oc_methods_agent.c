/*
 * oc_methods_agent.c: agent, agent.wait, chat.send, chat.abort and the
 * idempotency cache (spec 1.8, 2.2).
 *
 * `agent` answers twice on the same request id: {runId, status:
 * "accepted", acceptedAt} once the run is durably queued, then the final
 * {runId, status:"ok", summary:"completed", result:{payloads, meta}} from
 * the run's END event (oc_events.c answers the waiter).  runId is the
 * idempotencyKey; a missing key (seed 001's pharmacy client) is generated.
 * A key seen in the last 5 minutes (at most 1000 kept, oldest evicted)
 * gets the cached final, or {runId, status:"in_flight"}.
 */
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"
#include "providers/client.h"

#define WAIT_DEFAULT_MS 30000
#define WAIT_MAX_MS (24LL * 3600 * 1000)

/* ---- dedupe ---- */

static void dd_free(struct oc_dedupe_entry *d)
{
    ch_free(d->key);
    ch_free(d->run_id);
    ch_free(d->final_text);
    ch_free(d->final_error);
    ch_free(d);
}

static void dd_unlink(struct ch_oc *oc, struct oc_dedupe_entry *d)
{
    ch_map_del(&oc->dedupe, d->key, strlen(d->key));
    if (d->prev)
        d->prev->next = d->next;
    else
        oc->dd_head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        oc->dd_tail = d->prev;
    dd_free(d);
}

static void dd_expire(struct ch_oc *oc, int64_t now)
{
    while (oc->dd_head && now - oc->dd_head->at_ms > OC_DEDUPE_TTL_MS)
        dd_unlink(oc, oc->dd_head);
}

struct oc_dedupe_entry *ch_oc_dedupe_find(struct ch_oc *oc, const char *key, int64_t now_ms)
{
    dd_expire(oc, now_ms);
    return ch_map_get(&oc->dedupe, key, strlen(key));
}

struct oc_dedupe_entry *ch_oc_dedupe_add(struct ch_oc *oc, const char *key, const char *run_id, int64_t now_ms)
{
    struct oc_dedupe_entry *d;

    dd_expire(oc, now_ms);
    while (oc->dedupe.count >= OC_DEDUPE_MAX && oc->dd_head)
        dd_unlink(oc, oc->dd_head); /* the cap wins over the TTL */
    d = ch_calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->key = ch_strdup(key);
    d->run_id = ch_strdup(run_id);
    d->at_ms = now_ms;
    if (!d->key || !d->run_id || ch_map_set(&oc->dedupe, d->key, strlen(d->key), d, NULL) != 0) {
        dd_free(d);
        return NULL;
    }
    d->prev = oc->dd_tail;
    if (oc->dd_tail)
        oc->dd_tail->next = d;
    else
        oc->dd_head = d;
    oc->dd_tail = d;
    return d;
}

void ch_oc_dedupe_release(struct ch_oc *oc)
{
    while (oc->dd_head)
        dd_unlink(oc, oc->dd_head);
    ch_map_release(&oc->dedupe);
}

/* ---- waiters ---- */

static void waiter_closed(uv_handle_t *h)
{
    ch_free(h->data);
}

void ch_oc_waiter_free(struct oc_waiter *w)
{
    if (!w)
        return;
    if (w->run)
        ch_oc_run_remove_waiter(w->run, w);
    ch_oc_conn_unref(w->conn);
    w->conn = NULL;
    ch_free(w->req_id);
    ch_free(w->dedupe_key);
    w->req_id = w->dedupe_key = NULL;
    if (w->timer_init) {
        w->timer.data = w;
        uv_timer_stop(&w->timer);
        uv_close((uv_handle_t *)&w->timer, waiter_closed);
    } else {
        ch_free(w);
    }
}

static struct oc_waiter *waiter_new(struct oc_req *q, enum oc_waiter_kind kind, const char *dedupe_key)
{
    struct oc_waiter *w = ch_calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->kind = (uint8_t)kind;
    w->conn = q->conn;
    ch_oc_conn_ref(q->conn);
    w->req_id = ch_strdup(q->id);
    w->dedupe_key = dedupe_key ? ch_strdup(dedupe_key) : NULL;
    if (!w->req_id || (dedupe_key && !w->dedupe_key)) {
        ch_oc_waiter_free(w);
        return NULL;
    }
    return w;
}

/* ---- the final payload ---- */

json_t *ch_oc_agent_final(const char *run_id, const struct ch_agent_result *res, const char *session_id, int protocol,
                          bool *ok, char **err_msg)
{
    const struct ch_llm_usage *u = &res->usage;
    bool aborted = !strcmp(res->status, "aborted"), v4_abort;
    int64_t total = (int64_t)(u->input_tokens + u->output_tokens + u->cache_read_tokens + u->cache_write_tokens);
    json_t *meta, *payloads, *fin;

    *err_msg = NULL;
    *ok = !strcmp(res->status, "ok") || aborted;
    if (!*ok) {
        /* v3's failure shape: payload {runId, status, summary} next to an
         * UNAVAILABLE error; v4 keeps it and says "timeout" for timeouts. */
        const char *msg = res->error && *res->error ? res->error : res->status;
        *err_msg = ch_strdup(msg);
        return json_pack("{s:s, s:s, s:s}", "runId", run_id, "status",
                         protocol >= 4 && !strcmp(res->status, "timeout") ? "timeout" : "error", "summary", msg);
    }
    payloads = res->text && *res->text ? json_pack("[{s:s}]", "text", res->text) : json_array();
    meta = json_pack("{s:I, s:{s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I}}, s:b}", "durationMs",
                     (json_int_t)(res->finished_ms > res->started_ms ? res->finished_ms - res->started_ms : 0),
                     "agentMeta", "sessionId", session_id ? session_id : "", "provider",
                     res->provider ? res->provider : "", "model", res->model ? res->model : "", "usage", "input",
                     (json_int_t)u->input_tokens, "output", (json_int_t)u->output_tokens, "cacheRead",
                     (json_int_t)u->cache_read_tokens, "cacheWrite", (json_int_t)u->cache_write_tokens, "total",
                     (json_int_t)total, "aborted", aborted);
    /* An aborted run resolves (ok:true) with meta.aborted.  v4 answers it
     * {status: "timeout", summary: "aborted", stopReason} (2026.9.6's
     * agent-turn-service), the stopReason the runner recorded: "aborted"
     * for an abort without a reason (chat.abort's); 2026.3's handler (v3)
     * answered every resolved run {status: "ok", summary: "completed"}. */
    v4_abort = aborted && protocol >= 4;
    fin = json_pack("{s:s, s:s, s:s}", "runId", run_id, "status", v4_abort ? "timeout" : "ok", "summary",
                    v4_abort ? "aborted" : "completed");
    if (fin && v4_abort)
        json_object_set_new(fin, "stopReason", json_string("aborted"));
    /* set_new steals the result even when fin is NULL and it fails */
    json_object_set_new(
        fin, "result",
        json_pack("{s:o, s:o}", "payloads", payloads ? payloads : json_array(), "meta", meta ? meta : json_object()));
    return fin;
}

/* ---- submission ---- */

struct submit_ctx {
    struct oc_conn *conn; /* ref held */
    char *req_id, *run_id, *session_key;
    bool chat; /* chat.send: answer "started" */
};

static void ctx_free(struct submit_ctx *x)
{
    ch_oc_conn_unref(x->conn);
    ch_free(x->req_id);
    ch_free(x->run_id);
    ch_free(x->session_key);
    ch_free(x);
}

/* Drop what a refused run left: our waiter, the run record, the key. */
static void undo(struct ch_oc *oc, struct submit_ctx *x)
{
    struct oc_run *r = ch_oc_run_get(oc, x->run_id, NULL);
    struct oc_dedupe_entry *d = ch_map_get(&oc->dedupe, x->run_id, strlen(x->run_id));

    if (r) {
        for (struct oc_waiter *w = r->waiters; w; w = w->next) {
            if (w->conn == x->conn && w->req_id && !strcmp(w->req_id, x->req_id)) {
                ch_oc_waiter_free(w); /* unlinks itself */
                break;
            }
        }
        ch_oc_run_forget(r);
    }
    if (d && !d->final_text)
        dd_unlink(oc, d);
}

static void on_accepted(int rc, const char *run_id, bool duplicate, const char *msg, void *data)
{
    struct submit_ctx *x = data;
    struct ch_oc *oc = x->conn->oc;
    struct oc_conn *c = x->conn;
    char text[256];

    if (rc == 0 && !duplicate) {
        if (x->chat) {
            ch_oc_res_ok(c, x->req_id, json_pack("{s:s, s:s}", "runId", x->run_id, "status", "started"));
        } else {
            json_t *p = json_pack("{s:s, s:s, s:I}", "runId", x->run_id, "status", "accepted", "acceptedAt",
                                  (json_int_t)ch_now_ms());
            if (p && c->protocol >= 4) {
                json_object_set_new(p, "sessionKey", json_string(x->session_key));
                json_object_set_new(p, "agentId", json_string("main"));
            }
            ch_oc_res_ok(c, x->req_id, p);
        }
    } else if (rc == 0) {
        /* The store already holds this key (an earlier process, or a key
         * older than the in-memory window). */
        undo(oc, x);
        if (oc->api->agent && ch_agent_run_is_live(oc->api->agent, run_id))
            ch_oc_res_ok(c, x->req_id, json_pack("{s:s, s:s}", "runId", run_id, "status", "in_flight"));
        else {
            snprintf(text, sizeof(text),
                     "idempotencyKey was already used by finished run %.128s; use agent.wait "
                     "or a new key",
                     run_id);
            ch_oc_res_err(c, x->req_id, "INVALID_REQUEST", text, NULL);
        }
    } else {
        undo(oc, x);
        snprintf(text, sizeof(text), "%s%s",
                 rc == CH_EINVAL ? (x->chat ? "invalid chat.send params: " : "invalid agent params: ") : "",
                 rc == CH_ENOSPC ? CH_STORAGE_FULL_MSG
                 : msg           ? msg
                                 : ch_strerror(rc));
        if (rc == CH_EINVAL)
            ch_oc_res_err(c, x->req_id, "INVALID_REQUEST", text, NULL);
        else
            ch_oc_res_err(c, x->req_id, "UNAVAILABLE", text,
                          json_pack("{s:s, s:b}", "reason",
                                    rc == CH_EBUSY    ? "queue-full"
                                    : rc == CH_ENOSPC ? "storage-full"
                                                      : "unavailable",
                                    "retryable", rc == CH_EBUSY || rc == CH_ENOSPC));
    }
    ctx_free(x);
}

/*
 * The session key of agent/chat params in canonical form (the run's key:
 * the ack, the events and the stored run carry it): sessionKey, else
 * sessionId (seed 001 sends both, the same), else the main session.
 * `global` runs in the main session, as the reference loads it for these
 * two methods.  0, or ch_oc_key_canon's error and refusal.
 */
static int session_key_of(const json_t *p, char *out, size_t cap, char *why, size_t why_cap)
{
    const char *k = json_string_value(json_object_get(p, "sessionKey"));
    int rc;

    if (!k || !*k)
        k = json_string_value(json_object_get(p, "sessionId"));
    rc = ch_oc_key_canon(k && *k ? k : "main", out, cap, why, why_cap);
    if (rc == 0 && !strcmp(out, "global"))
        ch_str_copy(out, cap, "agent:main:main");
    return rc;
}

static bool model_ok(struct ch_oc *oc, const char *ref, char *why, size_t cap)
{
    struct ch_llm_catalog *cat = ch_llm_client_catalog(ch_agent_llm(oc->api->agent));
    struct ch_llm_target t;
    struct ch_error err = {0};

    if (!cat || ch_llm_catalog_resolve(cat, ref, &t, &err) != 0) {
        snprintf(why, cap, "unknown model \"%.100s\"%s%.120s", ref, err.msg[0] ? ": " : "", err.msg);
        return false;
    }
    return true;
}

static void submit_run(struct oc_req *q, bool chat)
{
    struct ch_oc *oc = q->conn->oc;
    struct ch_agent_run_req rr = {0};
    const json_t *p = q->params;
    const char *idem = json_string_value(json_object_get(p, "idempotencyKey"));
    const char *agent_id = json_string_value(json_object_get(p, "agentId"));
    const char *prov = json_string_value(json_object_get(p, "provider"));
    const char *model = json_string_value(json_object_get(p, "model"));
    const char *prefix = chat ? "invalid chat.send params: " : "invalid agent params: ";
    char gen[37], key[CH_SESSION_KEY_MAX + 1], modelbuf[300], why[CH_SESSION_KEY_MAX + 64];
    struct oc_dedupe_entry *d;
    struct submit_ctx *x;
    struct oc_waiter *w = NULL;
    struct oc_run *r;
    bool bare = false; /* why is the whole message (no "invalid ... params: ") */
    int krc;
    int64_t now = ch_now_ms();

    if (!oc->api->agent) {
        ch_oc_unavailable(q, "this gateway runs without an agent runtime");
        return;
    }
    if (!idem || !*idem) {
        /* Also the run id: time-ordered, it appends to the runs index.
         * A caller's own key stays the run id as it is. */
        ch_agent_run_id_new(gen);
        idem = gen;
    }
    why[0] = '\0';
    if (strlen(idem) > CH_STORE_MAX_ID_BYTES)
        snprintf(why, sizeof(why), "idempotencyKey must be at most %d characters", CH_STORE_MAX_ID_BYTES);
    else if (agent_id && strcmp(agent_id, "main") != 0)
        snprintf(why, sizeof(why), "unknown agent id \"%.100s\"", agent_id);
    else if ((krc = session_key_of(p, key, sizeof(key), why, sizeof(why))) != 0)
        bare = krc == CH_EINVAL; /* the reference's own text, unprefixed */
    else if (!ch_agent_session_key_valid(key))
        snprintf(why, sizeof(why), "session key must be printable, without spaces");
    else if (!*json_string_value(json_object_get(p, "message")))
        snprintf(why, sizeof(why), "message must not be empty");
    if (!why[0] && (model && *model)) {
        if (prov && *prov && !strchr(model, '/')) {
            snprintf(modelbuf, sizeof(modelbuf), "%.100s/%.180s", prov, model);
            model = modelbuf;
        }
        model_ok(oc, model, why, sizeof(why));
    } else if (!why[0] && prov && *prov) {
        model = prov; /* a provider alone means its first model */
        model_ok(oc, model, why, sizeof(why));
    }
    if (why[0]) {
        char msg[sizeof(why) + 40];
        snprintf(msg, sizeof(msg), "%s%s", bare ? "" : prefix, why);
        ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST", msg, NULL);
        return;
    }
    d = ch_oc_dedupe_find(oc, idem, now);
    if (d) {
        if (!d->final_text)
            ch_oc_res_ok(q->conn, q->id, json_pack("{s:s, s:s}", "runId", d->run_id, "status", "in_flight"));
        else if (chat && d->final_ok)
            ch_oc_res_ok(q->conn, q->id, json_pack("{s:s, s:s}", "runId", d->run_id, "status", "ok"));
        else if (chat) /* OpenClaw caches a failed chat.send run's error for its repeats */
            ch_oc_res_err_payload(q->conn, q->id,
                                  json_pack("{s:s, s:s, s:s}", "runId", d->run_id, "status", "error", "summary",
                                            d->final_error ? d->final_error : "agent run failed"),
                                  "UNAVAILABLE", d->final_error ? d->final_error : "agent run failed", NULL);
        else if (d->final_ok)
            ch_oc_res_ok(q->conn, q->id, json_loads(d->final_text, 0, NULL));
        else
            ch_oc_res_err_payload(q->conn, q->id, json_loads(d->final_text, 0, NULL), "UNAVAILABLE",
                                  d->final_error ? d->final_error : "agent run failed", NULL);
        return;
    }
    x = ch_calloc(1, sizeof(*x));
    r = ch_oc_run_get(oc, idem, key);
    if (!chat && r)
        w = waiter_new(q, OC_WAIT_AGENT, idem);
    if (!x || !r || (!chat && !w) || !ch_oc_dedupe_add(oc, idem, idem, now)) {
        ch_free(x);
        ch_oc_waiter_free(w);
        ch_oc_run_forget(r);
        ch_oc_unavailable(q, "out of memory");
        return;
    }
    if (w)
        ch_oc_run_add_waiter(r, w);
    x->conn = q->conn;
    ch_oc_conn_ref(q->conn);
    x->req_id = ch_strdup(q->id);
    x->run_id = ch_strdup(idem);
    x->session_key = ch_strdup(key);
    x->chat = chat;
    rr.session_key = key;
    rr.message = json_string_value(json_object_get(p, "message"));
    rr.run_id = idem;
    rr.idempotency_key = idem;
    rr.source = "ws";
    rr.model = model && *model ? model : NULL;
    rr.extra_system = json_string_value(json_object_get(p, "extraSystemPrompt"));
    if (chat) {
        int64_t ms = json_integer_value(json_object_get(p, "timeoutMs"));
        rr.timeout_s = ms > 0 ? (ms + 999) / 1000 : 0;
    } else {
        rr.timeout_s = json_integer_value(json_object_get(p, "timeout"));
    }
    ch_agent_submit(oc->api->agent, &rr, on_accepted, x); /* never calls back synchronously */
}

void ch_oc_m_agent(struct oc_req *q)
{
    submit_run(q, false);
}

void ch_oc_m_chat_send(struct oc_req *q)
{
    submit_run(q, true);
}

/* ---- agent.wait ---- */

static void on_wait_timeout(uv_timer_t *t)
{
    struct oc_waiter *w = t->data;
    struct oc_run *r = w->run;

    ch_oc_res_ok(w->conn, w->req_id, json_pack("{s:s, s:s}", "runId", r ? r->run_id : "", "status", "timeout"));
    ch_oc_waiter_free(w);
    if (r && r->key_pending && !r->waiters)
        ch_oc_run_drop(r); /* no run came under that id */
}

void ch_oc_m_agent_wait(struct oc_req *q)
{
    struct ch_oc *oc = q->conn->oc;
    const char *run_id = json_string_value(json_object_get(q->params, "runId"));
    const json_t *tv = json_object_get(q->params, "timeoutMs");
    int64_t timeout = tv ? json_integer_value(tv) : WAIT_DEFAULT_MS;
    struct oc_dedupe_entry *d = ch_oc_dedupe_find(oc, run_id, ch_now_ms());
    struct oc_run *r = ch_oc_run_get(oc, run_id, NULL);
    struct oc_waiter *w;

    if ((!r || r->ended) && d && d->final_text) {
        const char *st = d->final_aborted ? "aborted" : d->final_ok ? "ok" : "error";
        ch_oc_res_ok(q->conn, q->id,
                     ch_oc_wait_result(run_id, st, d->final_error ? d->final_error : "failed", d->started_ms,
                                       d->ended_ms, q->conn->protocol, d->final_stop_reason));
        return;
    }
    /* A run not seen yet (queued elsewhere, not started, or unknown) is
     * waited for like a live one: OpenClaw cannot tell these apart either
     * and answers "timeout" when no run ends under the id in time. */
    if (!r && timeout != 0)
        r = ch_oc_run_await(oc, run_id);
    if (!r || r->ended || timeout == 0) {
        ch_oc_res_ok(q->conn, q->id, json_pack("{s:s, s:s}", "runId", run_id, "status", "timeout"));
        return;
    }
    w = waiter_new(q, OC_WAIT_WAIT, NULL);
    if (!w) {
        if (r->key_pending && !r->waiters)
            ch_oc_run_drop(r);
        ch_oc_unavailable(q, "out of memory");
        return;
    }
    if (oc->api->net && uv_timer_init(oc->api->net->loop, &w->timer) == 0) {
        w->timer_init = true;
        w->timer.data = w;
        uv_timer_start(&w->timer, on_wait_timeout, (uint64_t)CH_MIN(timeout, WAIT_MAX_MS), 0);
    }
    ch_oc_run_add_waiter(r, w);
}

/* ---- chat.abort ---- */

void ch_oc_m_chat_abort(struct oc_req *q)
{
    struct ch_oc *oc = q->conn->oc;
    const char *raw = json_string_value(json_object_get(q->params, "sessionKey"));
    const char *run_id = json_string_value(json_object_get(q->params, "runId"));
    char key[CH_SESSION_KEY_MAX + 1];
    json_t *ids;
    char **list = NULL;

    if (!oc->api->agent) {
        ch_oc_unavailable(q, "this gateway runs without an agent runtime");
        return;
    }
    if (!ch_oc_req_key(q, raw, key, sizeof(key)))
        return;
    ids = json_array();
    if (run_id) {
        struct oc_run *r = ch_oc_run_get(oc, run_id, NULL);
        /* Runs carry canonical keys; the reference also takes the key as
         * sent (a run stored under it before keys were canonical). */
        if (r && !r->key_pending && strcmp(r->session_key, key) != 0 && strcmp(r->session_key, raw) != 0) {
            json_decref(ids);
            ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST", "runId does not match sessionKey", NULL);
            return;
        }
        if (ch_agent_abort(oc->api->agent, run_id) == 0)
            json_array_append_new(ids, json_string(run_id));
    } else {
        ch_agent_abort_session(oc->api->agent, key, &list);
        for (size_t i = 0; list && list[i]; i++) {
            json_array_append_new(ids, json_string(list[i]));
            ch_free(list[i]);
        }
        ch_free(list);
    }
    ch_oc_res_ok(q->conn, q->id,
                 json_pack("{s:b, s:b, s:o}", "ok", 1, "aborted", json_array_size(ids) > 0, "runIds", ids));
}
