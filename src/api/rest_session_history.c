/*
 * rest_session_history.c: GET /sessions/:key/history, OpenClaw v4's HTTP
 * read of a session's transcript (read scope, its `chat.history`).
 *
 * JSON: {sessionKey, items, messages, hasMore, nextCursor?}; items and
 * messages are the same list, oldest first, each message as chat.history
 * gives it plus `__openclaw: {id, seq}`.  `limit` (a positive integer; more
 * than 1000 is 1000) keeps the newest; `cursor` (`N` or `seq:N`, from
 * nextCursor) pages back to the messages before seq N.  An unknown session
 * is 404 {ok: false, error: {type: "not_found", message}}; a bad limit or
 * cursor 400.
 *
 * With `Accept: text/event-stream` the answer is a stream, as in OpenClaw:
 * `retry: 1000`, an `event: history` with the same object, another one
 * whenever a run of the session starts or ends (its messages are stored by
 * then), and a `: keepalive` comment every 15 s, until the client leaves.
 */
#include <string.h>

#include "api/internal.h"
#include "api/oc_internal.h"

#define HISTORY_MAX 1000
#define HISTORY_BYTES (6u << 20) /* as chat.history */
#define KEEPALIVE_MS 15000

struct hist {
    int refs;                 /* handler, load job, subscription, timer */
    struct ch_api *api;       /* borrowed */
    struct ch_http_req *req;  /* ref held until freed */
    struct ch_agent_sub *sub; /* stream only */
    uv_timer_t keepalive;
    bool timer_on, stream, began, closed, loading, dirty;
    size_t limit;   /* 0: HISTORY_MAX */
    int64_t cursor; /* 0: none */
    char key[CH_STORE_MAX_KEY_BYTES + 1];
};

struct hist_job {
    struct ch_store_job job;
    struct hist *h;
    char *text; /* the answer, rendered on the reader thread (a stream's
                   SSE event, framing included); NULL: no such session */
    size_t len;
};

static void hist_unref(struct hist *h)
{
    if (--h->refs > 0)
        return;
    ch_http_req_unref(h->req);
    ch_free(h);
}

static void timer_closed(uv_handle_t *t)
{
    hist_unref(t->data);
}

static void detach(struct hist *h)
{
    if (h->sub) {
        ch_agent_unsubscribe(h->sub);
        h->sub = NULL;
        hist_unref(h);
    }
    if (h->timer_on) {
        h->timer_on = false;
        uv_timer_stop(&h->keepalive);
        uv_close((uv_handle_t *)&h->keepalive, timer_closed);
    }
}

static void on_close(struct ch_http_req *r, void *data)
{
    struct hist *h = data;

    (void)r;
    if (h->closed)
        return;
    h->closed = true;
    h->refs++;
    detach(h);
    hist_unref(h);
}

static void send_text(struct hist *h, const char *p, size_t n)
{
    if (!h->closed && ch_http_stream_write(h->req, p, n) != 0)
        on_close(h->req, h);
}

static void on_keepalive(uv_timer_t *t)
{
    send_text(t->data, ": keepalive\n\n", 13);
}

/* ---- the read (store reader thread) ---- */

static int load(struct ch_db *db, struct ch_store_job *job)
{
    struct hist_job *j = (struct hist_job *)job;
    struct hist *h = j->h;
    size_t limit = h->limit ? h->limit : HISTORY_MAX;
    struct ch_session_rec s = {0};
    struct ch_message_bounds b = {0};
    struct ch_message_list ml = {0};
    json_t *msgs = NULL, *answer = NULL;
    char *dump = NULL;
    int64_t first = 0;
    int rc = ch_sessions_get(db, h->key, &s);

    if (rc == CH_ENOTFOUND)
        return 0;
    if (!rc)
        rc = ch_messages_bounds(db, s.session_id, &b);
    /* Seqs run without gaps from the transcript's first row (a compaction
     * deletes only below its entry), so the page before a cursor starts at
     * cursor - limit. */
    if (!rc && h->cursor)
        rc = ch_messages_load_since(db, s.session_id, CH_MAX(b.first_seq, h->cursor - (int64_t)limit), limit,
                                    HISTORY_BYTES, &ml);
    else if (!rc)
        rc = ch_messages_load_last(db, s.session_id, limit, HISTORY_BYTES, &ml);
    if (!rc && !(msgs = json_array()))
        rc = CH_ENOMEM;
    for (size_t i = 0; !rc && i < ml.count; i++) {
        const struct ch_message_rec *m = &ml.items[i];
        json_t *o;
        if (h->cursor && m->seq >= h->cursor)
            break;
        if (!first)
            first = m->seq;
        if (!strcmp(m->role, "system") || !(o = ch_oc_message_json(m)))
            continue;
        json_array_append_new(msgs, o);
    }
    if (!rc) {
        bool more = first > b.first_seq && b.first_seq;
        answer =
            json_pack("{s:s, s:O, s:O, s:b}", "sessionKey", h->key, "items", msgs, "messages", msgs, "hasMore", more);
        if (answer && more)
            json_object_set_new(answer, "nextCursor", json_sprintf("%lld", (long long)first));
        /* Encoded here, off the loop: a page can be megabytes. */
        dump = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
        j->text = dump && h->stream ? ch_sprintf("event: history\ndata: %s\n\n", dump) : dump;
        if (j->text == dump)
            dump = NULL;
        rc = j->text ? 0 : CH_ENOMEM;
        j->len = j->text ? strlen(j->text) : 0;
    }
    ch_free(dump);
    json_decref(answer);
    json_decref(msgs);
    ch_message_list_release(&ml);
    ch_session_rec_release(&s);
    return rc;
}

