/*
 * hooks_agent.c: POST <base>/agent (OpenClaw spec section 3), and the
 * dispatch of every hook run (hooks_wake.c has <base>/wake and mappings).  A hook run is
 * answered only once the agent reports it durably queued (a committed
 * `queued` row), so a crash right after the 202 never loses it.
 *
 * One request is one `struct hjob`:
 *   [idempotency lookup (read job)] -> submit -> accepted -> 202
 *                                  \-> replay (same runId, 200)
 * and with waitForCompletion it stays subscribed to the run until END
 * (200 with `completion`) or the wait timer (202, completion pending).
 * Idempotency keys are stored per UTC day, "hook:<key>@<day>", and looked
 * up in today's and yesterday's buckets, which is exactly a 24 h window:
 * an older run with the same key no longer blocks a new one.
 */
#include <string.h>

#include "api/hooks.h"

#define DAY_MS 86400000LL
#define WAIT_GRACE_MS 30000 /* past the run's own timeout, for its queueing */
#define RECENT_MS 300000    /* OpenClaw keeps an ended fan-out item's replay 5 min */
#define MAX_PLAIN_IDEM 160  /* longer (or unprintable) keys are stored hashed */

struct hjob {
    struct ch_store_job job; /* idempotency lookup, then the wait read: never both at once */
    int refs;                /* dispatch, store job, accept cb, subscription, timer */
    struct ch_api *api;      /* borrowed */
    struct ch_http_req *req; /* ref held until freed; NULL for a fan-out item */
    struct ch_hook_fan *fan; /* borrowed: the fan-out this item reports to, or NULL */
    size_t fan_idx;
    struct ch_hook_in in;  /* owned */
    const char *wake_mode; /* static: answer in /hooks/wake's shape */
    char run_id[40];       /* the id our run gets */
    char *keys[2];         /* owned: stored idempotency keys, today and yesterday */
    char *found;           /* owned: the run an idempotency key named */
    int64_t found_created_ms;
    int64_t found_finished_ms; /* 0: queued or running */
    char *watch;               /* owned: the run we wait for */
    struct ch_agent_sub *sub;
    uv_timer_t timer;
    bool timer_on;
    struct ch_run_rec rec; /* the wait read */
    bool answered;         /* response out, or the client gone */
    bool accepted;         /* the run is durably queued, or a replay names an earlier one */
    bool replayed;         /* accepted as a replay: counted so if the client leaves */
    bool gone_uncounted;   /* the client left first: count the outcome when it is known */
};

/* "hook:<key>@<day>"; a long or unprintable key is stored as its digest. */
char *ch_hooks_idem_key(const char *key, int64_t day)
{
    size_t n = strlen(key);
    bool plain = n <= MAX_PLAIN_IDEM;
    char hex[65];

    for (size_t i = 0; plain && i < n; i++)
        plain = (unsigned char)key[i] > 0x20 && (unsigned char)key[i] < 0x7f;
    if (plain)
        return ch_sprintf("hook:%s@%lld", key, (long long)day);
    ch_sha256_hex(key, n, hex);
    return ch_sprintf("hook:sha256:%s@%lld", hex, (long long)day);
}

static void hjob_unref(struct hjob *j)
{
    if (--j->refs > 0)
        return;
    if (j->req)
        ch_http_req_unref(j->req);
    ch_hook_in_release(&j->in);
    ch_free(j->keys[0]);
    ch_free(j->keys[1]);
    ch_free(j->found);
    ch_free(j->watch);
    ch_run_rec_release(&j->rec);
    ch_free(j);
}

static void timer_closed(uv_handle_t *h)
{
    hjob_unref(h->data);
}

static void detach(struct hjob *j)
{
    if (j->sub) {
        ch_agent_unsubscribe(j->sub);
        j->sub = NULL;
        hjob_unref(j);
    }
    if (j->timer_on) {
        j->timer_on = false;
        uv_timer_stop(&j->timer);
        uv_close((uv_handle_t *)&j->timer, timer_closed);
    }
}

/* Accepted answers.  body is stolen. */
static void answer(struct hjob *j, int status, json_t *body, enum ch_hook_reason why)
{
    if (j->answered) {
        json_decref(body);
        return;
    }
    j->answered = true;
    if (j->fan) {
        ch_hooks_fan_done(j->fan, j->fan_idx, status, json_string_value(json_object_get(body, "runId")), why, NULL);
        json_decref(body);
    } else {
        ch_hooks_count(j->api, j->req, true, why, NULL);
        ch_http_respond_json(j->req, status, body);
    }
    detach(j); /* last: it may drop the final reference */
}

