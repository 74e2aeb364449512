/*
 * rest_chat.c: POST /api/v1/chat and /api/v1/chat/stream (seed 002 section
 * 3.1-3.2, issue #4 item 4).  One request is one agent run on the session
 * keyed by the conversation id.  The handler subscribes to the run id it
 * chose BEFORE submitting, so no event can slip past; the plain route
 * answers from the END event, the stream route writes an SSE event per
 * text delta as it arrives (the http layer flushes before the loop
 * sleeps), a `: keepalive` comment every 15 s, and a final done/error
 * event.  A client that leaves (or a stream over the write-queue cap)
 * aborts its run.
 */
#include <string.h>

#include "api/internal.h"
#include "providers/client.h"

#define KEEPALIVE_MS 15000 /* proxies commonly time out idle streams at 30-60 s */
#define MAX_SYSTEM_PROMPT (256 * 1024)
#define MAX_MODEL_REF 256
#define MAX_EVENT_BYTES (32u << 20) /* one SSE event: a delta escaped as JSON fits easily */

struct chat {
    int refs;                 /* setup, subscription, pending accept cb, open timer */
    struct ch_api *api;       /* borrowed */
    struct ch_http_req *req;  /* ref held until the chat is freed */
    struct ch_agent_sub *sub; /* NULL once unsubscribed */
    uv_timer_t keepalive;     /* stream only */
    bool timer_on;
    bool stream;
    bool accepted; /* the run is durably queued */
    bool began;    /* SSE head and start event written */
    bool ended;    /* END seen (or the answer is out) */
    bool closed;   /* the client left: never touch req again */
    bool abort_sent;
    char run_id[40];
    char *conv_id;    /* owned: the conversation id as the client sent it */
    char *key;        /* owned: its session key (canonical) */
    int64_t t0_ms;    /* when the request was dispatched */
    struct ch_buf ev; /* scratch for one SSE event, reused */
    char carry[4];    /* incomplete UTF-8 tail of the last delta */
    size_t carry_len;
};

static void chat_unref(struct chat *c)
{
    if (--c->refs > 0)
        return;
    ch_http_req_unref(c->req);
    ch_free(c->conv_id);
    ch_free(c->key);
    ch_buf_release(&c->ev);
    ch_free(c);
}

static void timer_closed(uv_handle_t *h)
{
    chat_unref(h->data);
}

/* Stop listening: drop the subscription and the keepalive timer. */
static void chat_detach(struct chat *c)
{
    if (c->sub) {
        ch_agent_unsubscribe(c->sub);
        c->sub = NULL;
        chat_unref(c);
    }
    if (c->timer_on) {
        c->timer_on = false;
        uv_timer_stop(&c->keepalive);
        uv_close((uv_handle_t *)&c->keepalive, timer_closed);
    }
}

/*
 * The client left: abort its run, unless the gateway itself is shutting
 * down (then the connection was closed by the drain, not the client, and
 * the run must stay `running` to be replayed at the next start).
 */
static void chat_abort_run(struct chat *c)
{
    if (c->abort_sent || !c->accepted || c->ended || c->api->shutting_down)
        return;
    c->abort_sent = true;
    if (ch_agent_abort(c->api->agent, c->run_id) == 0)
        ch_log_info("chat: run %s aborted: its client went away", c->run_id);
}

/* The connection closed before the answer was complete. */
static void on_client_close(struct ch_http_req *r, void *data)
{
    struct chat *c = data;

    (void)r;
    if (c->closed)
        return;
    c->refs++;
    c->closed = true;
    chat_detach(c); /* first: nothing more is written to this client */
    chat_abort_run(c);
    chat_unref(c);
}

/* ---- SSE output ---- */

/* Bytes of p[0..n) that end on a UTF-8 character boundary. */
static size_t utf8_whole(const char *p, size_t n)
{
    size_t back = 0;

    while (back < 3 && back < n && ((unsigned char)p[n - 1 - back] & 0xC0) == 0x80)
        back++;
    if (back < n) {
        unsigned char lead = (unsigned char)p[n - 1 - back];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (lead >= 0xC0 && need > back + 1)
            return n - 1 - back;
    }
    return n;
}

/* Write ev as one SSE event.  A failed write closed the connection, and
 * on_client_close has run (aborting the run); say so to the caller. */
