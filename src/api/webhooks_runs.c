/*
 * webhooks_runs.c: the agent's run events as webhook events.  One bus
 * subscription covers every run, whatever surface started it (hooks,
 * REST, OpenAI, WebSocket, CLI):
 *
 *   START -> conversation.created  the run's user message opens its
 *                                  transcript: a new session key, or the
 *                                  first turn after a reset
 *         -> message.received      the user's message
 *   END   -> message.sent          the reply (status ok, non-empty text)
 *         -> run.completed         status ok
 *         -> run.failed            error, timeout or aborted
 *
 * START events do not carry the message, so it is read back from the
 * run's stored request (one store read, only when some webhook wants
 * either START event).  Events are queued in this order per run, but
 * deliveries are independent: receivers should order by `timestamp`.
 * `conversationId` is the REST API's id of the session (its key without
 * agent:main:), `sessionKey` the canonical key.
 */
#include <string.h>

#include "api/outbox_int.h"

#define BIT_RECEIVED (1u << 0)
#define BIT_SENT (1u << 1)
#define BIT_CREATED (1u << 2)
#define BIT_COMPLETED (1u << 3)
#define BIT_FAILED (1u << 4)

struct start_job {
    struct ch_store_job job;
    struct ch_outbox *ob;                 /* ref held */
    char *run_id, *session_key, *channel; /* owned; channel: the run's, else its source */
    int64_t ts_ms;
    char *message;    /* owned: from the run's request */
    char *session_id; /* owned or NULL: the current transcript */
    bool created;
};

/* Emit built event data; a NULL (json_pack refused a non-UTF-8 string, or
 * memory ran out) is logged instead of sending an empty event. */
static void emit(struct ch_api *a, const char *event, const char *run_id, json_t *data)
{
    if (!data) {
        ch_log_error("webhooks: run %s: cannot build the %s event", run_id, event);
        return;
    }
    ch_webhooks_emit(a, event, data);
}

static void start_job_free(struct start_job *sj)
{
    ch_free(sj->run_id);
    ch_free(sj->session_key);
    ch_free(sj->channel);
    ch_free(sj->message);
    ch_free(sj->session_id);
    ch_free(sj);
}

/*
 * Pool thread.  "Opens its transcript" is decided the same way whether or
 * not the run's own start job has committed yet: no session row, an empty
 * transcript, or a first message that belongs to this run.
 */
static int start_run(struct ch_db *db, struct ch_store_job *job)
{
    struct start_job *sj = (struct start_job *)job;
    struct ch_run_rec run = {0};
    struct ch_session_rec s = {0};
    struct ch_message_list first = {0};
    json_t *req;
    int rc;

    rc = ch_runs_get(db, sj->run_id, &run);
    if (rc == 0 && (req = json_loads(run.request ? run.request : "{}", 0, NULL))) {
        const char *m = json_string_value(json_object_get(req, "message"));
        sj->message = m ? ch_strdup(m) : NULL;
        json_decref(req);
    }
    ch_run_rec_release(&run);
    if (rc)
        return rc;
    rc = ch_sessions_get(db, sj->session_key, &s);
    if (rc == CH_ENOTFOUND) {
        sj->created = true;
        return 0;
    }
    if (rc)
        return rc;
    sj->session_id = ch_strdup(s.session_id);
    rc = ch_messages_load_since(db, s.session_id, 1, 1, CH_STORE_MAX_CONTENT_BYTES, &first);
    if (rc == 0)
        sj->created =
            first.count ? (first.items[0].run_id && !strcmp(first.items[0].run_id, sj->run_id)) : !first.truncated;
    ch_message_list_release(&first);
    ch_session_rec_release(&s);
    return rc;
}

static void start_done(struct ch_store_job *job, int rc)
{
    struct start_job *sj = (struct start_job *)job;
    struct ch_outbox *ob = sj->ob;
    struct ch_api *a = ob->api;
    unsigned want = ch_webhooks_wanted(a);
    char ts[32], mid[CH_STORE_MAX_ID_BYTES + 8];

    if (rc) {
        ch_log_warn("webhooks: run %s: cannot read its message for message.received: %s", sj->run_id, ch_strerror(rc));
        goto out;
    }
    if (ob->stopping)
        goto out;
    ch_time_iso8601(sj->ts_ms, ts);
    if (sj->created && (want & BIT_CREATED))
        emit(a, "conversation.created", sj->run_id,
             json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s}", "conversationId", ch_api_conversation_id(sj->session_key),
                       "sessionKey", sj->session_key, "sessionId", sj->session_id, "runId", sj->run_id, "channel",
                       sj->channel, "createdAt", ts));
    if (sj->message && (want & BIT_RECEIVED)) {
        snprintf(mid, sizeof(mid), "%s:user", sj->run_id);
        emit(a, "message.received", sj->run_id,
             json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "messageId", mid, "conversationId",
                       ch_api_conversation_id(sj->session_key), "sessionKey", sj->session_key, "runId", sj->run_id,
                       "channel", sj->channel, "role", "user", "content", sj->message, "timestamp", ts));
    }
out:
    start_job_free(sj);
    ch_outbox_unref(ob);
}

