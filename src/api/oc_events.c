/*
 * oc_events.c: events to WebSocket clients (spec 2.3, 1.6, 1.7): agent
 * (lifecycle, assistant text and deltas, usage after each model call, tool
 * events for the tool-events cap), chat (deltas at most every 150 ms: v3
 * cumulative, v4 with deltaText; then final, error or aborted), presence
 * (coalesced to one event a second, at most 16 entries), health (every
 * 60 s), tick and shutdown, with seq per connection (v4) or one global
 * counter (v3).
 *
 * The agent bus calls on_agent_event synchronously on the loop thread;
 * everything here only serialises once per event and queues into each
 * connection's bounded send queue (the ws layer drops a slow consumer).
 * Broadcasts iterate a referenced snapshot of the connection list, so a
 * connection closing during a send cannot break the walk.
 */
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"

#define CHAT_THROTTLE_MS 150       /* spec 2.3: v3 deltas at most every 150 ms */
#define HEALTH_EVENT_MS 60000      /* spec 1.1: health refresh every 60 s */
#define MAX_FRAME_TEXT (64u << 20) /* one serialised event */

/* ---- broadcast ---- */

static bool wants(const struct oc_conn *c, unsigned need, bool tool_only)
{
    if (c->state != OC_AUTHED)
        return false;
    if (tool_only && !c->tool_events)
        return false;
    /* ">= operator.read": read, write or admin all qualify. */
    if (need && !(c->scopes & (OC_SCOPE_READ | OC_SCOPE_WRITE | OC_SCOPE_ADMIN)))
        return false;
    return true;
}

/* Does any connection want a broadcast of this kind?  The bus reports
 * every run's events; with nobody to receive them nothing is serialised. */
static bool any_reader(const struct ch_oc *oc, unsigned need, bool tool_only)
{
    for (const struct oc_conn *c = oc->authed.next; c != &oc->authed; c = c->next)
        if (wants(c, need, tool_only))
            return true;
    return false;
}

/* One serialised payload to every connection that wants it (proto: 0 all,
 * 3 or 4 only that version).  The frame is built once; only the seq suffix
 * differs (v4 counts per connection, v3 shares one number). */
static void send_payload(struct ch_oc *oc, const char *event, const char *ptext, size_t plen, unsigned need_scopes,
                         bool tool_only, bool with_state_version, int proto)
{
    struct oc_conn **snap = NULL;
    struct ch_buf f;
    size_t n = 0, cap = oc->n_authed, base;
    bool any_v3 = false;
    uint64_t v3seq = 0;
    int rc;

    ch_buf_init(&f, MAX_FRAME_TEXT);
    if (cap == 0)
        goto out;
    snap = ch_malloc(cap * sizeof(*snap));
    if (!snap)
        goto out;
    for (struct oc_conn *c = oc->authed.next; c != &oc->authed && n < cap; c = c->next) {
        if (!wants(c, need_scopes, tool_only) || (proto && (c->protocol >= 4) != (proto == 4)))
            continue;
        ch_oc_conn_ref(c);
        snap[n++] = c;
        any_v3 = any_v3 || c->protocol < 4;
    }
    if (any_v3)
        v3seq = ++oc->seq_v3; /* one number per broadcast, shared by v3 clients */
    rc = n ? ch_buf_append_str(&f, "{\"type\":\"event\",\"event\":\"") : 0;
    rc = rc ? rc : ch_buf_append_str(&f, event);
    rc = rc ? rc : ch_buf_append_str(&f, "\",\"payload\":");
    rc = rc ? rc : ch_buf_append(&f, ptext, plen);
    base = f.len;
    for (size_t i = 0; i < n; i++) {
        struct oc_conn *c = snap[i];
        if (!rc && ch_oc_conn_is_open(c) && c->transport) {
            int frc;
            f.len = base;
            frc = ch_buf_append_str(&f, ",\"seq\":");
            frc = frc ? frc : ch_http_json_int(&f, (json_int_t)(c->protocol >= 4 ? ++c->seq : v3seq));
            if (!frc && with_state_version)
                frc = ch_buf_appendf(&f, ",\"stateVersion\":{\"presence\":%llu,\"health\":%llu}",
                                     (unsigned long long)oc->presence_version, (unsigned long long)oc->health_version);
            frc = frc ? frc : ch_buf_append_char(&f, '}');
            if (!frc && c->ops->send(c, f.data, f.len) == CH_E_TOO_LARGE)
                ch_log_warn("ws %s: send queue over gateway.ws.maxBufferedBytes; closed (slow consumer)", c->conn_id);
        }
        ch_oc_conn_unref(c);
    }
out:
    ch_buf_release(&f);
    ch_free(snap);
}

