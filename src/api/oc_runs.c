/*
 * oc_runs.c: the gateway's run table (oc->runs): one record per run a
 * WebSocket client started or the agent bus reported, holding the waiters
 * of `agent` and `agent.wait` (oc_methods_agent.c) and the chat state of
 * oc_events.c, until the run's END.
 */
#include <string.h>

#include "api/oc_internal.h"

static void run_closed(uv_handle_t *h)
{
    struct oc_run *r = h->data;

    ch_buf_release(&r->text);
    ch_free(r->run_id);
    ch_free(r->session_key);
    ch_free(r->session_id);
    ch_free(r);
}

/* Forget a run: out of the map now, freed once its timer has closed. */
void ch_oc_run_drop(struct oc_run *r)
{
    struct ch_oc *oc = r->oc;

    if (r->closing)
        return;
    r->closing = true;
    ch_map_del(&oc->runs, r->run_id, strlen(r->run_id));
    while (r->waiters) {
        struct oc_waiter *w = r->waiters;
        r->waiters = w->next;
        w->run = NULL;
        ch_oc_waiter_free(w);
    }
    if (r->timer_init) {
        uv_timer_stop(&r->throttle);
        uv_close((uv_handle_t *)&r->throttle, run_closed);
    } else {
        run_closed((uv_handle_t *)&r->throttle);
    }
}

struct oc_run *ch_oc_run_get(struct ch_oc *oc, const char *run_id, const char *session_key)
{
    struct oc_run *r = ch_map_get(&oc->runs, run_id, strlen(run_id));

    if (r && r->key_pending && session_key) {
        char *k = ch_strdup(session_key);
        if (k) { /* the run showed up: its events name its own session */
            ch_free(r->session_key);
            r->session_key = k;
            r->key_pending = false;
        }
    }
    if (r || !session_key || oc->stopped)
        return r;
    r = ch_calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->oc = oc;
    r->run_id = ch_strdup(run_id);
    r->session_key = ch_strdup(session_key);
    r->throttle.data = r;
    ch_buf_init(&r->text, CH_LLM_MAX_TEXT_BYTES);
    if (!r->run_id || !r->session_key || ch_map_set(&oc->runs, r->run_id, strlen(r->run_id), r, NULL) != 0) {
        run_closed((uv_handle_t *)&r->throttle);
        return NULL;
    }
    return r;
}

void ch_oc_run_add_waiter(struct oc_run *r, struct oc_waiter *w)
{
    w->run = r;
    w->next = r->waiters;
    r->waiters = w;
}

void ch_oc_run_remove_waiter(struct oc_run *r, struct oc_waiter *w)
{
    for (struct oc_waiter **pp = &r->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            w->next = NULL;
            w->run = NULL;
            return;
        }
    }
}

void ch_oc_run_forget(struct oc_run *r)
{
    if (!r || r->started_ms || r->ended)
        return;
    if (r->waiters)
        r->key_pending = true; /* agent.wait calls wait on, as for a run not seen yet */
    else
        ch_oc_run_drop(r);
}

struct oc_run *ch_oc_run_await(struct ch_oc *oc, const char *run_id)
{
    struct oc_run *r = ch_oc_run_get(oc, run_id, NULL);

    if (!r && (r = ch_oc_run_get(oc, run_id, "agent:main:main")) != NULL)
        r->key_pending = true;
    return r;
}

/*
 * An aborted run differs by protocol.  OpenClaw 2026.9.6 (v4) ends a
 * cancelled run with the lifecycle {phase: "end", status: "cancelled",
 * aborted: true, stopReason: "rpc"}, which its agent-job reads as
 * {status: "error", stopReason: "rpc"} with no error text.  2026.3 (v3)
 * took the embedded runner's plain lifecycle end, which it read as "ok".
 */
json_t *ch_oc_wait_result(const char *run_id, const char *status, const char *error, int64_t started_ms,
                          int64_t ended_ms, int protocol, const char *stop_reason)
{
    bool aborted = !strcmp(status, "aborted");
    bool ok = !strcmp(status, "ok") || (aborted && protocol < 4);
    json_t *p = json_pack("{s:s, s:s, s:I, s:I}", "runId", run_id, "status", ok ? "ok" : "error", "startedAt",
                          (json_int_t)started_ms, "endedAt", (json_int_t)ended_ms);

    if (p && aborted && !ok)
        json_object_set_new(p, "stopReason", json_string(stop_reason ? stop_reason : OC_ABORT_STOP_REASON));
    else if (p && !ok)
        json_object_set_new(p, "error", json_string(error ? error : status));
    return p;
}

void ch_oc_runs_stopped_by(struct ch_oc *oc, const char *session_key, char **ids, const char *reason)
{
    for (size_t i = 0; ids && ids[i]; i++) {
        /* A run the gateway has no record of yet (queued by a hook, say)
         * gets one now, so its END finds the reason. */
        struct oc_run *r = ch_oc_run_get(oc, ids[i], session_key);

        if (r)
            r->stop_reason = reason;
        ch_free(ids[i]);
    }
    ch_free(ids);
}