static int sse_send(struct chat *c)
{
    int rc;

    if (c->closed)
        return CH_ECLOSED;
    rc = ch_http_stream_write(c->req, c->ev.data, c->ev.len);
    ch_buf_reset(&c->ev);
    if (rc) {
        if (rc == CH_E_TOO_LARGE)
            ch_log_warn("chat: stream of run %s over the write-queue cap (client too slow); aborting", c->run_id);
        if (!c->closed)
            on_client_close(c->req, c);
        chat_abort_run(c);
    }
    return rc;
}

static int sse_json(struct chat *c, json_t *o)
{
    char *s = NULL;
    int rc = CH_ENOMEM;

    /* http's encoder: json_dumps's bytes without its cycle-check table. */
    ch_buf_reset(&c->ev);
    if (o && ch_buf_append(&c->ev, "data: ", 6) == 0 && ch_http_json_dump(o, &c->ev) == 0)
        rc = ch_buf_append(&c->ev, "\n\n", 2);
    else if ((s = o ? json_dumps(o, JSON_COMPACT) : NULL) != NULL) {
        ch_buf_reset(&c->ev);
        rc = ch_buf_appendf(&c->ev, "data: %s\n\n", s);
    }
    ch_free(s);
    json_decref(o);
    return rc ? rc : sse_send(c);
}

static void on_keepalive(uv_timer_t *t)
{
    struct chat *c = t->data;

    ch_buf_reset(&c->ev);
    if (ch_buf_append_str(&c->ev, ": keepalive\n\n") == 0)
        sse_send(c);
}

/* SSE head and the start event, once; then the keepalive timer. */
static void stream_begin(struct chat *c)
{
    int rc;

    if (c->began || c->closed)
        return;
    c->began = true;
    ch_http_add_header(c->req, "Cache-Control", "no-cache");
    /* nginx buffers proxied responses unless told not to. */
    ch_http_add_header(c->req, "X-Accel-Buffering", "no");
    rc = ch_http_stream_begin(c->req, 200, "text/event-stream; charset=utf-8");
    if (rc) {
        on_client_close(c->req, c);
        return;
    }
    rc = ch_chat_render_start(&c->ev, c->conv_id, c->run_id) == 0
             ? sse_send(c)
             : sse_json(
                   c, json_pack("{s:s, s:s, s:s}", "type", "start", "conversationId", c->conv_id, "runId", c->run_id));
    if (rc != 0)
        return;
    if (c->ended)
        return; /* the done event follows at once: no keepalive needed */
    uv_timer_init(c->api->net->loop, &c->keepalive);
    c->keepalive.data = c;
    c->timer_on = true;
    c->refs++; /* dropped in timer_closed */
    uv_timer_start(&c->keepalive, on_keepalive, KEEPALIVE_MS, KEEPALIVE_MS);
}

/* One delta event.  A UTF-8 character split between two deltas is held
 * back (at most 3 bytes) so every event is valid JSON text. */
static void stream_delta(struct chat *c, const char *p, size_t n)
{
    struct ch_buf joined;
    size_t whole;
    int rc = 0;

    ch_buf_init(&joined, MAX_EVENT_BYTES);
    if (c->carry_len) {
        if ((rc = ch_buf_append(&joined, c->carry, c->carry_len)) == 0 && (rc = ch_buf_append(&joined, p, n)) == 0) {
            p = joined.data;
            n = joined.len;
        }
        c->carry_len = 0;
    }
    whole = rc ? 0 : utf8_whole(p, n);
    if (rc == 0) {
        c->carry_len = n - whole;
        memcpy(c->carry, p + whole, c->carry_len);
    }
    ch_buf_reset(&c->ev);
    if (rc == 0 && whole > 0) {
        rc = ch_buf_append_str(&c->ev, "data: {\"type\":\"delta\",\"content\":");
        if (rc == 0)
            rc = ch_buf_append_json_str(&c->ev, p, whole);
        if (rc == 0)
            rc = ch_buf_append_str(&c->ev, "}\n\n");
    }
    ch_buf_release(&joined);
    if (rc) {
        ch_log_warn("chat: run %s: a delta could not be framed (%s); aborting", c->run_id, ch_strerror(rc));
        on_client_close(c->req, c);
        return;
    }
    if (c->ev.len)
        sse_send(c);
}

/* ---- outcome ---- */

static json_t *usage_json(const struct ch_llm_usage *u)
{
    return json_pack("{s:I, s:I, s:I, s:I}", "inputTokens", (json_int_t)u->input_tokens, "outputTokens",
                     (json_int_t)u->output_tokens, "cacheReadTokens", (json_int_t)u->cache_read_tokens,
                     "cacheWriteTokens", (json_int_t)u->cache_write_tokens);
}