void ch_oc_broadcast(struct ch_oc *oc, const char *event, json_t *payload, unsigned need_scopes, bool tool_only,
                     bool with_state_version)
{
    struct ch_buf p;
    char *ptext = NULL;

    ch_buf_init(&p, MAX_FRAME_TEXT);
    /* json_dumps' bytes, faster; CH_AGAIN leaves a rare value to jansson. */
    if (payload && oc->n_authed && ch_http_json_put(payload, &p) == CH_AGAIN)
        ptext = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(payload);
    if (ptext || p.len)
        send_payload(oc, event, ptext ? ptext : p.data, ptext ? strlen(ptext) : p.len, need_scopes, tool_only,
                     with_state_version, 0);
    ch_free(ptext);
    ch_buf_release(&p);
}

/* ---- presence and health ---- */

static json_t *presence_entry(const struct oc_conn *c)
{
    json_t *e = json_pack("{s:I, s:o, s:o}", "ts", (json_int_t)c->opened_ms, "roles",
                          json_pack("[s]", c->role ? c->role : "operator"), "scopes", ch_oc_scopes_json(c->scopes));
    const char *kv[][2] = {{"host", c->display_name},      {"ip", c->addr[0] ? c->addr : NULL},
                           {"version", c->client_version}, {"platform", c->platform},
                           {"mode", c->client_mode},       {"deviceId", c->device_id},
                           {"instanceId", c->instance_id}};

    for (size_t i = 0; e && i < CH_ARRAY_SIZE(kv); i++)
        if (kv[i][1] && *kv[i][1])
            json_object_set_new(e, kv[i][0], json_string(kv[i][1]));
    if (e) {
        json_object_set_new(e, "onlineSince", json_integer((json_int_t)c->opened_ms));
        json_object_set_new(e, "reason", json_string("connect"));
    }
    return e;
}

json_t *ch_oc_presence_json(struct ch_oc *oc)
{
    json_t *a = json_array();
    size_t n = 0;

    /* Newest first, capped: a big fleet of idle clients must not make
     * every presence event megabytes long. */
    for (struct oc_conn *c = oc->authed.prev; a && c != &oc->authed && n < OC_PRESENCE_MAX; c = c->prev) {
        if (!c->in_presence)
            continue;
        json_array_append_new(a, presence_entry(c));
        n++;
    }
    return a;
}

void ch_oc_broadcast_presence(struct ch_oc *oc)
{
    oc->presence_dirty = true;
}

json_t *ch_oc_health_json(struct ch_oc *oc)
{
    int64_t now = ch_now_ms();
    const char *path = oc->api->store ? ch_store_path(oc->api->store) : "";
    json_t *sessions = oc->health_sessions
                           ? json_deep_copy(oc->health_sessions)
                           : json_pack("{s:s, s:i, s:[]}", "path", path ? path : "", "count", 0, "recent");
    json_t *agent = json_pack("{s:s, s:b, s:{s:b, s:s, s:n, s:s, s:s, s:i}, s:O}", "agentId", "main", "isDefault", 1,
                              "heartbeat", "enabled", 0, "every", "0m", "everyMs", "prompt", "", "target", "none",
                              "ackMaxChars", 300, "sessions", sessions);

    return json_pack("{s:b, s:I, s:i, s:{}, s:[], s:{}, s:i, s:s, s:[o], s:o}", "ok", 1, "ts", (json_int_t)now,
                     "durationMs", 0, "channels", "channelOrder", "channelLabels", "heartbeatSeconds", 0,
                     "defaultAgentId", "main", "agents", agent ? agent : json_object(), "sessions",
                     sessions ? sessions : json_object());
}

void ch_oc_events_sweep(struct ch_oc *oc)
{
    int64_t now = ch_now_ms();

    if (oc->stopped)
        return;
    if (oc->presence_dirty) {
        oc->presence_dirty = false;
        ch_oc_broadcast(oc, "presence", json_pack("{s:o}", "presence", ch_oc_presence_json(oc)), 0, false, true);
    }
    if (now - oc->health_broadcast_ms >= HEALTH_EVENT_MS) {
        oc->health_broadcast_ms = now;
        if (oc->n_authed) {
            oc->health_version++;
            ch_oc_broadcast(oc, "health", ch_oc_health_json(oc), OC_SCOPE_READ, false, true);
        }
    }
}