static void refuse(struct hjob *j, int status, enum ch_hook_reason why, const char *msg)
{
    if (j->gone_uncounted) {
        j->gone_uncounted = false;
        ch_hooks_count(j->api, NULL, false, why, msg); /* r: its connection is gone */
    }
    if (j->answered)
        return;
    j->answered = true;
    if (j->fan) {
        ch_hooks_fan_done(j->fan, j->fan_idx, status, NULL, why, msg);
        detach(j);
        return;
    }
    if (status == 503)
        ch_http_add_header(j->req, "Retry-After", "1");
    ch_hooks_refuse(j->api, j->req, status, why, "%s", msg);
    detach(j); /* last: it may drop the final reference */
}

static json_t *ok_body(struct hjob *j, const char *run_id)
{
    if (j->wake_mode) /* v4 adds eventOutcome; a wake here is never coalesced */
        return json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "mode", j->wake_mode, "runId", run_id, "eventOutcome",
                         "queued");
    return json_pack("{s:b, s:s}", "ok", 1, "runId", run_id);
}

/* ok_body's bytes as jansson writes them, without an object to build and
 * encode per accepted hook; an id JSON would escape takes ok_body. */
static void answer_ok(struct hjob *j, int status, const char *run_id, enum ch_hook_reason why)
{
    const char *head = "{\"ok\":true,\"runId\":\"";
    size_t h = strlen(head), n = strspn(run_id, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.:");
    char text[128];

    if (run_id[n] || n > 64 || j->wake_mode || j->answered || j->fan) {
        answer(j, status, ok_body(j, run_id), why);
        return;
    }
    j->answered = true;
    memcpy(text, head, h);
    memcpy(text + h, run_id, n);
    memcpy(text + h + n, "\"}", 2);
    ch_hooks_count(j->api, j->req, true, why, NULL);
    ch_http_respond(j->req, status, "application/json", text, h + n + 2);
    detach(j); /* last: it may drop the final reference */
}

static void on_client_close(struct ch_http_req *r, void *data)
{
    struct hjob *j = data;

    (void)r;
    if (j->answered)
        return;
    j->answered = true;
    /* The run goes on (a hook is fire-and-forget at heart): whether it is
     * counted accepted or refused is known once the agent has answered. */
    if (j->accepted)
        ch_hooks_count(j->api, j->req, true, j->replayed ? CH_HOOK_R_REPLAY : j->in.ok_reason, NULL);
    else
        j->gone_uncounted = true;
    j->refs++;
    detach(j);
    hjob_unref(j);
}

/* ---- waitForCompletion ---- */

static json_t *completion_from_rec(const struct ch_run_rec *rec)
{
    json_t *res = rec->result ? json_loads(rec->result, 0, NULL) : NULL;
    const char *text = json_string_value(json_object_get(res, "text"));
    char fin[32];
    json_t *o;

    ch_time_iso8601(rec->finished_ms, fin);
    o = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:{s:I, s:I}, s:s}", "status", ch_run_status_name(rec->status), "text",
                  text ? text : "", "error", rec->error, "errorClass", rec->error_class, "model", rec->model, "usage",
                  "inputTokens", (json_int_t)rec->usage.input_tokens, "outputTokens",
                  (json_int_t)rec->usage.output_tokens, "finishedAt", fin);
    json_decref(res);
    return o;
}

static void on_event(const struct ch_agent_event *ev, void *data)
{
    struct hjob *j = data;

    if (ev->type != CH_AGENT_EV_END || j->answered)
        return;
    answer(j, 200,
           json_pack("{s:b, s:s, s:o}", "ok", 1, "runId", ev->run_id, "completion",
                     ch_hooks_completion_json(ev->run_id, ev->result)),
           CH_HOOK_R_COMPLETED);
}

static void on_wait_timeout(uv_timer_t *t)
{
    struct hjob *j = t->data;
    const char *id = j->watch ? j->watch : j->run_id;

    answer(j, 202, json_pack("{s:b, s:s, s:{s:s}}", "ok", 1, "runId", id, "completion", "status", "pending"),
           j->in.ok_reason);
}