/* HTTP status and error code for a run that did not end "ok". */
static int failure_status(const struct ch_agent_result *res, const char **code)
{
    if (!strcmp(res->status, "timeout") || (res->error_class && !strcmp(res->error_class, "timeout"))) {
        *code = "timeout";
        return 504;
    }
    if (!strcmp(res->status, "aborted")) {
        *code = "aborted";
        return 409;
    }
    /* A provider failure carries its class; a run the agent itself
     * stopped (tool loop, MAX_TOOL_ROUNDS) has none. */
    if (res->provider && *res->provider && res->error_class) {
        *code = "provider_error";
        return 502;
    }
    *code = "run_failed";
    return 500;
}

static void chat_answer(struct chat *c, const struct ch_agent_result *res)
{
    const char *code, *cls;
    int status;

    if (!strcmp(res->status, "ok")) {
        if (ch_chat_render_answer(&c->ev, c->run_id, c->conv_id, res, ch_now_ms() - c->t0_ms) == 0) {
            ch_http_respond(c->req, 200, "application/json", c->ev.data, c->ev.len);
            return;
        }
        ch_http_respond_json(c->req, 200,
                             json_pack("{s:s+, s:s, s:s, s:s, s:s?, s:s?, s:o, s:f, s:I, s:s}", "id", "msg_", c->run_id,
                                       "conversationId", c->conv_id, "role", "assistant", "content",
                                       res->text ? res->text : "", "model", res->model, "provider", res->provider,
                                       "usage", usage_json(&res->usage), "costUsd", res->cost_usd, "latency",
                                       (json_int_t)(ch_now_ms() - c->t0_ms), "runId", c->run_id));
        return;
    }
    status = failure_status(res, &code);
    cls = res->error_class ? res->error_class : res->status;
    ch_http_respond_json(c->req, status,
                         json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:o}", "error", code, "message",
                                   res->error ? res->error : res->status, "errorClass", cls, "status", res->status,
                                   "runId", c->run_id, "conversationId", c->conv_id, "model", res->model, "usage",
                                   usage_json(&res->usage)));
}

static void stream_finish(struct chat *c, const struct ch_agent_result *res)
{
    json_t *o;

    if (c->carry_len) {
        /* The run ended inside a character: a replacement character
         * stands for the bytes held back, so the stream stays UTF-8. */
        c->carry_len = 0;
        ch_buf_reset(&c->ev);
        if (ch_buf_append_str(&c->ev, "data: {\"type\":\"delta\",\"content\":\"\\ufffd\"}\n\n") == 0 &&
            sse_send(c) != 0)
            return;
    }
    if (!strcmp(res->status, "ok") &&
        ch_chat_render_done(&c->ev, c->run_id, c->conv_id, res, ch_now_ms() - c->t0_ms) == 0) {
        sse_send(c); /* a failed write has closed the connection */
        if (!c->closed)
            ch_http_stream_end(c->req);
        return;
    }
    if (!strcmp(res->status, "ok"))
        o = json_pack("{s:s, s:o, s:s?, s:s?, s:f, s:s, s:s, s:I}", "type", "done", "usage", usage_json(&res->usage),
                      "model", res->model, "provider", res->provider, "costUsd", res->cost_usd, "runId", c->run_id,
                      "conversationId", c->conv_id, "latency", (json_int_t)(ch_now_ms() - c->t0_ms));
    else
        o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:o}", "type", "error", "error",
                      res->error_class ? res->error_class : res->status, "message",
                      res->error ? res->error : res->status, "status", res->status, "runId", c->run_id, "model",
                      res->model, "usage", usage_json(&res->usage));
    /* Out of memory for the last event still ends the body cleanly; a
     * failed write has closed the connection already. */
    sse_json(c, o);
    if (!c->closed)
        ch_http_stream_end(c->req);
}

static void on_event(const struct ch_agent_event *ev, void *data)
{
    struct chat *c = data;

    if (c->closed || c->ended)
        return;
    c->refs++; /* a failed write may run on_client_close, which drops refs */
    switch (ev->type) {
    case CH_AGENT_EV_TEXT:
        if (c->stream && ev->delta.len) {
            stream_begin(c);
            if (!c->closed)
                stream_delta(c, ev->delta.p, ev->delta.len);
        }
        break;
    case CH_AGENT_EV_END:
        c->ended = true;
        chat_detach(c);
        if (c->stream) {
            stream_begin(c);
            if (!c->closed)
                stream_finish(c, ev->result);
        } else if (!c->closed) {
            chat_answer(c, ev->result);
        }
        break;
    default: break;
    }
    chat_unref(c);
}