static void on_start(struct ch_outbox *ob, const struct ch_agent_event *ev)
{
    struct start_job *sj;

    if (!(ch_webhooks_wanted(ob->api) & (BIT_RECEIVED | BIT_CREATED)) || !ev->run_id || !ev->session_key)
        return;
    sj = ch_calloc(1, sizeof(*sj));
    if (!sj || !(sj->run_id = ch_strdup(ev->run_id)) || !(sj->session_key = ch_strdup(ev->session_key)) ||
        !(sj->channel = ch_strdup(ev->channel  ? ev->channel
                                  : ev->source ? ev->source
                                               : "unknown"))) {
        ch_log_error("webhooks: run %s: out of memory; message.received not sent", ev->run_id);
        if (sj)
            start_job_free(sj);
        return;
    }
    sj->ts_ms = ev->ts_ms;
    sj->ob = ob;
    sj->job.run = start_run;
    sj->job.done = start_done;
    if (ch_store_read(ob->api->store, &sj->job) != 0) {
        start_job_free(sj);
        return;
    }
    ch_outbox_ref(ob);
}

static json_t *usage_json(const struct ch_llm_usage *u, double cost)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:f}", "inputTokens", (json_int_t)u->input_tokens, "outputTokens",
                     (json_int_t)u->output_tokens, "cacheReadTokens", (json_int_t)u->cache_read_tokens,
                     "cacheWriteTokens", (json_int_t)u->cache_write_tokens, "costUsd", cost);
}

static void on_end(struct ch_outbox *ob, const struct ch_agent_event *ev)
{
    const struct ch_agent_result *res = ev->result;
    struct ch_api *a = ob->api;
    unsigned want = ch_webhooks_wanted(a);
    bool ok;
    char ts[32], started[32], mid[CH_STORE_MAX_ID_BYTES + 16];
    json_t *d;

    if (!res || !ev->run_id)
        return;
    ok = res->status && !strcmp(res->status, "ok");
    /* Nothing subscribed (the usual case): no timestamps to format, two
     * strftime+snprintf pairs a turn. */
    if (!(want & (BIT_SENT | (ok ? BIT_COMPLETED : BIT_FAILED))))
        return;
    ch_time_iso8601(res->finished_ms ? res->finished_ms : ev->ts_ms, ts);
    ch_time_iso8601(res->started_ms, started);
    if (ok && res->text && *res->text && (want & BIT_SENT)) {
        snprintf(mid, sizeof(mid), "%s:assistant", ev->run_id);
        emit(a, "message.sent", ev->run_id,
             json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s}", "messageId", mid, "conversationId",
                       ch_api_conversation_id(ev->session_key), "sessionKey", ev->session_key, "runId", ev->run_id,
                       "channel",
                       ev->channel  ? ev->channel
                       : ev->source ? ev->source
                                    : "unknown",
                       "role", "assistant", "content", res->text, "model", res->model, "timestamp", ts));
    }
    if (!(want & (ok ? BIT_COMPLETED : BIT_FAILED)))
        return;
    d = json_pack("{s:s, s:s, s:s?, s:s, s:s?, s:s, s:s, s:o, s:s?, s:s?, s:s?, s:s?, s:s, s:s, s:I, s:i}", "runId",
                  ev->run_id, "sessionKey", ev->session_key, "sessionId", ev->session_id, "source",
                  ev->source ? ev->source : "unknown", "channel", ev->channel, "status",
                  res->status ? res->status : "error", "text", res->text ? res->text : "", "usage",
                  usage_json(&res->usage, res->cost_usd), "model", res->model, "provider", res->provider, "error",
                  res->error, "errorClass", res->error_class, "startedAt", started, "finishedAt", ts, "durationMs",
                  (json_int_t)(res->finished_ms && res->started_ms ? res->finished_ms - res->started_ms : 0),
                  "toolCalls", res->tool_calls);
    emit(a, ok ? "run.completed" : "run.failed", ev->run_id, d);
}

static void on_event(const struct ch_agent_event *ev, void *data)
{
    struct ch_outbox *ob = data;

    /* Bus callbacks must stay short: each path copies what it needs and
     * queues a store job. */
    if (ob->stopping)
        return;
    if (ev->type == CH_AGENT_EV_START)
        on_start(ob, ev);
    else if (ev->type == CH_AGENT_EV_END)
        on_end(ob, ev);
}

int ch_webhooks_start(struct ch_outbox *ob)
{
    struct ch_error err = {0};
    int rc = ch_webhooks_load_rest(ob);

    if (rc)
        return rc;
    /* The config layer checks each header; the total only fails here, and
     * such an entry would otherwise lose every event to a log line each. */
    if (ch_webhooks_check_config(ob->api->cfg, &err) != 0)
        ch_log_error("webhooks: %s; this webhook receives no events until the configuration is fixed", err.msg);
    if (ob->api->agent && !(ob->sub = ch_agent_subscribe(ob->api->agent, NULL, on_event, ob)))
        return CH_ENOMEM;
    return 0;
}

void ch_webhooks_stop(struct ch_outbox *ob)
{
    ch_agent_unsubscribe(ob->sub);
    ob->sub = NULL;
}