/* Subscribe to run id (replacing an earlier subscription). */
static int watch(struct hjob *j, const char *id)
{
    if (j->sub) {
        ch_agent_unsubscribe(j->sub);
        j->sub = NULL;
        hjob_unref(j);
    }
    ch_free(j->watch);
    if (!(j->watch = ch_strdup(id)) || !(j->sub = ch_agent_subscribe(j->api->agent, id, on_event, j)))
        return CH_ENOMEM;
    j->refs++;
    return 0;
}

static int read_run(struct ch_db *db, struct ch_store_job *job)
{
    struct hjob *j = (struct hjob *)job;
    return ch_runs_get(db, j->watch, &j->rec);
}

static void read_run_done(struct ch_store_job *job, int rc)
{
    struct hjob *j = (struct hjob *)job;

    if (!j->answered && rc == 0 && j->rec.status != CH_RUN_QUEUED && j->rec.status != CH_RUN_RUNNING)
        answer(j, 200,
               json_pack("{s:b, s:s, s:o}", "ok", 1, "runId", j->watch, "completion", completion_from_rec(&j->rec)),
               CH_HOOK_R_COMPLETED);
    else if (!j->answered && rc && rc != CH_ENOTFOUND)
        refuse(j, 500, CH_HOOK_R_INTERNAL, "reading the run failed");
    /* queued or running: END answers; not stored yet: it is being queued. */
    hjob_unref(j);
}

/* ---- replay and submit ---- */

static void replay(struct hjob *j, const char *id)
{
    /* Accepted from here on: a client that leaves while its replay waits
     * for the run is counted by on_client_close. */
    j->accepted = true;
    j->replayed = true;
    if (j->answered)
        return; /* the client left (counted): nothing to wait for */
    if (!j->in.wait) {
        json_t *b = ok_body(j, id);
        json_object_set_new(b, "replayed", json_true());
        answer(j, 200, b, CH_HOOK_R_REPLAY);
        return;
    }
    /* Subscribe first, then read: END is emitted only after the outcome is
     * stored, so either the read sees it or the subscription does. */
    if (watch(j, id) != 0) {
        refuse(j, 500, CH_HOOK_R_INTERNAL, "out of memory");
        return;
    }
    ch_run_rec_release(&j->rec);
    j->job.run = read_run;
    j->job.done = read_run_done;
    j->refs++;
    if (ch_store_read(j->api->store, &j->job) != 0) {
        hjob_unref(j);
        refuse(j, 503, CH_HOOK_R_QUEUE_FULL, "the store cannot take the request now; retry shortly");
    }
}

static void on_accepted(int rc, const char *run_id, bool duplicate, const char *msg, void *data)
{
    struct hjob *j = data;

    if (rc == 0) {
        j->accepted = true;
        if (j->gone_uncounted) {
            j->gone_uncounted = false;
            ch_hooks_count(j->api, NULL, true, duplicate ? CH_HOOK_R_REPLAY : j->in.ok_reason, NULL);
        }
        if (duplicate)
            replay(j, run_id);
        else if (!j->in.wait)
            answer_ok(j, j->wake_mode ? 200 : 202, run_id, j->in.ok_reason);
        /* else: END or the wait timer answers */
    } else if (rc == CH_EBUSY) {
        refuse(j, 503, CH_HOOK_R_QUEUE_FULL, msg ? msg : "the run queue is full; retry later");
    } else if (rc == CH_EINVAL) {
        refuse(j, 400, CH_HOOK_R_INVALID, msg ? msg : "invalid request");
    } else if (rc == CH_ESTATE) {
        refuse(j, 503, CH_HOOK_R_UNAVAILABLE, msg ? msg : "the gateway is shutting down");
    } else if (rc == CH_ENOSPC) {
        refuse(j, 503, CH_HOOK_R_STORAGE_FULL, CH_STORAGE_FULL_MSG);
    } else {
        refuse(j, 500, CH_HOOK_R_INTERNAL, msg ? msg : "the run could not be queued");
    }
    hjob_unref(j);
}