static void on_accepted(int rc, const char *run_id, bool duplicate, const char *msg, void *data)
{
    struct chat *c = data;

    (void)run_id;
    (void)duplicate;
    if (rc == 0) {
        c->accepted = true;
        if (c->closed)
            chat_abort_run(c); /* left while the run was being queued */
        else if (c->stream && !c->ended)
            stream_begin(c);
    } else if (!c->closed && !c->ended) {
        c->ended = true;
        chat_detach(c);
        if (rc == CH_EBUSY) {
            ch_http_add_header(c->req, "Retry-After", "1");
            ch_http_respond_error(c->req, 503, "queue_full", "%s", msg ? msg : "the run queue is full; retry later");
        } else if (rc == CH_EINVAL) {
            ch_http_respond_error(c->req, 400, "invalid_request", "%s", msg ? msg : "invalid request");
        } else if (rc == CH_ESTATE) {
            ch_http_respond_error(c->req, 503, "shutting_down", "%s", msg ? msg : "the gateway is shutting down");
        } else if (rc == CH_ENOSPC) {
            ch_http_add_header(c->req, "Retry-After", "1");
            ch_http_respond_error(c->req, 503, "storage_full", "%s", CH_STORAGE_FULL_MSG);
        } else {
            ch_http_respond_error(c->req, 500, "internal", "the run could not be queued: %s",
                                  msg ? msg : ch_strerror(rc));
        }
    } else {
        chat_detach(c);
    }
    chat_unref(c); /* the accept callback's reference */
}

/* ---- request ---- */

struct chat_input {
    const char *message, *conv, *model, *system;
    char key[CH_SESSION_KEY_MAX + 1]; /* conv's session key */
    int64_t max_tokens;
    double temperature;
    bool has_temperature;
};

/* Validate the body; 400 answered and CH_EINVAL returned on failure. */
static int parse_input(struct ch_http_req *r, json_t *body, struct chat_input *in)
{
    json_t *v;
    const struct ch_auth_entry *who = r->owner_data;

    memset(in, 0, sizeof(*in));
    v = json_object_get(body, "message");
    if (!json_is_string(v) || json_string_length(v) == 0) {
        ch_http_respond_error(r, 400, "invalid_request", "message is required: a non-empty string");
        return CH_EINVAL;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        ch_http_respond_error(r, 400, "invalid_request", "message must not contain NUL characters");
        return CH_EINVAL;
    }
    in->message = json_string_value(v);
    v = json_object_get(body, "conversationId");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || !ch_agent_session_key_valid(json_string_value(v))) {
            ch_http_respond_error(r, 400, "invalid_request",
                                  "conversationId must be 1-%d printable characters without spaces",
                                  CH_STORE_MAX_KEY_BYTES);
            return CH_EINVAL;
        }
        in->conv = json_string_value(v);
        /* OpenClaw's own sessions (agent:, cron:...) are for admin
         * credentials, in any case (`AGENT:...` is agent:...). */
        if (ch_api_session_key_reserved(in->conv) && !(who && (who->scopes & CH_SCOPE_ADMIN))) {
            ch_http_respond_error(r, 400, "invalid_request",
                                  "conversationId uses a reserved prefix (agent:, cron:, subagent:, acp:); "
                                  "only admin tokens may address those sessions");
            return CH_EINVAL;
        }
        /* The session is the id's canonical key (`c-1` is agent:main:c-1,
         * `main` the agent's main session); the answers echo the id. */
        if (ch_api_session_key(in->conv, in->key) != 0) {
            ch_http_respond_error(r, 400, "invalid_request",
                                  "conversationId is not a session key: agent:<id>:<key>, or at most %d bytes as "
                                  "agent:main:<id>",
                                  CH_SESSION_KEY_MAX);
            return CH_EINVAL;
        }
    }
    v = json_object_get(body, "model");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= MAX_MODEL_REF) {
            ch_http_respond_error(r, 400, "invalid_request", "model must be a string of 1-%d characters",
                                  MAX_MODEL_REF - 1);
            return CH_EINVAL;
        }
        in->model = json_string_value(v);
    }
    v = json_object_get(body, "systemPrompt");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) > MAX_SYSTEM_PROMPT) {
            ch_http_respond_error(r, 400, "invalid_request", "systemPrompt must be a string of at most %d bytes",
                                  MAX_SYSTEM_PROMPT);
            return CH_EINVAL;
        }
        in->system = json_string_length(v) ? json_string_value(v) : NULL;
    }
    v = json_object_get(body, "maxTokens");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 10000000) {
            ch_http_respond_error(r, 400, "invalid_request", "maxTokens must be an integer from 1 to 10000000");
            return CH_EINVAL;
        }
        in->max_tokens = json_integer_value(v);
    }
    v = json_object_get(body, "temperature");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 2) {
            ch_http_respond_error(r, 400, "invalid_request", "temperature must be a number from 0 to 2");
            return CH_EINVAL;
        }
        in->temperature = json_number_value(v);
        in->has_temperature = true;
    }
    return 0;
}

