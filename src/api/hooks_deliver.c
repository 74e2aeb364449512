/*
 * hooks_deliver.c: what happens when a hook run ends (issue #4 item 2).
 * One bus subscription sees every run's END; runs whose meta carries
 * `hook` get their result delivered:
 *   - a native callback {url, headers, mode raw|envelope, secret} goes to
 *     the durable outbox (ch_outbox_enqueue: signed, retried, at least
 *     once).  raw posts the agent's final text, which must be JSON (a
 *     ```json fence around it is taken off), else nothing is posted and the
 *     delivery is recorded `invalid_json` (the receiver would answer 422);
 *   - deliver to the `webhook` channel emits message.sent to the outgoing
 *     webhooks; other channels do not exist in chela yet: `skipped`.
 * The outcome is written to runs.delivery (GET /api/v1/runs/:id shows
 * it).  A crash between a run's end and its callback's commit is covered
 * at start: finished hook runs with a callback and no delivery record
 * (ch_runs_list_undelivered) are delivered then.
 */
#include <string.h>

#include "api/hooks.h"

#define RECOVER_WINDOW_MS (24LL * 3600 * 1000) /* older results are not worth a late callback */
#define RECOVER_MAX 1000

json_t *ch_hooks_completion_json(const char *run_id, const struct ch_agent_result *res)
{
    char fin[32];

    (void)run_id;
    ch_time_iso8601(res->finished_ms ? res->finished_ms : ch_now_ms(), fin);
    return json_pack(
        "{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:{s:I, s:I, s:I, s:I}, s:f, s:I, s:s}", "status", res->status, "text",
        res->text ? res->text : "", "error", res->error, "errorClass", res->error_class, "model", res->model,
        "provider", res->provider, "usage", "inputTokens", (json_int_t)res->usage.input_tokens, "outputTokens",
        (json_int_t)res->usage.output_tokens, "cacheReadTokens", (json_int_t)res->usage.cache_read_tokens,
        "cacheWriteTokens", (json_int_t)res->usage.cache_write_tokens, "costUsd", res->cost_usd, "durationMs",
        (json_int_t)(res->started_ms && res->finished_ms ? res->finished_ms - res->started_ms : 0), "finishedAt", fin);
}

/* ---- runs.delivery ---- */

struct dlv_write {
    struct ch_store_job job;
    char *run_id; /* owned */
    char *json;   /* owned JSON text */
};

static int dlv_write_run(struct ch_db *db, struct ch_store_job *job)
{
    struct dlv_write *w = (struct dlv_write *)job;
    return ch_runs_set_delivery(db, w->run_id, w->json);
}

static void dlv_write_done(struct ch_store_job *job, int rc)
{
    struct dlv_write *w = (struct dlv_write *)job;

    if (rc)
        ch_log_warn("hooks: run %s: recording its delivery state failed: %s", w->run_id, ch_strerror(rc));
    ch_free(w->run_id);
    ch_free(w->json);
    ch_free(w);
}

/* Store `delivery` (stolen) as the run's delivery state. */
static void record(struct ch_api *a, const char *run_id, json_t *delivery)
{
    struct dlv_write *w = ch_calloc(1, sizeof(*w));

    if (w && delivery) {
        w->run_id = ch_strdup(run_id);
        w->json = json_dumps(delivery, JSON_COMPACT);
    }
    json_decref(delivery);
    if (!w || !w->run_id || !w->json) {
        if (w) {
            ch_free(w->run_id);
            ch_free(w->json);
        }
        ch_free(w);
        ch_log_warn("hooks: run %s: no memory to record its delivery state", run_id);
        return;
    }
    w->job.run = dlv_write_run;
    w->job.done = dlv_write_done;
    if (ch_store_write(a->store, &w->job) != 0) {
        ch_log_warn("hooks: run %s: the store queue is full; its delivery state is not recorded", run_id);
        dlv_write_done(&w->job, 0);
    }
}

/* ---- callback bodies ---- */

static bool ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_json(const char *p, size_t n)
{
    json_t *v = json_loadb(p, n, JSON_DECODE_ANY, NULL);
    bool ok = v != NULL;

    json_decref(v);
    return ok;
}

/*
 * The JSON text inside the agent's final text: the whole text (white space
 * around it ignored), or the inside of one Markdown code fence around it.
 * Borrowed span of text; false when there is none.
 */