/* ---- chat events ---- */

/* Raw text then a JSON string into a payload being written; rc is sticky. */
static void put_kstr(struct ch_buf *b, int *rc, const char *raw, const char *p, size_t n)
{
    *rc = *rc ? *rc : ch_buf_append_str(b, raw);
    *rc = *rc ? *rc : ch_http_json_str(b, p ? p : "", p ? n : 0); /* jansson's bytes */
}

/* A chat delta to every reader, in its protocol's shape (v4: deltaText
 * too), written straight into a buffer in json_dumps' key order: deltas
 * are a run's most frequent event.  With nobody reading nothing is
 * written, but seq and deltaText advance as if it were. */
static void chat_flush(struct oc_run *r)
{
    struct ch_oc *oc = r->oc;
    size_t n = r->text.len - r->chat_sent_len, base;
    bool v3 = false, v4 = false;
    struct ch_buf p;
    int rc = 0;

    if (n == 0 || oc->stopped)
        return;
    r->last_chat_ms = ch_now_ms();
    r->chat_seq++;
    for (struct oc_conn *c = oc->authed.next; c != &oc->authed; c = c->next) {
        if (!wants(c, OC_SCOPE_READ, false))
            continue;
        v3 = v3 || c->protocol < 4;
        v4 = v4 || c->protocol >= 4;
    }
    if (v3 || v4) {
        ch_buf_init(&p, MAX_FRAME_TEXT);
        put_kstr(&p, &rc, "{\"runId\":", r->run_id, strlen(r->run_id));
        put_kstr(&p, &rc, ",\"sessionKey\":", r->session_key, strlen(r->session_key));
        rc = rc ? rc
                : ch_buf_appendf(&p,
                                 ",\"seq\":%lld,\"state\":\"delta\",\"message\":{\"role\":\"assistant\","
                                 "\"content\":[{\"type\":\"text\",\"text\":",
                                 (long long)r->chat_seq);
        put_kstr(&p, &rc, "", r->text.data, r->text.len);
        rc = rc ? rc : ch_buf_appendf(&p, "}],\"timestamp\":%lld}", (long long)r->last_chat_ms);
        base = p.len;
        if (!rc && v3) {
            rc = ch_buf_append_char(&p, '}');
            if (!rc)
                send_payload(oc, "chat", p.data, p.len, OC_SCOPE_READ, false, false, v4 ? 3 : 0);
            p.len = base;
        }
        if (!rc && v4) {
            put_kstr(&p, &rc, ",\"deltaText\":", r->text.data + r->chat_sent_len, n);
            rc = rc ? rc : ch_buf_append_char(&p, '}');
            if (!rc)
                send_payload(oc, "chat", p.data, p.len, OC_SCOPE_READ, false, false, v3 ? 4 : 0);
        }
        ch_buf_release(&p);
    }
    r->chat_sent_len = r->text.len;
}

static void on_throttle(uv_timer_t *t)
{
    struct oc_run *r = t->data;

    r->timer_armed = false;
    chat_flush(r);
}

/* A throttle timer only for runs with deltas faster than the throttle. */
static bool init_timer(struct oc_run *r)
{
    if (r->oc->api->net && uv_timer_init(r->oc->api->net->loop, &r->throttle) == 0)
        r->timer_init = true;
    return r->timer_init;
}

static void chat_delta(struct oc_run *r)
{
    int64_t now = ch_now_ms(), since = now - r->last_chat_ms;

    if (since >= CHAT_THROTTLE_MS) {
        chat_flush(r);
    } else if (!r->timer_armed && (r->timer_init || init_timer(r))) {
        r->timer_armed = true;
        uv_timer_start(&r->throttle, on_throttle, (uint64_t)(CHAT_THROTTLE_MS - since), 0);
    }
}

static const char *error_kind(const struct ch_agent_result *res)
{
    static const char *const kinds[] = {"refusal", "timeout", "rate_limit", "context_length"};
    for (size_t i = 0; res->error_class && i < CH_ARRAY_SIZE(kinds); i++)
        if (!strcmp(res->error_class, kinds[i]))
            return kinds[i];
    return !strcmp(res->status, "timeout") ? "timeout" : "unknown";
}