/* The model must resolve now, so a typo is a 400 and not a failed run. */
static int check_model(struct ch_http_req *r, struct ch_api *a, const char *model)
{
    struct ch_llm_catalog *cat = ch_llm_client_catalog(ch_agent_llm(a->agent));
    struct ch_llm_target t;
    struct ch_error err = {0};

    if (!cat || cat->provider_count == 0) {
        ch_http_respond_error(r, 503, "no_provider",
                              "no LLM provider is configured: set models.providers in the config, or "
                              "ANTHROPIC_API_KEY, OPENAI_API_KEY or GEMINI_API_KEY");
        return CH_ENOTFOUND;
    }
    if (model && ch_llm_catalog_resolve(cat, model, &t, &err) != 0) {
        ch_http_respond_error(r, 400, "invalid_model", "%s", err.msg[0] ? err.msg : "unknown model");
        return CH_EINVAL;
    }
    return 0;
}

static void chat_start(struct ch_http_req *r, struct ch_api *a, bool stream)
{
    struct ch_agent_run_req rr = {0};
    struct chat_input in;
    struct chat *c = NULL;
    json_t *body = NULL;
    char uuid[37];

    if (!a->agent) {
        ch_http_respond_error(r, 503, "agent_unavailable", "this gateway runs without an agent runtime");
        return;
    }
    if (ch_api_json_body(r, &body) != 0)
        return;
    if (parse_input(r, body, &in) != 0 || check_model(r, a, in.model) != 0)
        goto out;
    c = ch_calloc(1, sizeof(*c));
    if (c) {
        ch_uuid4(uuid);
        c->conv_id = in.conv ? ch_strdup(in.conv) : ch_sprintf("conv_%s", uuid);
        c->key = in.conv ? ch_strdup(in.key) : ch_sprintf("agent:main:conv_%s", uuid);
    }
    if (!c || !c->conv_id || !c->key) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        if (c) {
            ch_free(c->conv_id);
            ch_free(c->key);
            ch_free(c);
        }
        goto out;
    }
    c->refs = 1;
    c->api = a;
    c->req = r;
    ch_http_req_ref(r);
    c->stream = stream;
    c->t0_ms = ch_now_ms();
    ch_buf_init(&c->ev, MAX_EVENT_BYTES);
    ch_agent_run_id_new(c->run_id); /* time-ordered: appends to the runs index */
    /* Subscribe before the run exists: its first event cannot be missed. */
    c->sub = ch_agent_subscribe(a->agent, c->run_id, on_event, c);
    if (!c->sub) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        chat_unref(c);
        goto out;
    }
    c->refs++;
    ch_http_req_on_close(r, on_client_close, c);
    rr.session_key = c->key;
    rr.message = in.message;
    rr.run_id = c->run_id;
    rr.source = "api";
    rr.model = in.model;
    rr.system_prompt = in.system;
    rr.max_tokens = in.max_tokens;
    rr.temperature = in.temperature;
    rr.has_temperature = in.has_temperature;
    rr.no_tools = false;
    c->refs++; /* until on_accepted, which never runs synchronously */
    ch_agent_submit(a->agent, &rr, on_accepted, c);
    chat_unref(c);
out:
    json_decref(body);
}

void ch_rest_chat(struct ch_http_req *r, void *data)
{
    chat_start(r, data, false);
}

void ch_rest_chat_stream(struct ch_http_req *r, void *data)
{
    chat_start(r, data, true);
}