static bool find_json(const char *text, const char **out, size_t *outlen)
{
    const char *p = text, *e = text + strlen(text), *nl, *close;

    while (p < e && ws(*p))
        p++;
    while (e > p && ws(e[-1]))
        e--;
    if (e > p && is_json(p, (size_t)(e - p))) {
        *out = p;
        *outlen = (size_t)(e - p);
        return true;
    }
    if (e - p < 6 || strncmp(p, "```", 3) || strncmp(e - 3, "```", 3))
        return false;
    nl = memchr(p, '\n', (size_t)(e - p));
    close = e - 3;
    if (!nl || nl >= close)
        return false;
    p = nl + 1;
    while (p < close && ws(*p))
        p++;
    while (close > p && ws(close[-1]))
        close--;
    if (close > p && is_json(p, (size_t)(close - p))) {
        *out = p;
        *outlen = (size_t)(close - p);
        return true;
    }
    return false;
}

static json_t *envelope(const char *run_id, const char *session_key, const json_t *hook,
                        const struct ch_agent_result *res)
{
    const char *txt = res->text ? res->text : "", *js;
    char fin[32];
    size_t jn;
    json_t *o;

    ch_time_iso8601(res->finished_ms ? res->finished_ms : ch_now_ms(), fin);
    o = json_pack("{s:s, s:s, s:s?, s:s, s:s, s:{s:I, s:I, s:I, s:I}, s:s?, s:s}", "runId", run_id, "sessionKey",
                  session_key, "name", json_string_value(json_object_get(hook, "name")), "status", res->status, "text",
                  txt, "usage", "inputTokens", (json_int_t)res->usage.input_tokens, "outputTokens",
                  (json_int_t)res->usage.output_tokens, "cacheReadTokens", (json_int_t)res->usage.cache_read_tokens,
                  "cacheWriteTokens", (json_int_t)res->usage.cache_write_tokens, "model", res->model, "finishedAt",
                  fin);
    if (o && find_json(txt, &js, &jn))
        json_object_set_new(o, "json", json_loadb(js, jn, JSON_DECODE_ANY, NULL));
    if (o && res->error)
        json_object_set_new(o, "error", json_pack("{s:s, s:s?}", "message", res->error, "class", res->error_class));
    return o;
}

/* ---- whose credentials a callback gets ---- */

struct origin {
    struct ch_str scheme, host;
    unsigned port;
};

/* scheme://host[:port] of an http(s) URL.  false for anything else in the
 * authority (userinfo, a backslash, '%'...): such a URL is never taken for the
 * configured origin, whatever a URL parser downstream would make of it. */
static bool parse_origin(const char *u, struct origin *o)
{
    const char *p, *e, *he;
    unsigned long port = 0;

    if (!strncmp(u, "http://", 7)) {
        o->scheme = (struct ch_str){u, 4};
        o->port = 80;
    } else if (!strncmp(u, "https://", 8)) {
        o->scheme = (struct ch_str){u, 5};
        o->port = 443;
    } else {
        return false;
    }
    p = u + o->scheme.len + 3;
    e = p + strcspn(p, "/?#");
    if (*p == '[') { /* an IPv6 literal */
        he = p + 1 + strspn(p + 1, "0123456789abcdefABCDEF:.");
        if (he >= e || *he != ']')
            return false;
        he++;
    } else {
        he = p + strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._");
    }
    if (he == p || (he < e && (*he != ':' || (size_t)(e - he - 1) != strspn(he + 1, "0123456789"))))
        return false;
    o->host = (struct ch_str){p, (size_t)(he - p)};
    if (he < e && e - he > 1) {
        for (const char *d = he + 1; d < e && port <= 65535; d++)
            port = port * 10 + (unsigned)(*d - '0');
        if (port == 0 || port > 65535)
            return false;
        o->port = (unsigned)port;
    }
    return true;
}

bool ch_hooks_same_origin(const char *url, const char *cfg_url)
{
    struct origin a, b;

    if (!url || !cfg_url)
        return false;
    if (!strcmp(url, cfg_url))
        return true;
    return parse_origin(url, &a) && parse_origin(cfg_url, &b) && ch_str_eq(a.scheme, b.scheme) &&
           a.host.len == b.host.len && !strncasecmp(a.host.p, b.host.p, a.host.len) && a.port == b.port;
}