/* The run's text as the assistant message of a final or aborted event. */
static json_t *chat_message(const struct oc_run *r, int64_t ts)
{
    return json_pack("{s:s, s:[{s:s, s:s#}], s:I}", "role", "assistant", "content", "type", "text", "text",
                     r->text.data ? r->text.data : "", (int)r->text.len, "timestamp", (json_int_t)ts);
}

/* Anything but white space (OpenClaw keeps an abort's text if trim() leaves any). */
static bool has_visible_text(const struct ch_buf *b)
{
    for (size_t i = 0; i < b->len; i++)
        if (!memchr(" \t\r\n\f\v", b->data[i], 6))
            return true;
    return false;
}

static void chat_end(struct oc_run *r, const struct ch_agent_result *res, int64_t ts)
{
    const char *state = !strcmp(res->status, "ok") ? "final" : !strcmp(res->status, "aborted") ? "aborted" : "error";
    json_t *p;

    if (r->timer_armed) {
        uv_timer_stop(&r->throttle);
        r->timer_armed = false;
    }
    chat_flush(r);
    ++r->chat_seq;
    if (!any_reader(r->oc, OC_SCOPE_READ, false))
        return;
    p = json_pack("{s:s, s:s, s:I, s:s}", "runId", r->run_id, "sessionKey", r->session_key, "seq",
                  (json_int_t)r->chat_seq, "state", state);
    if (!p)
        return;
    /* OpenClaw's shapes per state (the same in v3 and v4): final
     * {message, usage, stopReason}; aborted {stopReason, message only with
     * non-blank partial text (chat-abort.ts broadcastChatAborted)};
     * error {errorMessage, errorKind}, no message (broadcastChatFrame). */
    if (!strcmp(state, "final")) {
        json_object_set_new(p, "message", chat_message(r, ts));
        json_object_set_new(p, "usage",
                            json_pack("{s:I, s:I, s:I, s:I}", "input", (json_int_t)res->usage.input_tokens, "output",
                                      (json_int_t)res->usage.output_tokens, "cacheRead",
                                      (json_int_t)res->usage.cache_read_tokens, "cacheWrite",
                                      (json_int_t)res->usage.cache_write_tokens));
        json_object_set_new(p, "stopReason", json_string("stop"));
    } else if (!strcmp(state, "aborted")) {
        json_object_set_new(p, "stopReason", json_string(r->stop_reason ? r->stop_reason : OC_ABORT_STOP_REASON));
        if (has_visible_text(&r->text))
            json_object_set_new(p, "message", chat_message(r, ts));
    } else {
        json_object_set_new(p, "errorMessage", json_string(res->error ? res->error : res->status));
        json_object_set_new(p, "errorKind", json_string(error_kind(res)));
    }
    ch_oc_broadcast(r->oc, "chat", p, OC_SCOPE_READ, false, false);
}

/* ---- the bus ---- */

/* Only for a reader (every caller asks any_reader first, so that nobody
 * pays for building data when no connection takes agent events). */
static void agent_event(struct oc_run *r, const struct ch_agent_event *ev, const char *stream, json_t *data,
                        bool tool_only)
{
    json_t *p = json_pack("{s:s, s:I, s:s, s:I, s:o}", "runId", ev->run_id, "seq", (json_int_t)ev->seq, "stream",
                          stream, "ts", (json_int_t)ev->ts_ms, "data", data ? data : json_object());

    /* sessionKey: spec 2.3 and the reference server send it, although
     * the published AgentEvent schema does not list it. */
    if (p && r->session_key)
        json_object_set_new(p, "sessionKey", json_string(r->session_key));
    ch_oc_broadcast(r->oc, "agent", p, OC_SCOPE_READ, tool_only, false);
}

/* An assistant text event, written straight into a buffer: the bytes
 * agent_event would give for {text, delta}, once per delta. */