static void submit(struct hjob *j)
{
    struct ch_agent_run_req rr = {0};
    json_t *meta = json_pack("{s:O}", "hook", j->in.hook);
    struct ch_buf text;

    if (!meta) {
        refuse(j, 500, CH_HOOK_R_INTERNAL, "out of memory");
        return;
    }
    /* The same meta as text (jansson's bytes) for a tenth of what
     * json_dumps costs the agent; on any failure the agent encodes it. */
    ch_buf_init(&text, CH_STORE_MAX_REQUEST_BYTES);
    if (ch_buf_append_str(&text, "{\"hook\":") == 0 && ch_http_json_dump(j->in.hook, &text) == 0 &&
        ch_buf_append_char(&text, '}') == 0)
        rr.meta_json = text.data;
    rr.session_key = j->in.session_key;
    rr.message = j->in.message;
    rr.message_json = j->in.message_json;
    rr.run_id = j->run_id;
    rr.idempotency_key = j->keys[0];
    rr.source = j->in.source;
    rr.model = j->in.model;
    rr.timeout_s = j->in.timeout_s;
    rr.isolated = j->in.isolated;
    rr.meta = meta;
    rr.meta_shared = true; /* nothing here changes meta or in.hook again */
    j->refs++;             /* until on_accepted, which never runs synchronously */
    ch_agent_submit(j->api->agent, &rr, on_accepted, j);
    json_decref(meta); /* the run holds its own reference */
    ch_buf_release(&text);
}

static int lookup_run(struct ch_db *db, struct ch_store_job *job)
{
    struct hjob *j = (struct hjob *)job;
    struct ch_run_rec rec = {0};
    int rc = 0;

    for (int k = 0; k < 2 && !j->found; k++) {
        rc = ch_runs_get_by_idempotency(db, j->keys[k], &rec);
        if (rc == 0) {
            j->found = ch_strdup(rec.run_id);
            j->found_created_ms = rec.created_ms;
            j->found_finished_ms = rec.status == CH_RUN_QUEUED || rec.status == CH_RUN_RUNNING ? 0 : rec.finished_ms;
            rc = j->found ? 0 : CH_ENOMEM;
        } else if (rc == CH_ENOTFOUND) {
            rc = 0;
        }
        ch_run_rec_release(&rec);
        if (rc)
            break;
    }
    return rc;
}

static void lookup_done(struct ch_store_job *job, int rc)
{
    struct hjob *j = (struct hjob *)job;

    if (j->answered && j->gone_uncounted) {
        j->gone_uncounted = false; /* nothing was submitted */
        ch_hooks_count(j->api, NULL, false, CH_HOOK_R_CLIENT_GONE, "the client left during the idempotency lookup");
    } else if (j->answered) {
        ;
    } else if (rc) {
        refuse(j, 500, CH_HOOK_R_INTERNAL, "looking up the idempotency key failed");
    } else if (j->found && ch_now_ms() - j->found_created_ms < DAY_MS &&
               (!j->in.idem_recent || !j->found_finished_ms || ch_now_ms() - j->found_finished_ms < RECENT_MS)) {
        replay(j, j->found);
    } else {
        submit(j);
    }
    hjob_unref(j);
}

static void dispatch(struct ch_api *a, struct ch_http_req *r, struct ch_hook_fan *fan, size_t idx,
                     struct ch_hook_in *in)
{
    struct hjob *j = ch_calloc(1, sizeof(*j));
    int64_t day = ch_now_ms() / DAY_MS;