void ch_hooks_log_withheld(const struct ch_http_req *r, const char *url)
{
    struct origin o;

    if (parse_origin(url, &o))
        ch_log_info("hooks: request %s: callback to %.*s://%.*s:%u, not the origin of hooks.callback.url: the "
                    "configured callback headers and secret are withheld",
                    r->request_id, (int)o.scheme.len, o.scheme.p, (int)o.host.len, o.host.p, o.port);
    else
        ch_log_info("hooks: request %s: callback.url is not the origin of hooks.callback.url: the configured "
                    "callback headers and secret are withheld",
                    r->request_id);
}

/* Configured headers, then the run's own (same name: the run's wins). */
static json_t *merge_headers(const json_t *cfg, const json_t *run)
{
    json_t *out = json_object();
    const char *k, *k2;
    json_t *v, *v2;
    void *tmp;

    if (!out)
        return NULL;
    json_object_foreach((json_t *)cfg, k, v) if (json_is_string(v)) json_object_set(out, k, v);
    json_object_foreach((json_t *)run, k, v)
    {
        json_object_foreach_safe(out, tmp, k2, v2) if (!strcasecmp(k, k2)) json_object_del(out, k2);
        json_object_set(out, k, v);
    }
    return out;
}

/* ---- one ended run ---- */

struct dlv_ctx {
    struct ch_api *api; /* borrowed */
    char *run_id;       /* owned */
    json_t *state;      /* owned: the runs.delivery object being built */
};

static void on_enqueued(int rc, const char *delivery_id, void *data)
{
    struct dlv_ctx *c = data;
    json_t *cb = json_object_get(c->state, "callback");

    if (rc == 0) {
        if (c->api->hooks)
            c->api->hooks->deliveries[CH_HOOK_D_QUEUED]++;
        json_object_set_new(cb, "state", json_string("queued"));
        if (delivery_id)
            json_object_set_new(cb, "deliveryId", json_string(delivery_id));
    } else {
        if (c->api->hooks)
            c->api->hooks->deliveries[CH_HOOK_D_FAILED]++;
        json_object_set_new(cb, "state", json_string("failed"));
        json_object_set_new(cb, "reason", json_string(ch_strerror(rc)));
        ch_log_warn("hooks: run %s: its callback could not be queued: %s", c->run_id, ch_strerror(rc));
    }
    record(c->api, c->run_id, c->state);
    ch_free(c->run_id);
    ch_free(c);
}

/*
 * Queue the callback, or record in state->callback why not.  True when it
 * was handed to the outbox: its completion then records state (holding
 * its own reference); false leaves recording to the caller.
 */