static void agent_text_event(struct oc_run *r, const struct ch_agent_event *ev)
{
    struct ch_buf p;
    int rc = 0;

    if (!any_reader(r->oc, OC_SCOPE_READ, false))
        return;
    ch_buf_init(&p, MAX_FRAME_TEXT);
    put_kstr(&p, &rc, "{\"runId\":", ev->run_id, strlen(ev->run_id));
    rc = rc ? rc
            : ch_buf_appendf(&p, ",\"seq\":%lld,\"stream\":\"assistant\",\"ts\":%lld,\"data\":{\"text\":",
                             (long long)ev->seq, (long long)ev->ts_ms);
    put_kstr(&p, &rc, "", ev->text.p, ev->text.len);
    put_kstr(&p, &rc, ",\"delta\":", ev->delta.p, ev->delta.len);
    rc = rc ? rc : ch_buf_append_char(&p, '}');
    if (r->session_key)
        put_kstr(&p, &rc, ",\"sessionKey\":", r->session_key, strlen(r->session_key));
    if (!rc && !(rc = ch_buf_append_char(&p, '}')))
        send_payload(r->oc, "agent", p.data, p.len, OC_SCOPE_READ, false, false, 0);
    ch_buf_release(&p);
}

static void answer_waiters(struct oc_run *r, const struct ch_agent_result *res);

/* A run started with an idempotency key whose final nobody cached (no
 * `agent` waiter left, or chat.send): cache it for repeats. */
static void remember_final(struct oc_run *r, const struct ch_agent_result *res)
{
    struct oc_dedupe_entry *d = ch_oc_dedupe_find(r->oc, r->run_id, ch_now_ms());
    char *err = NULL;
    bool ok = false;
    json_t *fin;

    if (!d)
        return;
    /* agent.wait answers from here once the run is gone: the same times
     * as a live wait gets. */
    d->started_ms = r->started_ms ? r->started_ms : res->started_ms;
    d->ended_ms = res->finished_ms ? res->finished_ms : r->ended_ms;
    if (d->final_text)
        return;
    fin = ch_oc_agent_final(r->run_id, res, r->session_id, 4, &ok, &err);
    d->final_text = fin ? json_dumps(fin, JSON_COMPACT) : NULL;
    d->final_ok = ok;
    d->final_aborted = !strcmp(res->status, "aborted");
    d->final_stop_reason = r->stop_reason;
    d->final_error = err;
    json_decref(fin);
}

/*
 * The lifecycle end of a run.  An aborted run ends with a phase "end" as
 * OpenClaw's abortChatRunById emits it (v4: {status: "cancelled",
 * aborted, stopReason, startedAt, endedAt}; 2026.3's runner sent a plain
 * "end"), not an "error" a client would count as a failed run.
 */
static json_t *lifecycle_end(const struct oc_run *r, const struct ch_agent_result *res, int64_t ts, bool ok,
                             bool aborted)
{
    json_t *d = json_pack("{s:s, s:I, s:s}", "phase", ok || aborted ? "end" : "error", "endedAt", (json_int_t)ts,
                          "status", aborted ? "cancelled" : res->status);

    if (d && aborted) {
        json_object_set_new(d, "aborted", json_true());
        json_object_set_new(d, "stopReason", json_string(r->stop_reason ? r->stop_reason : OC_ABORT_STOP_REASON));
        if (r->started_ms)
            json_object_set_new(d, "startedAt", json_integer((json_int_t)r->started_ms));
    } else if (d && !ok) {
        json_object_set_new(d, "error", json_string(res->error ? res->error : res->status));
    }
    return d;
}