    if (!j) {
        ch_hook_in_release(in);
        if (fan)
            ch_hooks_fan_done(fan, idx, 500, NULL, CH_HOOK_R_INTERNAL, "out of memory");
        else
            ch_hooks_refuse(a, r, 500, CH_HOOK_R_INTERNAL, "out of memory");
        return;
    }
    j->refs = 1;
    j->api = a;
    j->fan = fan;
    j->fan_idx = idx;
    j->in = *in;
    memset(in, 0, sizeof(*in));
    ch_agent_run_id_new(j->run_id);
    if (r) { /* a fan-out's request is the fan's to watch */
        if (j->in.cb_withheld)
            ch_hooks_log_withheld(r,
                                  json_string_value(json_object_get(json_object_get(j->in.hook, "callback"), "url")));
        j->req = r;
        ch_http_req_ref(r);
        ch_http_req_on_close(r, on_client_close, j);
    }
    if (!strcmp(j->in.source, "wake"))
        j->wake_mode = "now";
    if (j->in.idem && (!(j->keys[0] = ch_hooks_idem_key(j->in.idem, day)) ||
                       !(j->keys[1] = ch_hooks_idem_key(j->in.idem, day - 1)))) {
        refuse(j, 500, CH_HOOK_R_INTERNAL, "out of memory");
        goto out;
    }
    if (j->in.wait) {
        /* Subscribed before the run exists, so its END cannot slip past;
         * the timer bounds the wait by the run's own timeout. */
        int64_t t = j->in.timeout_s ? j->in.timeout_s : ch_config_int(a->cfg, "agents.defaults.timeoutSeconds", 600);
        if (watch(j, j->run_id) != 0) {
            refuse(j, 500, CH_HOOK_R_INTERNAL, "out of memory");
            goto out;
        }
        uv_timer_init(a->net->loop, &j->timer);
        j->timer.data = j;
        j->timer_on = true;
        j->refs++;
        uv_timer_start(&j->timer, on_wait_timeout, (uint64_t)t * 1000 + WAIT_GRACE_MS, 0);
    }
    if (!j->in.idem) {
        submit(j);
        goto out;
    }
    j->job.run = lookup_run;
    j->job.done = lookup_done;
    j->refs++;
    if (ch_store_read(a->store, &j->job) != 0) {
        hjob_unref(j);
        refuse(j, 503, CH_HOOK_R_QUEUE_FULL, "the store cannot take the request now; retry shortly");
    }
out:
    hjob_unref(j);
}

void ch_hooks_dispatch(struct ch_api *a, struct ch_http_req *r, struct ch_hook_in *in)
{
    dispatch(a, r, NULL, 0, in);
}

void ch_hooks_dispatch_item(struct ch_api *a, struct ch_hook_fan *f, size_t idx, struct ch_hook_in *in)
{
    dispatch(a, NULL, f, idx, in);
}

/* ---- handlers ---- */

int ch_hooks_body(struct ch_api *a, struct ch_http_req *r, json_t **out)
{
    return ch_hooks_body_raw(a, r, out, NULL);
}

int ch_hooks_body_raw(struct ch_api *a, struct ch_http_req *r, json_t **out, struct ch_str *message_raw)
{
    json_error_t jerr;
    json_t *v;

    *out = NULL;
    if (message_raw)
        *message_raw = (struct ch_str){NULL, 0};
    /* OpenClaw reads an empty body as {} (a bare ping to a mapping). */
    if (r->body.len == 0) {
        if ((*out = json_object()) != NULL)
            return 0;
        /* Callers return on any failure: the client must not be left waiting. */
        ch_hooks_refuse(a, r, 500, CH_HOOK_R_INTERNAL, "out of memory");
        return CH_ENOMEM;
    }
    /* The fast path decodes the common flat body; whatever it does not
     * take (or takes to be wrong) jansson decodes or words the error. */
    if (ch_hooks_json_object_raw(r->body.data, r->body.len, out, "message", message_raw) == 0)
        return 0;
    v = json_loadb(r->body.data, r->body.len, 0, &jerr);
    if (!v) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID_JSON, "invalid JSON: %s (line %d, column %d)", jerr.text,
                        jerr.line, jerr.column);
        return CH_EINVAL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID_JSON, "the body must be a JSON object");
        return CH_EINVAL;
    }
    *out = v;
    return 0;
}

bool ch_hooks_agent_ready(struct ch_api *a, struct ch_http_req *r)
{
    if (!a->agent) {
        ch_hooks_refuse(a, r, 503, CH_HOOK_R_UNAVAILABLE, "this gateway runs without an agent runtime");
        return false;
    }
    if (!a->hooks->main_allowed) { /* OpenClaw's words */
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "agentId is not allowed by hooks.allowedAgentIds");
        return false;
    }
    return true;
}

void ch_hooks_agent(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    struct ch_hook_in in;
    struct ch_str raw;
    json_t *body = NULL;

    if (!ch_hooks_agent_ready(a, r) || ch_hooks_body_raw(a, r, &body, &raw) != 0)
        return;
    if (ch_hooks_parse_agent(a, r, body, &in) == 0) {
        /* in.message is the body's string as decoded: the raw span is its
         * encoding.  Without a copy the agent simply encodes it again. */
        if (raw.p)
            in.message_json = ch_strndup(raw.p, raw.len);
        ch_hooks_dispatch(a, r, &in);
    }
    json_decref(body);
}