static void reload(struct hist *h);

static void begin_stream(struct hist *h)
{
    h->began = true;
    ch_http_add_header(h->req, "Cache-Control", "no-cache");
    ch_http_add_header(h->req, "X-Accel-Buffering", "no");
    if (ch_http_stream_begin(h->req, 200, "text/event-stream; charset=utf-8") != 0) {
        on_close(h->req, h);
        return;
    }
    send_text(h, "retry: 1000\n\n", 13);
    if (h->closed)
        return;
    uv_timer_init(h->api->net->loop, &h->keepalive);
    h->keepalive.data = h;
    h->timer_on = true;
    h->refs++; /* dropped in timer_closed */
    uv_timer_start(&h->keepalive, on_keepalive, KEEPALIVE_MS, KEEPALIVE_MS);
}

static void loaded(struct ch_store_job *job, int rc)
{
    struct hist_job *j = (struct hist_job *)job;
    struct hist *h = j->h;
    char msg[CH_STORE_MAX_KEY_BYTES + 40];

    h->loading = false;
    if (h->closed || ch_http_req_is_closed(h->req)) {
    } else if (rc && !h->began) {
        ch_api_oc_error(h->req, 503, "unavailable", "reading the session failed; retry shortly");
    } else if (!rc && !j->text && !h->began) {
        snprintf(msg, sizeof(msg), "Session not found: %s", h->key);
        ch_api_oc_error(h->req, 404, "not_found", msg);
    } else if (!rc && !j->text) {
        detach(h); /* deleted while streamed: the stream ends */
        ch_http_stream_end(h->req);
    } else if (!h->stream) {
        ch_http_respond(h->req, 200, "application/json", j->text, j->len);
    } else if (!rc) {
        if (!h->began)
            begin_stream(h);
        send_text(h, j->text, j->len);
    }
    if (!h->began && h->stream && h->sub && (rc || !j->text))
        detach(h); /* answered with an error: no stream to feed */
    ch_free(j->text);
    ch_free(j);
    if (h->dirty && !h->closed && h->began) {
        h->dirty = false;
        reload(h);
    }
    hist_unref(h);
}

static void reload(struct hist *h)
{
    struct hist_job *j = ch_calloc(1, sizeof(*j));

    if (!j || (j->h = h, j->job.run = load, j->job.done = loaded, ch_store_read(h->api->store, &j->job) != 0)) {
        ch_free(j);
        if (!h->began)
            ch_api_oc_error(h->req, 503, "unavailable", "the store cannot take the request now; retry shortly");
        return;
    }
    h->loading = true;
    h->refs++;
}

/* A run of this session started (its user message is stored) or ended. */
static void on_run(const struct ch_agent_event *ev, void *data)
{
    struct hist *h = data;

    if ((ev->type != CH_AGENT_EV_START && ev->type != CH_AGENT_EV_END) || h->closed || strcmp(ev->session_key, h->key))
        return;
    if (h->loading || !h->began)
        h->dirty = true;
    else
        reload(h);
}

/* "12", or a digit string past 1000 (clamped, as OpenClaw); 0 if bad. */
static int64_t positive(const char *v, int64_t cap)
{
    int64_t n = 0;
    size_t i = 0;

    if (!strncmp(v, "seq:", 4) && cap == INT64_MAX)
        v += 4;
    for (; v[i] >= '0' && v[i] <= '9'; i++)
        n = n > cap / 10 ? cap : CH_MIN(cap, n * 10 + (v[i] - '0'));
    return v[i] || !i ? 0 : n;
}

void ch_rest_sessions_history(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    const struct ch_str *accept = ch_http_req_header(r, "accept");
    char v[40];
    struct hist *h;
    int rc;

    if (!ch_api_oc_agent_ok(r))
        return;
    if (!(h = ch_calloc(1, sizeof(*h)))) {
        ch_api_oc_error(r, 500, "internal", "out of memory");
        return;
    }
    h->refs = 1;
    h->api = a;
    h->req = r;
    ch_http_req_ref(r);
    if (ch_api_path_param(r, 0, h->key, sizeof(h->key)) != 0) /* answered 400 */
        goto out;
    rc = ch_http_req_query(r, "limit", v, sizeof(v));
    if (rc != CH_ENOTFOUND && (rc || !(h->limit = (size_t)positive(v, HISTORY_MAX)))) {
        ch_api_oc_error(r, 400, "invalid_request", "limit must be a positive integer");
        goto out;
    }
    rc = ch_http_req_query(r, "cursor", v, sizeof(v));
    if (rc != CH_ENOTFOUND && (rc || !(h->cursor = positive(v, INT64_MAX)))) {
        ch_api_oc_error(r, 400, "invalid_request", "cursor must be a positive integer");
        goto out;
    }
    h->stream = accept && memmem(accept->p, accept->len, "text/event-stream", 17);
    if (h->stream) {
        /* Subscribed before the first read: a run ending in between is
         * not missed (it marks the stream dirty). */
        if (!a->agent || !(h->sub = ch_agent_subscribe(a->agent, NULL, on_run, h))) {
            ch_api_oc_error(r, 503, "unavailable", "the agent is not running");
            goto out;
        }
        h->refs++;
        ch_http_req_on_close(r, on_close, h);
    }
    reload(h);
    if (!h->loading)
        detach(h);
out:
    hist_unref(h);
}