static void on_agent_event(const struct ch_agent_event *ev, void *data)
{
    struct ch_oc *oc = data;
    struct oc_run *r;

    if (oc->stopped || !ev->run_id)
        return;
    r = ch_oc_run_get(oc, ev->run_id, ev->session_key ? ev->session_key : "agent:main:main");
    if (!r || r->ended)
        return;
    switch (ev->type) {
    case CH_AGENT_EV_START:
        r->started_ms = ev->ts_ms;
        if (ev->session_id && !r->session_id)
            r->session_id = ch_strdup(ev->session_id);
        if (any_reader(oc, OC_SCOPE_READ, false))
            agent_event(r, ev, "lifecycle",
                        json_pack("{s:s, s:I}", "phase", "start", "startedAt", (json_int_t)ev->ts_ms), false);
        break;
    case CH_AGENT_EV_TEXT:
        if (ch_buf_append(&r->text, ev->delta.p, ev->delta.len) != 0)
            break;
        agent_text_event(r, ev);
        chat_delta(r);
        break;
    case CH_AGENT_EV_TOOL_START:
        if (!any_reader(oc, OC_SCOPE_READ, true))
            break;
        agent_event(r, ev, "tool",
                    json_pack("{s:s, s:s?, s:s?, s:O?}", "phase", "start", "name", ev->tool_name, "toolCallId",
                              ev->tool_id, "args", ev->tool_args),
                    true);
        break;
    case CH_AGENT_EV_TOOL_RESULT:
        if (!any_reader(oc, OC_SCOPE_READ, true))
            break;
        agent_event(r, ev, "tool",
                    json_pack("{s:s, s:s?, s:s?, s:b, s:s?}", "phase", "result", "name", ev->tool_name, "toolCallId",
                              ev->tool_id, "isError", ev->tool_is_error, "result", ev->tool_result),
                    true);
        break;
    case CH_AGENT_EV_USAGE:
        /* OpenClaw's `usage` stream: the run's output tokens so far after
         * each model call (agent-run-registry recordAgentRunOutputTokens).
         * It also keeps seq contiguous: the bus numbered this event. */
        r->output_tokens += ev->usage.output_tokens;
        if (any_reader(oc, OC_SCOPE_READ, false))
            agent_event(r, ev, "usage", json_pack("{s:I}", "outputTokens", (json_int_t)r->output_tokens), false);
        break;
    case CH_AGENT_EV_END: {
        const struct ch_agent_result *res = ev->result;
        bool ok = res && !strcmp(res->status, "ok");
        r->ended = true;
        r->ended_ms = ev->ts_ms;
        if (ev->session_id && !r->session_id)
            r->session_id = ch_strdup(ev->session_id);
        if (res) {
            bool rd = any_reader(oc, OC_SCOPE_READ, false), aborted = !strcmp(res->status, "aborted");
            json_t *d = rd ? lifecycle_end(r, res, ev->ts_ms, ok, aborted) : NULL;
            if (rd)
                agent_event(r, ev, "lifecycle", d, false);
            chat_end(r, res, ev->ts_ms);
            answer_waiters(r, res);
            remember_final(r, res);
        }
        ch_oc_run_drop(r);
        break;
    }
    default: break;
    }
}

/* The final `agent` answers and agent.wait results, then the dedupe
 * cache (so a repeat within 5 minutes gets the same final). */
static void answer_waiters(struct oc_run *r, const struct ch_agent_result *res)
{
    struct ch_oc *oc = r->oc;

    while (r->waiters) {
        struct oc_waiter *w = r->waiters;
        r->waiters = w->next;
        w->run = NULL;
        if (w->kind == OC_WAIT_AGENT) {
            char *err = NULL;
            bool ok = false;
            json_t *fin = ch_oc_agent_final(r->run_id, res, r->session_id, w->conn->protocol, &ok, &err);
            struct oc_dedupe_entry *d = w->dedupe_key ? ch_oc_dedupe_find(oc, w->dedupe_key, ch_now_ms()) : NULL;
            if (d && fin && !d->final_text) {
                d->final_text = json_dumps(fin, JSON_COMPACT);
                d->final_ok = ok;
                d->final_aborted = !strcmp(res->status, "aborted");
                d->final_stop_reason = r->stop_reason;
                d->final_error = err ? ch_strdup(err) : NULL;
            }
            if (ok)
                ch_oc_res_ok(w->conn, w->req_id, fin);
            else
                ch_oc_res_err_payload(w->conn, w->req_id, fin, "UNAVAILABLE", err ? err : "agent run failed", NULL);
            ch_free(err);
        } else {
            ch_oc_res_ok(w->conn, w->req_id,
                         ch_oc_wait_result(
                             r->run_id, res->status, res->error, r->started_ms ? r->started_ms : res->started_ms,
                             res->finished_ms ? res->finished_ms : r->ended_ms, w->conn->protocol, r->stop_reason));
        }
        ch_oc_waiter_free(w);
    }
}

int ch_oc_events_start(struct ch_oc *oc)
{
    if (!oc->api->agent)
        return 0;
    oc->sub = ch_agent_subscribe(oc->api->agent, NULL, on_agent_event, oc);
    return oc->sub ? 0 : CH_ENOMEM;
}

void ch_oc_events_stop(struct ch_oc *oc)
{
    struct ch_map_entry *me;
    size_t it = 0;

    if (oc->sub) {
        ch_agent_unsubscribe(oc->sub);
        oc->sub = NULL;
    }
    /* run_drop deletes from the map: restart the walk after each. */
    while ((me = ch_map_next(&oc->runs, &it)) != NULL) {
        ch_oc_run_drop(me->value);
        it = 0;
    }
}