static bool callback(struct ch_api *a, const char *run_id, const char *session_key, const json_t *hook,
                     const struct ch_agent_result *res, json_t *state)
{
    struct ch_hooks *h = a->hooks;
    const json_t *cb = json_object_get(hook, "callback"), *def = h->callback;
    const char *mode = json_string_value(json_object_get(cb, "mode")),
               *url = json_string_value(json_object_get(cb, "url"));
    const char *secret = json_string_value(json_object_get(cb, "secret"));
    struct ch_delivery_req d = {0};
    json_t *st, *headers = NULL, *env = NULL;
    char *body = NULL;
    const char *js;
    size_t jn;
    struct dlv_ctx *c;
    bool trusted;

    if (!json_is_object(cb) || !url)
        return false;
    st = json_pack("{s:s, s:s}", "url", url, "mode", mode ? mode : "envelope");
    json_object_set_new(state, "callback", st);
    if (mode && !strcmp(mode, "raw")) {
        if (strcmp(res->status, "ok")) {
            h->deliveries[CH_HOOK_D_SKIPPED]++;
            json_object_set_new(st, "state", json_string("skipped"));
            json_object_set_new(st, "reason",
                                json_sprintf("the run ended %s: raw mode has no JSON to post", res->status));
            return false;
        }
        if (!find_json(res->text ? res->text : "", &js, &jn)) {
            h->deliveries[CH_HOOK_D_INVALID_JSON]++;
            json_object_set_new(st, "state", json_string("invalid_json"));
            json_object_set_new(st, "reason",
                                json_string("the agent's final text is not valid JSON; nothing was "
                                            "posted (raw mode)"));
            ch_log_warn("hooks: run %s: raw callback not sent: the final text is not JSON", run_id);
            return false;
        }
        d.body = js;
        d.body_len = jn;
    } else {
        env = envelope(run_id, session_key, hook, res);
        body = env ? json_dumps(env, JSON_COMPACT) : NULL;
        if (!body) {
            json_decref(env);
            h->deliveries[CH_HOOK_D_FAILED]++;
            json_object_set_new(st, "state", json_string("failed"));
            json_object_set_new(st, "reason", json_string("out of memory"));
            return false;
        }
        d.body = body;
        d.body_len = strlen(body);
    }
    /* The configured credentials are for the configured receiver only:
     * anyone holding the hook token can name a callback URL. */
    trusted = ch_hooks_same_origin(url, json_string_value(json_object_get(def, "url")));
    headers = merge_headers(trusted ? json_object_get(def, "headers") : NULL, json_object_get(cb, "headers"));
    c = ch_calloc(1, sizeof(*c));
    if (c && !(c->run_id = ch_strdup(run_id))) {
        ch_free(c);
        c = NULL;
    }
    if (!c || !headers) {
        ch_free(c);
        json_decref(headers);
        json_decref(env);
        ch_free(body);
        h->deliveries[CH_HOOK_D_FAILED]++;
        json_object_set_new(st, "state", json_string("failed"));
        json_object_set_new(st, "reason", json_string("out of memory"));
        return false;
    }
    c->api = a;
    c->state = json_incref(state); /* before the call: the callback may run at once */
    d.kind = "callback";
    d.run_id = run_id;
    d.url = url;
    d.headers = headers;
    d.secret = secret || !trusted ? secret : json_string_value(json_object_get(def, "secret"));
    d.max_attempts = h->retry_max;
    d.backoff_ms = h->retry_backoff_ms;
    ch_outbox_enqueue(a, &d, on_enqueued, c);
    json_decref(headers);
    json_decref(env);
    ch_free(body);
    return true;
}

/* deliver + channel: the `webhook` channel emits message.sent. */
static void channel(struct ch_api *a, const char *run_id, const char *session_key, const json_t *hook,
                    const struct ch_agent_result *res, json_t *state)
{
    const char *ch = json_string_value(json_object_get(hook, "channel"));
    const char *to = json_string_value(json_object_get(hook, "to"));

    if (!json_is_true(json_object_get(hook, "deliver")) || !ch || !strcmp(ch, "last"))
        return; /* "last": the main session's last chat channel, which chela does not have yet */
    if (!strcmp(ch, "webhook")) {
        if (!strcmp(res->status, "ok") && res->text && *res->text) {
            ch_webhooks_emit(a, "message.sent",
                             json_pack("{s:s, s:s?, s:s, s:s, s:s}", "channel", "webhook", "chatId", to, "message",
                                       res->text, "runId", run_id, "sessionKey", session_key));
            a->hooks->deliveries[CH_HOOK_D_WEBHOOK]++;
            json_object_set_new(state, "channel", json_pack("{s:s, s:s}", "name", ch, "state", "emitted"));
        } else {
            json_object_set_new(
                state, "channel",
                json_pack("{s:s, s:s, s:s}", "name", ch, "state", "skipped", "reason", "the run produced no reply"));
        }
        return;
    }
    a->hooks->deliveries[CH_HOOK_D_SKIPPED]++;
    json_object_set_new(state, "channel",
                        json_pack("{s:s, s:s?, s:s, s:s}", "name", ch, "to", to, "state", "skipped", "reason",
                                  "chela has no such chat channel yet; the result is kept on the run"));
}

static void deliver(struct ch_api *a, const char *run_id, const char *session_key, const json_t *hook,
                    const struct ch_agent_result *res)
{
    json_t *state = json_object();

    if (!state)
        return;
    channel(a, run_id, session_key, hook, res, state);
    if (callback(a, run_id, session_key, hook, res, state)) {
        json_decref(state);
        return;
    }
    if (json_object_size(state))
        record(a, run_id, state);
    else
        json_decref(state);
}

static void on_run_event(const struct ch_agent_event *ev, void *data)
{
    struct ch_api *a = data;
    const json_t *hook;

    if (ev->type != CH_AGENT_EV_END || !ev->result || a->stopped)
        return;
    hook = json_object_get(ev->meta, "hook");
    if (json_is_object(hook))
        deliver(a, ev->run_id, ev->session_key, hook, ev->result);
}

/* ---- start-up recovery ---- */

struct ch_hooks_recover {
    struct ch_store_job job;
    struct ch_api *api; /* borrowed; NULL once the api is freed first (a failed start) */
    int64_t before_ms;
    struct ch_run_list list;
};

static int recover_run(struct ch_db *db, struct ch_store_job *job)
{
    struct ch_hooks_recover *rj = (struct ch_hooks_recover *)job;
    return ch_runs_list_undelivered(db, rj->before_ms - RECOVER_WINDOW_MS, rj->before_ms, RECOVER_MAX, &rj->list);
}

/* A stored run as the result END would have carried. */
static void deliver_rec(struct ch_api *a, const struct ch_run_rec *rec)
{
    json_t *req = rec->request ? json_loads(rec->request, 0, NULL) : NULL;
    json_t *out = rec->result ? json_loads(rec->result, 0, NULL) : NULL;
    const json_t *hook = json_object_get(json_object_get(req, "meta"), "hook");
    struct ch_agent_result res = {0};

    res.status = ch_run_status_name(rec->status);
    res.text = json_string_value(json_object_get(out, "text"));
    res.error = rec->error;
    res.error_class = rec->error_class;
    res.model = rec->model;
    res.provider = json_string_value(json_object_get(out, "provider"));
    res.usage.input_tokens = (uint64_t)rec->usage.input_tokens;
    res.usage.output_tokens = (uint64_t)rec->usage.output_tokens;
    res.usage.cache_read_tokens = (uint64_t)rec->usage.cache_read_tokens;
    res.usage.cache_write_tokens = (uint64_t)rec->usage.cache_write_tokens;
    res.cost_usd = rec->usage.cost_usd;
    res.started_ms = rec->started_ms;
    res.finished_ms = rec->finished_ms;
    if (json_is_object(hook)) {
        ch_log_info("hooks: run %s ended before a restart without its callback queued; queueing it now", rec->run_id);
        a->hooks->recovered++;
        deliver(a, rec->run_id, rec->session_key, hook, &res);
    }
    json_decref(req);
    json_decref(out);
}

static void recover_done(struct ch_store_job *job, int rc)
{
    struct ch_hooks_recover *rj = (struct ch_hooks_recover *)job;

    if (rj->api)
        rj->api->hooks->recover = NULL;
    if (!rj->api)
        ; /* the api is gone: nothing to deliver to */
    else if (rc)
        ch_log_warn("hooks: the scan for undelivered hook results failed: %s", ch_strerror(rc));
    else if (!rj->api->stopped)
        for (size_t i = 0; i < rj->list.count; i++)
            deliver_rec(rj->api, &rj->list.items[i]);
    ch_run_list_release(&rj->list);
    ch_free(rj);
}

int ch_hooks_deliver_start(struct ch_api *a)
{
    struct ch_hooks *h = a->hooks;
    struct ch_hooks_recover *rj;

    if (!a->agent)
        return 0;
    h->sub = ch_agent_subscribe(a->agent, NULL, on_run_event, a);
    if (!h->sub)
        return CH_ENOMEM;
    if (!a->store)
        return 0;
    rj = ch_calloc(1, sizeof(*rj));
    if (!rj)
        return CH_ENOMEM;
    rj->api = a;
    /* Runs that end from now on are this process's: the subscription
     * delivers them. */
    rj->before_ms = h->started_ms;
    rj->job.run = recover_run;
    rj->job.done = recover_done;
    if (ch_store_read(a->store, &rj->job) != 0) {
        ch_free(rj);
        ch_log_warn("hooks: cannot scan for undelivered hook results (store closed)");
        return 0;
    }
    h->recover = rj;
    return 0;
}

void ch_hooks_deliver_stop(struct ch_api *a)
{
    if (!a->hooks)
        return;
    if (a->hooks->sub) {
        ch_agent_unsubscribe(a->hooks->sub);
        a->hooks->sub = NULL;
    }
    if (a->hooks->recover) { /* its done callback runs later and frees it */
        a->hooks->recover->api = NULL;
        a->hooks->recover = NULL;
    }
}
